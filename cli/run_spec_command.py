"""`run-spec`: a compiled Kubeflow spec run on this machine, task by task, as a KFP launcher
would (orchestration/kfp_spec_runner.py runs it; this module is the command and its progress)."""

from __future__ import annotations

from pathlib import Path

import click

from cli import exit_codes
from cli.options import CONTEXT_SETTINGS


@click.command("run-spec", context_settings=CONTEXT_SETTINGS)
@click.argument("spec", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "--pipeline-root",
    type=click.Path(file_okay=False, path_type=Path),
    required=True,
    help="Local folder for the tasks' artifacts (the spec's own root is the cluster's).",
)
@click.option(
    "--logs-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="One log file per task [default: <pipeline-root>/task-logs].",
)
def run_spec(spec: Path, pipeline_root: Path, logs_dir: Path | None) -> None:
    """Run a compiled Kubeflow spec on this machine, task by task, as a KFP launcher would.

    SPEC: the .yaml or .pipeline_job.json that `--orchestrator kubeflow` wrote. Each task runs
    its own container command with this environment's Python, fed the inputs a KFP launcher
    would give it: a check that the compiled spec runs before it goes to a cluster. Resolver
    tasks resolve to nothing, as on a pipeline's first run.
    """
    from orchestration import kfp_spec_runner  # its tasks import TensorFlow, not this process

    logs_dir = logs_dir or pipeline_root / "task-logs"
    pipeline_spec = kfp_spec_runner.load_pipeline_spec(spec)
    tasks = kfp_spec_runner.task_order(pipeline_spec)
    width = max(len(t) for t in tasks)

    def progress(position: int, result: kfp_spec_runner.TaskResult) -> None:
        click.echo(
            f"[{position:>2}/{len(tasks)}] {result.name:<{width}}  {result.kind:<9} "
            f"{result.seconds:6.1f} s"
        )

    try:
        kfp_spec_runner.run_spec(pipeline_spec, pipeline_root, logs_dir, on_task_done=progress)
    except kfp_spec_runner.TaskFailed as e:
        click.echo(f"error: {e}", err=True)
        raise SystemExit(exit_codes.COMPONENT_FAILED) from e
    click.echo(f"All {len(tasks)} tasks ran. Artifacts: {pipeline_root}; task logs: {logs_dir}")

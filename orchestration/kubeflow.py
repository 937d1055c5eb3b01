"""Compiles `create_pipeline()` for Kubeflow Pipelines (KFP v2) and optionally submits it.

Writes two files from one compilation by TFX's `KubeflowV2DagRunner`:
- `<name>.yaml`: the KFP v2 PipelineSpec, what the KFP UI, `kfp` SDK and API accept;
- `<name>.pipeline_job.json`: the same spec wrapped as a Vertex AI PipelineJob with its runtime
  config (pipeline root), as TFX writes it.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import yaml
from tfx.orchestration.kubeflow.v2 import kubeflow_v2_dag_runner

from orchestration import kfp_task
from pipeline.config import PipelineConfig
from pipeline.definition import create_pipeline

# Every task's command (the arguments are TFX's): TFX's entry point behind a module that defers
# TFX's Google Cloud extensions first (orchestration/kfp_task.py).
TASK_COMMAND = ["python", "-m", "orchestration.kfp_task"]


@dataclasses.dataclass(frozen=True)
class CompiledPipeline:
    pipeline_spec: Path
    pipeline_job: Path


class SubmitError(Exception):
    """The KFP endpoint could not be reached or refused the run."""


def compile_pipeline(
    config: PipelineConfig, image: str, output_dir: Path, beam_pipeline_args: tuple[str, ...] = ()
) -> CompiledPipeline:
    """Compiles the pipeline for a cluster where every task runs in `image`."""
    output_dir.mkdir(parents=True, exist_ok=True)
    job_path = output_dir / f"{config.pipeline_name}.pipeline_job.json"
    runner = kubeflow_v2_dag_runner.KubeflowV2DagRunner(
        config=kubeflow_v2_dag_runner.KubeflowV2DagRunnerConfig(
            default_image=image,
            default_commands=TASK_COMMAND
            + ([] if config.deterministic else [kfp_task.NOT_DETERMINISTIC_FLAG]),
        ),
        output_dir=str(output_dir),
        output_filename=job_path.name,
    )
    # Kubeflow's compiler accepts only TFX's stock resolver strategies; KFP brings its own MLMD.
    pipeline = create_pipeline(
        config, beam_pipeline_args=beam_pipeline_args, exclude_candidate_from_baseline=False
    )
    runner.run(pipeline, write_out=True)
    job = json.loads(job_path.read_text())
    spec = job["pipelineSpec"]
    if config.retries:
        for task in spec["root"]["dag"]["tasks"].values():
            task["retryPolicy"] = retry_policy(config.retries)
        job_path.write_text(json.dumps(job, sort_keys=True))
    spec["defaultPipelineRoot"] = job["runtimeConfig"]["gcsOutputDirectory"]
    spec_path = output_dir / f"{config.pipeline_name}.yaml"
    spec_path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return CompiledPipeline(pipeline_spec=spec_path, pipeline_job=job_path)


def retry_policy(retries: int) -> dict:
    """KFP v2's retry policy for a task (PipelineTaskSpec.RetryPolicy, as the `kfp` SDK's
    `set_retry` writes it): `retries` more attempts, 30 s apart at first, doubling, at most an
    hour. Kubeflow retries a task whatever failed it; locally, only a transient fault is retried."""
    return {
        "maxRetryCount": retries,
        "backoffDuration": "30s",
        "backoffFactor": 2.0,
        "backoffMaxDuration": "3600s",
    }


def submit(
    compiled: CompiledPipeline, endpoint: str, experiment: str | None = None
) -> tuple[str, str]:
    """Creates a run on a KFP endpoint; returns (run id, run URL)."""
    import kfp

    try:
        client = kfp.Client(host=endpoint)
        result = client.create_run_from_pipeline_package(
            str(compiled.pipeline_spec), arguments={}, experiment_name=experiment
        )
    except Exception as e:  # noqa: BLE001 - network, auth and API errors all end here
        raise SubmitError(
            f"Could not submit to the Kubeflow Pipelines endpoint {endpoint}: "
            f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"
        ) from e
    return result.run_id, f"{endpoint.rstrip('/')}/#/runs/details/{result.run_id}"

"""`reproduce RUN`: replay a recorded run from scratch and prove it gives the same artifacts.

The flow: what the run recorded is checked against what is here now (orchestration/reproduce.py);
any difference refuses the replay (exit 2) unless --allow-differences; the run's configuration
runs again, cold, in a fresh output directory with its own ML Metadata, its Evaluator comparing
with the same baseline model; then both runs are compared artifact by artifact
(metadata/run_comparison.py). Exit 0 when identical, 5 when not.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import click

from cli import exit_codes
from cli.options import CONTEXT_SETTINGS, open_store, parallelism_option, store_options
from cli.user_errors import UserError, quiet_libraries
from metadata.store import NotFound, StoreIndex, UnusableStore
from pipeline.metadata_location import MetadataLocation


@click.command("reproduce", context_settings=CONTEXT_SETTINGS)
@click.argument("run_ref", metavar="RUN")
@click.option(
    "--output-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Fresh folder the replay writes to (it must not exist or be empty) [default: "
    "<the run's output dir>/reproductions/<run id>].",
)
@click.option(
    "--allow-differences",
    is_flag=True,
    help="Replay even when the data, code, lock, libraries or profile differ from what the run "
    "recorded; the comparison then shows what the differences changed.",
)
@parallelism_option("How many components the replay runs at once [default: one per core].")
@store_options
def reproduce(
    run_ref: str,
    output_dir: Path | None,
    allow_differences: bool,
    parallelism: int | None,
    location: MetadataLocation,
    as_json: bool,
) -> None:
    """Replay run RUN (id, unique prefix, or 1 for the newest; `inspect runs` lists them) from
    scratch and compare the two runs artifact by artifact.

    First, what RUN recorded is checked against what is here now: each data file it read (its
    SHA-256), a newer span a run would now read, the source files (git commit and uncommitted
    changes, file by file), requirements.lock, Python and the ML libraries' versions, and every
    key of the profile. Any difference refuses the replay, each one named (exit 2), unless
    --allow-differences. Then RUN's configuration runs again, cold, into a fresh output directory
    with its own ML Metadata (the Evaluator comparing with the model RUN compared with), and the
    splits, statistics, schemas, transform graph, model weights, metrics, blessings and
    predictions of both runs are compared. Prints REPRODUCED: identical (exit 0) or what differs
    and by how much (exit 5).
    """
    index = open_store(location)  # first: it quiets the libraries imported next
    from orchestration import reproduce as replaying

    try:
        check = replaying.check_replay(index, run_ref)
    except (NotFound, replaying.CannotReproduce) as e:
        raise UserError(str(e)) from e
    say = click.get_text_stream("stderr" if as_json else "stdout")
    say.write(_check_text(check, allow_differences))
    if check.refusals and not allow_differences:
        if as_json:
            click.echo(json.dumps(_result(check, None, None, None), indent=2, default=str))
        sys.exit(exit_codes.BAD_SETTINGS)
    replay_dir = (output_dir or replaying.default_replay_dir(check)).resolve()
    if replay_dir.exists() and any(replay_dir.iterdir()):
        raise UserError(
            f"--output-dir {replay_dir} is not empty: a replay starts from scratch in a fresh "
            "folder. Give another one, or leave the option out."
        )
    try:
        config = replaying.replay_config(check.recorded, replay_dir)
    except replaying.CannotReproduce as e:
        raise UserError(str(e)) from e
    replay_dir.mkdir(parents=True, exist_ok=True)
    if check.baseline is not None:
        replaying.seed_baseline(config.metadata_location, config.pipeline_name, check.baseline)
        say.write(
            "Baseline: the model the run's Evaluator compared with (artifact "
            f"{check.baseline.model.id}, {check.baseline.model.uri}), recorded in the replay's "
            "store.\n"
        )
    say.write(f"Replaying run {check.run_id} into {replay_dir} ...\n")
    say.flush()
    from cli import run_commands

    with _console_to_stderr(as_json):
        code = run_commands.run_locally(config, parallelism)
    if code != exit_codes.OK:
        say.write(
            f"\nThe replay stopped with exit code {code} (above); run {check.run_id} was not "
            "reproduced.\n"
        )
        sys.exit(code)
    quiet_libraries()  # the run left logging at INFO for its log file
    try:
        replay_index = StoreIndex.open(config.metadata_location)
    except (NotFound, UnusableStore) as e:
        raise UserError(str(e)) from e
    from metadata import runs
    from metadata.run_comparison import compare_runs

    replay_run = runs.find_run(replay_index, "1")["run_id"]
    comparison = compare_runs(index, check.run_id, replay_index, replay_run)
    if as_json:
        click.echo(
            json.dumps(_result(check, replay_dir, replay_run, comparison), indent=2, default=str)
        )
    else:
        click.echo(_comparison_text(check.run_id, replay_run, comparison))
    sys.exit(exit_codes.OK if comparison["identical"] else exit_codes.NOT_REPRODUCED)


@contextlib.contextmanager
def _console_to_stderr(active: bool) -> Iterator[None]:
    """With --json, the replay's progress lines go to stderr: stdout holds the JSON only."""
    if not active:
        yield
        return
    sys.stdout.flush()
    saved = os.dup(1)
    os.dup2(2, 1)
    try:
        yield
    finally:
        sys.stdout.flush()
        os.dup2(saved, 1)
        os.close(saved)


def _short(value: str | None, length: int = 12) -> str:
    return value[:length] if value else "none"


def _check_text(check, allowed: bool) -> str:
    recorded = check.recorded
    git = recorded.get("git", {})
    versions = recorded.get("versions", {})
    commit = (
        f"commit {_short(git.get('commit'), 10)}"
        + (
            f" with uncommitted changes {git['uncommitted_changes']}"
            if git.get("uncommitted_changes")
            else ""
        )
        if git.get("commit")
        else "not a git checkout"
    )
    lines = [
        f"Run {check.run_id} ({check.pipeline_name}) recorded: {commit}; "
        f"requirements.lock {_short(recorded.get('lock', {}).get('sha256'))}; "
        f"Python {versions.get('python')}, TensorFlow {versions.get('tensorflow')}, "
        f"TFX {versions.get('tfx')}, Beam {versions.get('apache-beam')}; seed "
        f"{recorded.get('seeds', {}).get('seed')}"
        + ("" if recorded.get("seeds", {}).get("deterministic") else ", NOT deterministic"),
    ]
    refusals = check.refusals
    informational = [d for d in check.differences if d.informational]
    checked = (
        f"{check.data_files_checked} data files, {len(recorded.get('source_files', {}))} source "
        f"files, the lock, {len(versions)} versions, the profile"
    )
    if not refusals:
        lines.append(f"Checked against this checkout: no difference ({checked}).")
    else:
        verdict = "allowed by --allow-differences" if allowed else "the replay is refused"
        lines.append(f"Differences from what the run recorded ({verdict}):")
        lines += [f"  {d.text()}" for d in refusals]
        if not allowed:
            lines.append(
                "Restore what changed (or check out the recorded commit) and run again, or add "
                "--allow-differences to replay anyway and see what the differences change."
            )
    lines += [f"  note: {d.text()}" for d in informational]
    if not recorded.get("seeds", {}).get("deterministic"):
        lines.append(
            "  note: the run was made with --no-deterministic: its replay may differ in the last "
            "digits."
        )
    return "\n".join(lines) + "\n"


def _comparison_text(run_id: str, replay_run: str, comparison: dict[str, Any]) -> str:
    artifacts = comparison["artifacts"]
    width = max((len(a["output"]) for a in artifacts), default=0)
    lines = ["", f"Run {run_id} against its replay {replay_run}, artifact by artifact:"]
    for artifact in artifacts:
        state = "identical" if artifact["identical"] else "DIFFERS"
        lines.append(f"  {artifact['output']:<{width}}  {artifact['type_name']:<18} {state}")
        lines += [f"      {line}" for line in artifact["differences"]]
    differing = [a for a in artifacts if not a["identical"]]
    if comparison["identical"]:
        lines.append(f"REPRODUCED: identical ({len(artifacts)} of {len(artifacts)} outputs)")
    else:
        lines.append(
            f"NOT REPRODUCED: {len(differing)} of {len(artifacts)} outputs differ "
            f"({', '.join(a['output'] for a in differing)})"
        )
    return "\n".join(lines)


def _result(check, replay_dir, replay_run, comparison) -> dict[str, Any]:
    refused = comparison is None
    return {
        "run": check.run_id,
        "identical": None if refused else comparison["identical"],
        "refused": refused,
        "environment_differences": [d.as_json() for d in check.differences],
        "replay_output_dir": str(replay_dir) if replay_dir else None,
        "replay_run": replay_run,
        "differences": [d.text() for d in check.refusals] if refused else comparison["differences"],
        "artifacts": [] if refused else comparison["artifacts"],
    }

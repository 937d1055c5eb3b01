"""What `python run_local.py` does: run the pipeline here, or compile (and submit) it for Kubeflow.

Both share the same steps: the profile's user code made importable, a writable output directory, a
log file that takes every library's output while the terminal shows lines for people, the pre-run
checks, and one mapping from what went wrong to an exit code.
"""

from __future__ import annotations

import contextlib
import datetime
import logging
import os
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import TextIO

import click

from cli import exit_codes, report
from cli.summary_text import format_summary
from metadata import connection_retry, run_lock
from metadata.run_summary import summarize_run
from metadata.store import StoreIndex
from orchestration import beam_mode, faults, node_process, preflight
from orchestration.console import output_to_log_file
from orchestration.dag_schedule import default_parallelism
from pipeline import run_environment
from pipeline.config import PipelineConfig
from pipeline.user_code import make_user_code_importable


class _Stop(Exception):
    """Ends a command early with an exit code; the message is already on the console."""

    def __init__(self, exit_code: int):
        super().__init__(exit_code)
        self.exit_code = exit_code


@contextlib.contextmanager
def _logged_command(
    config: PipelineConfig, log_name: str, run_id: str | None = None
) -> Iterator[tuple[TextIO, Path]]:
    """Checks the output directory, holds its run lock for `run_id` (a run), sends all output to
    a new log file, and yields the console and the log's path. Bad settings found by the pre-run
    checks, or another run holding the lock, end the command with exit 2."""
    with contextlib.ExitStack() as stack:
        try:  # no log file to point at yet: say it on stderr
            preflight.check_output_dir(config.output_dir)
            if run_id is not None:
                stack.enter_context(run_lock.hold(config.output_dir, run_id))
        except (preflight.SetupError, run_lock.RunLocked) as e:
            click.echo(f"error: {e}", err=True)
            raise _Stop(exit_codes.BAD_SETTINGS) from e
        started = datetime.datetime.now()
        log_path = config.logs_dir / f"{log_name}-{started:%Y%m%d-%H%M%S}.log"
        with output_to_log_file(log_path, config.metadata_location.secrets()) as console:
            try:
                yield console, log_path
            except preflight.SetupError as e:
                console.write(f"error: {e}\n")
                raise _Stop(exit_codes.BAD_SETTINGS) from e


def _relative(path: Path) -> str:
    return os.path.relpath(path) if path.is_relative_to(Path.cwd()) else str(path)


def _write_report(index: StoreIndex, run_id: str, log_path: Path) -> str:
    """Writes the run's HTML report; a report that cannot be written never fails the run."""
    try:
        path = report.write_report(index, run_id, None)
        return _relative(path)
    except Exception:  # noqa: BLE001 - the run itself is over; say so and point at the log
        logging.exception("Writing the HTML report failed")
        return f"not written (see {log_path})"


def _finish(config: PipelineConfig, run_id: str, console: TextIO, log_path: Path, started) -> None:
    """The run's summary and report, read back from ML Metadata."""
    elapsed = (datetime.datetime.now() - started).total_seconds()
    index = StoreIndex.open(config.metadata_location)
    summary = summarize_run(index, run_id)
    console.write("\n" + format_summary(summary, config, log_path, elapsed) + "\n")
    console.write(f"Report:     {_write_report(index, run_id, log_path)}\n")


def run_locally(config: PipelineConfig, parallelism: int | None = None) -> int:
    """Runs the whole chain on this machine; returns the exit code.

    One run at a time per output directory: a second one is refused at once (exit 2).
    """
    # First: the node server, started below, copies the import path and environment when it
    # starts.
    make_user_code_importable(config)
    if config.deterministic:
        # Sets and dicts keyed by strings iterate in one order in every component process.
        os.environ["PYTHONHASHSEED"] = str(run_environment.PYTHON_HASH_SEED)
    beam = beam_mode.choose(config)
    given_parallelism = parallelism is not None
    parallelism = parallelism or default_parallelism()
    started = datetime.datetime.now()
    run_id = started.isoformat()
    try:
        with _logged_command(config, "run", run_id) as (console, log_path):
            label = config.profile.label
            console.write(
                f"Pipeline {config.pipeline_name} ({label.task}, label {label.column!r}; profile "
                f"{_relative(config.profile_dir)}): data {config.data_dir}, "
                f"outputs {config.output_dir}\n"
            )
            console.write(f"Beam:     {beam.describe()}\n")
            console.write(
                f"Parallel: up to {parallelism} components at once"
                f"{' (--parallelism)' if given_parallelism else ' (one per core; --parallelism)'}\n"
            )
            console.write(
                f"Metadata: {config.metadata_location} ({config.metadata_location.engine})\n"
            )
            console.write(f"Full log: {log_path}\n")
            try:
                # The components' processes fork from a server that imports TensorFlow and TFX
                # (about 10 s): it starts first, to import while this process checks the inputs
                # (importing the user code) and compiles the pipeline.
                node_process.warm_up()
                connection_retry.install(config.metadata_retry_seconds)
                preflight.run_all(config, say=lambda text: console.write(text + "\n"))
                return _run_and_report(
                    config, beam, console, log_path, started, run_id, parallelism
                )
            except KeyboardInterrupt:  # outside the runner (which records its own): checks, summary
                console.write("\ninterrupted: the run was stopped.\n")
                return exit_codes.INTERRUPTED
            finally:
                node_process.shut_down()
    except _Stop as stop:
        return stop.exit_code


def _run_and_report(
    config, beam, console: TextIO, log_path: Path, started, run_id: str, parallelism: int | None
) -> int:
    # The runner imports TensorFlow and TFX: after the log file has taken the output.
    from orchestration import local_runner

    try:
        local_runner.run(config, beam, console, run_id, log_path, parallelism)
    except local_runner.RunInterrupted as e:
        console.write(
            f"\ninterrupted: run {run_id} was stopped ({e}); nothing more was pushed. ML Metadata "
            "records its unfinished steps as canceled; run again to resume from the cache.\n"
        )
        return exit_codes.INTERRUPTED if e.signal_number == signal.SIGINT else exit_codes.TERMINATED
    except local_runner.DataRefusedError as e:
        _finish(config, e.run_id, console, log_path, started)
        return exit_codes.DATA_REFUSED
    except local_runner.PipelineRunError as e:
        if e.fault is not None:
            console.write(
                f"\nerror: {e.node_id} failed: {e.fault.sentence}\nNothing was pushed. ML "
                f"Metadata records the failed step in {config.metadata_location} (when it could "
                f"be reached); the full log is {log_path}.\n"
            )
            return exit_codes.FAULT
        console.write(
            f"\nerror: {e.node_id or 'The pipeline'} failed: {e.cause_text()}\n"
            f"Nothing was pushed. ML Metadata records the failed execution in "
            f"{config.metadata_location}; the traceback is in {log_path}. Fix the cause and run "
            "again: completed components are reused from the cache.\n"
        )
        return exit_codes.COMPONENT_FAILED
    except Exception as e:  # noqa: BLE001 - reported in words; the traceback goes to the log
        logging.exception("Unexpected error")
        fault = faults.classify_in_run(e, None, config)
        if fault is not None:
            console.write(f"\nerror: {fault.sentence}\nThe full log is {log_path}.\n")
            return exit_codes.FAULT
        console.write(
            f"\nerror: the run stopped on an unexpected error; the traceback is in {log_path}.\n"
        )
        return exit_codes.COMPONENT_FAILED
    _finish(config, run_id, console, log_path, started)
    return exit_codes.OK


def compile_for_kubeflow(
    config: PipelineConfig, image: str, kfp_endpoint: str | None, kfp_experiment: str | None
) -> int:
    """Compiles the pipeline to a KFP v2 spec, says where it is, and submits it when asked."""
    make_user_code_importable(config)  # the checks and the compiler import and fingerprint it
    try:
        with _logged_command(config, "compile") as (console, log_path):
            try:
                preflight.check_user_code(config)
                return _compile_and_submit(
                    config, image, kfp_endpoint, kfp_experiment, console, log_path
                )
            except KeyboardInterrupt:
                console.write("\ninterrupted: the compile (or the submission) was stopped.\n")
                return exit_codes.INTERRUPTED
    except _Stop as stop:
        return stop.exit_code


def _compile_and_submit(config, image, kfp_endpoint, kfp_experiment, console, log_path) -> int:
    # The compiler imports TensorFlow and TFX: after the log file has taken the output.
    from orchestration import kubeflow

    try:
        compiled = kubeflow.compile_pipeline(
            config, image, config.output_dir / "kubeflow", beam_mode.choose(config).beam_args
        )
    except Exception as e:  # noqa: BLE001 - the compiler's own message is the useful part
        logging.exception("Compilation failed")
        first_line = str(e).splitlines()[0] if str(e) else ""
        console.write(
            f"error: the pipeline does not compile for Kubeflow: {type(e).__name__}: "
            f"{first_line}\nFull log: {log_path}\n"
        )
        return exit_codes.COMPONENT_FAILED
    console.write(
        f"Compiled {config.pipeline_name} for Kubeflow Pipelines (KFP v2):\n"
        f"  pipeline spec (KFP):         {compiled.pipeline_spec}\n"
        f"  pipeline job (Vertex AI):    {compiled.pipeline_job}\n"
        f"  image:                       {image}\n"
        f"  pipeline root:               {config.pipeline_root_location}\n"
        f"  data:                        {config.labeled_data_location}, "
        f"{config.unlabeled_data_location}\n"
        f"  pushed models:               {config.serving_model_location}\n"
    )
    if not kfp_endpoint:
        console.write(
            "Submit it with: python run_local.py --orchestrator kubeflow --kfp-endpoint URL "
            "(same options), or upload the .yaml in the KFP UI (see README, Run on Kubeflow).\n"
        )
        return exit_codes.OK
    try:
        run_id, run_url = kubeflow.submit(compiled, kfp_endpoint, kfp_experiment)
    except kubeflow.SubmitError as e:
        logging.exception("Submission failed")
        console.write(f"error: {e}\nThe compiled spec stays at {compiled.pipeline_spec}.\n")
        return exit_codes.COMPONENT_FAILED
    console.write(f"Submitted run {run_id}: {run_url}\n")
    return exit_codes.OK

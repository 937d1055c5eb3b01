"""Runs `create_pipeline()` on TFX's LocalDagRunner with Beam's DirectRunner; ML Metadata is the
output directory's SQLite file or a shared MySQL / PostgreSQL database."""

from __future__ import annotations

import contextlib
import getpass
import logging
import os
import signal
import socket
from collections.abc import Iterator
from typing import NoReturn, TextIO

from ml_metadata.proto import metadata_store_pb2
from tfx.components.infra_validator import error_types

from components import tfx_private
from components.data_gate.executor import DataRefused
from components.span_example_gen.csv_checks import InvalidInputData
from metadata import runs
from metadata.store import latest_node_execution, open_store
from orchestration.beam_mode import BeamChoice
from orchestration.console import ComponentProgress
from pipeline.config import PipelineConfig
from pipeline.definition import create_pipeline

Execution = metadata_store_pb2.Execution
_CANCELLED = 1  # the canonical error code for a cancelled operation


class PipelineRunError(Exception):
    """A component failed in run `run_id`; `node_id` names it, `cause` is what it raised."""

    def __init__(self, run_id: str, node_id: str | None, cause: BaseException):
        super().__init__(f"{node_id or 'the pipeline'} failed: {type(cause).__name__}: {cause}")
        self.run_id = run_id
        self.node_id = node_id
        self.cause = cause

    def cause_text(self) -> str:
        """The cause for people: input-data errors (written for them) in full, others' first line."""
        lines = str(self.cause).strip().splitlines() or [""]
        message = "\n".join(lines) if isinstance(self.cause, InvalidInputData) else lines[0][:400]
        return f"{type(self.cause).__name__}: {message}"


class DataRefusedError(PipelineRunError):
    """The data gate refused the data of run `run_id`."""


class RunInterrupted(BaseException):
    """The run was stopped by a signal (Ctrl-C or SIGTERM); its unfinished executions are
    recorded CANCELED. A BaseException, like KeyboardInterrupt, so no `except Exception` in TFX,
    Beam or a component swallows it."""

    def __init__(self, signal_number: int):
        super().__init__(signal.Signals(signal_number).name)
        self.signal_number = signal_number


@contextlib.contextmanager
def _sigterm_raises() -> Iterator[None]:
    """SIGTERM raises RunInterrupted in the main thread, as Ctrl-C raises KeyboardInterrupt."""

    def handler(signal_number, frame):
        raise RunInterrupted(signal_number)

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def record_failure(
    config: PipelineConfig, run_id: str, node_id: str | None, cause: BaseException
) -> None:
    """Writes the failure's message on the node's failed execution in ML Metadata (TFX marks an
    execution FAILED when its executor raises, but keeps no message)."""
    if node_id is None:
        return
    store = open_store(config.metadata_location, writable=True)
    latest = latest_node_execution(store, config.pipeline_name, node_id, run_id)
    if latest is None or latest.state != "failed":
        return
    tfx_private.set_execution_failure(latest.execution, f"{type(cause).__name__}: {cause}")
    store.put_executions([latest.execution])


def cancel_unfinished(
    config: PipelineConfig, run_id: str, reason: str, failed_too: bool = False
) -> list[str]:
    """Marks the run's executions that had not finished CANCELED, with `reason`; returns their
    node ids. (TFX leaves them RUNNING when the process is stopped mid-component, and records
    FAILED a component whose Beam pipeline turned the interrupt into an error: `failed_too`.)"""
    store = open_store(config.metadata_location, writable=True)
    run = store.get_context_by_type_and_name(tfx_private.PIPELINE_RUN_CONTEXT, run_id)
    if run is None:
        return []
    unfinished = [
        e
        for e in store.get_executions_by_context(run.id)
        if e.last_known_state in (Execution.RUNNING, Execution.NEW)
        or (failed_too and e.last_known_state == Execution.FAILED)
    ]
    for execution in unfinished:
        execution.last_known_state = Execution.CANCELED
        tfx_private.set_execution_failure(execution, reason, code=_CANCELLED)
    if unfinished:
        store.put_executions(unfinished)
    nodes = {
        e.id: tfx_private.node_id_from_context_name(c.name)
        for e in unfinished
        for c in store.get_contexts_by_execution(e.id)
        if c.type == tfx_private.NODE_CONTEXT
    }
    return [nodes.get(e.id, "?") for e in unfinished]


def _run_properties(config: PipelineConfig) -> dict[str, str]:
    """Who runs the run and where, on its context in ML Metadata (see metadata/runs.py)."""
    return {
        runs.HOST_PROPERTY: socket.gethostname(),
        runs.PID_PROPERTY: str(os.getpid()),
        runs.OUTPUT_DIR_PROPERTY: str(config.output_dir),
        runs.USER_PROPERTY: getpass.getuser(),
    }


def _interrupt_inside(error: Exception) -> int | None:
    """The signal behind an error that is an interrupt in disguise: Beam's DirectRunner re-raises
    a Ctrl-C (KeyboardInterrupt) or SIGTERM (RunInterrupted) that reached one of its steps as
    `RuntimeError("KeyboardInterrupt [while running '...']")`. None for a real failure."""
    seen: set[int] = set()
    cause: BaseException | None = error
    while cause is not None and id(cause) not in seen:
        seen.add(id(cause))
        if isinstance(cause, KeyboardInterrupt):
            return signal.SIGINT
        if isinstance(cause, RunInterrupted):
            return signal.SIGTERM
        text = str(cause)
        if text.startswith("KeyboardInterrupt"):
            return signal.SIGINT
        if text.startswith(RunInterrupted.__name__):
            return signal.SIGTERM
        cause = cause.__cause__ or cause.__context__
    return None


def _stopped(
    config: PipelineConfig,
    run_id: str,
    progress: ComponentProgress,
    signal_number: int,
    error: BaseException,
    failed_too: bool = False,
) -> NoReturn:
    """Records a run stopped by `signal_number`: its unfinished steps CANCELED, then raises
    RunInterrupted."""
    name = signal.Signals(signal_number).name
    logging.error("Run %s stopped by %s", run_id, name, exc_info=error)
    progress.mark("canceled", or_last_finished=failed_too)
    reason = (
        f"canceled: the run was stopped by {name} "
        f"({'Ctrl-C' if signal_number == signal.SIGINT else 'a request to terminate'})"
    )
    cancel_unfinished(config, run_id, reason, failed_too=failed_too)
    raise RunInterrupted(signal_number) from error


def run(config: PipelineConfig, beam: BeamChoice, console: TextIO, run_id: str) -> None:
    """Runs the whole chain as run `run_id`, printing per-component progress to `console`.

    Raises DataRefusedError when the data gate refuses the data, PipelineRunError when a
    component fails (ML Metadata holds the failed execution with its message), RunInterrupted
    on Ctrl-C or SIGTERM (the unfinished executions are recorded CANCELED).
    """
    pipeline = create_pipeline(
        config,
        beam_pipeline_args=beam.beam_args,
        metadata_connection_config=config.metadata_location.connection_config(),
        exclude_candidate_from_baseline=True,
    )

    def state_of(node_id: str) -> str:
        store = open_store(config.metadata_location)
        execution = latest_node_execution(store, config.pipeline_name, node_id, run_id)
        return execution.state if execution else "skipped"

    progress = ComponentProgress(console, [c.id for c in pipeline.components], state_of)
    root_logger = logging.getLogger()
    root_logger.addHandler(progress)
    try:
        with _sigterm_raises():
            tfx_private.run_on_local_dag_runner(pipeline, run_id, _run_properties(config))
    except (KeyboardInterrupt, RunInterrupted, error_types.GracefulShutdown) as e:
        # InfraValidator's executor turns SIGTERM into its own GracefulShutdown while it runs.
        signal_number = signal.SIGINT if isinstance(e, KeyboardInterrupt) else signal.SIGTERM
        _stopped(config, run_id, progress, signal_number, e)
    except Exception as e:
        signal_number = _interrupt_inside(e)
        if signal_number is not None:
            _stopped(config, run_id, progress, signal_number, e, failed_too=True)
        logging.exception("Pipeline run failed in %s", progress.running)
        progress.mark("failed")
        record_failure(config, run_id, progress.running, e)
        error = DataRefusedError if isinstance(e, DataRefused) else PipelineRunError
        raise error(run_id, progress.running, e) from e
    finally:
        root_logger.removeHandler(progress)

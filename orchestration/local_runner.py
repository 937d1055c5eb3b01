"""Runs `create_pipeline()` on TFX's LocalDagRunner with Beam's DirectRunner and SQLite MLMD."""

from __future__ import annotations

import datetime
import logging
from typing import TextIO

from components import tfx_private
from components.data_gate.executor import DataRefused
from components.span_example_gen.csv_checks import InvalidInputData
from metadata.store import latest_node_execution, open_store, sqlite_connection_config
from orchestration.beam_mode import BeamChoice
from orchestration.console import ComponentProgress
from pipeline.config import PipelineConfig
from pipeline.definition import create_pipeline


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


def record_failure(config: PipelineConfig, node_id: str | None, cause: BaseException) -> None:
    """Writes the failure's message on the node's failed execution in ML Metadata (TFX marks an
    execution FAILED when its executor raises, but keeps no message)."""
    if node_id is None:
        return
    store = open_store(config.metadata_path, writable=True)
    latest = latest_node_execution(store, config.pipeline_name, node_id)
    if latest is None or latest.state != "failed":
        return
    tfx_private.set_execution_failure(latest.execution, f"{type(cause).__name__}: {cause}")
    store.put_executions([latest.execution])


def run(config: PipelineConfig, beam: BeamChoice, console: TextIO) -> str:
    """Runs the whole chain, printing per-component progress to `console`; returns the run id.

    Raises DataRefusedError when the data gate refuses the data, PipelineRunError when a
    component fails; either way ML Metadata holds the failed execution with its message.
    """
    pipeline = create_pipeline(
        config,
        beam_pipeline_args=beam.beam_args,
        metadata_connection_config=sqlite_connection_config(config.metadata_path),
        exclude_candidate_from_baseline=True,
    )

    def state_of(node_id: str) -> str:
        execution = latest_node_execution(
            open_store(config.metadata_path), config.pipeline_name, node_id
        )
        return execution.state if execution else "skipped"

    progress = ComponentProgress(console, [c.id for c in pipeline.components], state_of)
    run_id = datetime.datetime.now().isoformat()
    root_logger = logging.getLogger()
    root_logger.addHandler(progress)
    try:
        tfx_private.run_on_local_dag_runner(pipeline, run_id)
    except Exception as e:
        logging.exception("Pipeline run failed in %s", progress.running)
        progress.mark_failed()
        record_failure(config, progress.running, e)
        error = DataRefusedError if isinstance(e, DataRefused) else PipelineRunError
        raise error(run_id, progress.running, e) from e
    finally:
        root_logger.removeHandler(progress)
    return run_id

"""Runs `create_pipeline()` on TFX's LocalDagRunner with Beam's DirectRunner and SQLite MLMD."""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import shutil
from pathlib import Path
from typing import TextIO

from ml_metadata import metadata_store
from tfx import v1 as tfx

from components.data_gate.executor import DataRefused
from pipeline import metadata_reader as mr
from pipeline.config import PipelineConfig
from pipeline.console import ComponentProgress
from pipeline.pipeline import create_pipeline
from pipeline.run_summary import RunSummary, summarize_run


class DataRefusedError(Exception):
    """The data gate refused the run's data; `summary` says what was found and what to do."""

    def __init__(self, summary: RunSummary):
        super().__init__("the data gate refused the data")
        self.summary = summary


def record_failure(config: PipelineConfig, node_id: str | None, cause: BaseException) -> None:
    """Writes the failure's message on the node's failed execution in ML Metadata.

    TFX marks an execution FAILED when its executor raises but keeps no message; this stores
    one the way TFX stores an executor-reported failure (`__execution_result__`).
    """
    if node_id is None:
        return
    from tfx.orchestration.portable.mlmd import execution_lib
    from tfx.proto.orchestration import execution_result_pb2

    store = metadata_store.MetadataStore(mr.sqlite_connection_config(config.metadata_path))
    latest = mr.latest_node_execution(store, config.pipeline_name, node_id)
    if latest is None or latest.state != "failed":
        return
    execution = latest.execution
    execution_lib.set_execution_result(
        execution_result_pb2.ExecutionResult(
            code=1, result_message=f"{type(cause).__name__}: {cause}"
        ),
        execution,
    )
    store.put_executions([execution])


class PipelineRunError(Exception):
    """A component failed; `node_id` names it."""

    def __init__(self, node_id: str | None, cause: BaseException):
        super().__init__(f"{node_id or 'the pipeline'} failed: {type(cause).__name__}: {cause}")
        self.node_id = node_id
        self.cause = cause


def stage_curated_schema(config: PipelineConfig) -> Path:
    """Copies the curated schema to a path named by its content hash.

    ImportSchemaGen's cache key is the schema *path*; a content-addressed path makes an edited
    schema re-import (and re-run everything downstream) instead of silently reusing the old one.
    """
    content = config.curated_schema_file.read_bytes()
    digest = hashlib.sha256(content).hexdigest()[:12]
    staged = config.output_dir / "curated_schema" / digest / config.curated_schema_file.name
    if not staged.exists():
        staged.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(config.curated_schema_file, staged)
    return staged


def run(config: PipelineConfig, console: TextIO) -> RunSummary:
    """Runs the whole chain, printing per-component progress to `console`."""
    config = dataclasses.replace(config, curated_schema_uri=str(stage_curated_schema(config)))
    pipeline = create_pipeline(
        config, metadata_connection_config=mr.sqlite_connection_config(config.metadata_path)
    )
    node_ids = [component.id for component in pipeline.components]

    def state_of(node_id: str) -> str:
        execution = mr.latest_node_execution(
            mr.open_store(config.metadata_path), config.pipeline_name, node_id
        )
        return execution.state if execution else "skipped"

    progress = ComponentProgress(console, node_ids, state_of)
    root_logger = logging.getLogger()
    root_logger.addHandler(progress)
    try:
        tfx.orchestration.LocalDagRunner().run(pipeline)
    except Exception as e:
        logging.exception("Pipeline run failed in %s", progress.running)
        progress.mark_failed()
        record_failure(config, progress.running, e)
        if isinstance(e, DataRefused):
            raise DataRefusedError(summarize_run(config.metadata_path, config.pipeline_name)) from e
        raise PipelineRunError(progress.running, e) from e
    finally:
        root_logger.removeHandler(progress)
    return summarize_run(config.metadata_path, config.pipeline_name)

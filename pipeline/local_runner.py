"""Runs `create_pipeline()` on TFX's LocalDagRunner with Beam's DirectRunner and SQLite MLMD."""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import shutil
from pathlib import Path
from typing import TextIO

from tfx import v1 as tfx

from pipeline import metadata_reader as mr
from pipeline.config import PipelineConfig
from pipeline.console import ComponentProgress
from pipeline.pipeline import create_pipeline
from pipeline.run_summary import RunSummary, summarize_run


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
        raise PipelineRunError(progress.running, e) from e
    finally:
        root_logger.removeHandler(progress)
    return summarize_run(config.metadata_path, config.pipeline_name)

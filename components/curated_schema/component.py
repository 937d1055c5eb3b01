"""CuratedSchemaImporter: TFX's ImportSchemaGen, re-importing whenever the schema's content changes.

ImportSchemaGen's cache key is the schema file's *path*, so an edited schema at the same path
would be served from the cache. This component has ImportSchemaGen's spec plus one parameter, the
file's content fingerprint, which the pipeline definition computes; TFX's own executor copies the
file into the output artifact as before.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from tfx import types
from tfx.components.schema_gen.import_schema_gen import executor
from tfx.dsl.components.base import base_component, executor_spec
from tfx.types import standard_artifacts, standard_component_specs
from tfx.types.component_spec import ExecutionParameter

CONTENT_FINGERPRINT_KEY = "content_fingerprint"


def content_fingerprint(schema_file: Path) -> str:
    """SHA-256 (first 16 hex digits) of the schema file's bytes."""
    return hashlib.sha256(Path(schema_file).read_bytes()).hexdigest()[:16]


class CuratedSchemaImporterSpec(standard_component_specs.ImportSchemaGenSpec):
    PARAMETERS = {
        **standard_component_specs.ImportSchemaGenSpec.PARAMETERS,
        CONTENT_FINGERPRINT_KEY: ExecutionParameter(type=str),
    }


class CuratedSchemaImporter(base_component.BaseComponent):
    """Imports `schema_file` (a path the executor can read) as the pipeline's Schema artifact."""

    SPEC_CLASS = CuratedSchemaImporterSpec
    EXECUTOR_SPEC = executor_spec.ExecutorClassSpec(executor.Executor)

    def __init__(self, schema_file: str, fingerprint: str):
        super().__init__(
            spec=CuratedSchemaImporterSpec(
                schema_file=schema_file,
                content_fingerprint=fingerprint,
                schema=types.Channel(type=standard_artifacts.Schema),
            )
        )

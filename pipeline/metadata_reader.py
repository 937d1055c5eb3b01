"""Read-only questions to ML Metadata about pipeline runs, their executions and artifacts.

TFX records three contexts per execution: the pipeline, the pipeline run (its name is the run id)
and the node (named "<pipeline>.<node id>"). Everything here is derived from those.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from ml_metadata import metadata_store
from ml_metadata.proto import metadata_store_pb2

PIPELINE_RUN_CONTEXT = "pipeline_run"
RESOLVER_EXECUTION_TYPE = "tfx.dsl.components.common.resolver.Resolver"
NODE_CONTEXT = "node"
_STATE_NAMES = {
    metadata_store_pb2.Execution.COMPLETE: "executed",
    metadata_store_pb2.Execution.CACHED: "cached",
    metadata_store_pb2.Execution.FAILED: "failed",
    metadata_store_pb2.Execution.RUNNING: "running",
    metadata_store_pb2.Execution.NEW: "new",
    metadata_store_pb2.Execution.CANCELED: "canceled",
}


@dataclasses.dataclass(frozen=True)
class NodeExecution:
    """One component's execution within a run."""

    node_id: str
    execution: metadata_store_pb2.Execution

    @property
    def state(self) -> str:
        """executed, cached, failed, ... ; a resolver that completed is "resolved"."""
        if (
            self.execution.type == RESOLVER_EXECUTION_TYPE
            and self.execution.last_known_state == metadata_store_pb2.Execution.COMPLETE
        ):
            return "resolved"
        return _STATE_NAMES.get(self.execution.last_known_state, "unknown")

    @property
    def seconds(self) -> float:
        e = self.execution
        return max(0, e.last_update_time_since_epoch - e.create_time_since_epoch) / 1000.0


def sqlite_connection_config(
    path: Path, read_only: bool = False
) -> metadata_store_pb2.ConnectionConfig:
    """MLMD connection to a SQLite file (created if missing unless `read_only`)."""
    config = metadata_store_pb2.ConnectionConfig()
    config.sqlite.filename_uri = str(path)
    config.sqlite.connection_mode = (
        metadata_store_pb2.SqliteMetadataSourceConfig.READONLY
        if read_only
        else metadata_store_pb2.SqliteMetadataSourceConfig.READWRITE_OPENCREATE
    )
    return config


def open_store(path: Path) -> metadata_store.MetadataStore:
    """A read-only store over an existing SQLite file."""
    if not Path(path).is_file():
        raise FileNotFoundError(f"No ML Metadata store at {path}")
    return metadata_store.MetadataStore(sqlite_connection_config(path, read_only=True))


def node_id_of(store: metadata_store.MetadataStore, execution_id: int) -> str:
    for context in store.get_contexts_by_execution(execution_id):
        if context.type == NODE_CONTEXT:
            return context.name.split(".", 1)[-1]
    return "?"


def run_contexts(
    store: metadata_store.MetadataStore, pipeline_name: str
) -> list[metadata_store_pb2.Context]:
    """Pipeline-run contexts of `pipeline_name` (children of its pipeline context), newest first."""
    pipeline_context = store.get_context_by_type_and_name("pipeline", pipeline_name)
    if pipeline_context is None:
        return []
    runs = store.get_children_contexts_by_context(pipeline_context.id)
    runs = [c for c in runs if c.type == PIPELINE_RUN_CONTEXT]
    return sorted(runs, key=lambda c: (c.create_time_since_epoch, c.id), reverse=True)


def run_executions(store: metadata_store.MetadataStore, run_context_id: int) -> list[NodeExecution]:
    """Executions of one run in the order they started."""
    executions = sorted(store.get_executions_by_context(run_context_id), key=lambda e: e.id)
    return [NodeExecution(node_id_of(store, e.id), e) for e in executions]


def latest_node_execution(
    store: metadata_store.MetadataStore, pipeline_name: str, node_id: str
) -> NodeExecution | None:
    """The most recent execution of a node across runs."""
    context = store.get_context_by_type_and_name(NODE_CONTEXT, f"{pipeline_name}.{node_id}")
    if context is None:
        return None
    executions = store.get_executions_by_context(context.id)
    if not executions:
        return None
    return NodeExecution(node_id, max(executions, key=lambda e: e.id))


def output_artifacts(
    store: metadata_store.MetadataStore, execution_id: int
) -> dict[str, list[metadata_store_pb2.Artifact]]:
    """Output artifacts of an execution, by output key."""
    events = [
        e
        for e in store.get_events_by_execution_ids([execution_id])
        if e.type in (metadata_store_pb2.Event.OUTPUT, metadata_store_pb2.Event.PENDING_OUTPUT)
    ]
    artifacts = {a.id: a for a in store.get_artifacts_by_id([e.artifact_id for e in events])}
    by_key: dict[str, list[metadata_store_pb2.Artifact]] = {}
    for event in events:
        key = event.path.steps[0].key if event.path.steps else ""
        by_key.setdefault(key, []).append(artifacts[event.artifact_id])
    return by_key


def custom_property(artifact: metadata_store_pb2.Artifact, name: str):
    """A custom property's value (int, float or string), or None."""
    if name not in artifact.custom_properties:
        return None
    value = artifact.custom_properties[name]
    kind = value.WhichOneof("value")
    return getattr(value, kind) if kind else None

"""Lineage: where an artifact came from, back through executions to data files, schema and code."""

from __future__ import annotations

from typing import Any

from metadata.artifacts import describe
from metadata.store import INPUT_EVENTS, StoreIndex, properties

# Execution properties shown as a component's external inputs.
SOURCE_PROPERTIES = (
    "input_base",
    "input_fingerprint",
    "schema_file",
    "content_fingerprint",
    "preprocessing_fn",
    "run_fn",
    "tuner_fn",
    "module_path",
    "custom_config",
)


def lineage(index: StoreIndex, artifact_id: int, _seen: set[int] | None = None) -> dict[str, Any]:
    """The artifact, the execution that produced it, and recursively that execution's inputs and
    external sources (data files, schema file, code) back to the start."""
    seen = _seen if _seen is not None else set()
    node = describe(index, index.artifact(artifact_id))
    if artifact_id in seen:
        node["repeated"] = True
        return node
    seen.add(artifact_id)
    execution_id = node["execution_id"]
    if execution_id is None:
        return node
    execution = index.store.get_executions_by_id([execution_id])[0]
    props = properties(execution)
    input_ids = sorted(
        {
            e.artifact_id
            for e in index.store.get_events_by_execution_ids([execution_id])
            if e.type in INPUT_EVENTS
        }
    )
    node["produced_by"] = {
        "node_id": index.node_of_execution.get(execution_id),
        "execution_id": execution_id,
        "state": index.node_execution(execution).state,
        "sources": {
            k: props[k] for k in SOURCE_PROPERTIES if props.get(k) not in (None, "", "null")
        },
        "inputs": [lineage(index, i, seen) for i in input_ids],
    }
    return node


def lineage_edges(tree: dict[str, Any]) -> set[tuple[int, int]]:
    """(input artifact id, output artifact id) pairs of a lineage tree."""
    edges = set()
    for child in tree.get("produced_by", {}).get("inputs", []):
        edges.add((child["id"], tree["id"]))
        edges |= lineage_edges(child)
    return edges

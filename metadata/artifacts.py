"""Artifacts in ML Metadata: which there are, who produced them in which run, and what they hold."""

from __future__ import annotations

from typing import Any

from metadata import artifact_readers
from metadata.runs import run_context
from metadata.store import Artifact, NotFound, StoreIndex, iso_time, properties


def describe(index: StoreIndex, artifact: Artifact) -> dict[str, Any]:
    """An artifact's facts as plain data: type, state, URI, producer, run and properties."""
    execution_id = index.producing_execution.get(artifact.id)
    return {
        "id": artifact.id,
        "type": index.type_name(artifact),
        "state": Artifact.State.Name(artifact.state),
        "uri": artifact.uri,
        "producer": index.node_of_execution.get(execution_id) if execution_id else None,
        "execution_id": execution_id,
        "run_id": index.run_of_execution.get(execution_id) if execution_id else None,
        "created": iso_time(artifact.create_time_since_epoch),
        "properties": properties(artifact),
    }


def contents(index: StoreIndex, artifact: Artifact) -> dict[str, Any]:
    """What the artifact holds, read by its type's reader."""
    return artifact_readers.read(
        artifact_readers.ArtifactFiles(
            type_name=index.type_name(artifact),
            uri=artifact.uri,
            properties=properties(artifact),
            sibling_uris=index.sibling_outputs(artifact),
        )
    )


def list_artifacts(
    index: StoreIndex,
    run_id: str | None = None,
    component: str | None = None,
    type_name: str | None = None,
) -> list[dict[str, Any]]:
    """Artifacts by id, filtered by run id, producing component or type.

    A run's artifacts include those its cached executions reused from earlier runs.
    """
    if run_id:
        candidates = index.store.get_artifacts_by_context(run_context(index, run_id).id)
    else:
        candidates = index.store.get_artifacts()
    result = []
    for artifact in sorted(candidates, key=lambda a: a.id):
        info = describe(index, artifact)
        if component and info["producer"] != component:
            continue
        if type_name and info["type"] != type_name:
            continue
        result.append(info)
    return result


def show(index: StoreIndex, artifact_id: int) -> dict[str, Any]:
    """One artifact in human terms: its facts plus what it holds (`details`)."""
    artifact = index.artifact(artifact_id)
    return {**describe(index, artifact), "details": contents(index, artifact)}


def latest_pushed_model(index: StoreIndex) -> int:
    """Id of the newest PushedModel that Pusher actually pushed."""
    pushed = [
        a
        for a in index.store.get_artifacts()
        if index.type_name(a) == "PushedModel" and properties(a).get("pushed") == 1
    ]
    if not pushed:
        raise NotFound("no model has been pushed yet")
    return max(pushed, key=lambda a: a.id).id


def run_outputs(index: StoreIndex, run_id: str) -> dict[str, dict[str, Any]]:
    """The run's artifacts (cached ones included) by '<node>.<type>', e.g. 'Trainer.Model'."""
    outputs: dict[str, dict[str, Any]] = {}
    for info in list_artifacts(index, run_id=run_id):
        outputs.setdefault(f"{info['producer']}.{info['type']}", info)
    return outputs


def output_contents(
    index: StoreIndex, outputs: dict[str, dict[str, Any]], key: str
) -> dict[str, Any] | None:
    """What the run output `key` ('<node>.<type>', see `run_outputs`) holds; None if absent."""
    info = outputs.get(key)
    return contents(index, index.artifact(info["id"])) if info else None

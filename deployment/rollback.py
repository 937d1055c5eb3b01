"""`models rollback VERSION`: serve an earlier blessed version again, without rewriting history.

TF Serving serves the highest version number under a model's folder, and the pushed versions are
a record of what was served when. So a rollback does not delete or rename the newer versions: it
re-pushes the chosen version's files under a new number, higher than any on disk, exactly as
Pusher would push a model. A running server (ours or TF Serving) picks it up at its next scan.

In ML Metadata the re-push is a `ModelRollback` execution with Pusher's inputs (the version's
Model, ModelBlessing and InfraBlessing) and a new PushedModel output carrying `rollback_of`, in the
same pipeline context. The order keeps the store and the folder consistent: the execution and a
PENDING artifact are recorded first; the files are copied under a hidden name and renamed into
place in one step (a server never sees a half-copied version); then the artifact is marked LIVE
and the execution COMPLETE. A failed copy marks them ABANDONED and FAILED and leaves no folder.
"""

from __future__ import annotations

import getpass
import os
import shutil
import socket
import time
from typing import Any

from ml_metadata.proto import metadata_store_pb2

from deployment import model_versions
from metadata.store import NotFound, StoreIndex, input_artifacts, keyed_event, open_store
from pipeline.metadata_location import MetadataLocation

Artifact = metadata_store_pb2.Artifact
Execution = metadata_store_pb2.Execution
Event = metadata_store_pb2.Event


class RollbackRefused(Exception):
    """A rollback that would serve something unsafe, or cannot be done; says why."""


def refusal_reason(record: dict[str, Any]) -> str | None:
    version = record["version"]
    if not record["evaluator_blessed"]:
        return (
            f"version {version} was never blessed by the Evaluator, so it is not rolled back to; "
            "`models` shows each version's blessings"
        )
    if not record["infra_blessed"]:
        return (
            f"version {version} was never blessed by the InfraValidator (it did not prove it "
            "loads and answers in a model server), so it is not rolled back to"
        )
    if not record["on_disk"]:
        return f"version {version}'s files are gone from {record['path']}; nothing to serve"
    return None


def _execution_type_id(store) -> int:
    execution_type = metadata_store_pb2.ExecutionType(name=model_versions.ROLLBACK_EXECUTION_TYPE)
    execution_type.properties["rollback_of"] = metadata_store_pb2.INT
    return store.put_execution_type(execution_type, can_add_fields=True)


def rollback(location: MetadataLocation, version: int, user: str | None = None) -> dict[str, Any]:
    """Re-pushes blessed `version` as the newest; returns the new version's record. `user` is
    who asked (default: the user at this host)."""
    if location.is_sqlite and not location.path.is_file():
        # Opened writable, a missing SQLite file would be created empty; a foreign or newer one
        # is refused by open_store itself.
        raise NotFound(f"no ML Metadata store at {location.path} (run the pipeline first)")
    index = StoreIndex(open_store(location, writable=True), location)
    records = model_versions.pushed_versions(index)
    record = model_versions.find_version(records, version, index)
    refusal = refusal_reason(record)
    if refusal:
        raise RollbackRefused(refusal)
    base_path = os.path.dirname(record["path"].rstrip("/"))
    served = model_versions.served_version(base_path)
    serving = next((r for r in records if r["version"] == served), None)
    if served == version or (serving and serving["rollback_of"] == version):
        as_what = "" if served == version else f" (as version {served}, a rollback to it)"
        raise RollbackRefused(
            f"version {version} is already the one served from {base_path}{as_what}; nothing to do"
        )
    new_version = max(int(time.time()), (served or 0) + 1)
    new_path = os.path.join(base_path, str(new_version))

    store = index.store
    execution = Execution(type_id=_execution_type_id(store), last_known_state=Execution.RUNNING)
    execution.properties["rollback_of"].int_value = version
    execution.custom_properties["user"].string_value = (
        user or f"{getpass.getuser()}@{socket.gethostname()}"
    )
    pushed = Artifact(
        type_id=store.get_artifact_type(model_versions.PUSHED_MODEL).id,
        uri=new_path,
        state=Artifact.PENDING,
    )
    pushed.custom_properties["pushed"].int_value = 1
    pushed.custom_properties["pushed_version"].string_value = str(new_version)
    pushed.custom_properties["pushed_destination"].string_value = new_path
    pushed.custom_properties[model_versions.ROLLBACK_OF].int_value = version
    producer = index.producing_execution[record["pushed_model_id"]]
    inputs = [
        (a, keyed_event(Event.INPUT, key))
        for key, artifacts in _pusher_inputs(index, producer).items()
        for a in artifacts
    ]
    contexts = model_versions.pusher_contexts(index, record["pushed_model_id"])
    execution_id, artifact_ids, _ = store.put_execution(
        execution,
        [*inputs, (pushed, keyed_event(Event.OUTPUT, model_versions.PUSHED_MODEL_KEY))],
        contexts,
        reuse_context_if_already_exist=True,
    )
    execution.id, pushed.id = execution_id, artifact_ids[-1]

    staging = os.path.join(base_path, f".rollback-{new_version}")
    try:
        shutil.copytree(record["path"], staging)
        os.rename(staging, new_path)
    except OSError as e:
        shutil.rmtree(staging, ignore_errors=True)
        pushed.state, execution.last_known_state = Artifact.ABANDONED, Execution.FAILED
        store.put_artifacts([pushed])
        store.put_executions([execution])
        raise RollbackRefused(f"copying version {version} to {new_path} failed: {e}") from e
    pushed.state, execution.last_known_state = Artifact.LIVE, Execution.COMPLETE
    store.put_artifacts([pushed])
    store.put_executions([execution])
    after = StoreIndex(store, location)  # an index that knows the new push
    return model_versions.find_version(model_versions.pushed_versions(after), new_version, after)


def _pusher_inputs(index: StoreIndex, execution_id: int) -> dict[str, list[Artifact]]:
    keys = (
        model_versions.MODEL_KEY,
        model_versions.MODEL_BLESSING_KEY,
        model_versions.INFRA_BLESSING_KEY,
    )
    found = input_artifacts(index.store, execution_id)
    missing = [k for k in keys if not found.get(k)]
    if missing:
        raise NotFound(f"the push of this version recorded no {', '.join(missing)} input")
    return {k: found[k] for k in keys}

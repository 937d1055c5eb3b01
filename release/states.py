"""Each pushed version's release state, recorded in ML Metadata.

A version starts as `pushed` (nothing recorded yet). Every change after that is one
`ModelRelease` execution, whose input is the version's PushedModel, with the new state, who
changed it (a person, or `serve` for the release controller), when (the execution's time), why,
the version's share of the traffic, and the evidence the guard judged by:

    pushed -> awaiting_approval (manual approval) -> approved -> canary | shadow -> stable
                                                  -> rejected         -> rolled_back
    stable -> retired (a newer version became stable)
    pushed | awaiting_approval | approved -> superseded (a newer version went out first)

`rolled_back` and `rejected` are final: such a version is never served again under a release
(`models rollback` can still re-push it by hand, as a new version). The state of a version is its
latest record; the history is all of them, oldest first.
"""

from __future__ import annotations

import dataclasses
import getpass
import json
import os
import socket
from typing import Any

from ml_metadata.proto import metadata_store_pb2

from components import tfx_private
from deployment import model_versions
from metadata.store import Event, custom_property, iso_time, keyed_event, properties

EXECUTION_TYPE = "ModelRelease"
PUSHED = "pushed"
AWAITING_APPROVAL = "awaiting_approval"
APPROVED = "approved"
CANARY = "canary"
SHADOW = "shadow"
STABLE = "stable"
RETIRED = "retired"
REJECTED = "rejected"
ROLLED_BACK = "rolled_back"
SUPERSEDED = "superseded"
UNDECIDED = (PUSHED, AWAITING_APPROVAL, APPROVED)  # may still go out
RELEASING = (CANARY, SHADOW)
FINAL = (REJECTED, ROLLED_BACK, SUPERSEDED, RETIRED)
CONTROLLER = "serve"  # `by` of the changes the release controller makes


class ReleaseRefused(Exception):
    """An approval or rejection that cannot be made; says why. Nothing was recorded."""


@dataclasses.dataclass(frozen=True)
class Push:
    """One pushed version of a model folder, as ML Metadata recorded its push."""

    version: int
    path: str
    pushed_model_id: int
    pushed_at_ms: int
    rollback_of: int | None


@dataclasses.dataclass(frozen=True)
class Change:
    """One recorded change of a version's release state."""

    execution_id: int
    version: int
    state: str
    by: str
    reason: str
    at_ms: int
    share: float | None  # percent of the requests that name no version, while it held
    release_id: str | None
    evidence: dict[str, Any]
    strategy: str | None = None  # an approval's choice of strategy over the policy's

    def as_json(self) -> dict[str, Any]:
        return {
            "state": self.state,
            "by": self.by,
            "at": iso_time(self.at_ms),
            "reason": self.reason,
            "share": self.share,
            "release_id": self.release_id,
            "evidence": self.evidence or None,
            "strategy": self.strategy,
        }


def pushes(store, base_path: str) -> dict[int, Push]:
    """The pushed versions of the model folder `base_path`, by version."""
    found = {}
    base = os.path.normpath(base_path)
    for artifact in store.get_artifacts_by_type(model_versions.PUSHED_MODEL):
        props = properties(artifact)
        if props.get("pushed") != 1 or artifact.state != artifact.LIVE:
            continue
        path = props.get("pushed_destination") or artifact.uri
        if os.path.dirname(os.path.normpath(path)) != base:
            continue
        rollback_of = custom_property(artifact, model_versions.ROLLBACK_OF)
        version = int(props["pushed_version"])
        found[version] = Push(
            version,
            path,
            artifact.id,
            artifact.create_time_since_epoch,
            int(rollback_of) if rollback_of is not None else None,
        )
    return found


def changes(store, push_ids: set[int] | None = None) -> list[Change]:
    """Every recorded change, oldest first (of the pushes `push_ids` only, when given)."""
    try:
        executions = store.get_executions_by_type(EXECUTION_TYPE)
    except Exception:  # noqa: BLE001 - ml_metadata's NotFoundError: none recorded yet
        return []
    found = []
    for execution in sorted(executions, key=lambda e: e.id):
        props = properties(execution)
        if push_ids is not None and props.get("pushed_model_id") not in push_ids:
            continue
        share = custom_property(execution, "share")
        found.append(
            Change(
                execution_id=execution.id,
                version=int(props["version"]),
                state=props["state"],
                by=props.get("by", ""),
                reason=props.get("reason", ""),
                at_ms=execution.create_time_since_epoch,
                share=float(share) if share is not None else None,
                release_id=custom_property(execution, "release_id") or None,
                evidence=json.loads(custom_property(execution, "evidence") or "{}"),
                strategy=custom_property(execution, "strategy") or None,
            )
        )
    return found


def histories(store, base_path: str) -> tuple[dict[int, Push], dict[int, list[Change]]]:
    """The model folder's pushes, and each one's changes, oldest first."""
    found = pushes(store, base_path)
    by_version: dict[int, list[Change]] = {v: [] for v in found}
    ids = {p.pushed_model_id for p in found.values()}
    for change in changes(store, ids):
        by_version.setdefault(change.version, []).append(change)
    return found, by_version


def state_of(history: list[Change]) -> str:
    return history[-1].state if history else PUSHED


def _execution_type_id(store) -> int:
    execution_type = metadata_store_pb2.ExecutionType(name=EXECUTION_TYPE)
    for name in ("state", "by", "reason"):
        execution_type.properties[name] = metadata_store_pb2.STRING
    for name in ("version", "pushed_model_id"):
        execution_type.properties[name] = metadata_store_pb2.INT
    return store.put_execution_type(execution_type, can_add_fields=True)


def _pipeline_contexts(store, pushed_model_id: int) -> list:
    """The pipeline context of the push's execution: a change is recorded in the same one."""
    events = store.get_events_by_artifact_ids([pushed_model_id])
    producer = next((e.execution_id for e in events if e.type == Event.OUTPUT), None)
    if producer is None:
        return []
    return [
        c
        for c in store.get_contexts_by_execution(producer)
        if c.type == tfx_private.PIPELINE_CONTEXT
    ]


def record(
    store,
    push: Push,
    state: str,
    *,
    by: str,
    reason: str,
    share: float | None = None,
    release_id: str | None = None,
    evidence: dict[str, Any] | None = None,
    strategy: str | None = None,
) -> int:
    """Records one change of `push`'s state; its execution id."""
    execution = metadata_store_pb2.Execution(
        type_id=_execution_type_id(store), last_known_state=metadata_store_pb2.Execution.COMPLETE
    )
    execution.properties["state"].string_value = state
    execution.properties["by"].string_value = by
    execution.properties["reason"].string_value = reason
    execution.properties["version"].int_value = push.version
    execution.properties["pushed_model_id"].int_value = push.pushed_model_id
    if share is not None:
        execution.custom_properties["share"].double_value = share
    if release_id:
        execution.custom_properties["release_id"].string_value = release_id
    if evidence:
        execution.custom_properties["evidence"].string_value = json.dumps(evidence)
    if strategy:
        execution.custom_properties["strategy"].string_value = strategy
    [pushed] = store.get_artifacts_by_id([push.pushed_model_id])
    execution_id, _, _ = store.put_execution(
        execution,
        [(pushed, keyed_event(Event.INPUT, model_versions.PUSHED_MODEL_KEY))],
        _pipeline_contexts(store, push.pushed_model_id),
        reuse_context_if_already_exist=True,
    )
    return execution_id


def person(by: str | None) -> str:
    """Who a change is recorded as: `--by`, else the user at this host."""
    return by or f"{getpass.getuser()}@{socket.gethostname()}"


# ---- approvals, by people ----------------------------------------------------------------------


def _push_of(store, base_paths_of, version: int, where: str) -> tuple[Push, list[Change]]:
    for base_path in base_paths_of:
        found, by_version = histories(store, base_path)
        if version in found:
            return found[version], by_version[version]
    raise ReleaseRefused(
        f"no pushed model version {version} is recorded in ML Metadata at {where}; `models` "
        "lists the versions"
    )


def model_folders(store) -> list[str]:
    """Every model folder a version was pushed to."""
    folders = set()
    for artifact in store.get_artifacts_by_type(model_versions.PUSHED_MODEL):
        path = properties(artifact).get("pushed_destination") or artifact.uri
        if path:
            folders.add(os.path.dirname(os.path.normpath(path)))
    return sorted(folders)


def approve(
    store,
    where: str,
    record_of,
    version: int,
    by: str,
    note: str,
    strategy: str | None = None,
) -> Change:
    """Records `by`'s approval of `version`, released by `strategy` (all_at_once, canary,
    shadow) when given, else by the policy's; ReleaseRefused (nothing recorded) for a version
    that is unknown, unblessed, or not waiting to go out. `record_of(version)` gives the
    version's record from model_versions (its blessings)."""
    push, history = _push_of(store, model_folders(store), version, where)
    blessings = record_of(version)
    if not blessings["evaluator_blessed"] or not blessings["infra_blessed"]:
        which = "the Evaluator" if not blessings["evaluator_blessed"] else "the InfraValidator"
        raise ReleaseRefused(
            f"version {version} was never blessed by {which}, so it cannot be approved"
        )
    state = state_of(history)
    if state not in UNDECIDED:
        raise ReleaseRefused(_not_waiting(version, state, history))
    if state == APPROVED:
        raise ReleaseRefused(
            f"version {version} is already approved (by {history[-1].by}); `serve` releases it"
        )
    record(store, push, APPROVED, by=by, reason=note or "approved", strategy=strategy)
    return changes(store, {push.pushed_model_id})[-1]


def reject(store, where: str, version: int, by: str, note: str) -> Change:
    """Records `by`'s rejection of `version`: it is never served under a release, and a canary
    or shadow of it ends at once."""
    push, history = _push_of(store, model_folders(store), version, where)
    state = state_of(history)
    if state not in (*UNDECIDED, *RELEASING):
        raise ReleaseRefused(_not_waiting(version, state, history))
    record(store, push, REJECTED, by=by, reason=note)
    return changes(store, {push.pushed_model_id})[-1]


def _not_waiting(version: int, state: str, history: list[Change]) -> str:
    last = history[-1] if history else None
    if state == STABLE:
        return (
            f"version {version} is already stable (since {iso_time(last.at_ms)}); "
            "`models rollback VERSION` serves an earlier one instead"
        )
    if state in RELEASING:
        return f"version {version} is already released as the {state} (approved or automatic)"
    return f"version {version} is {state.replace('_', ' ')} ({last.reason}); push it again to release it"


# ---- what `models` shows ------------------------------------------------------------------------


def annotate(store, records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """`models`' records (deployment/model_versions.py) with each version's release: its state,
    its share of the requests that name no version, its approvals and its history. In a model
    folder with a release on record, the version served is the stable one (and the candidate
    its share), not the highest."""
    by_push = {c.execution_id: c for c in changes(store)}
    history: dict[int, list[Change]] = {}
    for change in by_push.values():
        history.setdefault(change.version, []).append(change)
    folders: dict[str, list[dict[str, Any]]] = {}
    for record in records:
        folders.setdefault(os.path.dirname(record["path"].rstrip("/")), []).append(record)
    for folder_records in folders.values():
        released = False
        for record in folder_records:
            own = [c for c in history.get(record["version"], [])]
            state = state_of(own)
            released = released or bool(own)
            record["release"] = {
                "state": state,
                "share": None,
                "approvals": [
                    {"by": c.by, "at": iso_time(c.at_ms), "note": c.reason}
                    for c in own
                    if c.state == APPROVED
                ],
                "history": [c.as_json() for c in own],
            }
        if not released:
            continue
        candidate = next((r for r in folder_records if r["release"]["state"] in RELEASING), None)
        candidate_share = candidate["release"]["history"][-1]["share"] or 0.0 if candidate else 0.0
        for record in folder_records:
            state = record["release"]["state"]
            if state == STABLE:
                record["release"]["share"] = 100.0 - candidate_share
            elif state in RELEASING:
                record["release"]["share"] = candidate_share
            record["serving"] = record["on_disk"] and state in (STABLE, CANARY)
    return records

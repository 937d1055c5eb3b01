"""Every model version pushed for serving, as ML Metadata records it.

A version is a PushedModel artifact that was pushed: by the Pusher of a run, or by
`models rollback`, which re-pushes an earlier version under a new, higher number (see
deployment/rollback.py) and records it as a `ModelRollback` execution with the same
inputs Pusher had: the Model, the Evaluator's ModelBlessing and the InfraValidator's InfraBlessing.
Either way the version's metrics and blessings are read through those inputs.

"Serving" means what TF Serving's default policy serves from that folder: the highest version
number on disk.
"""

from __future__ import annotations

import functools
import json
import os
from typing import Any

from components import tfx_private
from metadata import artifact_readers
from metadata.store import (
    INPUT_EVENTS,
    NotFound,
    StoreIndex,
    custom_property,
    input_artifacts,
    iso_time,
    properties,
)

PUSHED_MODEL = "PushedModel"
ROLLBACK_EXECUTION_TYPE = "ModelRollback"
ROLLBACK_OF = "rollback_of"  # PushedModel custom property: the version a rollback re-pushed
# Pusher's input keys, which a rollback records too.
MODEL_KEY, MODEL_BLESSING_KEY, INFRA_BLESSING_KEY = "model", "model_blessing", "infra_blessing"
PUSHED_MODEL_KEY = "pushed_model"
# `monitor`'s record of one check of the served traffic (monitoring/monitor.py), with the
# PushedModel it judged as its input.
MONITORING_EXECUTION_TYPE = "ModelMonitoring"
# The Evaluator metrics a version's line shows, per task, in this order, when present.
HEADLINE_METRICS: dict[str, tuple[str, ...]] = {
    "binary": ("auc", "binary_accuracy", "precision", "recall", "example_count"),
    "multiclass": ("sparse_categorical_accuracy", "example_count"),
    "regression": (
        "root_mean_squared_error",
        "mean_absolute_error",
        "mean_squared_error",
        "example_count",
    ),
}


def served_version(base_path: str) -> int | None:
    """The version TF Serving's default (latest) policy serves: the highest number on disk."""
    try:
        numbers = [int(n) for n in os.listdir(base_path) if n.isdigit()]
    except FileNotFoundError:
        return None
    return max(numbers, default=None)


@functools.lru_cache(maxsize=64)
def _evaluation(uri: str) -> dict[str, Any]:
    return artifact_readers.evaluation(uri)


def _first(by_key: dict[str, list], key: str):
    found = by_key.get(key) or []
    return found[0] if found else None


def _version_record(index: StoreIndex, pushed) -> dict[str, Any]:
    props = properties(pushed)
    path = props.get("pushed_destination") or pushed.uri
    execution_id = index.producing_execution.get(pushed.id)
    execution = (
        index.store.get_executions_by_id([execution_id])[0] if execution_id is not None else None
    )
    inputs = input_artifacts(index.store, execution_id) if execution_id is not None else {}
    model, model_blessing, infra_blessing = (
        _first(inputs, MODEL_KEY),
        _first(inputs, MODEL_BLESSING_KEY),
        _first(inputs, INFRA_BLESSING_KEY),
    )
    rollback_of = custom_property(pushed, ROLLBACK_OF)
    record: dict[str, Any] = {
        "version": int(props["pushed_version"]),
        "path": path,
        "pushed_at": iso_time(pushed.create_time_since_epoch),
        "pushed_by": "rollback" if rollback_of is not None else "Pusher",
        "rollback_of": int(rollback_of) if rollback_of is not None else None,
        "run_id": index.run_of_execution.get(execution_id) if execution_id else None,
        "user": custom_property(execution, "user") if execution else None,
        "pushed_model_id": pushed.id,
        "model_id": model.id if model else None,
        "evaluator_blessed": bool(
            model_blessing and properties(model_blessing).get("blessed") == 1
        ),
        "infra_blessed": bool(infra_blessing and properties(infra_blessing).get("blessed") == 1),
        "infra_reason": properties(infra_blessing).get("reason") if infra_blessing else None,
        "task": None,
        "metrics": {},
        "on_disk": os.path.isdir(path),
    }
    record["health"] = _health(index, pushed.id)
    evaluation_uri = (
        index.sibling_outputs(model_blessing).get("evaluation") if model_blessing else None
    )
    if evaluation_uri and os.path.isdir(evaluation_uri):
        evaluation = _evaluation(evaluation_uri)
        overall, task = evaluation["overall"], evaluation["task"] or "binary"
        record["task"] = task
        record["metrics"] = {k: overall[k] for k in HEADLINE_METRICS.get(task, ()) if k in overall}
        linear = evaluation.get("linear_baseline") or {}
        record["linear_baseline"] = linear.get("linear_value")
    return record


def _check_record(index: StoreIndex, execution) -> dict[str, Any]:
    props = properties(execution)
    findings = json.loads(custom_property(execution, "findings") or "[]")
    judged = [
        e.artifact_id
        for e in index.store.get_events_by_execution_ids([execution.id])
        if e.type in INPUT_EVENTS and e.path.steps and e.path.steps[0].key == PUSHED_MODEL_KEY
    ]
    return {
        "execution_id": execution.id,
        "checked_at": iso_time(execution.create_time_since_epoch),
        "model": props.get("model_name"),
        "versions": sorted(
            int(properties(a).get("pushed_version", 0))
            for a in index.store.get_artifacts_by_id(judged)
        ),
        "window": [props.get("window_since"), props.get("window_until")],
        "verdict": props.get("verdict"),
        "requests": custom_property(execution, "requests"),
        "rows": custom_property(execution, "rows"),
        "findings": [
            f"{f['check']}: {f['feature'] + ': ' if f['feature'] else ''}{f['message']}"
            for f in findings
        ],
        "quality": json.loads(custom_property(execution, "quality") or "{}"),
        "summary": custom_property(execution, "summary"),
        "user": custom_property(execution, "user"),
    }


def monitoring_checks(index: StoreIndex) -> list[dict[str, Any]]:
    """Every `monitor` check recorded, newest first."""
    try:
        executions = index.store.get_executions_by_type(MONITORING_EXECUTION_TYPE)
    except Exception:  # noqa: BLE001 - ml_metadata's NotFoundError: no check was ever recorded
        return []
    return [_check_record(index, e) for e in sorted(executions, key=lambda e: -e.id)]


def _health(index: StoreIndex, pushed_model_id: int) -> dict[str, Any] | None:
    """The latest `monitor` verdict on the version's traffic: ok, alert (with its findings)."""
    checks = [
        e.execution_id
        for e in index.store.get_events_by_artifact_ids([pushed_model_id])
        if e.type in INPUT_EVENTS
    ]
    executions = [
        e
        for e in index.store.get_executions_by_id(checks)
        if index.execution_type_name(e) == MONITORING_EXECUTION_TYPE
    ]
    if not executions:
        return None
    record = _check_record(index, max(executions, key=lambda e: e.id))
    return {k: record[k] for k in ("verdict", "checked_at", "window", "findings", "execution_id")}


def _pushes(index: StoreIndex) -> list:
    """The PushedModel artifacts of versions that were pushed."""
    return [
        a
        for a in index.store.get_artifacts_by_type(PUSHED_MODEL)
        if properties(a).get("pushed") == 1 and a.state == a.LIVE
    ]


def version_record(index: StoreIndex, version: int) -> dict[str, Any]:
    """One pushed version's record (without `serving`), read alone: NotFound when none was
    recorded."""
    for pushed in _pushes(index):
        if int(properties(pushed)["pushed_version"]) == version:
            return _version_record(index, pushed)
    raise _not_recorded(version, index)


def _not_recorded(version: int, index: StoreIndex) -> NotFound:
    return NotFound(
        f"no pushed model version {version} is recorded in ML Metadata at {index.location}; "
        "`models` lists the versions"
    )


def pushed_versions(index: StoreIndex) -> list[dict[str, Any]]:
    """Every pushed version, newest first, each saying whether it is the one served now."""
    records = [_version_record(index, a) for a in _pushes(index)]
    served = {}
    for record in records:
        base = os.path.dirname(record["path"].rstrip("/"))
        if base not in served:
            served[base] = served_version(base)
        record["serving"] = served[base] == record["version"] and record["on_disk"]
    return sorted(records, key=lambda r: -r["version"])


def find_version(records: list[dict[str, Any]], version: int, index: StoreIndex) -> dict[str, Any]:
    """`version`'s record among `pushed_versions(index)`, or NotFound saying where to look."""
    for record in records:
        if record["version"] == version:
            return record
    raise _not_recorded(version, index)


def pusher_contexts(index: StoreIndex, pushed_model_id: int) -> list:
    """The pipeline context of the execution that pushed an artifact (a rollback joins it)."""
    execution_id = index.producing_execution.get(pushed_model_id)
    if execution_id is None:
        return []
    return [
        c
        for c in index.store.get_contexts_by_execution(execution_id)
        if c.type == tfx_private.PIPELINE_CONTEXT
    ]

"""Pipeline runs in ML Metadata: which runs there are, and what each component did in them.

A run records who runs it and where (host, pid, user, output directory) on its context before its
first component starts. A reader on that host tells a live run from one whose process is gone
(killed, even with SIGKILL) by the output directory's run lock, which the kernel frees when the
process dies. A run on another host sharing a server database cannot be checked from here: it
reads as running (on that host) until a reader there, or its next run, says otherwise.
"""

from __future__ import annotations

import json
import socket
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from ml_metadata import metadata_store
from ml_metadata.proto import metadata_store_pb2

from components import tfx_private
from metadata import run_lock
from metadata.store import NodeExecution, NotFound, StoreIndex, custom_property, iso_time

Context = metadata_store_pb2.Context

# Custom properties of a run's context (orchestration/local_runner.py writes them).
HOST_PROPERTY = "host"
PID_PROPERTY = "pid"
USER_PROPERTY = "user"
OUTPUT_DIR_PROPERTY = "output_dir"
PARALLELISM_PROPERTY = "parallelism"  # how many components could run at once
# What the run depends on besides its data (pipeline/run_environment.py `capture`), as JSON in
# numbered parts: `environment_000`, `environment_001`, ... and `environment_parts`, their count.
# ML Metadata on PostgreSQL indexes property values, and an index row holds at most 8191 bytes
# (a record of 17 kB was refused whole).
ENVIRONMENT_PROPERTY = "environment"
_ENVIRONMENT_PART_CHARACTERS = 2000


def run_contexts(store: metadata_store.MetadataStore, pipeline_name: str) -> list[Context]:
    """Run contexts of `pipeline_name` (children of its pipeline context), newest first."""
    pipeline_context = store.get_context_by_type_and_name(
        tfx_private.PIPELINE_CONTEXT, pipeline_name
    )
    if pipeline_context is None:
        return []
    runs = [
        c
        for c in store.get_children_contexts_by_context(pipeline_context.id)
        if c.type == tfx_private.PIPELINE_RUN_CONTEXT
    ]
    return sorted(runs, key=lambda c: (c.create_time_since_epoch, c.id), reverse=True)


def run_executions(index: StoreIndex, run_context_id: int) -> list[NodeExecution]:
    """Executions of one run in the order they started."""
    executions = sorted(index.store.get_executions_by_context(run_context_id), key=lambda e: e.id)
    return [index.node_execution(e) for e in executions]


def run_context(index: StoreIndex, run_id: str) -> Context:
    context = index.store.get_context_by_type_and_name(tfx_private.PIPELINE_RUN_CONTEXT, run_id)
    if context is None:
        raise NotFound(f"no run {run_id!r}; `inspect runs` lists them")
    return context


def _run_state(states: set[str]) -> str:
    if "failed" in states:
        return "FAILED"
    if "interrupted" in states:
        return "INTERRUPTED"
    if "canceled" in states:
        return "CANCELED"
    if states & {"running", "new"}:
        return "RUNNING"
    return "COMPLETE"


def _still_running(index: StoreIndex, context: Context) -> bool:
    """Whether run `context`'s process still holds its output directory's run lock. A run from
    before runs recorded their host is checked against the SQLite store's own folder."""
    host = custom_property(context, HOST_PROPERTY)
    output_dir = custom_property(context, OUTPUT_DIR_PROPERTY)
    if host is not None and host != socket.gethostname():
        return True  # another machine's run: its lock is not ours to read
    if output_dir is None:
        if not index.location.is_sqlite:
            return True
        output_dir = index.location.path.parent
    return run_lock.running_run(Path(output_dir)) == context.name


def describe_run(index: StoreIndex, context: Context) -> dict[str, Any]:
    """A run as plain data: when, how long, its state and each component's state and timing."""
    nodes = run_executions(index, context.id)
    start = min(
        (n.execution.create_time_since_epoch for n in nodes),
        default=context.create_time_since_epoch,
    )
    end = max((n.execution.last_update_time_since_epoch for n in nodes), default=start)
    components = [
        {
            "node_id": n.node_id,
            "execution_id": n.execution.id,
            "state": n.state,
            "seconds": round(n.seconds, 3),
            "started": iso_time(n.execution.create_time_since_epoch),
            "offset_seconds": round((n.execution.create_time_since_epoch - start) / 1000, 3),
            "error": n.failure,
        }
        for n in nodes
    ]
    if any(c["state"] in ("running", "new") for c in components) and not _still_running(
        index, context
    ):
        for component in components:
            if component["state"] in ("running", "new"):
                component["state"] = "interrupted"
                component["error"] = "interrupted: the run's process ended while this step ran"
    parents = index.store.get_parent_contexts_by_context(context.id)
    parallelism = custom_property(context, PARALLELISM_PROPERTY)
    return {
        "run_id": context.name,
        "pipeline": parents[0].name if parents else None,
        "host": custom_property(context, HOST_PROPERTY),
        "user": custom_property(context, USER_PROPERTY),
        "output_dir": custom_property(context, OUTPUT_DIR_PROPERTY),
        "started": iso_time(start),
        "wall_seconds": round((end - start) / 1000, 3),
        "state": _run_state({c["state"] for c in components}),
        # Set by the local runner; None for Kubeflow runs and runs made before it recorded it.
        "parallelism": int(parallelism) if parallelism else None,
        "most_at_once": most_at_once(
            (c["offset_seconds"], c["offset_seconds"] + c["seconds"]) for c in components
        ),
        "components": components,
    }


def most_at_once(intervals: Iterable[tuple[float, float]]) -> int:
    """The most of `intervals` (start, end) that were open at one moment; an interval that
    starts when another ends does not overlap it."""
    events = []
    for start, end in intervals:
        events += [(start, 1), (end, -1)]
    most = current = 0
    for _, change in sorted(events):  # at equal times the end (-1) sorts first
        current += change
        most = max(most, current)
    return most


def list_runs(index: StoreIndex) -> list[dict[str, Any]]:
    """Every pipeline run in the store, newest first."""
    contexts = sorted(
        index.store.get_contexts_by_type(tfx_private.PIPELINE_RUN_CONTEXT),
        key=lambda c: (c.create_time_since_epoch, c.id),
        reverse=True,
    )
    if not contexts:
        raise NotFound(f"the ML Metadata store {index.location} holds no pipeline runs yet")
    return [describe_run(index, c) for c in contexts]


def find_run(index: StoreIndex, run_ref: str) -> dict[str, Any]:
    """A run by id, unique id prefix, or position (1 = newest)."""
    exact = index.store.get_context_by_type_and_name(tfx_private.PIPELINE_RUN_CONTEXT, run_ref)
    if exact is not None and not run_ref.isdigit():
        return describe_run(index, exact)
    runs = list_runs(index)
    if (
        run_ref.isdigit()
        and 1 <= int(run_ref) <= len(runs)
        and not any(r["run_id"] == run_ref for r in runs)
    ):
        return runs[int(run_ref) - 1]
    matches = [r for r in runs if r["run_id"] == run_ref] or [
        r for r in runs if r["run_id"].startswith(run_ref)
    ]
    if len(matches) != 1:
        kind = "ambiguous" if matches else "unknown"
        raise NotFound(f"no run {run_ref!r} ({kind}); `inspect runs` lists them")
    return matches[0]


def environment_properties(record_json: str) -> dict[str, str]:
    """The run context's custom properties that hold `record_json` (ASCII JSON), in parts."""
    size = _ENVIRONMENT_PART_CHARACTERS
    parts = [record_json[i : i + size] for i in range(0, len(record_json), size)] or [""]
    properties = {f"{ENVIRONMENT_PROPERTY}_{number:03d}": part for number, part in enumerate(parts)}
    properties[f"{ENVIRONMENT_PROPERTY}_parts"] = str(len(parts))
    return properties


def recorded_environment(context: Context) -> dict[str, Any] | None:
    """What run `context` recorded it depended on, or None for a run from before the record."""
    count = custom_property(context, f"{ENVIRONMENT_PROPERTY}_parts")
    if count is None:
        return None
    return json.loads(
        "".join(
            custom_property(context, f"{ENVIRONMENT_PROPERTY}_{number:03d}") or ""
            for number in range(int(count))
        )
    )

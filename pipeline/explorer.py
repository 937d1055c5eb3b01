"""What ML Metadata knows about the pipeline's runs, as plain data (dicts and lists, JSON-ready).

Used by `run_local.py inspect ...` (text or --json) and by the HTML run report.
"""

from __future__ import annotations

import datetime
import functools
import json
from pathlib import Path
from typing import Any

from ml_metadata import metadata_store
from ml_metadata.proto import metadata_store_pb2

from pipeline import metadata_reader as mr

Execution = metadata_store_pb2.Execution
Artifact = metadata_store_pb2.Artifact
Event = metadata_store_pb2.Event
_OUTPUT_EVENTS = (Event.OUTPUT, Event.DECLARED_OUTPUT, Event.PENDING_OUTPUT)
_INPUT_EVENTS = (Event.INPUT, Event.DECLARED_INPUT)
# Execution properties worth showing as a component's external inputs in lineage.
_SOURCE_PROPERTIES = (
    "input_base",
    "input_fingerprint",
    "schema_file",
    "preprocessing_fn",
    "run_fn",
    "tuner_fn",
    "module_path",
    "custom_config",
)


def _execution_error(execution: metadata_store_pb2.Execution) -> str | None:
    """The failure message ML Metadata holds for a failed execution (TFX's execution result)."""
    value = execution.custom_properties.get("__execution_result__")
    if value is None or not value.string_value:
        return None
    return json.loads(value.string_value).get("resultMessage")


class NotFound(LookupError):
    """An id, run or store that does not exist; the message says which."""


def _iso(ms: int) -> str:
    return datetime.datetime.fromtimestamp(ms / 1000).isoformat(timespec="seconds")


def _value(value: metadata_store_pb2.Value) -> Any:
    kind = value.WhichOneof("value")
    if kind == "struct_value":
        from google.protobuf import json_format

        return json_format.MessageToDict(value.struct_value)
    return getattr(value, kind) if kind else None


def _properties(item) -> dict[str, Any]:
    props = {k: _value(v) for k, v in item.properties.items()}
    props.update({k: _value(v) for k, v in item.custom_properties.items()})
    return props


def open_store(path: Path) -> metadata_store.MetadataStore:
    if not Path(path).is_file():
        raise NotFound(
            f"no ML Metadata store at {path} (run the pipeline first, or pass --metadata-path)"
        )
    store = mr.open_store(Path(path))
    if not store.get_contexts_by_type(mr.PIPELINE_RUN_CONTEXT):
        raise NotFound(f"the ML Metadata store {path} holds no pipeline runs yet")
    return store


class Explorer:
    """Read-only queries over one store; caches type names and node ids."""

    def __init__(self, store: metadata_store.MetadataStore):
        self.store = store
        self._types = {t.id: t.name for t in store.get_artifact_types()}
        self._node_of_execution: dict[int, str] = {}
        self._run_of_execution: dict[int, str] = {}
        for context in store.get_contexts():
            if context.type in (mr.NODE_CONTEXT, mr.PIPELINE_RUN_CONTEXT):
                for execution in store.get_executions_by_context(context.id):
                    if context.type == mr.NODE_CONTEXT:
                        self._node_of_execution[execution.id] = context.name.split(".", 1)[-1]
                    else:
                        self._run_of_execution[execution.id] = context.name

    # ---- runs ---------------------------------------------------------------------------
    @functools.cached_property
    def _runs(self) -> list[dict[str, Any]]:
        """Every pipeline run, newest first, with per-component state and duration."""
        contexts = sorted(
            self.store.get_contexts_by_type(mr.PIPELINE_RUN_CONTEXT),
            key=lambda c: (c.create_time_since_epoch, c.id),
            reverse=True,
        )
        return [self._run(c) for c in contexts]

    def runs(self) -> list[dict[str, Any]]:
        """Every pipeline run, newest first (read once: the explorer is a snapshot)."""
        return self._runs

    def _run(self, context: metadata_store_pb2.Context) -> dict[str, Any]:
        executions = sorted(self.store.get_executions_by_context(context.id), key=lambda e: e.id)
        nodes = [mr.NodeExecution(self._node_of_execution.get(e.id, "?"), e) for e in executions]
        components = [
            {
                "node_id": n.node_id,
                "execution_id": e.id,
                "state": n.state,
                "seconds": round(n.seconds, 3),
                "started": _iso(e.create_time_since_epoch),
                "offset_seconds": None,
                "error": _execution_error(e),
            }
            for n, e in zip(nodes, executions, strict=True)
        ]
        states = {c["state"] for c in components}
        state = (
            "FAILED"
            if "failed" in states
            else "RUNNING"
            if states & {"running", "new"}
            else "COMPLETE"
        )
        start = min(
            (e.create_time_since_epoch for e in executions), default=context.create_time_since_epoch
        )
        end = max((e.last_update_time_since_epoch for e in executions), default=start)
        for component, execution in zip(components, executions, strict=True):
            component["offset_seconds"] = round(
                (execution.create_time_since_epoch - start) / 1000, 3
            )
        parents = self.store.get_parent_contexts_by_context(context.id)
        return {
            "run_id": context.name,
            "pipeline": parents[0].name if parents else None,
            "started": _iso(start),
            "wall_seconds": round((end - start) / 1000, 3),
            "state": state,
            "components": components,
        }

    def run(self, run_ref: str) -> dict[str, Any]:
        """A run by id, unique id prefix, or position (1 = newest)."""
        runs = self.runs()
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
            raise NotFound(
                f"no run {run_ref!r} ({'ambiguous' if matches else 'unknown'}); `inspect runs` lists them"
            )
        return matches[0]

    # ---- artifacts ----------------------------------------------------------------------
    @functools.cached_property
    def _producing_execution(self) -> dict[int, int]:
        """Artifact id -> id of the execution that output it, from one scan of the events."""
        artifact_ids = [a.id for a in self.store.get_artifacts()]
        return {
            e.artifact_id: e.execution_id
            for e in self.store.get_events_by_artifact_ids(artifact_ids)
            if e.type in _OUTPUT_EVENTS
        }

    def _producer(self, artifact_id: int) -> tuple[int | None, str | None]:
        execution_id = self._producing_execution.get(artifact_id)
        return execution_id, self._node_of_execution.get(execution_id) if execution_id else None

    def describe(self, artifact: Artifact) -> dict[str, Any]:
        execution_id, node_id = self._producer(artifact.id)
        return {
            "id": artifact.id,
            "type": self._types.get(artifact.type_id, artifact.type),
            "state": Artifact.State.Name(artifact.state),
            "uri": artifact.uri,
            "producer": node_id,
            "execution_id": execution_id,
            "run_id": self._run_of_execution.get(execution_id) if execution_id else None,
            "created": _iso(artifact.create_time_since_epoch),
            "properties": _properties(artifact),
        }

    def artifacts(
        self, run: str | None = None, component: str | None = None, type_name: str | None = None
    ) -> list[dict[str, Any]]:
        """Artifacts, filtered by producing run, component or type (short names like Model work)."""
        run_id = self.run(run)["run_id"] if run else None
        result = []
        for artifact in sorted(self.store.get_artifacts(), key=lambda a: a.id):
            info = self.describe(artifact)
            if run_id and info["run_id"] != run_id:
                continue
            if component and info["producer"] != component:
                continue
            if type_name and info["type"] != type_name:
                continue
            result.append(info)
        if run_id:
            # Cached executions reuse artifacts produced by earlier runs: list those too.
            context = self.store.get_context_by_type_and_name(mr.PIPELINE_RUN_CONTEXT, run_id)
            seen = {a["id"] for a in result}
            for artifact in self.store.get_artifacts_by_context(context.id):
                info = self.describe(artifact)
                if (
                    info["id"] not in seen
                    and (not component or info["producer"] == component)
                    and (not type_name or info["type"] == type_name)
                ):
                    result.append(info)
            result.sort(key=lambda a: a["id"])
        return result

    def artifact(self, artifact_id: int) -> Artifact:
        found = self.store.get_artifacts_by_id([artifact_id])
        if not found:
            raise NotFound(f"no artifact with id {artifact_id}; `inspect artifacts` lists them")
        return found[0]

    def show(self, artifact_id: int) -> dict[str, Any]:
        """One artifact in human terms: its facts plus type-specific details."""
        from pipeline import artifact_details

        artifact = self.artifact(artifact_id)
        info = self.describe(artifact)
        info["details"] = artifact_details.details(
            info["type"], artifact.uri, info["properties"], self
        )
        return info

    # ---- lineage ------------------------------------------------------------------------
    def latest_pushed_model(self) -> int:
        pushed = [
            a
            for a in self.store.get_artifacts()
            if self._types.get(a.type_id) == "PushedModel" and _properties(a).get("pushed") == 1
        ]
        if not pushed:
            raise NotFound("no model has been pushed yet")
        return max(pushed, key=lambda a: a.id).id

    def lineage(self, artifact_id: int, _seen: set[int] | None = None) -> dict[str, Any]:
        """The artifact, the execution that produced it, and recursively that execution's inputs
        and external sources (data files, schema file, code) back to the start."""
        seen = _seen if _seen is not None else set()
        node = self.describe(self.artifact(artifact_id))
        if artifact_id in seen:
            node["repeated"] = True
            return node
        seen.add(artifact_id)
        execution_id = node["execution_id"]
        if execution_id is None:
            return node
        execution = self.store.get_executions_by_id([execution_id])[0]
        props = _properties(execution)
        sources = {
            k: props[k] for k in _SOURCE_PROPERTIES if props.get(k) not in (None, "", "null")
        }
        input_ids = sorted(
            {
                e.artifact_id
                for e in self.store.get_events_by_execution_ids([execution_id])
                if e.type in _INPUT_EVENTS
            }
        )
        inputs = [self.lineage(i, seen) for i in input_ids]
        node["produced_by"] = {
            "node_id": self._node_of_execution.get(execution_id),
            "execution_id": execution_id,
            "state": mr.NodeExecution("", execution).state,
            "sources": sources,
            "inputs": inputs,
        }
        return node

    def lineage_edges(self, tree: dict[str, Any]) -> set[tuple[int, int]]:
        """(input artifact id, output artifact id) pairs of a lineage tree."""
        edges = set()
        for child in tree.get("produced_by", {}).get("inputs", []):
            edges.add((child["id"], tree["id"]))
            edges |= self.lineage_edges(child)
        return edges

    # ---- one run's outputs, and two runs compared ----------------------------------------
    def run_outputs(self, run_ref: str) -> dict[str, dict[str, Any]]:
        """The run's artifacts by '<node>.<type>' (cached ones included)."""
        run = self.run(run_ref)
        outputs = {}
        for info in self.artifacts(run=run["run_id"]):
            outputs.setdefault(f"{info['producer']}.{info['type']}", info)
        return outputs

    def diff(self, run_a: str, run_b: str) -> dict[str, Any]:
        from pipeline import artifact_details

        a, b = self.run(run_a), self.run(run_b)
        out_a, out_b = self.run_outputs(a["run_id"]), self.run_outputs(b["run_id"])

        def details(outputs, key):
            info = outputs.get(key)
            return (
                artifact_details.details(info["type"], info["uri"], info["properties"], self)
                if info
                else None
            )

        result: dict[str, Any] = {"run_a": a["run_id"], "run_b": b["run_id"]}
        stats_a, stats_b = (
            details(out_a, "StatisticsGen.ExampleStatistics"),
            details(out_b, "StatisticsGen.ExampleStatistics"),
        )
        result["statistics"] = artifact_details.diff_statistics(stats_a, stats_b)
        schema_a, schema_b = (
            details(out_a, "CuratedSchemaImporter.Schema"),
            details(out_b, "CuratedSchemaImporter.Schema"),
        )
        result["schema"] = artifact_details.diff_schema(schema_a, schema_b)
        hp_a, hp_b = (
            details(out_a, "Tuner.HyperParameters"),
            details(out_b, "Tuner.HyperParameters"),
        )
        result["hyperparameters"] = artifact_details.diff_flat(
            hp_a and hp_a["values"], hp_b and hp_b["values"]
        )
        ev_a, ev_b = (
            details(out_a, "Evaluator.ModelEvaluation"),
            details(out_b, "Evaluator.ModelEvaluation"),
        )
        result["metrics"] = artifact_details.diff_flat(
            ev_a and ev_a["overall"], ev_b and ev_b["overall"]
        )
        result["blessing"] = {
            kind: {
                "a": (out_a.get(key) or {}).get("properties", {}).get("blessed"),
                "b": (out_b.get(key) or {}).get("properties", {}).get("blessed"),
            }
            for kind, key in (
                ("model", "Evaluator.ModelBlessing"),
                ("infra", "InfraValidator.InfraBlessing"),
            )
        }
        result["same_artifacts"] = sorted(
            k for k in out_a if k in out_b and out_a[k]["id"] == out_b[k]["id"]
        )
        return result


def to_json(data: Any) -> str:
    return json.dumps(data, indent=2, sort_keys=False, default=str)

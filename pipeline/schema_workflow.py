"""`run_local.py schema diff|accept`: review a data change against the curated schema, and accept it.

`diff` compares the schema SchemaGen inferred from the latest run's data with the curated schema
(features only on one side, type and presence differences), lists the latest run's anomalies and
shows the change `accept` would make. `accept` relaxes the curated schema just enough for the
latest data (TFDV's `update_schema`: new columns added, dropped or retyped columns deprecated,
domains widened) and writes it back to the curated schema file, keeping the file's leading
comment block, for review like any code change.
"""

from __future__ import annotations

import difflib
from pathlib import Path

from google.protobuf import text_format
from tensorflow_metadata.proto.v0 import schema_pb2, statistics_pb2

from components import features
from components.data_gate.anomalies import findings
from pipeline import metadata_reader as mr
from pipeline.run_summary import split_names

SCHEMA_FILE = "schema.pbtxt"
STATS_FILE = "FeatureStats.pb"


class SchemaWorkflowError(Exception):
    """Nothing to compare yet, or the curated schema cannot be read."""


def _latest_outputs(metadata_path: Path, pipeline_name: str, node_id: str, key: str):
    store = mr.open_store(metadata_path)
    for run in mr.run_contexts(store, pipeline_name):
        for node in mr.run_executions(store, run.id):
            if node.node_id == node_id and node.state in ("executed", "cached"):
                artifacts = mr.output_artifacts(store, node.execution.id).get(key)
                if artifacts:
                    return run.name, artifacts[0]
    raise SchemaWorkflowError(
        f"no {node_id} output in {metadata_path} yet: run the pipeline first "
        "(`python run_local.py`), then compare."
    )


def read_schema(path: Path) -> schema_pb2.Schema:
    try:
        return text_format.Parse(Path(path).read_text(), schema_pb2.Schema())
    except (OSError, text_format.ParseError) as e:
        raise SchemaWorkflowError(f"cannot read the schema {path}: {e}") from e


def _statistics(uri: str, split: str) -> statistics_pb2.DatasetFeatureStatisticsList:
    from tensorflow_data_validation.utils import stats_util

    return stats_util.load_stats_binary(str(Path(uri) / f"Split-{split}" / STATS_FILE))


def _feature_facts(schema: schema_pb2.Schema) -> dict[str, str]:
    facts = {}
    for f in schema.feature:
        presence = f.presence.min_fraction if f.HasField("presence") else 0.0
        stage = (
            ""
            if f.lifecycle_stage == schema_pb2.UNKNOWN_STAGE
            else (" " + schema_pb2.LifecycleStage.Name(f.lifecycle_stage))
        )
        facts[f.name] = f"{schema_pb2.FeatureType.Name(f.type)}, presence {presence:g}{stage}"
    return facts


def updated_schema(
    curated: schema_pb2.Schema, stats_uri: str, splits: list[str]
) -> schema_pb2.Schema:
    """The curated schema relaxed to accept every split of the latest statistics."""
    import tensorflow_data_validation as tfdv

    updated = schema_pb2.Schema()
    updated.CopyFrom(curated)
    for split in splits:
        stats = _statistics(stats_uri, split)
        if stats.datasets and stats.datasets[0].num_examples:
            updated = tfdv.update_schema(updated, stats)
    return updated


def _leading_comments(path: Path) -> str:
    lines = []
    for line in path.read_text().splitlines():
        if not line.startswith("#"):
            break
        lines.append(line)
    return "\n".join(lines) + "\n" if lines else ""


def schema_text(schema: schema_pb2.Schema, header: str) -> str:
    return header + text_format.MessageToString(schema)


def plan(metadata_path: Path, pipeline_name: str, curated_file: Path) -> dict:
    """Everything `diff` prints and `accept` writes."""
    curated = read_schema(curated_file)
    run_id, inferred_artifact = _latest_outputs(metadata_path, pipeline_name, "SchemaGen", "schema")
    inferred = read_schema(Path(inferred_artifact.uri) / SCHEMA_FILE)
    _, stats = _latest_outputs(metadata_path, pipeline_name, "StatisticsGen", "statistics")
    _, anomalies = _latest_outputs(metadata_path, pipeline_name, "ExampleValidator", "anomalies")
    curated_facts, inferred_facts = _feature_facts(curated), _feature_facts(inferred)
    updated = updated_schema(curated, stats.uri, split_names(stats))
    header = _leading_comments(curated_file)
    before = curated_file.read_text()
    after = schema_text(updated, header)
    deprecated_model_features = [
        f.name
        for f in updated.feature
        if f.lifecycle_stage == schema_pb2.DEPRECATED
        and f.name in features.RAW_COLUMNS
        and curated_facts.get(f.name, "").find("DEPRECATED") < 0
    ]
    return {
        "run_id": run_id,
        "curated_file": str(curated_file),
        "inferred_uri": inferred_artifact.uri,
        "only_in_data": sorted(set(inferred_facts) - set(curated_facts)),
        "only_in_curated": sorted(set(curated_facts) - set(inferred_facts)),
        "differences": {
            name: {"curated": curated_facts[name], "inferred": inferred_facts[name]}
            for name in sorted(set(curated_facts) & set(inferred_facts))
            if curated_facts[name] != inferred_facts[name]
        },
        "anomalies": [f.line() for f in findings("schema", anomalies.uri, split_names(anomalies))],
        "accept_diff": "".join(
            difflib.unified_diff(
                before.splitlines(keepends=True),
                after.splitlines(keepends=True),
                fromfile=f"{curated_file} (curated)",
                tofile=f"{curated_file} (accepted)",
            )
        ),
        "deprecated_model_features": deprecated_model_features,
        "accepted_text": after,
    }


def diff_text(p: dict) -> str:
    lines = [
        f"Curated schema:  {p['curated_file']}",
        f"Inferred schema: SchemaGen of run {p['run_id']} ({p['inferred_uri']})",
    ]
    if p["only_in_data"]:
        lines.append("In the data, not in the curated schema: " + ", ".join(p["only_in_data"]))
    if p["only_in_curated"]:
        lines.append("In the curated schema, not in the data: " + ", ".join(p["only_in_curated"]))
    for name, d in p["differences"].items():
        lines.append(f"  {name}: curated {d['curated']}; inferred {d['inferred']}")
    if not (p["only_in_data"] or p["only_in_curated"] or p["differences"]):
        lines.append("Same features, types and presence (domains are curated by hand).")
    if p["anomalies"]:
        lines.append("Anomalies of the latest data against the curated schema:")
        lines += [f"  - {a}" for a in p["anomalies"]]
    else:
        lines.append("The latest data has no anomaly against the curated schema.")
    if p["accept_diff"]:
        lines.append("`schema accept` would write:")
        lines.append(p["accept_diff"].rstrip("\n"))
        for name in p["deprecated_model_features"]:
            lines.append(
                f"warning: accepting deprecates '{name}', which the model code uses "
                "(components/features.py): Transform needs it. Fix the data, or change the model "
                "code too."
            )
    else:
        lines.append("`schema accept` would change nothing.")
    return "\n".join(lines)


def accept(p: dict) -> str:
    if not p["accept_diff"]:
        return f"Nothing to accept: {p['curated_file']} already accepts the latest data."
    Path(p["curated_file"]).write_text(p["accepted_text"])
    return (
        p["accept_diff"].rstrip("\n")
        + f"\nWrote {p['curated_file']}. Review the change (git diff) and commit it; the next run "
        "validates the data against it. Comments inside feature blocks are not kept."
    )

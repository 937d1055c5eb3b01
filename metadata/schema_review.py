"""A data change reviewed against the curated schema: what `schema diff` shows and `accept` writes.

Compares the schema SchemaGen inferred from the latest run's data with the curated schema
(features only on one side, type and presence differences), lists the latest run's anomalies and
computes the change that would accept the latest data: the curated schema relaxed just enough
(TFDV's `update_schema`: new columns added, dropped or retyped columns deprecated, domains
widened), keeping the file's leading comment block, as a unified diff for review.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from pathlib import Path

from google.protobuf import text_format
from tensorflow_metadata.proto.v0 import schema_pb2, statistics_pb2

from components.data_gate.anomalies import findings
from metadata.runs import run_contexts, run_executions
from metadata.store import StoreIndex, output_artifacts, split_names
from pipeline import node_ids

SCHEMA_FILE = "schema.pbtxt"
STATS_FILE = "FeatureStats.pb"


class SchemaReviewError(Exception):
    """Nothing to compare yet, or the curated schema cannot be read."""


def _latest_outputs(index: StoreIndex, pipeline_name: str, node_id: str, key: str):
    for run in run_contexts(index.store, pipeline_name):
        for node in run_executions(index, run.id):
            if node.node_id == node_id and node.state in ("executed", "cached"):
                artifacts = output_artifacts(index.store, node.execution.id).get(key)
                if artifacts:
                    return run.name, artifacts[0]
    raise SchemaReviewError(
        f"no {node_id} output in {index.location} yet: run the pipeline first "
        "(`python run_local.py`), then compare."
    )


def read_schema(path: Path) -> schema_pb2.Schema:
    try:
        return text_format.Parse(Path(path).read_text(), schema_pb2.Schema())
    except (OSError, text_format.ParseError) as e:
        raise SchemaReviewError(f"cannot read the schema {path}: {e}") from e


def _statistics(uri: str, split: str) -> statistics_pb2.DatasetFeatureStatisticsList:
    import tensorflow_data_validation as tfdv  # loads TensorFlow: only when a review is asked for

    return tfdv.load_stats_binary(str(Path(uri) / f"Split-{split}" / STATS_FILE))


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
    import tensorflow_data_validation as tfdv  # loads TensorFlow: only when a review is asked for

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


def review(
    index: StoreIndex, pipeline_name: str, curated_file: Path, model_columns: Iterable[str]
) -> dict:
    """Everything `schema diff` prints and `schema accept` writes; `model_columns` are the
    columns Transform reads (the profile's features and label)."""
    curated = read_schema(curated_file)
    run_id, inferred_artifact = _latest_outputs(
        index, pipeline_name, node_ids.INFERRED_SCHEMA_GEN, "schema"
    )
    inferred = read_schema(Path(inferred_artifact.uri) / SCHEMA_FILE)
    _, stats = _latest_outputs(index, pipeline_name, node_ids.STATISTICS_GEN, "statistics")
    _, anomalies = _latest_outputs(index, pipeline_name, node_ids.EXAMPLE_VALIDATOR, "anomalies")
    curated_facts, inferred_facts = _feature_facts(curated), _feature_facts(inferred)
    updated = updated_schema(curated, stats.uri, split_names(stats))
    header = _leading_comments(curated_file)
    before = curated_file.read_text()
    after = schema_text(updated, header)
    deprecated_model_features = [
        f.name
        for f in updated.feature
        if f.lifecycle_stage == schema_pb2.DEPRECATED
        and f.name in set(model_columns)
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

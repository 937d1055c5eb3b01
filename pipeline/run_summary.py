"""What a finished run did, read back from ML Metadata and its artifacts, in human terms."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import tensorflow as tf
import tensorflow_model_analysis as tfma

from components.data_gate import executor as data_gate
from components.data_gate.anomalies import Finding, findings
from pipeline import artifact_details
from pipeline import metadata_reader as mr


@dataclasses.dataclass
class RunSummary:
    run_id: str
    executions: list[mr.NodeExecution]
    blessed: bool | None = None
    blessing_reasons: list[str] = dataclasses.field(default_factory=list)
    metrics: dict[str, float] = dataclasses.field(default_factory=dict)
    infra_blessed: bool | None = None
    infra_reason: str | None = None
    pushed_version: str | None = None
    pushed_path: str | None = None
    predictions: int | None = None
    predictions_uri: str | None = None
    # Data checks: spans read, schema and drift findings (None: not checked in this run), the
    # data gate's verdict, and skew of the batch to score against the training data.
    data_span: str | None = None
    training_spans: str | None = None
    drift_baseline_span: str | None = None
    data_findings: list[Finding] | None = None
    gate_refused: bool = False
    skew_span: str | None = None
    skew_findings: list[Finding] | None = None


def blessing_reasons(evaluation_uri: str) -> list[str]:
    """Each failed threshold as a sentence; empty when every threshold passed."""
    reasons = []
    result = tfma.load_validation_result(evaluation_uri)
    for per_slice in result.metric_validations_per_slice:
        where = slice_name(per_slice.slice_key)
        for failure in per_slice.failures:
            kind = "change vs baseline" if failure.metric_key.is_diff else "value"
            reasons.append(
                f"{failure.metric_key.name} {kind} {failure.metric_value.double_value.value:.4f} "
                f"on {where} fails its threshold ({_threshold_text(failure.metric_threshold)})"
            )
    if result.missing_thresholds:
        reasons.append("a metric that has a threshold was not computed")
    for missing in result.missing_slices:
        reasons.append(f"no evaluation data for slice {slice_name(missing)}")
    if result.rubber_stamp:
        reasons.append("no baseline yet: change thresholds were not applied (first blessed model)")
    return reasons


def slice_name(slice_key, overall: str = "all data") -> str:
    """'trip_start_hour=0' for a TFMA slice key; `overall` for the whole data set."""
    parts = []
    for k in slice_key.single_slice_keys:
        kind = k.WhichOneof("kind")
        value = (
            k.bytes_value.decode() if kind == "bytes_value" else getattr(k, kind) if kind else ""
        )
        parts.append(f"{k.column}={value}")
    return ", ".join(parts) or overall


def _threshold_text(threshold) -> str:
    if threshold.HasField("value_threshold"):
        t = threshold.value_threshold
        bounds = []
        if t.HasField("lower_bound"):
            bounds.append(f">= {t.lower_bound.value:g}")
        if t.HasField("upper_bound"):
            bounds.append(f"<= {t.upper_bound.value:g}")
        return " and ".join(bounds)
    t = threshold.change_threshold
    return f"change >= {t.absolute.value:g}" if t.HasField("absolute") else str(t).strip()


def count_prediction_logs(inference_uri: str) -> int:
    """Number of PredictionLog records BulkInferrer wrote."""
    files = tf.io.gfile.glob(os.path.join(inference_uri, "prediction_logs-*"))
    return sum(1 for f in files for _ in tf.data.TFRecordDataset(f, compression_type="GZIP"))


def split_names(artifact) -> list[str]:
    from tfx.types import artifact_utils

    return artifact_utils.decode_split_names(artifact.properties["split_names"].string_value)


def _data_checks(summary: RunSummary, outputs_by_node: dict[str, dict]) -> None:
    examples = outputs_by_node.get("CsvExampleGen", {}).get("examples")
    if examples:
        props = {
            role: mr.custom_property(examples[0], data_gate.SPANS_PROPERTY_PREFIX + role)
            for role in ("latest", "previous", "older")
        }
        summary.data_span = props["latest"]
        summary.drift_baseline_span = props["previous"] or None
        summary.training_spans = ",".join(
            p for p in (props["older"], props["previous"], props["latest"]) if p
        )
    anomalies = outputs_by_node.get("ExampleValidator", {}).get("anomalies")
    drift = outputs_by_node.get("DriftValidator", {}).get("anomalies")
    if anomalies and drift:
        summary.data_findings = data_gate.gate_findings(
            anomalies[0].uri,
            split_names(anomalies[0]),
            drift[0].uri,
            split_names(drift[0]),
            bool(summary.drift_baseline_span),
        )
    batch = outputs_by_node.get("UnlabeledExampleGen", {}).get("examples")
    if batch:
        summary.skew_span = str(mr.custom_property(batch[0], "span"))
    skew = outputs_by_node.get("SkewValidator", {}).get("anomalies")
    if skew:
        summary.skew_findings = findings("skew", skew[0].uri, split_names(skew[0]))


def summarize_run(metadata_path: Path, pipeline_name: str, run_id: str | None = None) -> RunSummary:
    """Collects the facts of one run (the latest when `run_id` is None)."""
    store = mr.open_store(metadata_path)
    runs = mr.run_contexts(store, pipeline_name)
    run = next((r for r in runs if run_id is None or r.name == run_id), None)
    if run is None:
        raise LookupError(f"no run {run_id or ''} of pipeline {pipeline_name} in {metadata_path}")
    summary = RunSummary(run_id=run.name, executions=mr.run_executions(store, run.id))

    outputs_by_node = {}
    for node in summary.executions:
        outputs = mr.output_artifacts(store, node.execution.id)
        outputs_by_node[node.node_id] = outputs
        if node.node_id == "DataGate" and node.state == "failed":
            summary.gate_refused = True
        elif node.node_id == "Evaluator" and outputs.get("blessing"):
            blessing = outputs["blessing"][0]
            summary.blessed = bool(mr.custom_property(blessing, "blessed"))
            evaluation = artifact_details.evaluation(outputs["evaluation"][0].uri)
            summary.metrics = dict(evaluation["overall"])
            summary.metrics.update(
                {f"{k} change": v for k, v in evaluation["baseline_diff"].items()}
            )
            summary.blessing_reasons = evaluation["failures"]
        elif node.node_id == "InfraValidator" and outputs.get("blessing"):
            blessing = outputs["blessing"][0]
            summary.infra_blessed = bool(mr.custom_property(blessing, "blessed"))
            summary.infra_reason = mr.custom_property(blessing, "reason")
        elif node.node_id == "Pusher" and outputs.get("pushed_model"):
            pushed = outputs["pushed_model"][0]
            if mr.custom_property(pushed, "pushed"):
                summary.pushed_version = str(mr.custom_property(pushed, "pushed_version"))
                summary.pushed_path = mr.custom_property(pushed, "pushed_destination")
        elif node.node_id == "BulkInferrer" and outputs.get("inference_result"):
            summary.predictions_uri = outputs["inference_result"][0].uri
            summary.predictions = count_prediction_logs(summary.predictions_uri)
    _data_checks(summary, outputs_by_node)
    return summary

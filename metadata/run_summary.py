"""What one run did, read back from ML Metadata and its artifacts: the facts its summary shows."""

from __future__ import annotations

import dataclasses
import json

from components.data_gate import training_checks
from components.data_gate.anomalies import Finding, findings, gate_findings
from components.span_example_gen import spans
from metadata import artifact_readers
from metadata.runs import run_context, run_executions
from metadata.store import NodeExecution, StoreIndex, custom_property, output_artifacts, split_names
from pipeline import node_ids


@dataclasses.dataclass
class RunSummary:
    run_id: str
    executions: list[NodeExecution]
    blessed: bool | None = None
    blessing_reasons: list[str] = dataclasses.field(default_factory=list)
    metrics: dict[str, float] = dataclasses.field(default_factory=dict)
    # The profile's task (binary, multiclass, regression) and class names, in class id order.
    task: str | None = None
    class_names: list[str] = dataclasses.field(default_factory=list)
    # Multiclass: class name -> {"precision", "recall"}, and the confusion matrix of the eval data
    # (see artifact_readers.confusion_matrix).
    per_class: dict[str, dict[str, float]] = dataclasses.field(default_factory=dict)
    confusion_matrix: dict | None = None
    # The Evaluator's trivial-predictor check (artifact_readers.trivial_baseline), if it ran.
    trivial_baseline: dict | None = None
    # The Evaluator's linear baseline (artifact_readers.linear_baseline), if it ran.
    linear_baseline: dict | None = None
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


def _data_checks(
    summary: RunSummary, outputs_by_node: dict[str, dict], gate: NodeExecution | None
) -> None:
    examples = outputs_by_node.get(node_ids.LABELED_EXAMPLE_GEN, {}).get("examples")
    if examples:
        props = {
            role: custom_property(examples[0], spans.spans_property(role))
            for role in (spans.LATEST, spans.PREVIOUS, spans.OLDER)
        }
        summary.data_span = props["latest"]
        summary.drift_baseline_span = props["previous"] or None
        summary.training_spans = ",".join(
            p for p in (props["older"], props["previous"], props["latest"]) if p
        )
    anomalies = outputs_by_node.get(node_ids.EXAMPLE_VALIDATOR, {}).get("anomalies")
    drift = outputs_by_node.get(node_ids.DRIFT_VALIDATOR, {}).get("anomalies")
    if anomalies and drift:
        summary.data_findings = gate_findings(
            anomalies[0].uri,
            split_names(anomalies[0]),
            drift[0].uri,
            split_names(drift[0]),
            bool(summary.drift_baseline_span),
        )
    statistics = outputs_by_node.get(node_ids.STATISTICS_GEN, {}).get("statistics")
    if gate is not None and statistics and summary.data_findings is not None:
        # What the gate checked beyond the schema, from the same statistics and settings.
        raw = custom_property(gate.execution, "training_checks")
        if raw:
            summary.data_findings += training_checks.findings(
                training_checks.Settings(**json.loads(raw)), statistics[0].uri
            )
    batch = outputs_by_node.get(node_ids.UNLABELED_EXAMPLE_GEN, {}).get("examples")
    if batch:
        summary.skew_span = str(custom_property(batch[0], "span"))
    skew = outputs_by_node.get(node_ids.SKEW_VALIDATOR, {}).get("anomalies")
    if skew:
        summary.skew_findings = findings("skew", skew[0].uri, split_names(skew[0]))


def task_of_run(index: StoreIndex, run_id: str) -> artifact_readers.TaskInfo:
    """The task and class names of run `run_id`: what its Evaluator, Trainer, Tuner or Transform
    was given (the profile the run used); TaskInfo(None) when none of them ran."""
    by_node = {n.node_id: n.execution for n in run_executions(index, run_context(index, run_id).id)}
    for node_id in (node_ids.EVALUATOR, node_ids.TRAINER, node_ids.TUNER, node_ids.TRANSFORM):
        if node_id in by_node:
            found = artifact_readers.task_of_execution(by_node[node_id])
            if found is not None:
                return found
    return artifact_readers.TaskInfo(None)


def summarize_run(index: StoreIndex, run_id: str) -> RunSummary:
    """Collects the facts of the run `run_id`."""
    store = index.store
    summary = RunSummary(
        run_id=run_id, executions=run_executions(index, run_context(index, run_id).id)
    )

    outputs_by_node = {}
    for node in summary.executions:
        outputs = output_artifacts(store, node.execution.id)
        outputs_by_node[node.node_id] = outputs
        if node.node_id == node_ids.DATA_GATE and node.state == "failed":
            summary.gate_refused = True
        elif node.node_id == node_ids.EVALUATOR and outputs.get("blessing"):
            blessing = outputs["blessing"][0]
            summary.blessed = bool(custom_property(blessing, "blessed"))
            given = task_of_run(index, run_id)
            evaluation = artifact_readers.evaluation(
                outputs["evaluation"][0].uri, given.class_names
            )
            summary.task = evaluation["task"] or given.task
            summary.class_names = evaluation["class_names"]
            summary.per_class = evaluation["per_class"]
            summary.confusion_matrix = evaluation["confusion_matrix"]
            summary.trivial_baseline = evaluation["trivial_baseline"]
            summary.linear_baseline = evaluation["linear_baseline"]
            summary.metrics = dict(evaluation["overall"])
            summary.metrics.update(
                {f"{k} change": v for k, v in evaluation["baseline_diff"].items()}
            )
            summary.blessing_reasons = evaluation["failures"]
        elif node.node_id == node_ids.INFRA_VALIDATOR and outputs.get("blessing"):
            blessing = outputs["blessing"][0]
            summary.infra_blessed = bool(custom_property(blessing, "blessed"))
            summary.infra_reason = custom_property(blessing, "reason")
        elif node.node_id == node_ids.PUSHER and outputs.get("pushed_model"):
            pushed = outputs["pushed_model"][0]
            if custom_property(pushed, "pushed"):
                summary.pushed_version = str(custom_property(pushed, "pushed_version"))
                summary.pushed_path = custom_property(pushed, "pushed_destination")
        elif node.node_id == node_ids.BULK_INFERRER and outputs.get("inference_result"):
            summary.predictions_uri = outputs["inference_result"][0].uri
            summary.predictions = artifact_readers.count_prediction_logs(summary.predictions_uri)
    gate = next((n for n in summary.executions if n.node_id == node_ids.DATA_GATE), None)
    _data_checks(summary, outputs_by_node, gate)
    return summary

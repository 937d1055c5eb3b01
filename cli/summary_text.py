"""The short text a run ends with: what happened and where the outputs are."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from components.data_gate.anomalies import refusal_message
from metadata import artifact_readers
from metadata.run_summary import RunSummary
from pipeline.config import PipelineConfig


def _relative(path: str | Path) -> str:
    try:
        return str(Path(path).resolve().relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def data_check_lines(summary: RunSummary) -> list[str]:
    """What was ingested, what the schema/drift checks found, and skew of the batch to score."""
    lines = []
    if summary.data_span is not None:
        lines.append(
            f"Data:       span {summary.data_span} ingested; training on span(s) "
            f"{summary.training_spans}"
        )
    if summary.data_findings is not None:
        if summary.data_findings:
            message = refusal_message(summary.data_findings, summary.data_span or "?")
            lines += ["            " + line for line in message.splitlines()]
        else:
            drift = (
                f"no drift past thresholds vs span {summary.drift_baseline_span}"
                if summary.drift_baseline_span
                else "drift not checked (no previous span)"
            )
            lines.append(f"            schema: no anomaly; {drift}")
    if summary.skew_findings is not None:
        where = f"Skew:       batch to score (unlabeled span {summary.skew_span}) vs training data:"
        if summary.skew_findings:
            lines.append(f"{where} {len(summary.skew_findings)} feature(s) past thresholds")
            lines += [f"            - {finding.line()}" for finding in summary.skew_findings]
        else:
            lines.append(f"{where} none past thresholds")
    return lines


def metric_text(value: float, task: str | None) -> str:
    """A metric for the summary: rates to three decimals, regression errors (in the label's
    units, whatever their scale) to four significant digits."""
    return f"{value:.4g}" if task == "regression" else f"{value:.3f}"


def confusion_matrix_lines(matrix: dict) -> list[str]:
    """The confusion matrix as a small text table: a row per actual class, a column per
    predicted class, example counts."""
    corner = "actual \\ predicted"
    rows = [[corner, *matrix["predicted"]]]
    rows += [
        [name, *(f"{c:g}" if isinstance(c, float) else str(c) for c in counts)]
        for name, counts in zip(matrix["actual"], matrix["counts"], strict=True)
    ]
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return [
        "  ".join(
            [row[0].ljust(widths[0])]
            + [cell.rjust(w) for cell, w in zip(row[1:], widths[1:], strict=True)]
        ).rstrip()
        for row in rows
    ]


def trivial_line(trivial: dict, with_candidate: bool = False) -> str:
    """'vs trivial predictor (always class '0'): accuracy 0.4875; needs ≥ 0.5375', with the
    model's own value when asked, and ': NOT met' when the model did not beat it."""
    metric = artifact_readers.TRIVIAL_METRIC_LABELS.get(trivial["metric"], trivial["metric"])
    regression = trivial["metric"] == "rmse"
    bound = "≤" if regression else "≥"

    def text(value: float) -> str:  # errors in the label's units: significant digits
        return f"{value:.4g}" if regression else f"{value:.4f}"

    line = (
        f"vs trivial predictor ({trivial['trivial_predictor']}): {metric} "
        f"{text(trivial['trivial_value'])}; needs {bound} {text(trivial['required'])}"
    )
    candidate = trivial.get("candidate_value")
    if with_candidate:
        line += f", this model {'not computed' if candidate is None else text(candidate)}"
    return line if trivial.get("passed") else f"{line}: NOT met"


def linear_line(linear: dict) -> str:
    """'vs linear baseline (logistic regression (C 1) on 267 inputs ...): AUC 0.8469 on 1104
    eval rows, this model +0.0116', with the requirement when the profile sets one."""
    metric = artifact_readers.TRIVIAL_METRIC_LABELS.get(linear["metric"], linear["metric"])
    regression = linear["metric"] == "rmse"
    if linear.get("linear_value") is None:
        return f"vs linear baseline: not computed ({linear.get('note') or 'no figure'})"

    def text(value: float) -> str:
        return f"{value:.4g}" if regression else f"{value:.4f}"

    line = (
        f"vs linear baseline ({linear['linear_model'].split(' (numbers')[0]}): {metric} "
        f"{text(linear['linear_value'])}"
    )
    if linear.get("gap") is not None:
        gap = linear["gap"]
        if regression:
            line += f", this model's {abs(gap):.1%} {'lower' if gap >= 0 else 'higher'}"
        else:
            line += f", this model {gap:+.4f}"
    if linear.get("max_gap") is not None:
        allowed = f"{linear['max_gap']:.1%}" if regression else f"{linear['max_gap']:g}"
        line += f" (blessing.vs_linear_baseline allows {allowed} worse)"
        if linear.get("passed") is False:
            line += ": NOT met"
    return line


def model_lines(summary: RunSummary) -> list[str]:
    """The Evaluator's figures for the run's task: its metrics and the change of the headline
    metric against the last blessed model; per class and the confusion matrix for multiclass;
    the trivial predictor the model had to beat."""
    m, task = summary.metrics, summary.task or "binary"
    scores = ", ".join(
        f"{label} {metric_text(m[name], task)}"
        for name, label in artifact_readers.TASK_METRICS.get(task, ())
        if name in m
    )
    headline = artifact_readers.HEADLINE_METRIC_KEY.get(task, "auc")
    label = artifact_readers.METRIC_LABELS.get(headline, headline)
    baseline = (
        f"{label} {m[f'{headline} change']:+.4f} vs the last blessed model"
        if f"{headline} change" in m
        else "no earlier blessed model to compare with"
    )
    lines = [f"{scores}; {baseline}" if scores else baseline]
    if summary.per_class:
        lines.append(
            "per class, that class vs the rest at probability 0.5 (precision/recall): "
            + ", ".join(
                f"{name} {v['precision']:.3f}/{v['recall']:.3f}"
                if "precision" in v and "recall" in v
                else f"{name} " + " ".join(f"{k} {x:.3f}" for k, x in sorted(v.items()))
                for name, v in summary.per_class.items()
            )
        )
    if summary.confusion_matrix:
        lines.append("confusion matrix (rows: actual class, columns: most probable class):")
        lines += ["  " + line for line in confusion_matrix_lines(summary.confusion_matrix)]
    if summary.trivial_baseline:
        lines.append(trivial_line(summary.trivial_baseline))
    if summary.linear_baseline:
        lines.append(linear_line(summary.linear_baseline))
    return lines


def format_summary(
    summary: RunSummary, config: PipelineConfig, log_path: Path, elapsed: float
) -> str:
    states = Counter(node.state for node in summary.executions)
    state_text = ", ".join(f"{n} {state}" for state, n in sorted(states.items()))
    outcome = "was REFUSED by the data gate" if summary.gate_refused else "finished"
    lines = [f"Run {summary.run_id} {outcome} in {elapsed:.1f} s ({state_text})."]
    lines += data_check_lines(summary)

    if summary.gate_refused:
        lines.append(
            "Model:      not trained: nothing trains, evaluates or pushes on refused data."
        )
    elif summary.blessed is None:
        lines.append("Model:      not evaluated in this run.")
    else:
        m = summary.metrics
        verdict = "BLESSED" if summary.blessed else "NOT BLESSED"
        lines.append(
            f"Model:      {verdict} by Evaluator on {int(m.get('example_count', 0))} eval examples"
        )
        lines += ["            " + line for line in model_lines(summary)]
        for reason in summary.blessing_reasons:
            lines.append(f"            - {reason}")
    if summary.infra_blessed is not None:
        verdict = "BLESSED" if summary.infra_blessed else "NOT BLESSED"
        lines.append(
            f"Serving:    {verdict} by InfraValidator: {summary.infra_reason or 'no reason recorded'}"
        )
    if summary.pushed_version:
        pusher_cached = any(
            n.node_id == "Pusher" and n.state == "cached" for n in summary.executions
        )
        again = " (pushed by an earlier run; nothing changed)" if pusher_cached else ""
        lines.append(
            f"Pushed:     version {summary.pushed_version} -> "
            f"{_relative(summary.pushed_path)}{again}"
        )
    else:
        not_blessed = summary.blessed is False or summary.infra_blessed is False
        lines.append(
            "Pushed:     nothing (the model was not blessed)"
            if not_blessed
            else "Pushed:     nothing"
        )
    if summary.predictions == 0 and summary.blessed is False:
        # BulkInferrer scores only with a blessed model; it writes an empty result otherwise.
        lines.append("Inference:  nothing scored (the model was not blessed)")
    elif summary.predictions is not None:
        lines.append(
            f"Inference:  {summary.predictions} predictions -> {_relative(summary.predictions_uri)}"
        )
    location = config.metadata_location
    where = _relative(location.path) if location.is_sqlite else str(location)
    lines.append(f"Metadata:   {where} (ML Metadata, {location.engine})")
    lines.append(f"Outputs:    {_relative(config.pipeline_root)}")
    lines.append(f"Full log:   {_relative(log_path)}")
    return "\n".join(lines)

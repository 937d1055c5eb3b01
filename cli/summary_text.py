"""The short text a run ends with: what happened and where the outputs are."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from components.data_gate.anomalies import refusal_message
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
        scores = ", ".join(
            f"{label} {m[name]:.3f}"
            for name, label in (
                ("auc", "AUC"),
                ("binary_accuracy", "accuracy"),
                ("precision", "precision"),
                ("recall", "recall"),
                ("calibration", "calibration"),
            )
            if name in m
        )
        baseline = (
            f"AUC {m['auc change']:+.4f} vs the last blessed model"
            if "auc change" in m
            else "no earlier blessed model to compare with"
        )
        verdict = "BLESSED" if summary.blessed else "NOT BLESSED"
        lines.append(
            f"Model:      {verdict} by Evaluator on {int(m.get('example_count', 0))} eval examples"
        )
        lines.append(f"            {scores}; {baseline}")
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
    if summary.predictions is not None:
        lines.append(
            f"Inference:  {summary.predictions} predictions -> {_relative(summary.predictions_uri)}"
        )
    location = config.metadata_location
    where = _relative(location.path) if location.is_sqlite else str(location)
    lines.append(f"Metadata:   {where} (ML Metadata, {location.engine})")
    lines.append(f"Outputs:    {_relative(config.pipeline_root)}")
    lines.append(f"Full log:   {_relative(log_path)}")
    return "\n".join(lines)

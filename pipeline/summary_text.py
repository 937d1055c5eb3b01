"""The short text a run ends with: what happened and where the outputs are."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from pipeline.config import PipelineConfig
from pipeline.run_summary import RunSummary


def _relative(path: str | Path) -> str:
    try:
        return str(Path(path).resolve().relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def format_summary(
    summary: RunSummary, config: PipelineConfig, log_path: Path, elapsed: float
) -> str:
    states = Counter(node.state for node in summary.executions)
    state_text = ", ".join(f"{n} {state}" for state, n in sorted(states.items()))
    lines = [f"Run {summary.run_id} finished in {elapsed:.1f} s ({state_text})."]

    if summary.blessed is None:
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
        lines.append(
            f"Pushed:     version {summary.pushed_version} -> {_relative(summary.pushed_path)}"
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
    lines.append(f"Metadata:   {_relative(config.metadata_path)} (ML Metadata, SQLite)")
    lines.append(f"Outputs:    {_relative(config.pipeline_root)}")
    lines.append(f"Full log:   {_relative(log_path)}")
    return "\n".join(lines)

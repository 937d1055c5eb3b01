"""One self-contained HTML file per run: no scripts, no network, inline CSS and SVG only.

What the report shows comes from the metadata readers (the same data `inspect --json` prints);
how it looks is `templates/report.html.j2`, rendered by jinja2 with autoescaping on.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jinja2

from cli.summary_text import linear_line
from components.span_example_gen import spans
from metadata import artifact_readers, artifacts
from metadata.run_summary import task_of_run
from metadata.runs import find_run
from metadata.store import StoreIndex
from pipeline import node_ids

TEMPLATES = Path(__file__).resolve().parent / "templates"
TEMPLATE_ENVIRONMENT = jinja2.Environment(
    loader=jinja2.FileSystemLoader(TEMPLATES),
    autoescape=jinja2.select_autoescape(default=True, default_for_string=True),
    undefined=jinja2.StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)

# The run outputs the report reads, by '<node>.<artifact type>'.
_SECTIONS = {
    "evaluation": f"{node_ids.EVALUATOR}.ModelEvaluation",
    "model_blessing": f"{node_ids.EVALUATOR}.ModelBlessing",
    "infra_blessing": f"{node_ids.INFRA_VALIDATOR}.InfraBlessing",
    "pushed": f"{node_ids.PUSHER}.PushedModel",
    "schema": f"{node_ids.CURATED_SCHEMA}.Schema",
    "inference": f"{node_ids.BULK_INFERRER}.InferenceResult",
    "statistics": f"{node_ids.STATISTICS_GEN}.ExampleStatistics",
    "schema_anomalies": f"{node_ids.EXAMPLE_VALIDATOR}.ExampleAnomalies",
    "drift_anomalies": f"{node_ids.DRIFT_VALIDATOR}.ExampleAnomalies",
    "skew_anomalies": f"{node_ids.SKEW_VALIDATOR}.ExampleAnomalies",
}
_STATE_COLORS = {
    "executed": "#5b8def",
    "cached": "#9aa3b2",
    "failed": "#d9534f",
    "canceled": "#e39b3b",
    "interrupted": "#e39b3b",
}


def number(value: Any, digits: int = 4) -> str:
    """Counts as integers, other floats to `digits` decimals, anything else as text."""
    if isinstance(value, float) and value.is_integer() and abs(value) >= 1:
        return f"{value:.0f}"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return "" if value is None else str(value)


def histogram_bars(counts: list[float], width: int, height: int) -> list[dict[str, float]]:
    """SVG bar geometry (x, y, width, height) for counts scaled to the tallest."""
    if not counts:
        return []
    peak = max(counts) or 1
    bar = width / len(counts)
    return [
        {
            "x": i * bar,
            "y": height - count / peak * (height - 2),
            "width": max(bar - 1, 1),
            "height": count / peak * (height - 2),
        }
        for i, count in enumerate(counts)
    ]


def timeline_rows(run: dict[str, Any], label_width: int, chart_width: int) -> list[dict]:
    """Each component as a bar from its start to its end, on one scale for the whole run."""
    components = run["components"]
    total = max((c["offset_seconds"] + c["seconds"] for c in components), default=1) or 1
    rows = []
    for i, c in enumerate(components):
        x = label_width + c["offset_seconds"] / total * chart_width
        width = max(c["seconds"] / total * chart_width, 2)
        rows.append(
            {
                **c,
                "y": i * 22,
                "x": x,
                "width": width,
                "color": _STATE_COLORS.get(c["state"], "#c1c7d2"),
                "label_x": min(x + width + 6, label_width + chart_width + 10),
            }
        )
    return rows


# TFMA metric key -> the MetricConfig class name its threshold is under in the eval config.
_THRESHOLD_CLASS_NAMES = {
    "auc": "AUC",
    "binary_accuracy": "BinaryAccuracy",
    "precision": "Precision",
    "recall": "Recall",
    "sparse_categorical_accuracy": "SparseCategoricalAccuracy",
    "mean_squared_error": "MeanSquaredError",
    "mean_absolute_error": "MeanAbsoluteError",
    "root_mean_squared_error": "RootMeanSquaredError",
}


def thresholds_text(evaluation: dict[str, Any]) -> dict[str, str]:
    """Metric name -> its thresholds in words, e.g. {'auc': '≥ 0.7 · change ≥ -0.01'}."""
    result = {}
    for name, class_name in _THRESHOLD_CLASS_NAMES.items():
        threshold = evaluation["thresholds"].get(class_name)
        if threshold is None:
            continue
        value = threshold.get("valueThreshold", {})
        change = threshold.get("changeThreshold", {})
        lower, upper = value.get("lowerBound"), value.get("upperBound")
        parts = [
            f"≥ {lower}" if lower is not None else "",
            f"≤ {upper}" if upper is not None else "",
        ]
        bound = "≤" if change.get("direction") == "LOWER_IS_BETTER" else "≥"
        if change.get("absolute") is not None:
            parts.append(f"change {bound} {change['absolute']}")
        if change.get("relative") is not None:
            parts.append(f"relative change {bound} {change['relative']}")
        result[name] = " · ".join(p for p in parts if p)
    return result


# Per task, the per-slice table's columns: (metric key, heading).
SLICE_COLUMNS: dict[str, tuple[tuple[str, str], ...]] = {
    "binary": (
        ("example_count", "examples"),
        ("auc", "AUC"),
        ("binary_accuracy", "accuracy"),
        ("precision", "precision"),
        ("recall", "recall"),
    ),
    "multiclass": (("example_count", "examples"), ("sparse_categorical_accuracy", "accuracy")),
    "regression": (
        ("example_count", "examples"),
        ("root_mean_squared_error", "RMSE"),
        ("mean_absolute_error", "MAE"),
        ("mean_squared_error", "MSE"),
        ("mean_label", "mean label"),
        ("mean_prediction", "mean prediction"),
    ),
}


def trivial_text(trivial: dict[str, Any]) -> dict[str, str]:
    """The trivial-predictor check in words, for the report's sentence."""
    metric = artifact_readers.TRIVIAL_METRIC_LABELS.get(trivial["metric"], trivial["metric"])
    candidate = trivial.get("candidate_value")
    return {
        "predictor": trivial["trivial_predictor"],
        "metric": metric,
        "trivial": f"{trivial['trivial_value']:.4f}",
        "bound": "≤" if trivial["metric"] == "rmse" else "≥",
        "required": f"{trivial['required']:.4f}",
        "candidate": "not computed" if candidate is None else f"{candidate:.4f}",
    }


def render(index: StoreIndex, run: dict[str, Any]) -> str:
    """The report of one run (as `metadata.runs.describe_run` gives it) as an HTML document."""
    outputs = artifacts.run_outputs(index, run["run_id"])
    sections = {
        name: artifacts.output_contents(index, outputs, key) for name, key in _SECTIONS.items()
    }
    examples = outputs.get(f"{node_ids.LABELED_EXAMPLE_GEN}.Examples")
    if examples and not examples["properties"].get(spans.spans_property(spans.PREVIOUS)):
        # A first span has nothing to drift from: TFDV's "comparison could not be done" is noise.
        sections["drift_anomalies"] = None
    task_info = task_of_run(index, run["run_id"])
    evaluation = sections["evaluation"]
    if evaluation and "error" not in evaluation and task_info.class_names:
        # Read again with the class names of the run's profile (the files only have ids).
        uri = outputs[_SECTIONS["evaluation"]]["uri"]
        sections["evaluation"] = evaluation = artifact_readers.evaluation(
            uri, task_info.class_names
        )
    task = (evaluation or {}).get("task") or task_info.task or "binary"
    gate_state = next(
        (c["state"] for c in run["components"] if c["node_id"] == node_ids.DATA_GATE), None
    )
    statistics = sections["statistics"]
    statistics_split = None
    if statistics and statistics.get("splits"):
        splits = statistics["splits"]
        statistics_split = "train" if "train" in splits else next(iter(splits))
    trivial = (evaluation or {}).get("trivial_baseline")
    template = TEMPLATE_ENVIRONMENT.get_template("report.html.j2")
    return template.render(
        run=run,
        task=task,
        timeline=timeline_rows(run, label_width=210, chart_width=760),
        gate_passed=None if gate_state is None else gate_state != "failed",
        statistics_split=statistics_split,
        thresholds=thresholds_text(evaluation) if evaluation else {},
        slice_columns=SLICE_COLUMNS.get(task, SLICE_COLUMNS["binary"]),
        trivial=trivial_text(trivial) if trivial else None,
        linear=(evaluation or {}).get("linear_baseline"),
        linear_line=linear_line,
        trivial_passed=bool(trivial and trivial.get("passed")),
        number=number,
        histogram_bars=histogram_bars,
        **sections,
    )


def _report_folder(index: StoreIndex, run: dict) -> Path:
    if index.location.is_sqlite:
        return index.location.path.parent
    output_dir = Path(run["output_dir"]) if run.get("output_dir") else None
    return output_dir if output_dir and output_dir.is_dir() else Path.cwd()


def write_report(index: StoreIndex, run_ref: str, output: Path | None) -> Path:
    """Writes the report; by default to `<folder>/reports/run-<id>.html`, the folder being the
    SQLite store's, or, on a database server, the run's output directory when this machine has
    it (else the current directory)."""
    run = find_run(index, run_ref)
    if output is None:
        safe = run["run_id"].replace(":", "-")
        output = _report_folder(index, run) / "reports" / f"run-{safe}.html"
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(render(index, run), encoding="utf-8")
    return output

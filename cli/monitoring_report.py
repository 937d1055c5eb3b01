"""The monitoring report: one self-contained HTML file per `monitor` check (no scripts, no network,
inline CSS and SVG), beside the check's summary. It shows the findings, per feature the window's
distribution against the training data's on the same bins, the model's answers against its answers
on the eval split, and live quality over the checks recorded so far.

What it shows is `monitor`'s result (the same data `monitor --json` prints) and earlier checks from
ML Metadata; how it looks is `templates/monitoring.html.j2`.
"""

from __future__ import annotations

import os
from typing import Any

from cli.report import TEMPLATE_ENVIRONMENT, number

REPORT_FILE = "report.html"
TRAINING_COLOR, LIVE_COLOR = "#9aa3b2", "#5b8def"


def paired_bars(
    training: list[float], live: list[float], width: int, height: int
) -> list[dict[str, Any]]:
    """SVG geometry of two bars per bin (training, then live), scaled to the tallest share."""
    peak = max([*training, *live, 1e-9])
    slot = width / max(len(training), 1)
    bar = max(slot / 2 - 1, 1)
    rects = []
    for i, (a, b) in enumerate(zip(training, live, strict=True)):
        for offset, share, color in ((0, a, TRAINING_COLOR), (bar, b, LIVE_COLOR)):
            h = share / peak * (height - 2)
            rects.append(
                {"x": i * slot + offset, "y": height - h, "width": bar, "height": h, "color": color}
            )
    return rects


def quality_points(history: list[dict[str, Any]], width: int, height: int) -> dict[str, Any] | None:
    """Live quality of the headline metric across checks, oldest first, as an SVG polyline with
    the Evaluator's figure as a reference line."""
    points = [h for h in history if h.get("value") is not None]
    if not points:
        return None
    values = [p["value"] for p in points] + [p["evaluator"] for p in points if p["evaluator"]]
    low, high = min(values), max(values)
    span = (high - low) or 1.0
    low, high = low - span * 0.1, high + span * 0.1
    step = width / max(len(points) - 1, 1)

    def y(value: float) -> float:
        return height - (value - low) / (high - low) * height

    evaluator = next((p["evaluator"] for p in reversed(points) if p["evaluator"]), None)
    return {
        "line": " ".join(f"{i * step:.1f},{y(p['value']):.1f}" for i, p in enumerate(points)),
        "dots": [
            {"x": i * step, "y": y(p["value"]), "label": f"{p['value']:.3f}", **p}
            for i, p in enumerate(points)
        ],
        "evaluator_y": None if evaluator is None else y(evaluator),
        "evaluator": evaluator,
        "headline": points[-1]["headline"],
    }


def quality_history(checks: list[dict[str, Any]], model: str) -> list[dict[str, Any]]:
    """The headline live-quality figure of each recorded check of `model`, oldest first."""
    history = []
    for check in reversed(checks):
        if check["model"] != model:
            continue
        for version, quality in sorted((check.get("quality") or {}).items()):
            history.append(
                {
                    "checked_at": check["checked_at"],
                    "until": check["window"][1],
                    "version": version,
                    **quality,
                }
            )
    return history


def render(result: dict[str, Any], history: list[dict[str, Any]]) -> str:
    template = TEMPLATE_ENVIRONMENT.get_template("monitoring.html.j2")
    return template.render(
        result=result,
        quality=quality_points(history, 600, 120),
        history=history,
        paired_bars=paired_bars,
        number=number,
        training_color=TRAINING_COLOR,
        live_color=LIVE_COLOR,
    )


def write(result: dict[str, Any], history: list[dict[str, Any]]) -> str:
    """Writes the report into the check's folder; its path."""
    path = os.path.join(result["checks_folder"], REPORT_FILE)
    with open(path, "w", encoding="utf-8") as f:
        f.write(render(result, history))
    return path

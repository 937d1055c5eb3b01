"""One self-contained HTML file per run: no scripts, no network, inline CSS and SVG only."""

from __future__ import annotations

import html
from pathlib import Path
from typing import Any

from pipeline import artifact_details
from pipeline.explorer import Explorer

_CSS = """
body{font:14px/1.45 system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:0;color:#1d2430;background:#f5f6f8}
main{max-width:1180px;margin:0 auto;padding:20px 24px 48px}
h1{font-size:22px;margin:0 0 4px}h2{font-size:17px;margin:28px 0 10px;border-bottom:1px solid #d8dce3;padding-bottom:4px}
.muted{color:#6a7280}.card{background:#fff;border:1px solid #dde1e7;border-radius:8px;padding:12px 16px;margin:10px 0}
.grid{display:grid;grid-template-columns:repeat(auto-fit,minmax(260px,1fr));gap:12px}
.badge{display:inline-block;padding:2px 10px;border-radius:12px;font-weight:600;font-size:13px}
.ok{background:#dcf5e3;color:#14632f}.bad{background:#fde2e1;color:#8a1c17}.na{background:#eceef2;color:#4a5160}
table{border-collapse:collapse;width:100%;font-size:13px}th,td{text-align:left;padding:4px 8px;border-bottom:1px solid #eef0f3;vertical-align:top}
th{color:#4a5160;font-weight:600;background:#fafbfc}td.num{text-align:right;font-variant-numeric:tabular-nums}
svg text{font:11px system-ui,sans-serif;fill:#4a5160}.scroll{overflow-x:auto}
"""


def _e(value: Any) -> str:
    return html.escape(str(value))


def _num(value: Any, digits: int = 4) -> str:
    if isinstance(value, float) and value.is_integer() and abs(value) >= 1:
        return f"{value:.0f}"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return _e(value)


def _badge(blessed: bool | None, yes: str = "BLESSED", no: str = "NOT BLESSED") -> str:
    if blessed is None:
        return '<span class="badge na">not run</span>'
    return f'<span class="badge {"ok" if blessed else "bad"}">{yes if blessed else no}</span>'


def _histogram(buckets: list[dict], width: int = 160, height: int = 36) -> str:
    if not buckets:
        return ""
    peak = max(b["count"] for b in buckets) or 1
    bar = width / len(buckets)
    rects = "".join(
        f'<rect x="{i * bar:.1f}" y="{height - h:.1f}" width="{max(bar - 1, 1):.1f}" height="{h:.1f}" fill="#5b8def"/>'
        for i, b in enumerate(buckets)
        for h in [b["count"] / peak * (height - 2)]
    )
    return f'<svg width="{width}" height="{height}" role="img" aria-label="histogram">{rects}</svg>'


def _timeline(run: dict) -> str:
    components = run["components"]
    total = max((c["offset_seconds"] + c["seconds"] for c in components), default=1) or 1
    row, label_w, chart_w = 22, 210, 760
    parts = []
    for i, c in enumerate(components):
        y = i * row
        x = label_w + c["offset_seconds"] / total * chart_w
        w = max(c["seconds"] / total * chart_w, 2)
        color = {
            "executed": "#5b8def",
            "cached": "#9aa3b2",
            "resolved": "#c1c7d2",
            "failed": "#d9534f",
        }.get(c["state"], "#c1c7d2")
        parts.append(
            f'<text x="0" y="{y + 15}">{_e(c["node_id"])}</text>'
            f'<rect x="{x:.1f}" y="{y + 4}" width="{w:.1f}" height="14" rx="2" fill="{color}"/>'
            f'<text x="{min(x + w + 6, label_w + chart_w + 10):.1f}" y="{y + 15}">{_e(c["state"])} {c["seconds"]:.1f} s</text>'
        )
    height = row * len(components) + 4
    return f'<div class="scroll"><svg width="{label_w + chart_w + 110}" height="{height}" role="img" aria-label="timeline">{"".join(parts)}</svg></div>'


def _section_statistics(stats: dict | None) -> str:
    if not stats or "splits" not in stats:
        return '<p class="muted">No statistics in this run.</p>'
    split = "train" if "train" in stats["splits"] else next(iter(stats["splits"]))
    data = stats["splits"][split]
    rows = []
    for name, f in sorted(data["features"].items()):
        if "mean" in f:
            summary = f"mean {f['mean']:.4g} · std {f['std']:.4g} · min {f['min']:.4g} · max {f['max']:.4g}"
            chart = _histogram(f.get("histogram", []))
        else:
            summary = " · ".join(
                f"{_e(t['value'])} ({t['count']:.0f})" for t in f.get("top_values", [])
            )
            chart = _histogram([{"count": t["count"]} for t in f.get("top_values", [])])
        rows.append(
            f"<tr><td>{_e(name)}</td><td>{_e(f['type'])}</td><td class='num'>{f['count']}</td>"
            f"<td class='num'>{f['missing']}</td><td>{summary}</td><td>{chart}</td></tr>"
        )
    return (
        f"<p class='muted'>Split <b>{_e(split)}</b>: {data['examples']} examples.</p>"
        "<div class='scroll'><table><tr><th>feature</th><th>type</th><th>count</th><th>missing</th>"
        f"<th>summary</th><th>distribution</th></tr>{''.join(rows)}</table></div>"
    )


def _section_evaluation(ev: dict | None) -> str:
    if not ev or "overall" not in ev:
        return '<p class="muted">No evaluation in this run.</p>'
    thresholds = {
        "auc": ev["thresholds"].get("AUC"),
        "binary_accuracy": ev["thresholds"].get("BinaryAccuracy"),
    }
    rows = []
    for name, value in sorted(ev["overall"].items()):
        threshold = thresholds.get(name)
        text = ""
        if threshold:
            lower = threshold.get("valueThreshold", {}).get("lowerBound")
            change = threshold.get("changeThreshold", {}).get("absolute")
            text = " · ".join(
                t
                for t in (
                    f"≥ {lower}" if lower is not None else "",
                    f"change ≥ {change}" if change is not None else "",
                )
                if t
            )
        diff = ev["baseline_diff"].get(name)
        rows.append(
            f"<tr><td>{_e(name)}</td><td class='num'>{_num(value)}</td><td>{_e(text)}</td>"
            f"<td class='num'>{'' if diff is None else f'{diff:+.4f}'}</td></tr>"
        )
    baseline = (
        ""
        if ev["baseline_diff"]
        else "<p class='muted'>No baseline: no earlier blessed model to compare with.</p>"
    )
    slice_rows = "".join(
        f"<tr><td>{_e(name)}</td>"
        + "".join(
            f"<td class='num'>{_num(m.get(k), 3)}</td>"
            for k in ("example_count", "auc", "binary_accuracy", "precision", "recall")
        )
        + "</tr>"
        for name, m in ev["slices"].items()
    )
    return (
        "<table><tr><th>metric (overall)</th><th>value</th><th>threshold</th><th>vs baseline</th></tr>"
        f"{''.join(rows)}</table>{baseline}"
        "<h3>Per slice</h3><div class='scroll'><table><tr><th>slice</th><th>examples</th><th>AUC</th>"
        f"<th>accuracy</th><th>precision</th><th>recall</th></tr>{slice_rows}</table></div>"
    )


def _section_anomalies(title: str, anomalies: dict | None, empty: str) -> str:
    if anomalies is None:
        return f"<h3>{_e(title)}</h3><p class='muted'>Not checked in this run.</p>"
    rows = "".join(
        f"<tr><td>{_e(split)}</td><td>{_e(a['feature'])}</td><td>{_e(a['kind'])}</td>"
        f"<td>{_e(a['description'])}</td></tr>"
        for split, items in anomalies.get("splits", {}).items()
        for a in items
    )
    table = (
        "<table><tr><th>split</th><th>feature</th><th>kind</th><th>description</th></tr>"
        f"{rows}</table>"
        if rows
        else f"<p>{_e(empty)}</p>"
    )
    return f"<h3>{_e(title)}</h3>{table}"


def render(explorer: Explorer, run_ref: str) -> str:
    run = explorer.run(run_ref)
    outputs = explorer.run_outputs(run["run_id"])

    def details(key: str) -> dict | None:
        info = outputs.get(key)
        return (
            artifact_details.details(info["type"], info["uri"], info["properties"], explorer)
            if info
            else None
        )

    evaluation = details("Evaluator.ModelEvaluation")
    model_blessing = details("Evaluator.ModelBlessing")
    infra = details("InfraValidator.InfraBlessing")
    pushed = details("Pusher.PushedModel")
    schema = details("CuratedSchemaImporter.Schema")
    inference = details("BulkInferrer.InferenceResult")
    stats = details("StatisticsGen.ExampleStatistics")

    reasons = "".join(f"<li>{_e(r)}</li>" for r in (model_blessing or {}).get("reasons", []))
    pushed_text = (
        f"version <b>{_e(pushed['version'])}</b><br><span class='muted'>{_e(pushed['destination'])}</span>"
        if pushed and pushed.get("pushed")
        else "nothing pushed"
    )
    gate_state = next((c["state"] for c in run["components"] if c["node_id"] == "DataGate"), None)
    gate_badge = _badge(
        None if gate_state is None else gate_state != "failed", yes="PASSED", no="REFUSED"
    )
    data_checks_html = "".join(
        _section_anomalies(title, details(key), empty)
        for title, key, empty in (
            (
                "Schema (ExampleValidator, curated schema)",
                "ExampleValidator.ExampleAnomalies",
                "No anomaly against the curated schema.",
            ),
            (
                "Drift (new span vs previous span)",
                "DriftValidator.ExampleAnomalies",
                "No drift past a threshold.",
            ),
            (
                "Skew (batch to score vs training data; reported, not gated)",
                "SkewValidator.ExampleAnomalies",
                "No skew past a threshold.",
            ),
        )
    )
    schema_rows = "".join(
        f"<tr><td>{_e(f['name'])}</td><td>{_e(f['type'])}</td><td>{'required' if f['required'] else 'optional'}</td>"
        f"<td>{_e(', '.join(f['domain']) if isinstance(f.get('domain'), list) else f.get('domain', ''))}</td><td>{_e(', '.join(f.get('not_in_environment', [])))}</td></tr>"
        for f in (schema or {}).get("features", [])
    )
    inference_html = '<p class="muted">No batch inference in this run.</p>'
    if inference and "predictions" in inference:
        inference_html = (
            f"<p><b>{inference['predictions']}</b> predictions · mean probability "
            f"{inference.get('mean_prediction', float('nan')):.3f}</p>{_histogram(inference.get('histogram', []), 300, 60)}"
            "<p class='muted'>Distribution of predicted probabilities, 0 to 1 in tenths.</p>"
        )

    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>Run {_e(run["run_id"])} · {_e(run["pipeline"])}</title><style>{_CSS}</style></head>
<body><main>
<h1>{_e(run["pipeline"])} · run {_e(run["run_id"])}</h1>
<p class="muted">Started {_e(run["started"])} · {run["wall_seconds"]:.1f} s from first start to last update · {_e(run["state"])}</p>
<div class="grid">
<div class="card"><b>Evaluator</b> {_badge(None if model_blessing is None else model_blessing.get("blessed"))}<ul>{reasons}</ul></div>
<div class="card"><b>InfraValidator</b> {_badge(None if infra is None else infra.get("blessed"))}<p>{_e((infra or {}).get("reason", ""))}</p></div>
<div class="card"><b>Pushed</b><p>{pushed_text}</p></div>
</div>
<h2>Timeline</h2>{_timeline(run)}
<h2>Evaluation</h2>{_section_evaluation(evaluation)}
<h2>Data statistics</h2>{_section_statistics(stats)}
<h2>Data checks</h2><p><b>Data gate</b> {gate_badge}</p>{data_checks_html}
<h2>Curated schema</h2><div class="scroll"><table><tr><th>feature</th><th>type</th><th>presence</th><th>domain</th><th>not in</th></tr>{schema_rows}</table></div>
<h2>Batch inference</h2>{inference_html}
</main></body></html>
"""


def write_report(
    explorer: Explorer, run_ref: str, output: Path | None, metadata_path: Path
) -> Path:
    run = explorer.run(run_ref)
    if output is None:
        safe = run["run_id"].replace(":", "-")
        output = Path(metadata_path).parent / "reports" / f"run-{safe}.html"
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(render(explorer, run["run_id"]), encoding="utf-8")
    return output

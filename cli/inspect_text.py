"""`inspect ...` as text for people; `--json` prints the same data as JSON instead.

Each function takes what the metadata readers return (plain data) and words it; the artifact
readers in metadata/artifact_readers.py decide what each type holds, this module how it reads.
"""

from __future__ import annotations

import textwrap
from collections.abc import Callable
from typing import Any

from tabulate import tabulate

from cli.summary_text import confusion_matrix_lines, linear_line, trivial_line
from metadata import artifact_readers

# Artifact properties worth a glance in the artifacts table.
_KEY_PROPERTIES = (
    "split_names",
    "blessed",
    "pushed",
    "pushed_version",
    "span",
    "spans_latest",
    "spans_previous",
    "reason",
    "beats_trivial_predictor",
)


def number(value: Any) -> str:
    """Counts as integers, other floats to four decimals."""
    if isinstance(value, float):
        return f"{value:.0f}" if value.is_integer() and abs(value) >= 1 else f"{value:.4f}"
    return str(value)


def _indent(text: str, spaces: int) -> str:
    return textwrap.indent(text, " " * spaces)


def runs_text(runs: list[dict]) -> str:
    blocks = []
    for position, run in enumerate(runs, 1):
        header = (
            f"#{position}  run {run['run_id']}  started {run['started']}  "
            f"{run['wall_seconds']:.1f} s  {run['state']}"
        )
        if run.get("host"):  # who ran it, where: runs from many machines may share a store
            header += f"  by {run['user']}@{run['host']} in {run['output_dir']}"
        rows = [
            [c["node_id"], c["state"], f"{c['seconds']:.1f} s", f"execution {c['execution_id']}"]
            for c in run["components"]
        ]
        lines = [header, _indent(tabulate(rows, tablefmt="plain", disable_numparse=True), 6)]
        for c in run["components"]:
            if c.get("error"):
                lines.append(f"      {c['node_id']} {c['state']}:")
                lines.append(_indent(c["error"], 10))
        blocks.append("\n".join(lines))
    return "\n".join(blocks)


def artifacts_text(artifacts: list[dict]) -> str:
    rows = []
    for a in artifacts:
        props = ", ".join(
            f"{k}={a['properties'][k]}" for k in _KEY_PROPERTIES if k in a["properties"]
        )
        rows.append([a["id"], a["type"], a["state"], a["producer"] or "-", a["uri"], props[:200]])
    return tabulate(
        rows,
        headers=["id", "type", "state", "producer", "uri", "key properties"],
        tablefmt="simple",
        disable_numparse=True,
    )


# ---- `inspect show`: one renderer per artifact type --------------------------------------------
def _statistics(d: dict) -> list[str]:
    lines = []
    for split, s in d["splits"].items():
        lines.append(f"split {split}: {s['examples']} examples")
        rows = []
        for name, f in sorted(s["features"].items()):
            if "mean" in f:
                summary = (
                    f"mean {f['mean']:.4g}  std {f['std']:.4g}  min {f['min']:.4g}  "
                    f"max {f['max']:.4g}"
                )
            else:
                summary = "top " + ", ".join(
                    f"{t['value']} ({t['count']:.0f})" for t in f.get("top_values", [])
                )
            rows.append([name, f["type"], f["count"], f["missing"], summary])
        table = tabulate(
            rows, headers=["feature", "type", "count", "missing", "summary"], tablefmt="simple"
        )
        lines.append(_indent(table, 2))
    return lines


def _schema(d: dict) -> list[str]:
    rows = [
        [
            f["name"],
            f["type"],
            "required" if f["required"] else "optional",
            ", ".join(f["domain"]) if isinstance(f.get("domain"), list) else f.get("domain", ""),
            ",".join(f.get("not_in_environment", [])),
        ]
        for f in d["features"]
    ]
    return [tabulate(rows, headers=["feature", "type", "presence", "domain", "not in"])]


def _anomalies(d: dict) -> list[str]:
    lines = [f"{d['count']} anomalies"]
    for split, items in d["splits"].items():
        lines += [f"  [{split}] {a['feature']}: {a['kind']}: {a['description']}" for a in items]
    return lines


def _evaluation(d: dict) -> list[str]:
    task = d.get("task")
    lines = [f"task: {task}"] if task else []
    lines.append(
        "overall: " + ", ".join(f"{k} {number(v)}" for k, v in sorted(d["overall"].items()))
    )
    if d.get("per_class"):
        rows = [
            [name, *(f"{m[k]:.4f}" if k in m else "" for k in ("precision", "recall"))]
            for name, m in d["per_class"].items()
        ]
        table = tabulate(rows, headers=["class", "precision", "recall"], disable_numparse=True)
        lines += ["per class (that class vs the rest, at probability 0.5):", _indent(table, 2)]
    matrix = d.get("confusion_matrix")
    if matrix:
        lines.append(
            f"confusion matrix ({number(matrix['total'])} examples; rows: actual class, "
            "columns: predicted class):"
        )
        lines.append(_indent("\n".join(confusion_matrix_lines(matrix)), 2))
    lines += [f"threshold {name}: {t}" for name, t in d["thresholds"].items()]
    if d["baseline_diff"]:
        diffs = ", ".join(f"{k} {v:+.4f}" for k, v in sorted(d["baseline_diff"].items()))
        lines.append(f"vs baseline: {diffs}")
    else:
        lines.append("vs baseline: no baseline (no earlier blessed model)")
    trivial = d.get("trivial_baseline")
    if trivial:
        lines.append(trivial_line(trivial, with_candidate=True))
    linear = d.get("linear_baseline")
    if linear:
        lines.append(linear_line(linear))
        if linear.get("linear_value") is not None:
            lines.append(
                f"  fitted on {number(linear['train_rows'])} training rows, scored on "
                f"{number(linear['eval_rows'])} eval rows: {linear['linear_model']}"
            )
    lines.append(f"validation {'passed' if d['validation_ok'] else 'FAILED'}")
    lines += [f"  - {reason}" for reason in d["failures"]]
    columns = artifact_readers.SLICE_METRICS.get(task or "binary", ())
    rows = [
        [name, *(number(m[k]) if k in m else "" for k in columns)]
        for name, m in d["slices"].items()
    ]
    if rows:
        lines.append(_indent(tabulate(rows, headers=["slice", *columns], disable_numparse=True), 2))
    return lines


def _blessing(d: dict) -> list[str]:
    lines = [f"verdict: {'BLESSED' if d.get('blessed') else 'NOT BLESSED'}"]
    if "beats_trivial_predictor" in d:
        beats = "yes" if d["beats_trivial_predictor"] else "NO"
        lines.append(f"beats the trivial predictor by the margin: {beats}")
    if "within_linear_baseline" in d:
        within = "yes" if d["within_linear_baseline"] else "NO"
        lines.append(f"within blessing.vs_linear_baseline of the linear baseline: {within}")
    reasons = d.get("reasons") or [d.get("reason")]
    return lines + [f"reason: {reason}" for reason in reasons if reason]


def _model(d: dict) -> list[str]:
    lines = [f"SavedModel {d['saved_model']}"]
    for name, sig in d["signatures"].items():
        lines.append(f"  signature {name}: inputs {sig['inputs']} -> outputs {sig['outputs']}")
    return lines


def _pushed_model(d: dict) -> list[str]:
    return [f"pushed {d['pushed']}, version {d['version']} at {d['destination']}"]


def _inference_result(d: dict) -> list[str]:
    mean = d.get("mean_prediction", float("nan"))
    return [f"{d['predictions']} predictions, mean {mean:.4f}"] + [
        f"  sample {s}" for s in d["sample"]
    ]


def _hyperparameters(d: dict) -> list[str]:
    return [", ".join(f"{k}={v}" for k, v in d["values"].items())]


_SHOW: dict[str, Callable[[dict], list[str]]] = {
    "ExampleStatistics": _statistics,
    "Schema": _schema,
    "ExampleAnomalies": _anomalies,
    "ModelEvaluation": _evaluation,
    "ModelBlessing": _blessing,
    "InfraBlessing": _blessing,
    "Model": _model,
    "PushedModel": _pushed_model,
    "InferenceResult": _inference_result,
    "HyperParameters": _hyperparameters,
}


def show_text(info: dict) -> str:
    lines = [
        f"Artifact {info['id']}: {info['type']} ({info['state']})",
        f"  produced by {info['producer']} (execution {info['execution_id']}) in run "
        f"{info['run_id']}",
        f"  uri {info['uri']}",
    ]
    details = info.get("details") or {}
    if "error" in details:
        lines.append(f"  {details['error']}")
    elif details:
        render = _SHOW.get(info["type"], lambda d: [str(d)])
        lines.append(_indent("\n".join(render(details)), 2))
    props = {k: v for k, v in info["properties"].items() if k != "tfx_version"}
    if props:
        lines.append(f"  properties: {props}")
    return "\n".join(lines)


def lineage_text(tree: dict, depth: int = 0) -> str:
    pad = "    " * depth
    repeated = "  (see above)" if tree.get("repeated") else ""
    lines = [f"{pad}{tree['type']} #{tree['id']}  {tree['uri']}{repeated}"]
    produced = tree.get("produced_by")
    if produced:
        lines.append(
            f"{pad}  <- {produced['node_id']} (execution {produced['execution_id']}, "
            f"{produced['state']})"
        )
        lines += [
            f"{pad}       {key}: {str(value)[:160]}" for key, value in produced["sources"].items()
        ]
        lines += [lineage_text(child, depth + 1) for child in produced["inputs"]]
    return "\n".join(lines)


def diff_text(d: dict) -> str:
    lines = [f"run A {d['run_a']}  vs  run B {d['run_b']}"]
    environment = d.get("environment", {"available": False})
    if environment["available"]:
        changed = [x for x in environment["differences"] if not x["informational"]]
        notes = [x for x in environment["differences"] if x["informational"]]
        lines.append(
            f"environment: {len(changed)} difference(s)"
            + (f" ({len(notes)} informational)" if notes else "")
            + ("" if changed else ": same code, lock, versions, profile and settings")
        )
        lines += [
            f"    {x['text'].replace('recorded', 'A').replace(', now', ', B')}" for x in changed
        ]
        lines += [
            f"    note: {x['text'].replace('recorded', 'A').replace(', now', ', B')}" for x in notes
        ]
    else:
        lines.append("environment: not recorded for both runs")
    s = d["statistics"]
    if s["available"]:
        lines.append(
            f"statistics ({s['split']}): examples {s['examples']['a']} -> {s['examples']['b']}; "
            f"{len(s['changed_features'])} features changed"
        )
        for name, change in list(s["changed_features"].items())[:20]:
            changes = ", ".join(
                f"{k} {number(v['a'])} -> {number(v['b'])}" for k, v in change.items()
            )
            lines.append(f"    {name}: {changes}")
    sc = d["schema"]
    if sc["available"]:
        lines.append(
            f"schema: added {sc['added'] or 'none'}, removed {sc['removed'] or 'none'}, "
            f"changed {list(sc['changed']) or 'none'}"
        )
    for section in ("hyperparameters", "metrics"):
        part = d[section]
        if part["available"]:
            changed = ", ".join(
                f"{k} {number(v['a'])} -> {number(v['b'])}" for k, v in part["changed"].items()
            )
            lines.append(f"{section}: {changed or 'unchanged'}")
    lines += [f"{kind} blessing: {v['a']} -> {v['b']}" for kind, v in d["blessing"].items()]
    lines.append(f"artifacts shared by both runs (cached): {len(d['same_artifacts'])}")
    return "\n".join(lines)


def monitoring_text(checks: list[dict[str, Any]]) -> str:
    if not checks:
        return "No check of the served traffic is recorded. `monitor` makes one."
    blocks = []
    for check in checks:
        since, until = check["window"]
        versions = ", ".join(str(v) for v in check["versions"]) or "?"
        head = (
            f"#{check['execution_id']}  {check['checked_at']}  {check['model']} version "
            f"{versions}  {since} to {until}: {check['requests']} requests, {check['rows']} rows  "
            f"{(check['verdict'] or '?').upper()}"
        )
        blocks.append("\n".join([head, *(f"    {line}" for line in check["findings"])]))
    return "\n".join(blocks)

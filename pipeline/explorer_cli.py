"""`run_local.py inspect ...` and `run_local.py report ...`: read ML Metadata from the terminal."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from pipeline.config import PipelineConfig

DEFAULT_METADATA = PipelineConfig().metadata_path


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="run_local.py", description="Inspect what the pipeline did, from ML Metadata."
    )
    commands = parser.add_subparsers(dest="command", required=True)
    inspect = commands.add_parser("inspect", help="query runs, executions, artifacts and lineage")
    what = inspect.add_subparsers(dest="what", required=True)

    def add(name: str, help_text: str) -> argparse.ArgumentParser:
        sub = what.add_parser(name, help=help_text, description=help_text)
        sub.add_argument(
            "--metadata-path",
            type=Path,
            default=DEFAULT_METADATA,
            help="ML Metadata SQLite file (default: %(default)s)",
        )
        sub.add_argument("--json", action="store_true", help="print JSON instead of text")
        return sub

    add(
        "runs",
        "every pipeline run, newest first, with what each component did and how long it took",
    )
    artifacts = add("artifacts", "artifacts with id, type, state, URI and key properties")
    artifacts.add_argument("--run", help="run id, id prefix, or position (1 = newest)")
    artifacts.add_argument("--component", help="producing component, e.g. Trainer")
    artifacts.add_argument(
        "--type", dest="type_name", help="artifact type, e.g. Model, ExampleStatistics"
    )
    show = add(
        "show", "one artifact in human terms (statistics, schema, anomalies, evaluation, ...)"
    )
    show.add_argument("artifact_id", help="artifact id (see `inspect artifacts`)")
    lineage = add(
        "lineage",
        "the executions and artifacts an artifact came from, back to data, schema and code",
    )
    lineage.add_argument(
        "artifact_id", help="artifact id, or 'pushed-model' for the latest pushed model"
    )
    diff = add(
        "diff",
        "what changed between two runs: statistics, schema, hyperparameters, metrics, blessings",
    )
    diff.add_argument("run_a", help="run id, prefix or position (1 = newest)")
    diff.add_argument("run_b", help="run id, prefix or position")

    report = commands.add_parser(
        "report",
        help="write a self-contained HTML report of a run",
        description="Write one self-contained HTML file (no network) for a run.",
    )
    report.add_argument(
        "run", nargs="?", default="1", help="run id, prefix or position (default: 1, the newest)"
    )
    report.add_argument(
        "--metadata-path",
        type=Path,
        default=DEFAULT_METADATA,
        help="ML Metadata SQLite file (default: %(default)s)",
    )
    report.add_argument(
        "--output",
        type=Path,
        default=None,
        help="HTML file to write (default: <metadata folder>/reports/run-<id>.html)",
    )
    schema = commands.add_parser(
        "schema",
        help="compare the latest inferred schema with the curated one; accept a data change",
        description="Compare the schema inferred from the latest run's data with the curated "
        "schema (`diff`), or relax the curated schema to accept the latest data (`accept`).",
    )
    schema.add_argument("action", choices=("diff", "accept"))
    schema.add_argument(
        "--schema",
        type=Path,
        default=PipelineConfig().curated_schema_file,
        help="the curated schema file (default: %(default)s)",
    )
    schema.add_argument(
        "--metadata-path",
        type=Path,
        default=DEFAULT_METADATA,
        help="ML Metadata SQLite file (default: %(default)s)",
    )
    return parser


def _schema_command(args) -> int:
    from pipeline import schema_workflow as sw

    try:
        plan = sw.plan(args.metadata_path, PipelineConfig().pipeline_name, args.schema)
    except (sw.SchemaWorkflowError, FileNotFoundError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(sw.diff_text(plan) if args.action == "diff" else sw.accept(plan))
    return 0


def _quiet_libraries() -> None:
    """TensorFlow and Google client libraries log at import; this output is for people."""
    import logging
    import os
    import warnings

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    warnings.filterwarnings("ignore")
    logging.getLogger("absl").setLevel(logging.ERROR)
    logging.getLogger("tensorflow").setLevel(logging.ERROR)


def main(argv: list[str]) -> int:
    args = build_parser().parse_args(argv)
    _quiet_libraries()
    if args.command == "schema":
        return _schema_command(args)
    from pipeline import explorer as ex

    try:
        explorer = ex.Explorer(ex.open_store(args.metadata_path))
        if args.command == "report":
            from pipeline import report

            path = report.write_report(explorer, args.run, args.output, args.metadata_path)
            print(f"Report: {path}")
            return 0
        data = _query(explorer, args)
    except ex.NotFound as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(ex.to_json(data) if args.json else _text(args.what, data))
    return 0


def _artifact_id(value: str) -> int:
    if not value.isdigit():
        raise ValueError(
            f"artifact id must be a number, got {value!r}; `inspect artifacts` lists them"
        )
    return int(value)


def _query(explorer, args) -> Any:
    if args.what == "runs":
        return explorer.runs()
    if args.what == "artifacts":
        return explorer.artifacts(run=args.run, component=args.component, type_name=args.type_name)
    if args.what == "show":
        return explorer.show(_artifact_id(args.artifact_id))
    if args.what == "lineage":
        target = (
            explorer.latest_pushed_model()
            if args.artifact_id == "pushed-model"
            else _artifact_id(args.artifact_id)
        )
        tree = explorer.lineage(target)
        tree["edges"] = sorted(explorer.lineage_edges(tree))
        return tree
    return explorer.diff(args.run_a, args.run_b)


# ---- text output ----------------------------------------------------------------------------
def _text(what: str, data: Any) -> str:
    return {
        "runs": _runs_text,
        "artifacts": _artifacts_text,
        "show": _show_text,
        "lineage": _lineage_text,
        "diff": _diff_text,
    }[what](data)


def _runs_text(runs: list[dict]) -> str:
    lines = []
    for i, run in enumerate(runs, 1):
        lines.append(
            f"#{i}  run {run['run_id']}  started {run['started']}  {run['wall_seconds']:.1f} s  {run['state']}"
        )
        for c in run["components"]:
            lines.append(
                f"      {c['node_id']:<28} {c['state']:<9} {c['seconds']:7.1f} s   (execution {c['execution_id']})"
            )
            if c.get("error"):
                lines += [f"          {line}" for line in c["error"].splitlines()]
    return "\n".join(lines)


_KEY_PROPERTIES = (
    "split_names",
    "blessed",
    "pushed",
    "pushed_version",
    "span",
    "spans_latest",
    "spans_previous",
    "reason",
)


def _artifacts_text(artifacts: list[dict]) -> str:
    lines = [f"{'id':>5}  {'type':<18} {'state':<8} {'producer':<26} uri / key properties"]
    for a in artifacts:
        props = ", ".join(
            f"{k}={a['properties'][k]}" for k in _KEY_PROPERTIES if k in a["properties"]
        )
        lines.append(
            f"{a['id']:>5}  {a['type']:<18} {a['state']:<8} {a['producer'] or '-':<26} {a['uri']}"
        )
        if props:
            lines.append(f"{'':>5}  {'':<18} {'':<8} {'':<26} {props[:200]}")
    return "\n".join(lines)


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.0f}" if value.is_integer() and abs(value) >= 1 else f"{value:.4f}"
    return str(value)


def _show_text(info: dict) -> str:
    lines = [
        f"Artifact {info['id']}: {info['type']} ({info['state']})",
        f"  produced by {info['producer']} (execution {info['execution_id']}) in run {info['run_id']}",
        f"  uri {info['uri']}",
    ]
    d = info.get("details") or {}
    if "error" in d:
        lines.append(f"  {d['error']}")
    kind = info["type"]
    if kind == "ExampleStatistics":
        for split, s in d["splits"].items():
            lines.append(f"  split {split}: {s['examples']} examples")
            for name, f in sorted(s["features"].items()):
                if "mean" in f:
                    summary = f"mean {f['mean']:.4g}  std {f['std']:.4g}  min {f['min']:.4g}  max {f['max']:.4g}"
                else:
                    summary = "top " + ", ".join(
                        f"{t['value']} ({t['count']:.0f})" for t in f.get("top_values", [])
                    )
                lines.append(
                    f"    {name:<24} {f['type']:<7} count {f['count']:>6}  missing {f['missing']:>6}  {summary}"
                )
    elif kind == "Schema":
        for f in d["features"]:
            extra = f" domain {f['domain']}" if "domain" in f else ""
            env = (
                f" not in {','.join(f['not_in_environment'])}" if "not_in_environment" in f else ""
            )
            lines.append(
                f"    {f['name']:<24} {f['type']:<6} {'required' if f['required'] else 'optional'}{extra}{env}"
            )
    elif kind == "ExampleAnomalies":
        lines.append(f"  {d['count']} anomalies")
        for split, items in d["splits"].items():
            for a in items:
                lines.append(f"    [{split}] {a['feature']}: {a['kind']}: {a['description']}")
    elif kind == "ModelEvaluation":
        lines.append(
            "  overall: " + ", ".join(f"{k} {_fmt(v)}" for k, v in sorted(d["overall"].items()))
        )
        for name, t in d["thresholds"].items():
            lines.append(f"  threshold {name}: {t}")
        if d["baseline_diff"]:
            lines.append(
                "  vs baseline: "
                + ", ".join(f"{k} {v:+.4f}" for k, v in sorted(d["baseline_diff"].items()))
            )
        else:
            lines.append("  vs baseline: no baseline (no earlier blessed model)")
        lines.append(
            f"  validation {'passed' if d['validation_ok'] else 'FAILED'}"
            + "".join(f"\n    - {r}" for r in d["failures"])
        )
        for name, metrics in d["slices"].items():
            lines.append(
                f"    {name:<22} "
                + ", ".join(
                    f"{k} {_fmt(metrics[k])}"
                    for k in ("example_count", "auc", "binary_accuracy")
                    if k in metrics
                )
            )
    elif kind in ("ModelBlessing", "InfraBlessing"):
        lines.append(f"  verdict: {'BLESSED' if d.get('blessed') else 'NOT BLESSED'}")
        for reason in d.get("reasons", []) or [d.get("reason")]:
            if reason:
                lines.append(f"  reason: {reason}")
    elif kind == "Model":
        lines.append(f"  SavedModel {d['saved_model']}")
        for name, sig in d["signatures"].items():
            lines.append(
                f"    signature {name}: inputs {sig['inputs']} -> outputs {sig['outputs']}"
            )
    elif kind == "PushedModel":
        lines.append(f"  pushed {d['pushed']}, version {d['version']} at {d['destination']}")
    elif kind == "InferenceResult":
        lines.append(
            f"  {d['predictions']} predictions, mean {d.get('mean_prediction', float('nan')):.4f}"
        )
        for s in d["sample"]:
            lines.append(f"    sample {s}")
    elif kind == "HyperParameters":
        lines.append("  " + ", ".join(f"{k}={v}" for k, v in d["values"].items()))
    elif d:
        lines.append(f"  {d}")
    props = {k: v for k, v in info["properties"].items() if k not in ("tfx_version",)}
    if props:
        lines.append(f"  properties: {props}")
    return "\n".join(lines)


def _lineage_text(tree: dict, depth: int = 0) -> str:
    pad = "    " * depth
    lines = [
        f"{pad}{tree['type']} #{tree['id']}  {tree['uri']}"
        + ("  (see above)" if tree.get("repeated") else "")
    ]
    produced = tree.get("produced_by")
    if produced:
        lines.append(
            f"{pad}  <- {produced['node_id']} (execution {produced['execution_id']}, {produced['state']})"
        )
        for key, value in produced["sources"].items():
            lines.append(f"{pad}       {key}: {str(value)[:160]}")
        for child in produced["inputs"]:
            lines.append(_lineage_text(child, depth + 1))
    return "\n".join(lines)


def _diff_text(d: dict) -> str:
    lines = [f"run A {d['run_a']}  vs  run B {d['run_b']}"]
    s = d["statistics"]
    if s["available"]:
        lines.append(
            f"statistics ({s['split']}): examples {s['examples']['a']} -> {s['examples']['b']}; "
            f"{len(s['changed_features'])} features changed"
        )
        for name, change in list(s["changed_features"].items())[:20]:
            lines.append(
                f"    {name}: "
                + ", ".join(f"{k} {_fmt(v['a'])} -> {_fmt(v['b'])}" for k, v in change.items())
            )
    sc = d["schema"]
    if sc["available"]:
        lines.append(
            f"schema: added {sc['added'] or 'none'}, removed {sc['removed'] or 'none'}, changed {list(sc['changed']) or 'none'}"
        )
    for section in ("hyperparameters", "metrics"):
        part = d[section]
        if part["available"]:
            changed = ", ".join(
                f"{k} {_fmt(v['a'])} -> {_fmt(v['b'])}" for k, v in part["changed"].items()
            )
            lines.append(f"{section}: {changed or 'unchanged'}")
    for kind, v in d["blessing"].items():
        lines.append(f"{kind} blessing: {v['a']} -> {v['b']}")
    lines.append(f"artifacts shared by both runs (cached): {len(d['same_artifacts'])}")
    return "\n".join(lines)

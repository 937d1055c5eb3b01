"""Two runs compared: what they depended on (code, lock, versions, profile, settings, seeds),
statistics, curated schema, hyperparameters, metrics and blessings."""

from __future__ import annotations

from typing import Any

from metadata.artifacts import output_contents, run_outputs
from metadata.runs import find_run, recorded_environment, run_context
from metadata.store import StoreIndex
from pipeline import run_environment


def diff_runs(index: StoreIndex, run_a: str, run_b: str) -> dict[str, Any]:
    """What changed from run A to run B (each an id, prefix or position)."""
    a, b = find_run(index, run_a), find_run(index, run_b)
    out_a, out_b = run_outputs(index, a["run_id"]), run_outputs(index, b["run_id"])

    def both(key: str) -> tuple[dict | None, dict | None]:
        return output_contents(index, out_a, key), output_contents(index, out_b, key)

    hp_a, hp_b = both("Tuner.HyperParameters")
    ev_a, ev_b = both("Evaluator.ModelEvaluation")
    return {
        "run_a": a["run_id"],
        "run_b": b["run_id"],
        "environment": diff_environment(index, a["run_id"], b["run_id"]),
        "statistics": diff_statistics(*both("StatisticsGen.ExampleStatistics")),
        "schema": diff_schema(*both("CuratedSchemaImporter.Schema")),
        "hyperparameters": diff_flat(hp_a and hp_a["values"], hp_b and hp_b["values"]),
        "metrics": diff_flat(ev_a and ev_a["overall"], ev_b and ev_b["overall"]),
        "blessing": {
            kind: {
                "a": (out_a.get(key) or {}).get("properties", {}).get("blessed"),
                "b": (out_b.get(key) or {}).get("properties", {}).get("blessed"),
            }
            for kind, key in (
                ("model", "Evaluator.ModelBlessing"),
                ("infra", "InfraValidator.InfraBlessing"),
            )
        },
        "same_artifacts": sorted(
            k for k in out_a if k in out_b and out_a[k]["id"] == out_b[k]["id"]
        ),
    }


def diff_statistics(a: dict | None, b: dict | None) -> dict[str, Any]:
    if not a or not b:
        return {"available": False}
    split = (
        "train"
        if "train" in a["splits"] and "train" in b["splits"]
        else next(iter(a["splits"]), None)
    )
    if split is None or split not in b["splits"]:
        return {"available": False}
    fa, fb = a["splits"][split]["features"], b["splits"][split]["features"]
    changed = {}
    for name in sorted(set(fa) | set(fb)):
        x, y = fa.get(name), fb.get(name)
        if x is None or y is None:
            changed[name] = {"a": x and "present", "b": y and "present"}
            continue
        delta = {
            k: {"a": x[k], "b": y[k]}
            for k in ("count", "missing", "mean", "std")
            if k in x and x.get(k) != y.get(k)
        }
        if delta:
            changed[name] = delta
    return {
        "available": True,
        "split": split,
        "examples": {"a": a["splits"][split]["examples"], "b": b["splits"][split]["examples"]},
        "changed_features": changed,
    }


def diff_schema(a: dict | None, b: dict | None) -> dict[str, Any]:
    if not a or not b:
        return {"available": False}
    fa = {f["name"]: f for f in a["features"]}
    fb = {f["name"]: f for f in b["features"]}
    return {
        "available": True,
        "added": sorted(set(fb) - set(fa)),
        "removed": sorted(set(fa) - set(fb)),
        "changed": {
            n: {"a": fa[n], "b": fb[n]} for n in sorted(set(fa) & set(fb)) if fa[n] != fb[n]
        },
    }


def diff_flat(a: dict | None, b: dict | None) -> dict[str, Any]:
    if a is None or b is None:
        return {"available": False}
    return {
        "available": True,
        "changed": {
            k: {"a": a.get(k), "b": b.get(k)}
            for k in sorted(set(a) | set(b))
            if a.get(k) != b.get(k)
        },
        "unchanged": sorted(k for k in set(a) & set(b) if a[k] == b[k]),
    }


def diff_environment(index: StoreIndex, run_a: str, run_b: str) -> dict[str, Any]:
    """What the two runs depended on, compared: source files, lock, versions, profile keys,
    settings and seeds (pipeline/run_environment.py)."""
    recorded = [recorded_environment(run_context(index, run_id)) for run_id in (run_a, run_b)]
    if None in recorded:
        return {"available": False}
    a, b = recorded
    return {
        "available": True,
        "commit": {"a": a["git"].get("commit"), "b": b["git"].get("commit")},
        "differences": [
            {**d.as_json(), "text": d.text("A", "B")}
            for d in run_environment.differences(a, b)
            if d.subject != "retune_token"  # a new token each --retune, nothing to compare
        ],
    }

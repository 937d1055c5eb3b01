"""`models` and `models rollback` as text for people."""

from __future__ import annotations

from typing import Any

from tabulate import tabulate

from metadata import artifact_readers


def _metrics(
    metrics: dict[str, float], task: str | None = None, linear: float | None = None
) -> str:
    """The version's headline metrics, in the order model_versions.HEADLINE_METRICS lists
    them: rates to three decimals, regression errors to four significant digits; the linear
    baseline's figure beside the first (the headline metric), when the Evaluator fitted one."""
    parts = []
    for position, (key, value) in enumerate(metrics.items()):
        if position == 1 and linear is not None:
            parts[-1] += (
                f" (linear {linear:.4g})" if task == "regression" else f" (linear {linear:.3f})"
            )
        label = artifact_readers.METRIC_LABELS.get(key, key)
        if key == "example_count":
            parts.append(f"{label} {int(value)}")
        elif task == "regression":
            parts.append(f"{label} {value:.4g}")
        else:
            parts.append(f"{label} {value:.3f}")
    return ", ".join(parts) or "no evaluation recorded"


def _pushed_by(record: dict[str, Any]) -> str:
    if record["rollback_of"] is not None:
        return f"rollback to {record['rollback_of']}" + (
            f" by {record['user']}" if record.get("user") else ""
        )
    return f"run {record['run_id']}" if record["run_id"] else "Pusher"


def _yes_no(flag: bool) -> str:
    return "blessed" if flag else "NOT blessed"


def _health(health: dict[str, Any] | None) -> str:
    """The latest `monitor` verdict on the version's traffic, and when it was checked."""
    if health is None:
        return "not monitored"
    verdict = {"ok": "OK", "alert": "ALERT"}.get(health["verdict"], health["verdict"])
    findings = f" ({len(health['findings'])} findings)" if health["findings"] else ""
    return f"{verdict}{findings} at {health['checked_at']}"


def _release(release: dict[str, Any] | None) -> str:
    """The version's release state, its share of the requests, and who approved it."""
    if not release:
        return ""
    state = release["state"].replace("_", " ")
    share = release.get("share")
    if release["state"] == "shadow":
        text = "shadow (copies)"
    elif share is not None:
        text = f"{state} {share:g}%"
    else:
        text = state
    if release["approvals"]:
        text += " (approved by " + ", ".join(a["by"] for a in release["approvals"]) + ")"
    elif release["state"] in ("rejected", "rolled_back") and release["history"]:
        text += f" by {release['history'][-1]['by']}"
    return text


def versions_text(records: list[dict[str, Any]]) -> str:
    if not records:
        return "No model has been pushed yet. `make run` trains, validates and pushes one."
    rows = [
        [
            "*" if r["serving"] else "",
            r["version"],
            r["pushed_at"],
            _pushed_by(r),
            _yes_no(r["evaluator_blessed"]),
            _yes_no(r["infra_blessed"]),
            _release(r.get("release")),
            _metrics(r["metrics"], r.get("task"), r.get("linear_baseline")),
            _health(r.get("health")),
        ]
        for r in records
    ]
    table = tabulate(
        rows,
        headers=[
            "",
            "version",
            "pushed",
            "by",
            "Evaluator",
            "InfraValidator",
            "release",
            "metrics",
            "health",
        ],
        tablefmt="plain",
        disable_numparse=True,
    )
    serving = next((r for r in records if r["serving"]), None)
    released = [r for r in records if (r.get("release") or {}).get("history")]
    if released:
        stable = next((r for r in records if r["release"]["state"] == "stable"), None)
        candidate = next(
            (r for r in records if r["release"]["state"] in ("canary", "shadow")), None
        )
        footer = (
            f"* serving: stable version {stable['version']}" if stable else "No stable version."
        )
        if candidate:
            footer += (
                f"; version {candidate['version']} in {candidate['release']['state']}: "
                + candidate["release"]["history"][-1]["reason"]
            )
        waiting = [
            str(r["version"]) for r in records if r["release"]["state"] == "awaiting_approval"
        ]
        if waiting:
            footer += (
                f"\nAwaiting approval: {', '.join(waiting)} (`models approve VERSION --by NAME`)."
            )
    else:
        footer = (
            f"* serving: version {serving['version']}, the highest in "
            f"{serving['path'].rsplit('/', 1)[0]}"
            if serving
            else "No recorded version is on disk to serve."
        )
    gone = [str(r["version"]) for r in records if not r["on_disk"]]
    if gone:
        footer += f"\nNo longer on disk: {', '.join(gone)}."
    return f"{table}\n\n{footer}"


def rollback_text(record: dict[str, Any]) -> str:
    return (
        f"Version {record['rollback_of']} re-pushed as version {record['version']} "
        f"({record['path']}), recorded in ML Metadata (PushedModel {record['pushed_model_id']}, "
        f"rollback_of={record['rollback_of']}).\n"
        "A running `serve` or TF Serving picks it up at its next check of the folder; the newer "
        "versions stay on disk and in the record."
    )


def decision_text(version: int, change) -> str:
    what = {"approved": "approved", "rejected": "rejected"}[change.state]
    then = (
        "A running `serve` releases it at its next turn, as the profile's release policy says."
        if change.state == "approved"
        else "It is never served under a release; a canary or shadow of it stops at `serve`'s "
        "next turn."
    )
    return (
        f"Version {version} {what} by {change.by}"
        + (f" ({change.reason})" if change.reason and change.reason != "approved" else "")
        + (f", to be released as a {change.strategy.replace('_', ' ')}" if change.strategy else "")
        + f", recorded in ML Metadata (execution {change.execution_id}).\n{then}"
    )

"""`monitor`: one look at the served traffic of a time window, judged against what made the model.

For each model version that answered in the window (normally one; two across a push):
statistics of its logged rows, checked against its curated schema, its training data (skew), the
previous window (drift), its answers on the eval split (prediction drift), and the labels that
arrived for its rows (live quality); see monitoring/checks.py. The result is written under
`<request log dir>/checks/<time>/` (the window's statistics and a summary) and recorded in ML
Metadata as a `ModelMonitoring` execution whose inputs are the served PushedModel, its training
statistics and schema, and whose output is the window's statistics.
"""

from __future__ import annotations

import dataclasses
import datetime
import getpass
import json
import os
import re
import socket
from typing import Any

import numpy as np
from ml_metadata.proto import metadata_store_pb2

from components.profile import Profile
from deployment import model_versions
from metadata.store import StoreIndex, keyed_event, open_store
from monitoring import checks, reference, traffic
from pipeline.metadata_location import MetadataLocation

EXECUTION_TYPE = model_versions.MONITORING_EXECUTION_TYPE
CHECKS_FOLDER = "checks"
SUMMARY_FILE = "summary.json"
_DURATION = re.compile(r"^(\d+(?:\.\d+)?)([smhd])$")
_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


class MonitorError(Exception):
    """Input `monitor` cannot use; the message names it and says what to do."""


def duration_seconds(text: str) -> float | None:
    """Seconds in a duration such as 90s, 30m, 2h or 1d; None when `text` is not one."""
    match = _DURATION.match(text.strip())
    return float(match[1]) * _SECONDS[match[2]] if match else None


def parse_time(text: str, now: datetime.datetime, option: str) -> datetime.datetime:
    """An ISO time (UTC unless it carries an offset) or a duration before `now` (30m, 2h, 1d)."""
    seconds = duration_seconds(text)
    if seconds is not None:
        return now - datetime.timedelta(seconds=seconds)
    try:
        moment = datetime.datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise MonitorError(
            f"{option}: {text!r} is neither an ISO time (2026-12-06T17:00) nor a duration "
            "(90s, 30m, 2h, 1d)"
        ) from None
    return moment if moment.tzinfo else moment.replace(tzinfo=datetime.timezone.utc)


@dataclasses.dataclass(frozen=True)
class MonitorSettings:
    model_name: str
    log_dir: str
    since: datetime.datetime
    until: datetime.datetime
    profile: Profile
    location: MetadataLocation
    labels_file: str | None = None


def _iso(moment: datetime.datetime) -> str:
    return moment.astimezone(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _findings_json(findings: list[checks.Finding]) -> list[dict[str, Any]]:
    return [dataclasses.asdict(f) for f in findings]


def monitor(settings: MonitorSettings) -> dict[str, Any]:
    """Reads the window, checks every version in it, writes and records the result."""
    if not os.path.isdir(settings.log_dir):
        raise MonitorError(
            f"no request log at {settings.log_dir}: `serve` writes one there (--request-log-dir) "
            "once it answers requests"
        )
    if settings.until <= settings.since:
        raise MonitorError(
            f"--since {_iso(settings.since)} is not before --until {_iso(settings.until)}"
        )
    labels = traffic.feedback_labels(settings.log_dir)
    file_labels = traffic.labels_file(settings.labels_file) if settings.labels_file else []
    # The window, and the one of the same length before it (drift is judged against it).
    window = traffic.read_window(
        settings.log_dir,
        settings.model_name,
        settings.since,
        settings.until,
        previous_since=settings.since - (settings.until - settings.since),
    )
    counts = traffic.logger_counts(settings.log_dir)
    result: dict[str, Any] = {
        "model": settings.model_name,
        "since": _iso(settings.since),
        "until": _iso(settings.until),
        "request_log": settings.log_dir,
        "requests": window.requests,
        "rows": window.rows,
        "files_read": window.files_read,
        "truncated_files": window.truncated_files,
        "unreadable_records": window.unreadable_records,
        "logger": counts,
        "versions": [],
        "findings": [],
        "verdict": "no_traffic",
    }
    if not window.rows:
        return result

    joined, unmatched = traffic.join_labels(window, labels + file_labels)
    unmatched_from_file = [label for label in unmatched if label.source == settings.labels_file]
    result["labels"] = {
        "received": len(labels) + len(file_labels),
        "joined": sum(len(j.rows) for j in joined.values()),
        "unmatched": len(unmatched),
        "unmatched_from_file": len(unmatched_from_file),
        "unmatched_examples": sorted({label.request_id for label in unmatched_from_file})[:5],
    }
    previous_rows = window.previous_examples
    min_rows = settings.profile.monitoring.min_rows
    previous_statistics = (
        checks.statistics_of(previous_rows) if len(previous_rows) >= min_rows else None
    )

    index = StoreIndex(open_store(settings.location), settings.location)
    references = {}
    for version in sorted(window.by_version, reverse=True):
        try:
            references[version] = reference.find(index, version)
        except reference.NoRecord as e:
            raise MonitorError(f"{settings.model_name} version {version}: {e}") from e

    statistics_by_version = {}
    for version, ref in references.items():
        rows = window.by_version[version]
        checked, statistics = _check_version(
            settings, rows, ref, previous_statistics, len(previous_rows), joined.get(version)
        )
        statistics_by_version[version] = statistics
        result["versions"].append(checked)
        result["findings"] += checked["findings"]
    if window.truncated_files:
        result["notes"] = [
            f"{path} ends in a record cut short (a worker stopped while writing it); the "
            "records before it were read"
            for path in window.truncated_files
        ]
    result["verdict"] = "alert" if result["findings"] else "ok"
    folder = _write_checks(settings, result, statistics_by_version)
    result["checks_folder"] = folder
    result["execution_id"] = _record(settings, index, references, result, folder)
    return result


def _check_version(
    settings: MonitorSettings,
    rows: traffic.Rows,
    ref: reference.Reference,
    previous_statistics,
    previous_count: int,
    joined: traffic.Joined | None,
) -> tuple[dict[str, Any], Any]:
    profile = settings.profile
    min_rows = profile.monitoring.min_rows
    enough = rows.count >= min_rows
    batch = checks.decode(rows.examples)
    statistics = checks.statistics_of_batch(batch)
    schema = checks.read_schema(ref.schema_path)
    training = checks.read_statistics(ref.training_statistics_path)
    validated = checks.validate(
        statistics,
        schema,
        training if enough else None,
        previous_statistics if enough else None,
        profile.monitoring_skew,
        profile.monitoring_drift,
    )
    findings = list(validated["schema"])
    not_judged = (
        f"not compared: {rows.count} rows in the window, fewer than monitoring.min_rows "
        f"({min_rows})"
    )
    checked: dict[str, Any] = {
        "version": ref.version,
        "reference": reference.describe(ref),
        "requests": rows.requests,
        "rows": rows.count,
        "latency_ms": _latency(rows.latencies_ms),
        "schema": {"findings": _findings_json(validated["schema"])},
        "tfdv_warnings": validated["tfdv_warnings"],
    }
    for check in ("skew", "drift"):
        part = validated[check]
        if part is None:
            reason = (
                not_judged
                if not enough
                else f"not compared: the previous window has {previous_count} rows, fewer than "
                f"monitoring.min_rows ({min_rows})"
            )
            checked[check] = {"judged": False, "reason": reason}
            continue
        findings += part["findings"]
        checked[check] = {
            "judged": True,
            "distances": part["distances"],
            "findings": _findings_json(part["findings"]),
        }
    checked["skew"]["baseline"] = (
        f"{ref.training_split} statistics ({ref.training_statistics_path})"
    )
    task = ref.record["task"] or profile.task
    live_answers = checks.answer_values(rows.answers, task)
    if enough:
        drift = checks.prediction_drift(
            live_answers,
            checks.answer_values(reference.reference_answers(ref, settings.log_dir), task),
            task,
            profile.monitoring.prediction_drift,
        )
        findings += drift["findings"]
        drift["findings"] = _findings_json(drift["findings"])
        checked["prediction_drift"] = {"judged": True, **drift}
    else:
        checked["prediction_drift"] = {"judged": False, "reason": not_judged}
    checked["quality"] = _quality(rows, joined, profile, ref)
    checked["distributions"] = checks.distributions(batch, training, schema)
    findings += checked["quality"].pop("finding_objects", [])
    checked["findings"] = _findings_json(findings)
    return checked, statistics


def _latency(latencies: list[float]) -> dict[str, float] | None:
    known = [x for x in latencies if x == x]  # NaN: a record TF Serving wrote
    if not known:
        return None
    p50, p99 = np.percentile(known, [50, 99])
    return {"p50": round(float(p50), 2), "p99": round(float(p99), 2)}


def _quality(rows, joined, profile: Profile, ref: reference.Reference) -> dict[str, Any]:
    if joined is None or not joined.rows:
        return {"judged": False, "labelled_rows": 0, "reason": "no labels joined in this window"}
    targets, answers, refused = [], [], []
    for index, value in zip(joined.rows, joined.values, strict=True):
        try:
            targets.append(checks.target_of(value, profile, rows.examples[index]))
            answers.append(rows.answers[index])
        except checks.LabelError as e:
            refused.append(
                f"request {rows.request_ids[index]} row {rows.row_in_request[index]}: {e}"
            )
    if not targets:
        return {
            "judged": False,
            "labelled_rows": 0,
            "refused_labels": len(refused),
            "refused_examples": refused[:5],
            "reason": "no joined label could be read as the profile's label",
        }
    quality = checks.live_quality(np.array(targets), answers, profile, ref.evaluator_metrics)
    quality["refused_labels"] = len(refused)
    quality["refused_examples"] = refused[:5]
    if not quality["judged"]:
        quality["reason"] = (
            f"{len(targets)} labelled rows, fewer than monitoring.quality.min_labels "
            f"({profile.monitoring.quality.min_labels}): shown, not judged"
        )
    quality["finding_objects"] = quality.pop("findings")
    return quality


def _write_checks(settings: MonitorSettings, result: dict[str, Any], statistics_by_version) -> str:
    stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y%m%dT%H%M%S%fZ")
    folder = os.path.join(settings.log_dir, CHECKS_FOLDER, stamp)
    for version, statistics in statistics_by_version.items():
        split = os.path.join(folder, f"Split-version-{version}")
        os.makedirs(split, exist_ok=True)
        with open(os.path.join(split, reference.STATISTICS_FILE), "wb") as f:
            f.write(statistics.SerializeToString())
    os.makedirs(folder, exist_ok=True)
    with open(os.path.join(folder, SUMMARY_FILE), "w", encoding="utf-8") as f:
        json.dump(result, f, indent=2, default=str)
    return folder


def _record(
    settings: MonitorSettings,
    index: StoreIndex,
    references: dict[int, reference.Reference],
    result: dict[str, Any],
    folder: str,
) -> int:
    """The check as a ModelMonitoring execution in ML Metadata, linked to what it judged."""
    Event = metadata_store_pb2.Event
    store = open_store(settings.location, writable=True)
    execution_type = metadata_store_pb2.ExecutionType(name=EXECUTION_TYPE)
    for name in ("verdict", "window_since", "window_until", "model_name"):
        execution_type.properties[name] = metadata_store_pb2.STRING
    execution = metadata_store_pb2.Execution(
        type_id=store.put_execution_type(execution_type, can_add_fields=True),
        last_known_state=metadata_store_pb2.Execution.COMPLETE,
    )
    execution.properties["verdict"].string_value = result["verdict"]
    execution.properties["window_since"].string_value = result["since"]
    execution.properties["window_until"].string_value = result["until"]
    execution.properties["model_name"].string_value = settings.model_name
    custom = execution.custom_properties
    custom["requests"].int_value = result["requests"]
    custom["rows"].int_value = result["rows"]
    custom["findings"].string_value = json.dumps(result["findings"])
    custom["summary"].string_value = os.path.join(folder, SUMMARY_FILE)
    custom["quality"].string_value = json.dumps(
        {
            str(v["version"]): {
                "headline": v["quality"].get("headline"),
                "value": v["quality"].get("metrics", {}).get(v["quality"].get("headline")),
                "evaluator": v["quality"].get("evaluator"),
                "labelled_rows": v["quality"].get("labelled_rows", 0),
            }
            for v in result["versions"]
        }
    )
    custom["user"].string_value = f"{getpass.getuser()}@{socket.gethostname()}"

    by_id = {}
    for ref in references.values():
        for key, artifact_id in (
            (model_versions.PUSHED_MODEL_KEY, ref.record["pushed_model_id"]),
            ("baseline_statistics", ref.training_statistics_id),
            ("schema", ref.schema_id),
        ):
            by_id[artifact_id] = key
    inputs = [
        (a, keyed_event(Event.INPUT, by_id[a.id])) for a in store.get_artifacts_by_id(sorted(by_id))
    ]
    statistics = metadata_store_pb2.Artifact(
        type_id=store.get_artifact_type("ExampleStatistics").id,
        uri=folder,
        state=metadata_store_pb2.Artifact.LIVE,
    )
    statistics.properties["split_names"].string_value = json.dumps(
        [f"version-{v}" for v in sorted(references)]
    )
    contexts = []
    for ref in references.values():
        for context in model_versions.pusher_contexts(index, ref.record["pushed_model_id"]):
            if context.id not in {c.id for c in contexts}:
                contexts.append(context)
    execution_id, _, _ = store.put_execution(
        execution,
        [*inputs, (statistics, keyed_event(Event.OUTPUT, "statistics"))],
        contexts,
        reuse_context_if_already_exist=True,
    )
    return execution_id

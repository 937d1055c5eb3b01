"""`monitor`: the served model's traffic of a time window, judged against its training data, the
previous window, its eval answers and the labels that arrived (the work is in monitoring/)."""

from __future__ import annotations

import datetime
import json
import os
import subprocess
from pathlib import Path
from typing import Any

import click

from cli import exit_codes, monitoring_report
from cli.options import (
    CONTEXT_SETTINGS,
    load_config,
    open_store,
    profile_option,
    store_options,
)
from cli.user_errors import UserError, quiet_libraries
from metadata.store import NotFound, UnusableStore
from pipeline.config import DEFAULT_OUTPUT_DIR
from pipeline.metadata_location import MetadataLocation


@click.command("monitor", context_settings=CONTEXT_SETTINGS)
@profile_option
@click.option(
    "--model",
    "model_name",
    default=None,
    help="The served model's name [default: the profile's name].",
)
@click.option(
    "--since",
    default="1h",
    show_default=True,
    help="Start of the window: an ISO time (UTC unless it has an offset) or a duration back "
    "from now (90s, 30m, 2h, 1d).",
)
@click.option(
    "--until",
    default=None,
    show_default="now",
    help="End of the window, as --since.",
)
@click.option(
    "--labels",
    "labels_file",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="CSV of ground truth with columns request_id,label[,row] (the label column's value as "
    "in the training data), joined to the logged answers. Labels POSTed to "
    "/v1/models/NAME/feedback are joined too.",
)
@click.option(
    "--request-log-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    show_default="outputs/monitoring/<model>",
    help="Where `serve` logs requests (its --request-log-dir).",
)
@click.option(
    "--on-alert",
    default=None,
    metavar="CMD",
    help="A shell command to run when a threshold is crossed (the summary's JSON path is in "
    "$MONITOR_SUMMARY), e.g. to start a new run.",
)
@store_options
def monitor_command(
    profile_dir: Path,
    model_name: str | None,
    since: str,
    until: str | None,
    labels_file: Path | None,
    request_log_dir: Path | None,
    on_alert: str | None,
    location: MetadataLocation,
    as_json: bool,
) -> None:
    """Check the served model's logged traffic: schema, skew, drift, answers, live quality.

    Reads the requests `serve` logged in the window and computes their TFDV statistics;
    validates them against the served version's curated schema; compares them with the
    version's training statistics (skew) and with the previous window of the same length
    (drift) at the profile's thresholds (`monitoring:`, else `data_checks:`); compares the
    model's answers with its answers on the eval split; and joins labels that arrived to report
    live quality beside the Evaluator's figures. Each check is recorded in ML Metadata.

    Exit codes: 0 nothing crossed a threshold (or no traffic); 2 unusable input; 4 a threshold
    was crossed, one line per finding.
    """
    config = load_config(profile_dir)
    profile = config.profile
    name = model_name or config.pipeline_name
    now = datetime.datetime.now(datetime.timezone.utc)
    quiet_libraries()
    from monitoring import monitor, traffic

    try:
        settings = monitor.MonitorSettings(
            model_name=name,
            log_dir=str((request_log_dir or DEFAULT_OUTPUT_DIR / "monitoring" / name).resolve()),
            since=monitor.parse_time(since, now, "--since"),
            until=monitor.parse_time(until, now, "--until") if until else now,
            profile=profile,
            location=location,
            labels_file=str(labels_file) if labels_file else None,
        )
        result = monitor.monitor(settings)
    except (monitor.MonitorError, traffic.TrafficError, NotFound, UnusableStore) as e:
        raise UserError(str(e)) from e
    if result.get("checks_folder"):
        from deployment import model_versions

        checks = model_versions.monitoring_checks(open_store(location))
        result["report"] = monitoring_report.write(
            result, monitoring_report.quality_history(checks, name)
        )
    click.echo(json.dumps(result, indent=2, default=str) if as_json else summary_text(result))
    if result["verdict"] != "alert":
        return
    if on_alert:
        summary = result.get("checks_folder", "")
        completed = subprocess.run(
            on_alert,
            shell=True,  # noqa: S602 - the user's own command line, as they typed it
            env={**os.environ, "MONITOR_SUMMARY": f"{summary}/summary.json"},
            check=False,
        )
        if not as_json:
            click.echo(f"--on-alert: `{on_alert}` exited with {completed.returncode}")
    exit_codes.exit_without_teardown(exit_codes.MONITOR_ALERT)


def _distances_text(part: dict[str, Any]) -> str:
    if not part.get("judged"):
        return part["reason"]
    distances = part["distances"]
    if not distances:
        return "no feature has a threshold"
    worst = sorted(
        distances.items(), key=lambda kv: kv[1]["distance"] / max(kv[1]["threshold"], 1e-9)
    )
    name, figure = worst[-1]
    crossed = sum(1 for d in distances.values() if d["distance"] > d["threshold"])
    state = (
        f"{crossed} of {len(distances)} features over their threshold"
        if crossed
        else (f"{len(distances)} features within their thresholds")
    )
    return f"{state}; largest against its threshold: {name} {figure['measure']} {figure['distance']:.3f} (threshold {figure['threshold']:g})"


def summary_text(result: dict[str, Any]) -> str:
    lines = [f"Monitoring {result['model']}: {result['since']} to {result['until']}"]
    logger = result["logger"]
    if not result["rows"]:
        lines.append(
            f"  no requests logged between {result['since']} and {result['until']} "
            f"(in {result['request_log']})"
        )
        return "\n".join(lines)
    lines.append(
        f"  {result['requests']} requests, {result['rows']} rows logged in the window "
        f"({result['files_read']} log files); the logger dropped {logger['dropped']} "
        f"and skipped {logger['sampled_out']} by sampling since it started"
    )
    for path in result["truncated_files"]:
        lines.append(f"  note: {path} ends in a record cut short; the records before it were read")
    for version in result["versions"]:
        ref = version["reference"]
        latency = version["latency_ms"]
        lines.append(
            f"  version {version['version']} (run {ref['run_id']}): {version['requests']} "
            f"requests, {version['rows']} rows"
            + (f", latency p50 {latency['p50']} ms, p99 {latency['p99']} ms" if latency else "")
        )
        schema = version["schema"]["findings"]
        lines.append(
            "    schema:       "
            + (
                f"{len(schema)} {'anomaly' if len(schema) == 1 else 'anomalies'}"
                if schema
                else "OK (curated schema, SERVING environment)"
            )
        )
        lines.append(f"    skew:         {_distances_text(version['skew'])}")
        lines.append(f"    drift:        {_distances_text(version['drift'])}")
        answers = version["prediction_drift"]
        lines.append(
            "    answers:      "
            + (
                f"Jensen-Shannon {answers['distance']:.3f} from the eval split's (threshold "
                f"{answers['threshold']:g}); mean {answers['live_mean']:.3f} live, "
                f"{answers['eval_mean']:.3f} on the eval split"
                if answers["judged"]
                else answers["reason"]
            )
        )
        quality = version["quality"]
        if quality.get("metrics"):
            figures = ", ".join(f"{k} {v:.4f}" for k, v in quality["metrics"].items())
            evaluator = (
                f"; the Evaluator's {quality['headline']}: {quality['evaluator']:.4f}"
                if quality.get("evaluator") is not None
                else ""
            )
            judged = "" if quality["judged"] else f" ({quality['reason']})"
            lines.append(
                f"    live quality: {quality['labelled_rows']} labelled rows: {figures}{evaluator}{judged}"
            )
        else:
            lines.append(f"    live quality: {quality['reason']}")
        if quality.get("refused_labels"):
            lines.append(
                f"    {quality['refused_labels']} labels not readable as the label, e.g. "
                + "; ".join(quality["refused_examples"][:2])
            )
    labels = result.get("labels", {})
    if labels.get("received"):
        lines.append(
            f"  labels: {labels['received']} received, {labels['joined']} joined to rows of this "
            f"window, {labels['unmatched']} for requests not in it"
            + (
                f" ({labels['unmatched_from_file']} from --labels match no logged request id here, "
                f"e.g. {', '.join(labels['unmatched_examples'])})"
                if labels.get("unmatched_from_file")
                else ""
            )
        )
    findings = result["findings"]
    if findings:
        lines.append(f"ALERT: {len(findings)} findings")
        for finding in findings:
            where = f"{finding['feature']}: " if finding["feature"] else ""
            lines.append(f"  {finding['check']}: {where}{finding['message']}")
    else:
        lines.append("OK: no threshold crossed")
    lines.append(
        f"Recorded in ML Metadata (execution {result['execution_id']}); statistics and summary in "
        f"{result['checks_folder']}"
    )
    lines.append(f"Report: {result['report']}")
    return "\n".join(lines)

"""Reads TFDV anomalies artifacts (ExampleValidator, DistributionValidator) into plain findings,
and words the data gate's verdict.

Shared by the data gate (which refuses the run), the run summary, `inspect` and the report.
TensorFlow is imported only to read files, so the command line can use this module before a
run's log file takes TensorFlow's start-up output.
"""

from __future__ import annotations

import dataclasses
import os

from tensorflow_metadata.proto.v0 import anomalies_pb2

SCHEMA_DIFF_FILE = "SchemaDiff.pb"


@dataclasses.dataclass
class Finding:
    """One problem with one feature (or the whole data set), across the splits it was seen in."""

    check: str  # "schema", "drift" or "skew"
    feature: str  # "" for a data-set-wide finding
    kind: str  # TFDV's short description, e.g. "Out-of-range values"
    description: str
    splits: list[str]

    def line(self) -> str:
        where = f"'{self.feature}'" if self.feature else "the data set"
        return f"{self.check}: {where} [{', '.join(self.splits)}]: {self.kind}. {self.description}"


def anomaly_splits(uri: str) -> list[str]:
    """Split names (ExampleValidator) or split pairs (DistributionValidator) an artifact holds."""
    import tensorflow as tf

    names = []
    for entry in tf.io.gfile.listdir(uri) if tf.io.gfile.isdir(uri) else []:
        entry = entry.rstrip("/")
        for prefix in ("Split-", "SplitPair-"):
            if entry.startswith(prefix):
                names.append(entry[len(prefix) :])
    return sorted(names)


def load_anomalies(uri: str, split: str) -> anomalies_pb2.Anomalies:
    """The split's anomalies: `Split-<split>` (ExampleValidator) or `SplitPair-<split>`
    (DistributionValidator, where the split is `<split>_<baseline split>`)."""
    import tensorflow as tf

    anomalies = anomalies_pb2.Anomalies()
    for folder in (f"Split-{split}", f"SplitPair-{split}"):
        path = os.path.join(uri, folder, SCHEMA_DIFF_FILE)
        if tf.io.gfile.exists(path):
            with tf.io.gfile.GFile(path, "rb") as f:
                anomalies.ParseFromString(f.read())
            break
    return anomalies


def reason_text(info: anomalies_pb2.AnomalyInfo) -> tuple[str, str]:
    kinds = [r.short_description for r in info.reason if r.short_description]
    descriptions = [r.description for r in info.reason if r.description]
    kind = "; ".join(kinds) or info.short_description or "Anomaly"
    description = " ".join(descriptions) or info.description
    return kind, description


def findings(check: str, uri: str, splits: list[str]) -> list[Finding]:
    """Findings of one anomalies artifact, the same finding in several splits merged."""
    merged: dict[tuple[str, str, str], Finding] = {}
    for split in splits:
        anomalies = load_anomalies(uri, split)
        infos = [(feature, info) for feature, info in sorted(anomalies.anomaly_info.items())]
        if anomalies.HasField("dataset_anomaly_info"):
            infos.append(("", anomalies.dataset_anomaly_info))
        for feature, info in infos:
            kind, description = reason_text(info)
            key = (feature, kind, description)
            if key not in merged:
                merged[key] = Finding(check, feature, kind, description, [])
            merged[key].splits.append(split)
    return list(merged.values())


def gate_findings(
    anomalies_uri: str,
    anomalies_splits: list[str],
    drift_uri: str,
    drift_splits: list[str],
    has_previous_span: bool,
) -> list[Finding]:
    """Schema findings of every split, plus drift findings when there is a previous span."""
    found = findings("schema", anomalies_uri, anomalies_splits)
    if has_previous_span:
        found += findings("drift", drift_uri, drift_splits)
    return found


def refusal_message(found: list[Finding], span: str) -> str:
    lines = [f"The data gate refused span {span}: {len(found)} problem(s) found."]
    lines += [f"  - {finding.line()}" for finding in found]
    lines.append("What to do:")
    lines.append("  - fix the data (the span's CSV files) and re-run")
    if any(f.check == "schema" for f in found):
        lines.append(
            "  - or, if the change is expected, accept it into the curated schema: "
            "`python run_local.py schema diff` shows it, `python run_local.py schema accept` "
            "writes the curated schema (the profile's `schema`) for review"
        )
    if any(f.check == "drift" for f in found):
        lines.append(
            "  - or, if the shift is expected, raise the feature's drift threshold "
            "(`data_checks.drift` in the profile, profile.yaml)"
        )
    return "\n".join(lines)

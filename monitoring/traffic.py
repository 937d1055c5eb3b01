"""The served traffic of a time window, read back from `serve`'s request log (serving/request_log.py):
each logged request's rows as serialized tf.Examples, the model's answer for each row, the request
id, and the labels that arrived later for them.

Every API logs what the model was given: Predict the `examples` input (serialized tf.Examples, as
every signature of the exported model takes), Classify and Regress their example list. Records
written by TF Serving itself (no RequestDetails) are read too, timed by their `timestamp_secs`.
"""

from __future__ import annotations

import csv
import dataclasses
import datetime
import glob
import json
import os
from collections.abc import Iterable
from typing import Any

import numpy as np

from serving import request_log

# The file of each part of the log: see serving/request_log.py.
RECORDS_GLOB = "requests-*.tfrecord*"
FEEDBACK_GLOB = "feedback-*.jsonl"
COUNTS_GLOB = ".counts-*.json"


class TrafficError(Exception):
    """Input `monitor` cannot use (a labels file it cannot read); says which and why."""


@dataclasses.dataclass
class Rows:
    """The rows logged for one model version, in arrival order."""

    version: int
    examples: list[bytes] = dataclasses.field(default_factory=list)  # serialized tf.Examples
    answers: list[np.ndarray] = dataclasses.field(default_factory=list)  # one per row
    request_ids: list[str] = dataclasses.field(default_factory=list)  # one per row
    row_in_request: list[int] = dataclasses.field(default_factory=list)
    times_micros: list[int] = dataclasses.field(default_factory=list)
    requests: int = 0
    latencies_ms: list[float] = dataclasses.field(default_factory=list)  # one per request

    def add(self, request_id: str, time_micros: int, latency_ms: float, examples, answers) -> None:
        self.requests += 1
        self.latencies_ms.append(latency_ms)
        for row, (example, answer) in enumerate(zip(examples, answers, strict=True)):
            self.examples.append(example)
            self.answers.append(answer)
            self.request_ids.append(request_id)
            self.row_in_request.append(row)
            self.times_micros.append(time_micros)

    @property
    def count(self) -> int:
        return len(self.examples)


@dataclasses.dataclass
class Traffic:
    """What the log holds for a window: rows per version, and what could not be read."""

    since: datetime.datetime
    until: datetime.datetime
    by_version: dict[int, Rows]
    files_read: int
    truncated_files: list[str]  # files that ended in a record cut short (the rest was read)
    unreadable_records: int  # records that are not PredictionLogs of a known kind
    other_models: int  # records of another model in the same folder
    # The rows of the window before this one (read_window's `previous_since`), all versions.
    previous_examples: list[bytes] = dataclasses.field(default_factory=list)

    @property
    def requests(self) -> int:
        return sum(r.requests for r in self.by_version.values())

    @property
    def rows(self) -> int:
        return sum(r.count for r in self.by_version.values())


def _micros(moment: datetime.datetime) -> int:
    return int(moment.timestamp() * 1_000_000)


def _file_may_hold(path: str, since: datetime.datetime, until: datetime.datetime) -> bool:
    """A file was opened at the time in its name and last written at its mtime: it can hold
    records of the window only if those overlap it."""
    name = os.path.basename(path)
    try:
        opened = datetime.datetime.strptime(name.split("-")[1], "%Y%m%dT%H%M%SZ").replace(
            tzinfo=datetime.timezone.utc
        )
    except (IndexError, ValueError):
        return True  # not named by `serve`: read it
    try:
        modified = datetime.datetime.fromtimestamp(os.path.getmtime(path), datetime.timezone.utc)
    except FileNotFoundError:
        return False  # deleted by the disk cap meanwhile
    return opened <= until and modified >= since - datetime.timedelta(seconds=1)


def read_window(
    directory: str,
    model_name: str,
    since: datetime.datetime,
    until: datetime.datetime,
    previous_since: datetime.datetime | None = None,
) -> Traffic:
    """Every logged request of `model_name` that arrived in [since, until); with
    `previous_since`, the examples of [previous_since, since) too, in the same pass over the
    files."""
    from tensorflow_serving.apis import prediction_log_pb2

    start, end = _micros(since), _micros(until)
    previous_start = _micros(previous_since) if previous_since else start
    by_version: dict[int, Rows] = {}
    traffic = Traffic(since, until, by_version, 0, [], 0, 0)
    for path in sorted(glob.glob(os.path.join(directory, RECORDS_GLOB))):
        if not _file_may_hold(path, previous_since or since, until):
            continue
        try:
            records, truncated = request_log.read_records(path)
        except FileNotFoundError:  # deleted by the disk cap meanwhile
            continue
        traffic.files_read += 1
        if truncated:
            traffic.truncated_files.append(path)
        for record in records:
            details = request_log.read_details(record)
            log = prediction_log_pb2.PredictionLog()
            try:
                log.ParseFromString(record)
            except Exception:  # noqa: BLE001 - protobuf's DecodeError, under several names
                traffic.unreadable_records += 1
                continue
            time_micros = (
                details.time_micros if details else log.log_metadata.timestamp_secs * 1_000_000
            )
            if not previous_start <= time_micros < end:
                continue
            spec = log.log_metadata.model_spec
            if spec.name and spec.name != model_name:
                traffic.other_models += 1
                continue
            rows = _rows_of(log)
            if rows is None:
                traffic.unreadable_records += 1
                continue
            if time_micros < start:
                traffic.previous_examples.extend(rows[0])
                continue
            version = spec.version.value
            by_version.setdefault(version, Rows(version)).add(
                details.request_id if details else "",
                time_micros,
                details.latency_ms if details else float("nan"),
                *rows,
            )
    return traffic


def _rows_of(log) -> tuple[list[bytes], list[np.ndarray]] | None:
    """(serialized examples, the answer for each) of one PredictionLog, or None when it holds
    no examples this model takes."""
    import tensorflow as tf

    kind = log.WhichOneof("log_type")
    if kind == "predict_log":
        inputs = log.predict_log.request.inputs
        if len(inputs) != 1:
            return None
        examples = list(next(iter(inputs.values())).string_val)
        outputs = log.predict_log.response.outputs
        if len(outputs) != 1:
            return None
        answers = tf.make_ndarray(next(iter(outputs.values())))
        if answers.shape[:1] != (len(examples),):
            return None
        return examples, [np.atleast_1d(a).astype(np.float64) for a in answers]
    if kind in ("classify_log", "regress_log"):
        request = getattr(log, kind).request
        examples = _example_list(request.input)
        result = getattr(log, kind).response.result
        if kind == "classify_log":
            answers = [
                np.array([c.score for c in row.classes], np.float64)
                for row in result.classifications
            ]
        else:
            answers = [np.array([r.value], np.float64) for r in result.regressions]
        if len(answers) != len(examples):
            return None
        return examples, answers
    return None


def _example_list(model_input) -> list[bytes]:
    which = model_input.WhichOneof("kind")
    if which == "example_list":
        return [e.SerializeToString() for e in model_input.example_list.examples]
    if which == "example_list_with_context":
        listed = model_input.example_list_with_context
        merged = []
        for example in listed.examples:
            combined = type(example)()
            combined.CopyFrom(listed.context)
            combined.MergeFrom(example)
            merged.append(combined.SerializeToString())
        return merged
    return []


def logger_counts(directory: str) -> dict[str, int]:
    """What every worker's request logger counted (logged, dropped, not sampled, failed), summed
    over the workers that wrote into `directory`."""
    totals = {"logged": 0, "dropped": 0, "sampled_out": 0, "failed": 0, "feedback": 0}
    for path in glob.glob(os.path.join(directory, COUNTS_GLOB)):
        try:
            with open(path, encoding="utf-8") as f:
                counts = json.load(f)
        except (OSError, ValueError):
            continue
        for key in totals:
            totals[key] += int(counts.get(key, 0))
    return totals


# ---- ground truth ------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Label:
    request_id: str
    row: int
    value: Any
    source: str  # the file it came from


def feedback_labels(directory: str) -> list[Label]:
    """Labels posted to `serve` (POST /v1/models/NAME/feedback), oldest first."""
    labels = []
    for path in sorted(glob.glob(os.path.join(directory, FEEDBACK_GLOB))):
        try:
            with open(path, encoding="utf-8") as f:
                lines = f.readlines()
        except FileNotFoundError:
            continue
        for line in lines:
            try:
                entry = json.loads(line)
                labels.append(
                    Label(entry["request_id"], int(entry.get("row", 0)), entry["label"], path)
                )
            except (ValueError, KeyError, TypeError):
                continue  # a line cut short by a worker killed while writing it
    return labels


def labels_file(path: str) -> list[Label]:
    """Labels from a CSV with columns request_id and label (and row, for requests of several
    rows); TrafficError naming the file and what is wrong."""
    try:
        with open(path, newline="", encoding="utf-8") as f:
            reader = csv.DictReader(f)
            columns = reader.fieldnames or []
            missing = [c for c in ("request_id", "label") if c not in columns]
            if missing:
                raise TrafficError(
                    f"--labels: {path} has no {' or '.join(missing)} column (its header is "
                    f"{','.join(columns) or 'empty'}); give a CSV with request_id,label[,row]"
                )
            labels = []
            for line, entry in enumerate(reader, start=2):
                row = entry.get("row") or "0"
                if not row.isdigit():
                    raise TrafficError(
                        f"--labels: {path} line {line}: row {row!r} is not a row index (0 or more)"
                    )
                labels.append(Label(entry["request_id"], int(row), entry["label"], path))
            return labels
    except FileNotFoundError:
        raise TrafficError(f"--labels: {path} does not exist") from None
    except (UnicodeDecodeError, csv.Error) as e:
        raise TrafficError(f"--labels: {path} is not a readable CSV file: {e}") from None


@dataclasses.dataclass
class Joined:
    """Labels matched to logged rows of one version: indices into its Rows, and the values."""

    rows: list[int]
    values: list[Any]


def join_labels(traffic: Traffic, labels: Iterable[Label]) -> tuple[dict[int, Joined], list[Label]]:
    """Labels joined to the window's rows by request id and row (a later label for the same row
    replaces an earlier one), per version; and the labels that match no logged row."""
    where: dict[tuple[str, int], tuple[int, int]] = {}
    for version, rows in traffic.by_version.items():
        for index, key in enumerate(zip(rows.request_ids, rows.row_in_request, strict=True)):
            where[key] = (version, index)
    found: dict[tuple[int, int], Any] = {}
    unknown = []
    for label in labels:
        place = where.get((label.request_id, label.row))
        if place is None:
            unknown.append(label)
        else:
            found[place] = label.value
    joined: dict[int, Joined] = {}
    for (version, index), value in sorted(found.items()):
        entry = joined.setdefault(version, Joined([], []))
        entry.rows.append(index)
        entry.values.append(value)
    return joined, unknown

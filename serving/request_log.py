"""Request logging, as TF Serving's: each logged request and its answer as a `PredictionLog` in
TFRecord files, the format TF Serving's request logging and TFX's BulkInferrer write.

    <directory>/requests-<UTC time>-<pid>-<n>.tfrecord      closed files, oldest deleted first
    <directory>/requests-<UTC time>-<pid>-<n>.tfrecord.open the file a worker is writing now
    <directory>/.counts-<pid>.json                           what each worker logged and dropped
    <directory>/feedback-<UTC time>-<pid>-<n>.jsonl          labels sent to POST .../feedback

Every worker of `serve` writes its own files (the pid is in the name) into one directory.

- **Sampling**: each request is logged with probability `sample_rate`, as TF Serving's
  SamplingConfig.
- **Never in the request's way**: a request appends its entry to a bounded queue and goes on; a
  writer thread wakes every `DRAIN_SECONDS`, turns what has queued into PredictionLogs and
  writes them. The request does not wake it: a wake-up per request (a condition variable, as
  `queue.Queue` signals one) costs the serving process a thread switch per request. When the
  queue is full, the entry is dropped and counted (the count is logged, and kept in
  `.counts-<pid>.json`).
- **Rotation and a disk cap**: a file is closed at `file_mb` or after `file_seconds`; then the
  oldest closed files of the directory (every worker's, feedback files too) are deleted until all
  files together are under `max_mb`.
- **Feedback**: labels that arrive later (`POST /v1/models/NAME/feedback`) go through the same
  queue and writer, one JSON line each (`{"request_id", "label", "row", "time_micros"}`), for
  `monitor` to join to the logged answers. A full queue refuses them (the client retries) rather
  than dropping a label silently.

What TF Serving's `LogMetadata` holds is filled in (model spec with the version and signature,
sampling config, `timestamp_secs`). What it has no field for (the request id, the time to the
microsecond, the latency) is field 1000 of the record, `RequestDetails` below, which readers of
TF Serving's protos skip as an unknown field: `read_details` reads it.
"""

from __future__ import annotations

import collections
import dataclasses
import json
import logging
import os
import random
import struct
import threading
import time
import uuid

import numpy as np
import tensorflow as tf
from tensorflow_serving.apis import (
    logging_pb2,
    prediction_log_pb2,
)
from tensorflow_serving.config import logging_config_pb2

from serving.wire_format import field, fields, varint

log = logging.getLogger("serving")

DETAILS_FIELD = 1000  # in the PredictionLog record: RequestDetails, as a length-delimited field
OPEN_SUFFIX = ".open"
FLUSH_SECONDS = 1.0  # the open file is flushed this often under load, and whenever idle
DRAIN_SECONDS = 0.05  # how often the writer takes what has queued
_MB = 1024 * 1024
MAX_REQUEST_ID = 128


@dataclasses.dataclass(frozen=True)
class RequestLogOptions:
    directory: str | None = None  # None: no request log
    sample_rate: float = 1.0
    max_mb: float = 1024.0  # every worker's files together
    file_mb: float = 64.0
    file_seconds: float = 3600.0
    queue_size: int = 10_000

    def check(self) -> None:
        if not 0.0 <= self.sample_rate <= 1.0:
            raise ValueError(f"--log-sample-rate must be between 0 and 1, got {self.sample_rate}")
        if self.max_mb <= 0 or self.file_mb <= 0 or self.file_seconds <= 0:
            raise ValueError("--log-max-mb, the file size and the file age must be above 0")


@dataclasses.dataclass(frozen=True)
class RequestDetails:
    """What a logged request carries besides TF Serving's PredictionLog."""

    request_id: str
    time_micros: int  # when the request arrived, microseconds since the epoch (UTC)
    latency_ms: float  # arrival to answer

    def encoded(self) -> bytes:
        request_id = self.request_id.encode()
        body = (
            b"\x0a"
            + varint(len(request_id))
            + request_id  # 1: string
            + b"\x10"
            + varint(self.time_micros)  # 2: int64
            + b"\x19"
            + struct.pack("<d", self.latency_ms)  # 3: double
        )
        return field(DETAILS_FIELD, body)


def read_details(record: bytes) -> RequestDetails | None:
    """The RequestDetails of a logged record (None for a record written by TF Serving)."""
    for number, wire, value in fields(record):
        if number == DETAILS_FIELD and wire == 2:
            found = {n: v for n, _, v in fields(value)}
            return RequestDetails(
                request_id=found.get(1, b"").decode(),
                time_micros=found.get(2, 0),
                latency_ms=struct.unpack("<d", found[3])[0] if 3 in found else 0.0,
            )
    return None


def read_records(path: str) -> tuple[list[bytes], bool]:
    """The records of one log file, and whether it ended in a record cut short (a worker
    killed while writing): what came before it is returned."""
    records = []
    iterator = iter(tf.data.TFRecordDataset(path).as_numpy_iterator())
    while True:
        try:
            records.append(next(iterator))
        except StopIteration:
            return records, False
        except tf.errors.DataLossError:
            return records, True


def request_id_from(given: str | None) -> str:
    """The client's request id when it is usable (printable ASCII, at most 128 characters),
    else a new one."""
    if given and len(given) <= MAX_REQUEST_ID and given.isascii() and given.isprintable():
        return given
    return uuid.uuid4().hex


# -- a REST Predict's PredictionLog, written as bytes -------------------------------------------
#
# Building PredictRequest and PredictResponse messages from the arrays (tf.make_tensor_proto)
# cost a third of REST's throughput under load, on the writer thread but under the same
# interpreter lock. The messages are small and stable (tensorflow_serving/apis/
# prediction_log.proto, logging.proto, predict.proto, model.proto; tensorflow's tensor.proto),
# so they are written directly; tests/test_serving_units.py parses what this writes and compares
# it with the messages protobuf builds.


def _model_spec_bytes(name: str, version: int, signature: str) -> bytes:
    return (
        field(1, name.encode())
        + field(2, b"\x08" + varint(version))  # google.protobuf.Int64Value
        + field(3, signature.encode())
    )


def _tensor_bytes(array: np.ndarray) -> bytes:
    shape = field(2, b"".join(field(2, b"\x08" + varint(d) if d else b"") for d in array.shape))
    if array.dtype == object:  # strings: string_val (8)
        values = (v if isinstance(v, bytes) else str(v).encode() for v in array.flat)
        return b"\x08\x07" + shape + b"".join(field(8, v) for v in values)
    dtype = tf.as_dtype(array.dtype).as_datatype_enum
    return b"\x08" + varint(dtype) + shape + field(4, np.ascontiguousarray(array).tobytes())


def _tensor_map(number: int, tensors: dict[str, np.ndarray]) -> bytes:
    return b"".join(
        field(number, field(1, name.encode()) + field(2, _tensor_bytes(array)))
        for name, array in tensors.items()
    )


def predict_log_bytes(
    model: str,
    version: int,
    signature: str,
    inputs: dict[str, np.ndarray],
    outputs: dict[str, np.ndarray],
    sample_rate: float,
    timestamp_secs: int,
) -> bytes:
    """A serialized PredictionLog of one Predict: its request, its answer, and the metadata."""
    spec = _model_spec_bytes(model, version, signature)
    metadata = (
        field(1, spec)
        + field(2, b"\x09" + struct.pack("<d", sample_rate))  # SamplingConfig.sampling_rate
        + b"\x20"
        + varint(timestamp_secs)
    )
    request = field(1, spec) + _tensor_map(2, inputs)
    response = _tensor_map(1, outputs) + field(2, spec)
    return field(1, metadata) + field(6, field(1, request) + field(2, response))


class RequestLogger:
    """Logs requests of one worker; `log_*` never block and never raise."""

    def __init__(self, options: RequestLogOptions, model_name: str, seed: int | None = None):
        options.check()
        self.options = options
        self.model_name = model_name
        self.directory = options.directory
        os.makedirs(self.directory, exist_ok=True)
        self.logged = self.dropped = self.sampled_out = self.failed = 0
        self._random = random.Random(seed)
        # Appends and pops of a deque are atomic: the requests' threads and the writer share
        # it without a lock.
        self._queue: collections.deque = collections.deque()
        self._stopping = threading.Event()
        self._writer: tf.io.TFRecordWriter | None = None
        self._path: str | None = None
        self._opened = 0.0
        self._written = 0
        self._files = 0
        self._dropped_reported = 0
        self._unflushed, self._flushed = False, time.monotonic()
        self.feedback = 0  # labels written
        self._feedback_file = None
        self._feedback_opened = 0.0
        self._recover_orphans()
        self._thread = threading.Thread(target=self._write_until_stopped, daemon=True)
        self._thread.start()

    def _recover_orphans(self) -> None:
        """Closes the files of workers that died writing them (SIGKILL, the OOM killer): they
        keep what was flushed, maybe a last record cut short, which readers skip."""
        for name in os.listdir(self.directory):
            if not (name.startswith("requests-") and name.endswith(OPEN_SUFFIX)):
                continue
            try:
                pid = int(name.removesuffix(".tfrecord" + OPEN_SUFFIX).split("-")[2])
                os.kill(pid, 0)
                continue  # its writer is alive
            except (ValueError, IndexError, ProcessLookupError):
                pass
            except PermissionError:  # alive, another user's
                continue
            path = os.path.join(self.directory, name)
            try:
                os.replace(path, path.removesuffix(OPEN_SUFFIX))
                log.info("Request log: closed %s, left open by a worker that died", name)
            except FileNotFoundError:  # another worker closed it first
                pass

    # -- on the request's path -----------------------------------------------------------------

    def _enqueue(self, entry: tuple) -> None:
        if self.options.sample_rate < 1.0 and self._random.random() >= self.options.sample_rate:
            self.sampled_out += 1
            return
        if not self._offer(entry):
            self.dropped += 1

    def log_predict(
        self,
        details: RequestDetails,
        version: int,
        signature: str,
        inputs: dict[str, np.ndarray],
        outputs: dict[str, np.ndarray],
    ) -> None:
        """A Predict answered from arrays (REST): the PredictRequest is built by the writer."""
        self._enqueue(("arrays", details, version, signature, inputs, outputs))

    def log_message(self, details: RequestDetails, kind: str, request, response) -> None:
        """A request answered with protos (gRPC, classify, regress): kind is predict_log,
        classify_log or regress_log."""
        self._enqueue(("protos", details, kind, request, response))

    def log_feedback(self, labels: list[dict]) -> bool:
        """Labels for logged requests ({"request_id", "label", "row"}); False when the queue is
        full and nothing was taken (the caller answers 503)."""
        return self._offer(("feedback", labels))

    def _offer(self, entry: tuple) -> bool:
        """Queues the entry unless the queue is full."""
        if len(self._queue) >= self.options.queue_size:
            return False
        self._queue.append(entry)
        return True

    # -- the writer thread ---------------------------------------------------------------------

    def _write_feedback(self, labels: list[dict]) -> None:
        if self._feedback_file is not None and (
            time.monotonic() - self._feedback_opened >= self.options.file_seconds
        ):
            self._feedback_file.close()
            self._feedback_file = None
            self._enforce_cap()
        if self._feedback_file is None:
            stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
            self._files += 1
            path = os.path.join(
                self.directory, f"feedback-{stamp}-{os.getpid()}-{self._files}.jsonl"
            )
            self._feedback_file = open(path, "a", encoding="utf-8")  # noqa: SIM115 - kept open
            self._feedback_opened = time.monotonic()
        now = int(time.time() * 1_000_000)
        for label in labels:
            self._feedback_file.write(json.dumps({**label, "time_micros": now}) + "\n")
        self._feedback_file.flush()  # readable by `monitor` at once
        self.feedback += len(labels)

    def _record(self, entry: tuple) -> bytes:
        if entry[0] == "arrays":  # REST's Predict: written as bytes (see predict_log_bytes)
            _, details, version, signature, inputs, outputs = entry
            return (
                predict_log_bytes(
                    self.model_name,
                    version,
                    signature,
                    inputs,
                    outputs,
                    self.options.sample_rate,
                    details.time_micros // 1_000_000,
                )
                + details.encoded()
            )
        _, details, kind, request, response = entry
        record = prediction_log_pb2.PredictionLog(
            log_metadata=logging_pb2.LogMetadata(
                model_spec=response.model_spec,
                sampling_config=logging_config_pb2.SamplingConfig(
                    sampling_rate=self.options.sample_rate
                ),
                timestamp_secs=details.time_micros // 1_000_000,
            )
        )
        getattr(record, kind).request.CopyFrom(request)
        getattr(record, kind).response.CopyFrom(response)
        return record.SerializeToString() + details.encoded()

    def _open(self) -> None:
        stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
        self._files += 1
        final = os.path.join(
            self.directory, f"requests-{stamp}-{os.getpid()}-{self._files}.tfrecord"
        )
        self._path = final + OPEN_SUFFIX
        self._writer = tf.io.TFRecordWriter(self._path)
        self._opened = time.monotonic()
        self._written = 0

    def _close(self) -> None:
        if self._writer is None:
            return
        self._writer.close()
        self._unflushed = False
        os.replace(self._path, self._path.removesuffix(OPEN_SUFFIX))
        self._writer = None
        self._enforce_cap()

    def _enforce_cap(self) -> None:
        """Deletes the oldest closed files until the directory's files fit in max_mb."""
        files = []
        for name in os.listdir(self.directory):
            if name.startswith(("requests-", "feedback-")):
                path = os.path.join(self.directory, name)
                try:
                    stat = os.stat(path)
                except FileNotFoundError:  # another worker deleted it
                    continue
                files.append((stat.st_mtime, name, path, stat.st_size))
        total = sum(f[3] for f in files)
        for _, name, path, size in sorted(files):
            if total <= self.options.max_mb * _MB:
                break
            if name.endswith(OPEN_SUFFIX):
                continue
            try:
                os.remove(path)
                total -= size
            except FileNotFoundError:
                pass

    def _write_counts(self) -> None:
        counts = {
            "pid": os.getpid(),
            "logged": self.logged,
            "dropped": self.dropped,
            "sampled_out": self.sampled_out,
            "failed": self.failed,
            "feedback": self.feedback,
            "updated": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        }
        path = os.path.join(self.directory, f".counts-{os.getpid()}.json")
        with open(path + ".tmp", "w") as f:
            json.dump(counts, f)
        os.replace(path + ".tmp", path)
        if self.dropped > self._dropped_reported:
            log.warning(
                "Request log: %d requests dropped so far (the writer fell behind; the queue "
                "holds %d)",
                self.dropped,
                self.options.queue_size,
            )
            self._dropped_reported = self.dropped

    def _write_until_stopped(self) -> None:
        last_counts = time.monotonic()
        while True:
            stopping = self._stopping.wait(DRAIN_SECONDS)
            taken = 0
            while True:
                try:
                    entry = self._queue.popleft()
                except IndexError:
                    break
                taken += 1
                self._write_entry(entry)
            try:
                counts_due = time.monotonic() - last_counts >= 5
                if self._unflushed and (
                    not taken or counts_due or time.monotonic() - self._flushed >= FLUSH_SECONDS
                ):
                    # What is logged is readable in the open file within about a second, and
                    # before the counts say it was logged (a killed worker's counts never exceed
                    # what its file holds).
                    self._writer.flush()
                    self._unflushed, self._flushed = False, time.monotonic()
                self._rotate_if_due()
                if counts_due:
                    self._write_counts()
                    last_counts = time.monotonic()
            except Exception:  # noqa: BLE001 - logging must not stop serving; said in the log
                self._count_failure()
            if stopping:
                break
        self._close()
        if self._feedback_file is not None:
            self._feedback_file.close()
        self._write_counts()

    def _write_entry(self, entry: tuple) -> None:
        try:
            if entry[0] == "feedback":
                self._write_feedback(entry[1])
                return
            if self._writer is None:
                self._open()
            record = self._record(entry)
            self._writer.write(record)
            self._written += len(record)
            self._unflushed = True
            self.logged += 1
            self._rotate_if_due()
        except Exception:  # noqa: BLE001 - logging must not stop serving; said in the log
            self._count_failure()

    def _rotate_if_due(self) -> None:
        """Closes the open file at its size or age (a closed file counts toward the cap)."""
        if self._writer is not None and (
            self._written >= self.options.file_mb * _MB
            or time.monotonic() - self._opened >= self.options.file_seconds
        ):
            self._close()

    def _count_failure(self) -> None:
        self.failed += 1
        if self.failed == 1:  # the first with its traceback; the count at the end
            log.exception("Request log: writing an entry failed")

    def stop(self) -> None:
        """Writes what is queued, closes the file, records the counts."""
        self._stopping.set()
        self._thread.join(timeout=30)
        log.info(
            "Request log: %d requests logged, %d dropped, %d not sampled, %d failed, in %s",
            self.logged,
            self.dropped,
            self.sampled_out,
            self.failed,
            self.directory,
        )

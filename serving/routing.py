"""Release routing inside a server: which versions to load, which one answers a request, and
what each version answered while a release is under way.

`serve` with an ML Metadata store runs a release controller (release/controller.py) in its own
process. It decides, from the release policy and the versions' states, which version is stable,
which one (if any) is the candidate, and how the candidate gets traffic; it writes that to a
routing file, replaced whole (write and rename) so that a reader never sees half of it:

    {"model": "taxi-tips", "serial": 12, "stable": 1796587895, "candidate": 1796588012,
     "mode": "canary", "canary_percent": 10.0, "load": [1796587895, 1796588012],
     "release_id": "1796588012-1765051200", "stats_dir": ".../release/taxi-tips/stats"}

Every server process (each worker of `serve`) follows the file:
- its repository loads the versions in `load` and nothing else: a version awaiting approval, or
  rejected, is never loaded, so never served;
- TF Serving's version labels: `stable` and `canary` (the candidate, in canary or shadow mode)
  name versions (REST `/labels/NAME`, gRPC `ModelSpec.version_label`);
- a request that names no version and no label is split: in canary mode, `canary_percent` of
  them go to the candidate, chosen by a hash of the request's routing key (the client's
  `X-Routing-Key` header or `x-routing-key` gRPC metadata, else its request id), so one client
  that sends a key always gets the same version; in shadow mode the stable version answers and a
  copy of the request runs on the candidate afterwards, its answer dropped;
- the stable version stays the one a worker answered with until the new stable one is loaded
  here (TF Serving's availability-preserving switch), and the candidate gets no traffic in a
  worker that has not loaded it yet.

The requests so split (not those that name a version or label) are counted per version: requests,
rows, server errors, a reservoir sample of latencies and of answers. Each process writes its
counts every second to `<stats_dir>/<release_id>/worker-<pid>.json`, where the controller adds
them up and judges the candidate by them; a process started again writes a file of its own, so
nothing counted is lost, and neither is it after `serve` itself restarts.
"""

from __future__ import annotations

import contextvars
import dataclasses
import json
import logging
import os
import random
import re
import threading
import time
import zlib
from typing import Any

import numpy as np

log = logging.getLogger("serving")

STABLE, CANARY = "stable", "canary"
CANARY_MODE, SHADOW_MODE = "canary", "shadow"
KEY_HEADER = "X-Routing-Key"  # REST; gRPC metadata: ROUTING_KEY_METADATA
ROUTING_KEY_METADATA = "x-routing-key"
LABEL_PATTERN = re.compile(r"[A-Za-z0-9_]+")  # TF Serving's version labels
# The routing key of the request being answered (the client's key, else its request id).
REQUEST_KEY: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "routing_key", default=None
)
SAMPLE_SIZE = 2000  # latencies and answers kept per version and process (a reservoir sample)
ANSWER_VALUES = 16  # an answer row longer than this is cut (the guard reads the first values)
_REFRESH_SECONDS = 0.25
_WRITE_SECONDS = 1.0


@dataclasses.dataclass(frozen=True)
class RoutingTable:
    """The controller's decision, as read from the routing file."""

    stable: int | None = None
    candidate: int | None = None
    mode: str | None = None  # CANARY_MODE or SHADOW_MODE while a candidate is released
    canary_percent: float = 0.0
    load: tuple[int, ...] = ()
    release_id: str | None = None
    stats_dir: str | None = None
    serial: int = 0

    @classmethod
    def from_json(cls, given: dict[str, Any]) -> RoutingTable:
        return cls(
            stable=given.get("stable"),
            candidate=given.get("candidate"),
            mode=given.get("mode"),
            canary_percent=float(given.get("canary_percent") or 0.0),
            load=tuple(int(v) for v in given.get("load") or ()),
            release_id=given.get("release_id"),
            stats_dir=given.get("stats_dir"),
            serial=int(given.get("serial") or 0),
        )

    def labels(self) -> dict[str, int]:
        labels = {STABLE: self.stable} if self.stable is not None else {}
        if self.candidate is not None and self.mode:
            labels[CANARY] = self.candidate
        return labels


def write_table(path: str, table: dict[str, Any]) -> None:
    """Replaces the routing file whole: readers see the old decision or the new one."""
    temporary = f"{path}.{os.getpid()}.tmp"
    with open(temporary, "w") as f:
        json.dump(table, f, indent=1)
    os.replace(temporary, path)


def bucket(key: str) -> float:
    """Where a routing key falls in [0, 100): the same in every process and on every run."""
    return (zlib.crc32(key.encode()) % 10000) / 100


def answer_row(outputs: dict[str, np.ndarray], row: int) -> list[float] | None:
    """One row of the first floating-point output (by name), as the guard compares answers:
    Predict's probabilities or value, Classify's scores."""
    for name in sorted(outputs):
        array = np.asarray(outputs[name])
        if array.dtype.kind == "f" and array.ndim >= 1 and array.shape[0] > row:
            return [float(v) for v in np.ravel(array[row])[:ANSWER_VALUES]]
    return None


@dataclasses.dataclass
class Counts:
    """One version's counts for a release: in one process as it answers, or added up over the
    processes (release/guard.py judges those)."""

    requests: int = 0
    rows: int = 0
    errors: int = 0
    latencies_ms: list[float] = dataclasses.field(default_factory=list)  # a sample
    answers: list[list[float]] = dataclasses.field(default_factory=list)  # a sample
    _seen_latencies: int = dataclasses.field(default=0, repr=False)
    _seen_answers: int = dataclasses.field(default=0, repr=False)

    @property
    def error_rate(self) -> float:
        return self.errors / self.requests if self.requests else 0.0

    @property
    def p99_ms(self) -> float | None:
        return float(np.percentile(self.latencies_ms, 99)) if self.latencies_ms else None

    def keep(self, sample: list, seen: int, value, rng: random.Random) -> None:
        """Reservoir sampling: every value seen has the same chance to be in the sample."""
        if len(sample) < SAMPLE_SIZE:
            sample.append(value)
        else:
            slot = rng.randrange(seen)
            if slot < SAMPLE_SIZE:
                sample[slot] = value

    def add(self, written: dict[str, Any]) -> None:
        """Adds another process's counts, as `as_json` wrote them (their samples joined)."""
        self.requests += written["requests"]
        self.rows += written["rows"]
        self.errors += written["errors"]
        self.latencies_ms += written["latencies_ms"]
        self.answers += written["answers"]

    def as_json(self) -> dict[str, Any]:
        return {
            "requests": self.requests,
            "rows": self.rows,
            "errors": self.errors,
            "latencies_ms": [round(v, 3) for v in self.latencies_ms],
            "answers": [[round(v, 6) for v in a] for a in self.answers],
        }


class Router:
    """Follows the routing file, answers which version a request goes to, and counts what the
    split requests got. Thread-safe: requests are routed on the event loop and counted on the
    batch threads."""

    def __init__(self, routing_file: str):
        self.routing_file = routing_file
        self.table = RoutingTable()
        self._file_state: tuple | None = None
        self._lock = threading.Lock()
        self._counts: dict[str, Counts] = {}
        self._counts_release: str | None = None
        self._dirty = False
        self._last_written = 0.0
        self._rng = random.Random(os.getpid())
        self._answered_stable: int | None = None  # the stable version this process last used
        self._stopped = threading.Event()
        self._thread: threading.Thread | None = None
        self.refresh()

    # -- following the file -------------------------------------------------------------------

    def refresh(self) -> bool:
        """Reads the routing file again if it changed; True when the table changed."""
        try:
            stat = os.stat(self.routing_file)
        except FileNotFoundError:
            return False
        state = (stat.st_mtime_ns, stat.st_size, stat.st_ino)
        if state == self._file_state:
            return False
        try:
            with open(self.routing_file) as f:
                table = RoutingTable.from_json(json.load(f))
        except (OSError, ValueError) as e:  # being replaced, or damaged: keep the last one
            log.warning("Reading the routing file %s failed: %s", self.routing_file, e)
            return False
        self._file_state = state
        if table == self.table:
            return False
        previous, self.table = self.table, table
        if table.release_id != previous.release_id:
            self.flush()  # the last counts of the release that ended
            with self._lock:
                self._counts, self._counts_release = {}, table.release_id
        if table.stable is None:
            log.info("Routing: no version released yet")
        else:
            log.info(
                "Routing: stable %s%s",
                table.stable,
                f", {table.mode} {table.candidate}"
                + (f" ({table.canary_percent:g}% of requests)" if table.mode == CANARY_MODE else "")
                if table.mode
                else "",
            )
        return True

    def start(self) -> None:
        self._thread = threading.Thread(target=self._follow, daemon=True, name="routing")
        self._thread.start()

    def stop(self) -> None:
        self._stopped.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
        self.flush()

    def _follow(self) -> None:
        while not self._stopped.wait(_REFRESH_SECONDS):
            try:
                self.refresh()
                if self._dirty and time.monotonic() - self._last_written >= _WRITE_SECONDS:
                    self.flush()
            except Exception:  # noqa: BLE001 - retried at the next turn
                log.exception("Following the routing file failed")

    # -- routing ------------------------------------------------------------------------------

    def wanted(self) -> set[int]:
        return set(self.table.load)

    def label_version(self, label: str) -> int | None:
        return self.table.labels().get(label)

    def split(self, available: set[int]) -> tuple[int | None, int | None]:
        """(the version a request that names none goes to, the version its shadow copy goes
        to or None), among the versions this process has AVAILABLE; (None, None) when no
        stable version is."""
        table = self.table
        stable = table.stable
        if stable not in available:
            # The new stable version is not loaded here yet: the one this process answered
            # with keeps answering until it is.
            stable = self._answered_stable if self._answered_stable in available else None
        else:
            self._answered_stable = stable
        candidate = table.candidate if table.candidate in available else None
        if stable is None:  # nothing to answer with: never the candidate's whole traffic
            return None, None
        if candidate is None or table.mode is None:
            return stable, None
        if table.mode == SHADOW_MODE:
            return stable, candidate
        key = REQUEST_KEY.get()
        point = bucket(key) if key else self._rng.random() * 100
        return (candidate if point < table.canary_percent else stable), None

    # -- counting -----------------------------------------------------------------------------

    def record(
        self,
        version: int,
        latency_ms: float,
        *,
        rows: int,
        error: bool,
        outputs: dict[str, np.ndarray] | None,
        shadow: bool = False,
    ) -> None:
        """Counts one split request (or its shadow copy) answered by `version`."""
        if self.table.release_id is None:
            return
        key = f"{version}/shadow" if shadow else str(version)
        with self._lock:
            counts = self._counts.setdefault(key, Counts())
            counts.requests += 1
            counts.rows += rows
            counts.errors += int(error)
            counts._seen_latencies += 1
            counts.keep(counts.latencies_ms, counts._seen_latencies, latency_ms, self._rng)
            if outputs is not None:
                for row in range(rows):
                    answer = answer_row(outputs, row)
                    if answer is None:
                        break
                    counts._seen_answers += 1
                    counts.keep(counts.answers, counts._seen_answers, answer, self._rng)
            self._dirty = True

    def flush(self) -> None:
        """Writes this process's counts for the current release (replacing its last file)."""
        with self._lock:
            if not self._dirty or self._counts_release is None or not self.table.stats_dir:
                return
            content = {
                "pid": os.getpid(),
                "release_id": self._counts_release,
                "written": time.time(),
                "versions": {k: c.as_json() for k, c in self._counts.items()},
            }
            self._dirty = False
            self._last_written = time.monotonic()
        folder = os.path.join(self.table.stats_dir, self._counts_release)
        try:
            os.makedirs(folder, exist_ok=True)
            write_table(os.path.join(folder, f"worker-{os.getpid()}.json"), content)
        except OSError as e:
            log.warning("Writing the release counts to %s failed: %s", folder, e)

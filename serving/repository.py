"""The versions of one model under its base path, managed as TensorFlow Serving manages them.

TF Serving's file-system source re-scans the base path (every `--file_system_poll_wait_seconds`)
for numeric version folders, and its version policy says which to serve: the latest one (the
default) or the specific versions asked for. A new version is loaded before the one it replaces
is unloaded, so a request always finds one (TF Serving's availability-preserving transition).
A version is warmed up before it is AVAILABLE, from the warm-up requests in its folder
(serving/warmup.py). Each version's state follows TF Serving's lifecycle: START, LOADING, AVAILABLE, UNLOADING, END, with
the error kept for a version that failed to load.

One difference, on purpose: a version folder is loaded only once its contents have stayed the same
for one scan, so that a version still being copied in (TFX's Pusher copies file by file) is not
loaded half-written.
"""

from __future__ import annotations

import dataclasses
import gc
import logging
import os
import threading
import time
from typing import Any

import tensorflow as tf
from google.protobuf import text_format
from tensorflow.core.protobuf import meta_graph_pb2, saved_model_pb2
from tensorflow_metadata.proto.v0 import schema_pb2
from tensorflow_serving.apis import get_model_status_pb2

from serving import tf_examples, warmup
from serving.routing import Router

State = get_model_status_pb2.ModelVersionStatus.State
SCHEMA_ASSET = os.path.join("assets.extra", "schema.pbtxt")
log = logging.getLogger("serving")


class NotServed(LookupError):
    """The model or version asked for is not served (TF Serving answers NOT_FOUND or
    UNAVAILABLE)."""

    def __init__(self, message: str, *, unavailable: bool = False):
        super().__init__(message)
        self.unavailable = unavailable


@dataclasses.dataclass
class ServedVersion:
    """One version of the model: its state and, once AVAILABLE, what requests run against."""

    version: int
    path: str
    state: int = State.START
    error: str | None = None
    saved_model: Any = None
    signature_defs: dict[str, meta_graph_pb2.SignatureDef] = dataclasses.field(default_factory=dict)
    # The serving features of the schema the version carries; None: it carries none.
    features: dict[str, tf_examples.FeatureSpec] | None = None
    example_writer: tf_examples.ExampleWriter | None = None  # for those features
    fingerprint: tuple = ()  # the folder's contents when it was loaded

    def signature(self, name: str):
        return self.saved_model.signatures[name]


def version_folders(base_path: str) -> dict[int, str]:
    """The numeric version folders under a model's base path, by version."""
    if not tf.io.gfile.isdir(base_path):
        return {}
    return {
        int(name.strip("/")): os.path.join(base_path, name.strip("/"))
        for name in tf.io.gfile.listdir(base_path)
        if name.strip("/").isdigit()
    }


def _folder_fingerprint(path: str) -> tuple:
    """What the folder holds now (names and sizes): equal on two scans means the copy is done."""
    entries = []
    for folder, _, files in tf.io.gfile.walk(path):
        for name in files:
            full = os.path.join(folder, name)
            entries.append((full, tf.io.gfile.stat(full).length))
    return tuple(sorted(entries))


def read_signature_defs(path: str) -> dict[str, meta_graph_pb2.SignatureDef]:
    """The SignatureDefs of a SavedModel's serving graph, as TF Serving reads them (method
    names, input and output tensors), from its saved_model.pb."""
    saved_model = saved_model_pb2.SavedModel()
    with tf.io.gfile.GFile(os.path.join(path, "saved_model.pb"), "rb") as f:
        saved_model.ParseFromString(f.read())
    for meta_graph in saved_model.meta_graphs:
        if tf.saved_model.SERVING in meta_graph.meta_info_def.tags:
            return dict(meta_graph.signature_def)
    raise ValueError(f"the SavedModel at {path} has no graph tagged 'serve'")


def read_schema(path: str) -> schema_pb2.Schema | None:
    """The schema of the raw features the version parses (assets.extra/schema.pbtxt), if any."""
    schema_path = os.path.join(path, SCHEMA_ASSET)
    if not tf.io.gfile.exists(schema_path):
        return None
    with tf.io.gfile.GFile(schema_path) as f:
        return text_format.Parse(f.read(), schema_pb2.Schema())


def read_serving_features(path: str) -> dict[str, tf_examples.FeatureSpec] | None:
    """What a serving request gives, typed, by the version's schema (None without one)."""
    schema = read_schema(path)
    return tf_examples.serving_features(schema) if schema is not None else None


def _exempt_from_garbage_collection() -> None:
    """Moves what is loaded so far (TensorFlow, the model: millions of Python objects) out of the
    cyclic garbage collector's reach. Otherwise each full collection walks them all, pausing
    every request for about 100 ms (seen as the p99 latency under load). Reference counting still
    frees them; only cycles in an unloaded version are kept, until the next load."""
    gc.unfreeze()
    gc.collect()
    gc.freeze()


class ModelRepository:
    """The served versions of one model, kept in step with its base path by a scanning thread."""

    def __init__(
        self,
        name: str,
        base_path: str,
        *,
        versions: tuple[int, ...] = (),
        poll_seconds: float = 1.0,
        router: Router | None = None,
    ):
        self.name = name
        self.base_path = base_path
        self.specific_versions = tuple(versions)  # empty: serve the latest
        self.router = router  # given: load the versions a release's routing file names
        self.poll_seconds = poll_seconds
        self._versions: dict[int, ServedVersion] = {}
        self._seen: dict[int, tuple] = {}  # version -> folder fingerprint at the last scan
        self._deleted: set[int] = set()  # served versions whose folder is gone (said once)
        self._lock = threading.Lock()
        self._stopped = threading.Event()
        self._thread: threading.Thread | None = None

    # -- scanning -----------------------------------------------------------------------------

    def start(self) -> None:
        self._thread = threading.Thread(target=self._scan_until_stopped, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stopped.set()
        if self._thread is not None:
            self._thread.join(timeout=30)

    def _scan_until_stopped(self) -> None:
        while not self._stopped.is_set():
            try:
                self.scan()
            except Exception:  # noqa: BLE001 - a failed scan is retried at the next one
                log.exception("Scanning %s failed", self.base_path)
            self._stopped.wait(self.poll_seconds)

    def _wanted(self, on_disk: dict[int, str]) -> set[int]:
        if self.router is not None:
            self.router.refresh()
            return self.router.wanted() & set(on_disk)
        if self.specific_versions:
            return set(self.specific_versions) & set(on_disk)
        return {max(on_disk)} if on_disk else set()

    def scan(self) -> None:
        """One scan: load the versions the policy wants once their folder is complete, then
        unload the ones it no longer wants, once every wanted version is AVAILABLE (or failed
        to load) and one is: a request always finds a version (TF Serving's
        availability-preserving transition)."""
        on_disk = version_folders(self.base_path)
        wanted = self._wanted(on_disk)
        for version in sorted(wanted, reverse=True):
            fingerprint = _folder_fingerprint(on_disk[version])
            complete = bool(fingerprint) and self._seen.get(version) == fingerprint
            self._seen[version] = fingerprint
            current = self._versions.get(version)
            # Load a new version; reload one unloaded earlier, or one that failed to load and
            # has changed since (a failed load is not retried on the same files).
            if complete and (
                current is None
                or (
                    current.state == State.END
                    and (current.error is None or current.fingerprint != fingerprint)
                )
            ):
                self._load(version, on_disk[version], fingerprint)
        wanted_states = [self._versions[v] for v in wanted if v in self._versions]
        settled = len(wanted_states) == len(wanted) and all(
            v.state == State.AVAILABLE or (v.state == State.END and v.error) for v in wanted_states
        )
        wanted_available = settled and any(v.state == State.AVAILABLE for v in wanted_states)
        for version, served in list(self._versions.items()):
            if served.state != State.AVAILABLE:
                continue
            if version not in wanted and wanted_available:
                self._unload(served)
            elif version not in on_disk and version not in self._deleted:
                # Its folder was deleted and nothing replaces it: it keeps answering from
                # memory (as TF Serving keeps a version whose folder disappears while no other
                # is found), and says so once.
                self._deleted.add(version)
                log.warning(
                    "Model %s version %d: its folder %s was deleted; still serving it from "
                    "memory until another version is pushed (a restarted server would not find "
                    "it)",
                    self.name,
                    version,
                    served.path,
                )
        self._deleted -= set(on_disk)  # back (restored): said again if deleted again

    def _load(self, version: int, path: str, fingerprint: tuple) -> None:
        served = ServedVersion(version, path, State.LOADING, fingerprint=fingerprint)
        with self._lock:
            self._versions[version] = served
        log.info("Loading model %s version %d from %s", self.name, version, path)
        try:
            served.signature_defs = read_signature_defs(path)
            served.features = read_serving_features(path)
            if served.features is not None:
                served.example_writer = tf_examples.ExampleWriter(served.features)
            served.saved_model = tf.saved_model.load(path, tags=[tf.saved_model.SERVING])
            if not served.saved_model.signatures:
                raise ValueError(f"the SavedModel at {path} has no serving signatures")
            started = time.monotonic()
            replayed = warmup.replay(path, served.saved_model.signatures)
            if replayed:
                log.info(
                    "Model %s version %d: %d warm-up requests replayed in %.2f s",
                    self.name,
                    version,
                    replayed,
                    time.monotonic() - started,
                )
        except Exception as e:  # noqa: BLE001 - any load failure ends the version, with why
            log.exception("Loading model %s version %d failed", self.name, version)
            with self._lock:
                served.saved_model = None
                served.error = f"{type(e).__name__}: {e}"
                served.state = State.END
            return
        _exempt_from_garbage_collection()
        with self._lock:
            served.state = State.AVAILABLE
        log.info("Model %s version %d is AVAILABLE", self.name, version)

    def _unload(self, served: ServedVersion) -> None:
        """Drops the version from what is served. Requests that already hold it finish on it: the
        record is replaced, not emptied, and the model is freed once the last one lets go."""
        log.info("Unloading model %s version %d", self.name, served.version)
        with self._lock:
            self._versions[served.version] = dataclasses.replace(
                served, state=State.END, saved_model=None
            )

    # -- answering ----------------------------------------------------------------------------

    def statuses(self, version: int | None = None) -> list[ServedVersion]:
        """Every version this server has seen (newest first), or the one asked for."""
        with self._lock:
            known = sorted(self._versions.values(), key=lambda v: -v.version)
        if version is None:
            if not known:
                raise NotServed(f"Could not find any versions of model {self.name}")
            return known
        found = [v for v in known if v.version == version]
        if not found:
            raise NotServed(f"Could not find version {version} of model {self.name}")
        return found

    def available(self) -> dict[int, ServedVersion]:
        with self._lock:
            return {v.version: v for v in self._versions.values() if v.state == State.AVAILABLE}

    def get(self, version: int | None = None) -> ServedVersion:
        """The AVAILABLE version asked for, or the highest AVAILABLE one."""
        available = self.available()
        with self._lock:
            loading = any(v.state in (State.START, State.LOADING) for v in self._versions.values())
        if version is None:
            if available:
                return available[max(available)]
            if loading:
                raise NotServed(f"Model {self.name} is still loading", unavailable=True)
            raise NotServed(f"Servable not found for request: Latest({self.name})")
        if version in available:
            return available[version]
        raise NotServed(f"Servable not found for request: Specific({self.name}, {version})")

    def wait_until_available(self, timeout: float) -> bool:
        """True once some version is AVAILABLE, False if none is within `timeout` seconds."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                if any(v.state == State.AVAILABLE for v in self._versions.values()):
                    return True
            self._stopped.wait(0.1)
        return False

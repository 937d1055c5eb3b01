"""Opening ML Metadata, and the facts every reader of it shares.

`open_store` is the one way the project opens a store. `StoreIndex` reads, once, what most
questions need (artifact type names, which node and run each execution belongs to, which execution
produced each artifact), so that listing a hundred artifacts does not ask the store a hundred times.
TFX's conventions for recording runs in ML Metadata are in `components/tfx_private.py`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime
import functools
import json
import os
import re
import socket
import sqlite3
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from google.protobuf import json_format
from ml_metadata import metadata_store
from ml_metadata.proto import metadata_store_pb2

from components import tfx_private
from pipeline.metadata_location import MetadataLocation, sqlite_location

Artifact = metadata_store_pb2.Artifact
Execution = metadata_store_pb2.Execution
Event = metadata_store_pb2.Event
OUTPUT_EVENTS = (Event.OUTPUT, Event.DECLARED_OUTPUT, Event.PENDING_OUTPUT)
INPUT_EVENTS = (Event.INPUT, Event.DECLARED_INPUT)

_STATE_NAMES = {
    Execution.COMPLETE: "executed",
    Execution.CACHED: "cached",
    Execution.FAILED: "failed",
    Execution.RUNNING: "running",
    Execution.NEW: "new",
    Execution.CANCELED: "canceled",
}


class NotFound(LookupError):
    """A store, run or artifact that does not exist; the message says which and what to do."""


class UnusableStore(Exception):
    """A store ML Metadata cannot use as it is (not a store, a newer one, read-only, a database
    server that cannot be reached or refuses the login); the message says which and what to do.
    The store is left as it is."""


class ServerUnreachable(UnusableStore):
    """No database server answers at the store's address (refused, or no answer in time): one
    that may be starting or restarting, which `--metadata-retry-seconds` waits for."""


_SQLITE_HEADER = b"SQLite format 3\x00"


@functools.cache
def library_schema_version() -> int:
    """The ML Metadata schema version this environment's MLMD library writes and reads."""
    with tempfile.TemporaryDirectory() as scratch:
        path = Path(scratch) / "probe.db"
        metadata_store.MetadataStore(sqlite_connection_config(path))
        return _schema_version(path)


def _schema_version(path: Path) -> int | None:
    """The MLMDEnv schema version of a SQLite file, or None when it has no MLMD tables."""
    connection = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        tables = {row[0] for row in connection.execute("SELECT name FROM sqlite_master")}
        if "MLMDEnv" not in tables:
            return None
        row = connection.execute("SELECT schema_version FROM MLMDEnv").fetchone()
        return int(row[0]) if row else None
    finally:
        connection.close()


def check_sqlite_store(path: Path, *, writable: bool) -> None:
    """Refuses, before ML Metadata opens it, a file it would fail on or change unasked: one that
    is not SQLite, a SQLite database without MLMD's tables (MLMD would add them), a store of a
    newer MLMD, and, when the caller will write, a read-only one. A missing file is fine."""
    path = Path(path)
    if not path.exists():
        return
    with path.open("rb") as f:
        if f.read(len(_SQLITE_HEADER)) != _SQLITE_HEADER:
            raise UnusableStore(
                f"{path} is not an ML Metadata store: it is not a SQLite database file. Move it "
                "away or choose another --output-dir (or --metadata-path); it was left as it is."
            )
    version = _schema_version(path)
    if version is None:
        raise UnusableStore(
            f"{path} is a SQLite database but not an ML Metadata store (it has no MLMDEnv table). "
            "Move it away or choose another --output-dir (or --metadata-path); it was left as it is."
        )
    if version > library_schema_version():
        raise UnusableStore(
            f"{path} was written by a newer ML Metadata (schema version {version}; this "
            f"environment's ML Metadata reads up to {library_schema_version()}). Use the "
            "environment that wrote it, or choose another --output-dir; it was left as it is."
        )
    read_only = not (path.stat().st_mode & 0o222) or not os.access(path, os.W_OK)
    if writable and (read_only or not os.access(path.parent, os.W_OK)):
        raise UnusableStore(
            f"{path} is read-only, and a run records every step in it. Make it and its folder "
            "writable (chmod u+w), or choose another --output-dir."
        )


def sqlite_connection_config(
    path: Path, read_only: bool = False
) -> metadata_store_pb2.ConnectionConfig:
    """MLMD connection to a SQLite file (created if missing unless `read_only`)."""
    return sqlite_location(path).connection_config(read_only=read_only)


def as_location(location: MetadataLocation | Path) -> MetadataLocation:
    """A location as given, or a path as the SQLite file it names."""
    return sqlite_location(location) if isinstance(location, Path) else location


def open_store(
    location: MetadataLocation | Path, *, writable: bool = False
) -> metadata_store.MetadataStore:
    """The store at `location` (a SQLite file, or a MySQL / PostgreSQL database).

    A SQLite file is opened read-only, and must exist, unless `writable`. A server database must
    exist and accept the login; UnusableStore says, naming host, port and database, why not.
    """
    location = as_location(location)
    if not location.is_sqlite:
        return connect_server(location)
    path = location.path
    if not writable and not path.is_file():
        raise NotFound(
            f"no ML Metadata store at {path} (run the pipeline first, or pass --metadata-uri)"
        )
    check_sqlite_store(path, writable=writable)
    return metadata_store.MetadataStore(location.connection_config(read_only=not writable))


CONNECT_TIMEOUT_SECONDS = 10
CONNECT_ATTEMPTS = 5
# Runs that connect to an empty database at once all create ML Metadata's tables. Whoever loses
# the race finds them half made (MLMD then says "Please retry"), or the server stops it: on
# PostgreSQL a collision in the catalog ("duplicate key value violates unique constraint
# "pg_type_typname_nsp_index"", "relation ... already exists", "deadlock detected"), on MariaDB
# "Deadlock found when trying to get lock; try restarting transaction". Seen with the tests'
# six processes at once. A later attempt finds the tables made.
_SCHEMA_RACE = re.compile(
    r"Please retry|duplicate key value violates|already exists|[Dd]eadlock|try restarting"
)


@contextlib.contextmanager
def native_stderr_captured() -> Iterator[list[str]]:
    """Captures what native code writes to file descriptor 2 instead of the terminal: ML
    Metadata's client libraries' reasons for a failed login (its exception leaves them out),
    TFDV's validation warnings."""
    captured: list[str] = []
    with tempfile.TemporaryFile(mode="w+") as sink:
        saved = os.dup(2)
        os.dup2(sink.fileno(), 2)
        try:
            yield captured
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            sink.seek(0)
            captured.append(sink.read())


def connect_server(location: MetadataLocation) -> metadata_store.MetadataStore:
    """Connects to ML Metadata on a MySQL or PostgreSQL server, or raises UnusableStore with the
    reason: no server at that address, a refused login, a missing database, a newer schema."""
    where = f"the {location.engine} server at {location.server_address()}"
    try:
        socket.create_connection((location.host, location.port), CONNECT_TIMEOUT_SECONDS).close()
    except socket.gaierror as e:
        raise UnusableStore(
            f"cannot reach {where}: host {location.host!r} is not known ({e.strerror}). Check the "
            "host in --metadata-uri (or MLMD_URI)."
        ) from None
    except TimeoutError:
        raise ServerUnreachable(
            f"cannot reach {where}: no answer within {CONNECT_TIMEOUT_SECONDS} s. Check the "
            "address in --metadata-uri (or MLMD_URI) and any firewall between."
        ) from None
    except OSError as e:
        raise ServerUnreachable(
            f"cannot reach {where}: {e.strerror or e}. Is the server running and listening on "
            "that port? Check --metadata-uri (or MLMD_URI)."
        ) from None
    for attempt in range(1, CONNECT_ATTEMPTS + 1):
        with native_stderr_captured() as native:
            try:
                return metadata_store.MetadataStore(location.connection_config())
            except Exception as e:  # noqa: BLE001 - MLMD raises RuntimeError or its own errors
                error = e
        if not _SCHEMA_RACE.search(str(error)) or attempt == CONNECT_ATTEMPTS:
            break
        time.sleep(0.5 * attempt)
    raise UnusableStore(_connect_failure(location, where, f"{error}\n{native[0]}")) from None


def _connect_failure(location: MetadataLocation, where: str, reason: str) -> str:
    """Why ML Metadata could not use a database it reached, in words, from its client's reason."""
    for secret in location.secrets():
        reason = reason.replace(secret, "****")
    newer = re.search(r"version (\d+) is greater than library version (\d+)", reason)
    if newer:
        return (
            f"{where} holds a store written by a newer ML Metadata (schema version "
            f"{newer[1]}; this environment's reads up to {newer[2]}). Use the environment that "
            "wrote it, or another database; it was left as it is."
        )
    if re.search(r"database \S+ does not exist|Unknown database|to database '", reason):
        return (
            f"{where}: database {location.database!r} does not exist, or user "
            f"{location.user!r} may not use it. Create it first (see README, Sharing ML Metadata "
            "with a team) or fix the database name in --metadata-uri; it is never created "
            "unasked."
        )
    if "no password supplied" in reason or (not location.password and "mysql" in reason):
        return (
            f"{where} wants a password for user {location.user!r} and none was given: set "
            "MLMD_PASSWORD, or pass --metadata-password-file FILE (or MLMD_PASSWORD_FILE)."
        )
    if re.search(r"password authentication failed|Access denied|mysql_real_connect", reason):
        return (
            f"{where} refused the login of user {location.user!r}: wrong user or password (or "
            "the user may not connect from this host). Check the user in --metadata-uri and the "
            "password in MLMD_PASSWORD or the password file."
        )
    first = next((line.strip() for line in reason.splitlines() if line.strip()), "no reason given")
    return f"ML Metadata could not use {where}: {first}"


@dataclasses.dataclass(frozen=True)
class NodeExecution:
    """One component's execution within a run."""

    node_id: str
    execution: Execution

    @property
    def state(self) -> str:
        """executed, cached, failed, ... ; a resolver that completed is "resolved"."""
        if (
            self.execution.type == tfx_private.RESOLVER_EXECUTION_TYPE
            and self.execution.last_known_state == Execution.COMPLETE
        ):
            return "resolved"
        return _STATE_NAMES.get(self.execution.last_known_state, "unknown")

    @property
    def seconds(self) -> float:
        e = self.execution
        return max(0, e.last_update_time_since_epoch - e.create_time_since_epoch) / 1000.0

    @property
    def failure(self) -> str | None:
        """The failure message ML Metadata holds for a failed execution."""
        return tfx_private.execution_failure(self.execution)


# ---- values ---------------------------------------------------------------------------------
def iso_time(ms: int) -> str:
    return datetime.datetime.fromtimestamp(ms / 1000).isoformat(timespec="seconds")


def value_of(value: metadata_store_pb2.Value) -> Any:
    """A property value as plain data (int, float, string, or a dict for a struct)."""
    kind = value.WhichOneof("value")
    if kind == "struct_value":
        return json_format.MessageToDict(value.struct_value)
    return getattr(value, kind) if kind else None


def properties(item: Artifact | Execution) -> dict[str, Any]:
    """Properties and custom properties together, as plain data."""
    props = {k: value_of(v) for k, v in item.properties.items()}
    props.update({k: value_of(v) for k, v in item.custom_properties.items()})
    return props


def custom_property(item: Artifact | Execution, name: str) -> Any:
    """A custom property's value, or None."""
    if name not in item.custom_properties:
        return None
    return value_of(item.custom_properties[name])


def split_names(artifact: Artifact) -> list[str]:
    """The split names an Examples, statistics or anomalies artifact holds."""
    encoded = (
        artifact.properties["split_names"].string_value
        if "split_names" in artifact.properties
        else ""
    )
    return json.loads(encoded) if encoded else []


# ---- questions about executions --------------------------------------------------------------
def output_artifacts(
    store: metadata_store.MetadataStore, execution_id: int
) -> dict[str, list[Artifact]]:
    """Output artifacts of an execution, by output key."""
    return _artifacts_by_key(store, execution_id, OUTPUT_EVENTS)


def input_artifacts(
    store: metadata_store.MetadataStore, execution_id: int
) -> dict[str, list[Artifact]]:
    """Input artifacts of an execution, by input key."""
    return _artifacts_by_key(store, execution_id, INPUT_EVENTS)


def _artifacts_by_key(
    store: metadata_store.MetadataStore, execution_id: int, event_types: tuple
) -> dict[str, list[Artifact]]:
    events = [e for e in store.get_events_by_execution_ids([execution_id]) if e.type in event_types]
    artifacts = {a.id: a for a in store.get_artifacts_by_id([e.artifact_id for e in events])}
    by_key: dict[str, list[Artifact]] = {}
    for event in events:
        key = event.path.steps[0].key if event.path.steps else ""
        by_key.setdefault(key, []).append(artifacts[event.artifact_id])
    return by_key


def latest_node_execution(
    store: metadata_store.MetadataStore, pipeline_name: str, node_id: str, run_id: str
) -> NodeExecution | None:
    """A node's most recent execution in run `run_id` (other runs may share the store, and may be
    running at the same time)."""
    node = store.get_context_by_type_and_name(
        tfx_private.NODE_CONTEXT, tfx_private.node_context_name(pipeline_name, node_id)
    )
    run = store.get_context_by_type_and_name(tfx_private.PIPELINE_RUN_CONTEXT, run_id)
    if node is None or run is None:
        return None
    in_run = {e.id for e in store.get_executions_by_context(run.id)}
    executions = [e for e in store.get_executions_by_context(node.id) if e.id in in_run]
    if not executions:
        return None
    return NodeExecution(node_id, max(executions, key=lambda e: e.id))


class StoreIndex:
    """Read-only questions over one store, with what they share read once (a snapshot)."""

    def __init__(self, store: metadata_store.MetadataStore, location: MetadataLocation):
        self.store = store
        self.location = location
        self.type_names = {t.id: t.name for t in store.get_artifact_types()}
        self.node_of_execution: dict[int, str] = {}
        self.run_of_execution: dict[int, str] = {}
        for context in store.get_contexts():
            if context.type == tfx_private.NODE_CONTEXT:
                node_id = tfx_private.node_id_from_context_name(context.name)
                for execution in store.get_executions_by_context(context.id):
                    self.node_of_execution[execution.id] = node_id
            elif context.type == tfx_private.PIPELINE_RUN_CONTEXT:
                for execution in store.get_executions_by_context(context.id):
                    self.run_of_execution[execution.id] = context.name

    @classmethod
    def open(cls, location: MetadataLocation | Path) -> StoreIndex:
        location = as_location(location)
        return cls(open_store(location), location)

    @functools.cached_property
    def producing_execution(self) -> dict[int, int]:
        """Artifact id -> id of the execution that output it, from one scan of the events."""
        artifact_ids = [a.id for a in self.store.get_artifacts()]
        return {
            e.artifact_id: e.execution_id
            for e in self.store.get_events_by_artifact_ids(artifact_ids)
            if e.type in OUTPUT_EVENTS
        }

    def type_name(self, artifact: Artifact) -> str:
        return self.type_names.get(artifact.type_id, artifact.type)

    @functools.cached_property
    def _execution_type_names(self) -> dict[int, str]:
        return {t.id: t.name for t in self.store.get_execution_types()}

    def execution_type_name(self, execution: Execution) -> str:
        return self._execution_type_names.get(execution.type_id, execution.type)

    def node_execution(self, execution: Execution) -> NodeExecution:
        return NodeExecution(self.node_of_execution.get(execution.id, "?"), execution)

    def artifact(self, artifact_id: int) -> Artifact:
        found = self.store.get_artifacts_by_id([artifact_id])
        if not found:
            raise NotFound(f"no artifact with id {artifact_id}; `inspect artifacts` lists them")
        return found[0]

    def sibling_outputs(self, artifact: Artifact) -> dict[str, str]:
        """Output key -> URI of every output of the execution that produced `artifact`."""
        execution_id = self.producing_execution.get(artifact.id)
        if execution_id is None:
            return {}
        outputs = output_artifacts(self.store, execution_id)
        return {key: artifacts[0].uri for key, artifacts in outputs.items() if artifacts}


def keyed_event(kind: int, key: str, artifact_id: int | None = None) -> Event:
    """An event of `kind` (INPUT, OUTPUT) under `key`, as TFX records them (key, index 0)."""
    event = Event(type=kind)
    if artifact_id is not None:
        event.artifact_id = artifact_id
    event.path.steps.add().key = key
    event.path.steps.add().index = 0
    return event

"""ML Metadata calls that outlast a database server's restart (`--metadata-retry-seconds`).

ML Metadata's own client retries only `AbortedError` (a transaction that lost a race). When the
MySQL or PostgreSQL server behind it goes away, every call fails at once with the client
library's words ("Lost connection to MySQL server during query", "server closed the connection
unexpectedly"), and TFX fails the component. `install()` wraps `MetadataStore`'s one call path
and its constructor, in whichever process runs them (the runner and each component's process):
a call that failed because the server cannot be reached is tried again, with back-off, on a new
connection, until the server answers or `seconds` have passed since the first failure; then
`MetadataServerLost` says which server and for how long.

A write whose connection broke after the server committed it but before the answer arrived is
sent again; ML Metadata's writes that TFX makes there (an execution's state, its output
artifacts) are idempotent updates of known ids, or creations TFX repeats itself when told they
exist. SQLite stores are files: nothing here applies to them.
"""

from __future__ import annotations

import itertools
import logging
import re
import socket
import time
from collections.abc import Iterator

from ml_metadata import errors
from ml_metadata.metadata_store import metadata_store
from ml_metadata.metadata_store.pywrap.metadata_store_extension import (
    metadata_store as metadata_store_serialized,
)
from ml_metadata.proto import metadata_store_pb2

log = logging.getLogger(__name__)

# What MySQL's, MariaDB's and PostgreSQL's client libraries say when the server is not there
# (checked on this machine against MariaDB 10.11 and PostgreSQL 15 killed mid-run).
_UNREACHABLE = (
    "Lost connection to",
    "server has gone away",
    "Can't connect to",
    "mysql_real_connect failed",
    "server closed the connection unexpectedly",
    "terminating connection",
    "could not connect to server",
    "connection to server at",
    "connection pointer is NULL",
    "no connection to the server",
    "Connection refused",
    "the database system is starting up",
    "the database system is shutting down",
    "the database system is in recovery mode",
)
_FIRST_WAIT_SECONDS = 0.5
_LONGEST_WAIT_SECONDS = 5.0

_retry_seconds = 0.0
_installed = False


class MetadataServerLost(errors.UnavailableError):
    """The ML Metadata database server could not be reached for `--metadata-retry-seconds`."""


def is_unreachable(error: BaseException, config=None) -> bool:
    """True when `error` says the database server cannot be reached (not a refused login, a
    missing table or a bad request). ML Metadata's PostgreSQL client can fail a connection with
    no words at all ("PostgreSQL metadata source error: "): given the store's `config`, an error
    of ML Metadata's whose words say nothing is judged by whether the server's port answers."""
    if isinstance(error, MetadataServerLost):
        return True
    if not isinstance(error, (errors.StatusError, RuntimeError)):
        return False
    text = str(error)
    if any(marker in text for marker in _UNREACHABLE):
        return True
    return bool(server_of(config) and _METADATA_ERROR.search(text)) and not _port_answers(config)


# ML Metadata's own wording of a failed call or connection (TFX's, around it, included).
_METADATA_ERROR = re.compile(
    r"metadata source error|mysql_\w+ failed|Failed to establish connection to Metadata"
)


def _port_answers(config) -> bool:
    address = (
        (config.mysql.host, int(config.mysql.port))
        if config.HasField("mysql")
        else (config.postgresql.host, int(config.postgresql.port or 5432))
    )
    try:
        socket.create_connection(address, timeout=2).close()
        return True
    except OSError:
        return False


def server_of(config) -> str:
    """`the MySQL server at host:port` for a connection config, or "" (SQLite, gRPC)."""
    if not isinstance(config, metadata_store_pb2.ConnectionConfig):
        return ""
    if config.HasField("mysql"):
        return f"the MySQL server at {config.mysql.host}:{config.mysql.port}"
    if config.HasField("postgresql"):
        return f"the PostgreSQL server at {config.postgresql.host}:{config.postgresql.port}"
    return ""


def install(seconds: float) -> None:
    """From now on, in this process, ML Metadata calls to a server that cannot be reached are
    retried for up to `seconds` (0: not at all). Calling it again changes the bound."""
    global _retry_seconds, _installed
    _retry_seconds = seconds
    if _installed:
        return
    _installed = True
    store_class = metadata_store.MetadataStore
    original_init, original_call = store_class.__init__, store_class._call  # noqa: SLF001

    def __init__(self, config, enable_upgrade_migration: bool = False):
        _retrying(config, lambda: original_init(self, config, enable_upgrade_migration))

    def _call(self, method_name, request, response, extra_options=None):
        def attempt():
            if getattr(self, "_reconnect", False):
                _reconnect(self)
            return original_call(self, method_name, request, response, extra_options)

        def broken():
            self._reconnect = True

        result = _retrying(self._config, attempt, on_unreachable=broken)
        self._reconnect = False
        return result

    store_class.__init__ = __init__
    store_class._call = _call  # noqa: SLF001


def _reconnect(store: metadata_store.MetadataStore) -> None:
    """A new connection for `store` (the old one may be dead even once the server is back)."""
    if not getattr(store, "_using_db_connection", False):
        return
    migration = metadata_store_pb2.MigrationOptions()
    store._metadata_store = metadata_store_serialized.CreateMetadataStore(  # noqa: SLF001
        store._config.SerializeToString(),  # noqa: SLF001
        migration.SerializeToString(),
    )


def back_off(seconds: float) -> Iterator[None]:
    """Waits between attempts, for up to `seconds` from now: 0.5 s, doubling, at most 5 s, the
    last cut to end at the bound. Yields after each wait, once per attempt still to make."""
    deadline = time.monotonic() + seconds
    wait = _FIRST_WAIT_SECONDS
    while (left := deadline - time.monotonic()) > 0:
        time.sleep(min(wait, left))
        wait = min(wait * 2, _LONGEST_WAIT_SECONDS)
        yield


def _retrying(config, attempt, on_unreachable=lambda: None):
    server = server_of(config)
    if not server or _retry_seconds <= 0:
        return attempt()

    def unreachable(error: Exception) -> bool:
        if isinstance(error, MetadataServerLost) or not is_unreachable(error, config):
            return False
        on_unreachable()
        return True

    first_error = last_error = started = None
    for _ in itertools.chain([None], back_off(_retry_seconds)):
        try:
            result = attempt()
        except Exception as e:  # noqa: BLE001 - only an unreachable server is retried
            if not unreachable(e):
                raise
            last_error = e
            if first_error is None:
                first_error, started = e, time.monotonic()
                log.warning(
                    "ML Metadata: %s cannot be reached (%s); retrying for up to %g s "
                    "(--metadata-retry-seconds)",
                    server,
                    _first_line(e),
                    _retry_seconds,
                )
            continue
        if started is not None:
            log.warning(
                "ML Metadata: %s answers again after %.1f s", server, time.monotonic() - started
            )
        return result
    raise MetadataServerLost(
        f"{server} did not answer for {_retry_seconds:g} s "
        f"(--metadata-retry-seconds): {_first_line(first_error)}"
    ) from last_error


def _first_line(error: BaseException) -> str:
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    return lines[0][:200] if lines else type(error).__name__

"""Which failures are faults from outside the pipeline, what the run says of each, and the
ML Metadata retry's bounds (the faults themselves are caused for real in test_faults.py)."""

from __future__ import annotations

import errno
import time
from pathlib import Path

import pytest
from ml_metadata import errors
from ml_metadata.proto import metadata_store_pb2

from metadata import connection_retry
from orchestration import faults
from orchestration.node_process import NodeProcessDied, RemoteError

OUTPUT = Path("/tmp/outputs-of-a-run")

# What the client libraries said when this machine's MariaDB and PostgreSQL were killed.
MARIADB_LOST = errors.InternalError(
    "mysql_query failed: errno: Lost connection to MySQL server during query, error: Lost "
    "connection to MySQL server during query"
)
POSTGRESQL_LOST = errors.InternalError(
    "PostgreSQL metadata source error: FATAL:  terminating connection due to unexpected "
    "postmaster exit\nserver closed the connection unexpectedly"
)


def _mysql_config(port: int = 3306) -> metadata_store_pb2.ConnectionConfig:
    config = metadata_store_pb2.ConnectionConfig()
    config.mysql.host, config.mysql.port, config.mysql.database = "127.0.0.1", port, "mlmd"
    return config


@pytest.mark.parametrize(
    "error, unreachable",
    [
        (MARIADB_LOST, True),
        (POSTGRESQL_LOST, True),
        (RuntimeError("mysql_real_connect failed: errno: , error: "), True),
        (RuntimeError("PostgreSQL metadata source error: connection pointer is NULL\n"), True),
        (errors.InternalError("Access denied for user 'mlmd'@'localhost'"), False),
        (errors.NotFoundError("no execution with id 7"), False),
        (ValueError("Lost connection to MySQL server"), False),  # not ML Metadata's
    ],
)
def test_only_a_server_that_cannot_be_reached_counts_as_unreachable(error, unreachable):
    assert connection_retry.is_unreachable(error) is unreachable


def test_calls_are_retried_until_the_server_answers(monkeypatch):
    monkeypatch.setattr(connection_retry, "_retry_seconds", 10.0)
    monkeypatch.setattr(connection_retry, "_FIRST_WAIT_SECONDS", 0.01)
    failures = [MARIADB_LOST, MARIADB_LOST]
    broken = []

    def call():
        if failures:
            raise failures.pop()
        return "answered"

    result = connection_retry._retrying(
        _mysql_config(), call, on_unreachable=lambda: broken.append(1)
    )
    assert result == "answered" and len(broken) == 2  # a new connection before each retry


def test_retries_give_up_after_the_bound_naming_the_server_and_the_first_error(monkeypatch):
    monkeypatch.setattr(connection_retry, "_retry_seconds", 0.3)
    monkeypatch.setattr(connection_retry, "_FIRST_WAIT_SECONDS", 0.05)
    seen = []

    def call():
        seen.append(time.monotonic())
        raise MARIADB_LOST if len(seen) == 1 else RuntimeError("mysql_real_connect failed: ")

    with pytest.raises(connection_retry.MetadataServerLost) as lost:
        connection_retry._retrying(_mysql_config(3307), call)
    assert str(lost.value).startswith(
        "the MySQL server at 127.0.0.1:3307 did not answer for 0.3 s (--metadata-retry-seconds): "
        "mysql_query failed: errno: Lost connection"
    )
    assert 0.3 <= seen[-1] - seen[0] < 1.0 and len(seen) >= 3


def test_other_errors_and_sqlite_stores_are_not_retried(monkeypatch):
    monkeypatch.setattr(connection_retry, "_retry_seconds", 10.0)
    calls = []

    def refused():
        calls.append(1)
        raise errors.InternalError("Access denied for user 'mlmd'")

    with pytest.raises(errors.InternalError):
        connection_retry._retrying(_mysql_config(), refused)
    sqlite = metadata_store_pb2.ConnectionConfig()
    sqlite.sqlite.filename_uri = "/tmp/metadata.db"

    def lost():
        calls.append(1)
        raise MARIADB_LOST

    with pytest.raises(errors.InternalError):
        connection_retry._retrying(sqlite, lost)
    assert len(calls) == 2


def test_a_killed_process_is_a_transient_fault():
    died = NodeProcessDied(
        "the process running Trainer was killed by SIGKILL without reporting a result (out of "
        "memory? the full log has its last words)"
    )
    fault = faults.classify(died, "Trainer", OUTPUT)
    assert fault.kind == faults.KILLED and fault.transient
    assert fault.sentence.startswith("the process running Trainer was killed by SIGKILL")
    assert "words). Nothing it wrote was published." in fault.sentence


def test_a_lost_metadata_server_is_a_transient_fault_naming_the_server():
    lost = connection_retry.MetadataServerLost(
        "the PostgreSQL server at 127.0.0.1:5432 did not answer for 60 s "
        "(--metadata-retry-seconds): PostgreSQL metadata source error: FATAL: ..."
    )
    fault = faults.classify(lost, "Transform", OUTPUT)
    assert fault.kind == faults.METADATA_LOST and fault.transient
    assert "could not be reached during Transform: MetadataServerLost: the PostgreSQL server" in (
        fault.sentence
    )


def test_a_full_disk_names_the_file_under_the_output_dir_not_a_device_name(tmp_path):
    written = tmp_path / "pipeline_root" / "Trainer" / "model" / "12"
    written.mkdir(parents=True)
    # TensorFlow's wording: a device name before the path.
    error = RemoteError(
        "ResourceExhaustedError",
        f"/job:localhost/replica:0/task:0/device:CPU:0 failed to write {written}/variables.data; "
        "No space left on device",
    )
    fault = faults.classify(error, "Trainer", tmp_path)
    assert fault.kind == faults.DISK_FULL and not fault.transient
    assert fault.sentence.startswith(f"the disk is full: Trainer could not write {written}/")
    assert "MiB free)" in fault.sentence and "--output-dir at a larger disk" in fault.sentence
    oserror = OSError(errno.ENOSPC, "No space left on device", str(written / "x"))
    assert faults.classify(oserror, "Trainer", tmp_path).sentence.startswith(
        f"the disk is full: Trainer could not write {written / 'x'} "
    )


def test_sqlite_on_a_full_disk_names_the_store():
    error = errors.InternalError(
        "Cannot create node ... Error when executing query: database or disk is full query: INSERT"
    )
    store = Path("/tmp/store/metadata.db")
    fault = faults.classify(error, None, OUTPUT, sqlite_store=store)
    assert fault.kind == faults.DISK_FULL
    assert "the run could not write ML Metadata's SQLite store /tmp/store/metadata.db" in (
        fault.sentence
    )
    assert "--metadata-uri at a larger disk" in fault.sentence


def test_read_only_and_permission_denied_are_faults_named_by_path():
    read_only = OSError(errno.EROFS, "Read-only file system", "/srv/models/taxi")
    fault = faults.classify(read_only, "Pusher", OUTPUT)
    assert fault.kind == faults.READ_ONLY and not fault.transient
    assert fault.sentence.startswith("/srv/models/taxi is on a read-only filesystem (mounted at ")
    denied = OSError(errno.EACCES, "Permission denied", "/srv/models/taxi")
    assert (
        "may not be written (permission denied)"
        in faults.classify(denied, "Pusher", OUTPUT).sentence
    )


def test_a_components_own_error_is_not_a_fault():
    assert faults.classify(ValueError("column 'fare' has no values"), "Transform", OUTPUT) is None
    assert faults.classify(None, "Transform", OUTPUT) is None


def test_a_wordless_metadata_error_is_judged_by_whether_the_server_answers():
    """ML Metadata's PostgreSQL client may fail a connection with no words; the port decides."""
    import socket

    wordless = RuntimeError("PostgreSQL metadata source error: ")
    config = metadata_store_pb2.ConnectionConfig()
    config.postgresql.host = "127.0.0.1"
    with socket.socket() as listening:
        listening.bind(("127.0.0.1", 0))
        listening.listen()
        config.postgresql.port = str(listening.getsockname()[1])
        assert not connection_retry.is_unreachable(wordless, config)
    assert connection_retry.is_unreachable(wordless, config)  # nothing listens there now
    assert not connection_retry.is_unreachable(wordless)  # no store to ask

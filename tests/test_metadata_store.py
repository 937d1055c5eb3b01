"""Stores ML Metadata cannot use as they are: each refused with one clear message, exit code 2,
and the file left exactly as it was."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from ml_metadata import metadata_store

from metadata.store import library_schema_version, sqlite_connection_config
from orchestration import preflight
from tests.conftest import invoke, run_cli, taxi_config


def not_sqlite(path: Path) -> None:
    path.write_bytes(b"these are not the tables you are looking for\n" * 20)


def sqlite_without_mlmd(path: Path) -> None:
    connection = sqlite3.connect(path)
    connection.execute("CREATE TABLE notes (text TEXT)")
    connection.commit()
    connection.close()


def newer_mlmd(path: Path) -> None:
    metadata_store.MetadataStore(sqlite_connection_config(path))
    connection = sqlite3.connect(path)
    connection.execute("UPDATE MLMDEnv SET schema_version = ?", (library_schema_version() + 1,))
    connection.commit()
    connection.close()


@pytest.mark.parametrize(
    "make, problem",
    [
        (not_sqlite, "is not an ML Metadata store: it is not a SQLite database file"),
        (sqlite_without_mlmd, "is a SQLite database but not an ML Metadata store"),
        (newer_mlmd, "was written by a newer ML Metadata (schema version 11; this environment's"),
    ],
    ids=["not-sqlite", "sqlite-without-mlmd", "newer-schema"],
)
def test_a_store_this_mlmd_cannot_use_is_refused_and_left_untouched(tmp_path, make, problem):
    store = tmp_path / "metadata.db"
    make(store)
    before = store.read_bytes()
    with pytest.raises(preflight.SetupError) as refused:
        preflight.check_metadata_store(taxi_config(output_dir=tmp_path))
    assert f"{store} {problem}" in str(refused.value)
    result = invoke("inspect", "runs", f"--metadata-path={store}")
    assert result.exit_code == 2 and result.stderr.count("\n") == 1
    assert problem in result.stderr
    assert store.read_bytes() == before


def test_a_read_only_store_is_refused_for_a_run_but_can_be_read(tmp_path):
    store = tmp_path / "metadata.db"
    metadata_store.MetadataStore(sqlite_connection_config(store))
    store.chmod(0o444)
    before = store.read_bytes()
    with pytest.raises(preflight.SetupError, match=f"{store} is read-only, and a run records"):
        preflight.check_metadata_store(taxi_config(output_dir=tmp_path))
    result = invoke("inspect", "runs", f"--metadata-path={store}")
    assert "holds no pipeline runs yet" in result.stderr  # opened and read, nothing refused
    assert store.read_bytes() == before


def test_a_run_on_a_foreign_file_stops_before_anything_runs(sample_data_dir, tmp_path):
    store = tmp_path / "metadata.db"
    not_sqlite(store)
    before = store.read_bytes()
    result = run_cli(f"--data-dir={sample_data_dir}", f"--output-dir={tmp_path}")
    assert result.returncode == 2, result.stdout + result.stderr
    assert f"error: {store} is not an ML Metadata store" in result.stdout
    assert "[ 1/18]" not in result.stdout and "Traceback" not in result.stdout
    assert store.read_bytes() == before

"""--metadata-uri: the forms it takes, what it refuses, and a password that never shows."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from orchestration.console import secrets_redacted
from pipeline.metadata_location import MetadataUriError, parse_metadata_uri
from tests.conftest import invoke


@pytest.mark.parametrize(
    "uri, path",
    [
        ("sqlite:///outputs/metadata.db", Path("outputs/metadata.db").resolve()),
        ("sqlite:////tmp/store/metadata.db", Path("/tmp/store/metadata.db")),
        ("/tmp/store/metadata.db", Path("/tmp/store/metadata.db")),
        ("outputs/metadata.db", Path("outputs/metadata.db").resolve()),
        ("sqlite:///with%20space.db", Path("with space.db").resolve()),
    ],
)
def test_sqlite_forms(uri, path):
    location = parse_metadata_uri(uri)
    assert location.is_sqlite and location.path == path
    assert location.connection_config().sqlite.filename_uri == str(path)


def test_mysql_uri_with_default_port_and_password_from_elsewhere():
    location = parse_metadata_uri("mariadb://team@db.internal/mlmd", password="from-env")
    config = location.connection_config().mysql
    assert (config.host, config.port, config.database, config.user) == (
        "db.internal",
        3306,
        "mlmd",
        "team",
    )
    assert config.password == "from-env"
    assert config.skip_db_creation  # a typo in the name must not start an empty store


def test_postgresql_uri_password_in_uri_wins_and_is_decoded():
    location = parse_metadata_uri("postgres://a%40b:p%3Ass@10.0.0.5:6432/ml_md", password="env")
    config = location.connection_config().postgresql
    assert (config.host, config.port, config.dbname, config.user) == (
        "10.0.0.5",
        "6432",
        "ml_md",
        "a@b",
    )
    assert config.password == "p:ss"
    assert config.skip_db_creation


def test_the_password_is_in_neither_str_nor_repr():
    location = parse_metadata_uri("mysql://u:hunter2@h:1/db")
    assert str(location) == "mysql://u@h:1/db"
    assert "hunter2" not in repr(location)
    assert location.secrets() == ("hunter2",)


@pytest.mark.parametrize(
    "uri, problem",
    [
        ("mysq://u@h/db", "unknown scheme 'mysq'"),
        ("mysql://h/db", "names no user"),
        ("mysql://u@/db", "names no host"),
        ("postgresql://u@h:5432/", "names no database"),
        ("postgresql://u@h:port/db", "port"),
        ("mysql://u@h/db?ssl=1", "not supported"),
        ("sqlite://relative.db", "sqlite:///PATH"),
        ("  ", "is empty"),
    ],
)
def test_bad_uris_are_named(uri, problem):
    with pytest.raises(MetadataUriError, match=problem):
        parse_metadata_uri(uri)


def test_a_bad_uri_never_echoes_its_password():
    with pytest.raises(MetadataUriError) as raised:
        parse_metadata_uri("mysql://u:topsecret@h:notaport/db")
    assert "topsecret" not in str(raised.value)


def test_the_cli_names_the_option_and_exits_2(tmp_path):
    result = invoke("inspect", "runs", "--metadata-uri", "oracle://u@h/db")
    assert result.exit_code == 2
    assert result.stderr.startswith("error: --metadata-uri: 'oracle://u@h/db': unknown scheme")
    empty = tmp_path / "password"
    empty.write_text("")
    result = invoke(
        "inspect", "runs", "--metadata-uri", "mysql://u@h/db", f"--metadata-password-file={empty}"
    )
    assert result.exit_code == 2
    assert "--metadata-password-file: the password file" in result.stderr


def test_kubeflow_refuses_a_metadata_uri():
    result = invoke("--orchestrator=kubeflow", "--metadata-uri=mysql://u@h/db")
    assert result.exit_code == 2
    assert "Kubeflow Pipelines records its runs in its own ML Metadata" in result.stderr


def test_log_records_never_show_the_password(caplog):
    logger = logging.getLogger("tfx.some.module")
    with caplog.at_level(logging.INFO), secrets_redacted(("hunter2",)):
        logger.info("Using connection config:\n %s", 'mysql { password: "hunter2" }')
        logger.info("unrelated %d", 5)
    logger.info("after: hunter2")  # outside the block, records are left alone
    messages = [r.getMessage() for r in caplog.records]
    assert messages[0] == 'Using connection config:\n mysql { password: "****" }'
    assert messages[1] == "unrelated 5"

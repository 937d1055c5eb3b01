"""Where the pipeline's ML Metadata lives, given as one URI: a SQLite file of one's own, or a
MySQL / MariaDB or PostgreSQL database a team shares.

    sqlite:///outputs/metadata.db      everything after `sqlite:///` is the path, as SQLAlchemy reads
    sqlite:////abs/path/metadata.db    it; a plain path is a SQLite file too
    mysql://USER[:PASSWORD]@HOST[:3306]/DATABASE        (mariadb:// is the same)
    postgresql://USER[:PASSWORD]@HOST[:5432]/DATABASE   (postgres:// is the same)

A password in the URI shows in `ps` and in shell history, so it may come instead from the
MLMD_PASSWORD environment variable or from a file (`--metadata-password-file`). It is never part
of `str()` or `repr()` of a location. The database must exist: a typo in its name must not start an
empty store of its own (ML Metadata is told not to create it).
"""

from __future__ import annotations

import dataclasses
import urllib.parse
from pathlib import Path

from ml_metadata.proto import metadata_store_pb2

SERVER_SCHEMES = {"mysql": "mysql", "mariadb": "mysql", "postgresql": "postgresql",
                  "postgres": "postgresql"}  # fmt: skip
DEFAULT_PORTS = {"mysql": 3306, "postgresql": 5432}
ENGINE_NAMES = {"sqlite": "SQLite", "mysql": "MySQL", "postgresql": "PostgreSQL"}
URI_ENV_VAR = "MLMD_URI"
PASSWORD_ENV_VAR = "MLMD_PASSWORD"
PASSWORD_FILE_ENV_VAR = "MLMD_PASSWORD_FILE"


class MetadataUriError(ValueError):
    """A --metadata-uri (or MLMD_URI) that names no usable store; the message says what to fix."""


@dataclasses.dataclass(frozen=True)
class MetadataLocation:
    """A SQLite file (`path`) or a database on a server (`host`, `port`, `database`, `user`)."""

    scheme: str  # "sqlite", "mysql" or "postgresql"
    path: Path | None = None
    host: str = ""
    port: int = 0
    database: str = ""
    user: str = ""
    password: str = dataclasses.field(default="", repr=False, compare=False)

    @property
    def is_sqlite(self) -> bool:
        return self.scheme == "sqlite"

    @property
    def engine(self) -> str:
        return ENGINE_NAMES[self.scheme]

    def __str__(self) -> str:
        """The location for people and logs: a path, or a URI without the password."""
        if self.is_sqlite:
            return str(self.path)
        return f"{self.scheme}://{self.user}@{self.host}:{self.port}/{self.database}"

    def server_address(self) -> str:
        """`host:port, database 'db'`: what a connection error names."""
        return f"{self.host}:{self.port}, database {self.database!r}"

    def secrets(self) -> tuple[str, ...]:
        """Strings that must never reach a log or the console."""
        return (self.password,) if self.password else ()

    def connection_config(self, *, read_only: bool = False) -> metadata_store_pb2.ConnectionConfig:
        """ML Metadata's connection config (a SQLite file is created if missing unless read-only;
        a server database is never created)."""
        config = metadata_store_pb2.ConnectionConfig()
        if self.is_sqlite:
            config.sqlite.filename_uri = str(self.path)
            config.sqlite.connection_mode = (
                metadata_store_pb2.SqliteMetadataSourceConfig.READONLY
                if read_only
                else metadata_store_pb2.SqliteMetadataSourceConfig.READWRITE_OPENCREATE
            )
        elif self.scheme == "mysql":
            config.mysql.host = self.host
            config.mysql.port = self.port
            config.mysql.database = self.database
            config.mysql.user = self.user
            config.mysql.password = self.password
            config.mysql.skip_db_creation = True
        else:
            config.postgresql.host = self.host
            config.postgresql.port = str(self.port)
            config.postgresql.dbname = self.database
            config.postgresql.user = self.user
            config.postgresql.password = self.password
            config.postgresql.skip_db_creation = True
        return config


def sqlite_location(path: Path) -> MetadataLocation:
    return MetadataLocation("sqlite", path=Path(path).resolve())


def read_password_file(path: Path) -> str:
    """The password in a file: its first line, without the line break."""
    try:
        lines = Path(path).read_text().splitlines()
    except (OSError, UnicodeDecodeError) as e:
        raise MetadataUriError(f"cannot read the password file {path}: {e}") from e
    if not lines or not lines[0]:
        raise MetadataUriError(f"the password file {path} is empty; its first line is the password")
    return lines[0]


def parse_metadata_uri(uri: str, *, password: str | None = None) -> MetadataLocation:
    """The location a URI names; `password` is used when the URI itself carries none."""
    uri = uri.strip()
    if not uri:
        raise MetadataUriError("is empty; give sqlite:///PATH, mysql://... or postgresql://...")
    scheme, separator, rest = uri.partition(":")
    if not separator or "/" in scheme or len(scheme) == 1:  # a path (or C:\...) is a SQLite file
        return sqlite_location(Path(uri))
    scheme = scheme.lower()
    if scheme == "sqlite":
        if not rest.startswith("///") or len(rest) == 3:
            raise MetadataUriError(
                f"{uri!r}: a SQLite URI is sqlite:///PATH (sqlite:////abs/path for an absolute "
                "path), or give the path alone"
            )
        return sqlite_location(Path(urllib.parse.unquote(rest[3:])))
    if scheme not in SERVER_SCHEMES:
        raise MetadataUriError(
            f"{uri!r}: unknown scheme {scheme!r}; ML Metadata speaks sqlite:///PATH, "
            "mysql://USER@HOST:PORT/DATABASE and postgresql://USER@HOST:PORT/DATABASE"
        )
    return _server_location(uri, SERVER_SCHEMES[scheme], password)


def _server_location(uri: str, scheme: str, password: str | None) -> MetadataLocation:
    parts = urllib.parse.urlsplit(uri)
    shown = f"{scheme}://USER@HOST:PORT/DATABASE"
    try:
        port = parts.port or DEFAULT_PORTS[scheme]
    except ValueError:
        raise MetadataUriError(f"the port in {_without_password(uri)!r} is not a number") from None
    database = urllib.parse.unquote(parts.path.lstrip("/"))
    if not parts.hostname:
        raise MetadataUriError(f"{_without_password(uri)!r} names no host; the form is {shown}")
    if not parts.username:
        raise MetadataUriError(f"{_without_password(uri)!r} names no user; the form is {shown}")
    if not database or "/" in database:
        raise MetadataUriError(
            f"{_without_password(uri)!r} names no database (one path segment); the form is {shown}"
        )
    if parts.query or parts.fragment:
        raise MetadataUriError(
            f"{_without_password(uri)!r}: options after '?' or '#' are not supported"
        )
    in_uri = urllib.parse.unquote(parts.password) if parts.password is not None else None
    return MetadataLocation(
        scheme,
        host=parts.hostname,
        port=port,
        database=database,
        user=urllib.parse.unquote(parts.username),
        password=in_uri if in_uri is not None else (password or ""),
    )


def _without_password(uri: str) -> str:
    parts = urllib.parse.urlsplit(uri)
    if parts.password is None:
        return uri
    netloc = parts.netloc.replace(f":{parts.password}@", ":****@", 1)
    return urllib.parse.urlunsplit(parts._replace(netloc=netloc))

"""Real MariaDB and PostgreSQL servers for the shared-ML-Metadata tests.

Each server is Debian's (`make test` installs `mariadb-server` and `postgresql` when missing),
started as an unprivileged user (the `mysql` / `postgres` system user when the tests run as root,
else the current user), listening only on 127.0.0.1 at a free port, with its data in a new
temporary folder, and stopped (and its folder removed) by `stop()`.
"""

from __future__ import annotations

import contextlib
import ctypes
import dataclasses
import glob
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

USER = "mlmd"
PASSWORD = "s3cret-Pa55"  # the tests grep logs and `ps` for it
DATABASE = "mlmd"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_for_port(port: int, process: subprocess.Popen, log: Path, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the server exited ({process.returncode}):\n{log.read_text()}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.5):
            return
        time.sleep(0.2)
    raise RuntimeError(f"the server did not listen on port {port}:\n{log.read_text()}")


@dataclasses.dataclass
class DatabaseServer:
    """A running server: its scheme, port, data folder and process."""

    scheme: str
    port: int
    folder: Path
    process: subprocess.Popen
    admin_sql: list[str]  # a command that runs the SQL given as its last argument as superuser
    # How it was started (the command through the user prefix, and its log): `restart()`.
    launch: tuple[list[str], str | None, list[str], Path] | None = None

    def uri(self, *, password: str | None = None, database: str = DATABASE, port=None) -> str:
        secret = f":{password}" if password is not None else ""
        return f"{self.scheme}://{USER}{secret}@127.0.0.1:{port or self.port}/{database}"

    def create_database(self, name: str) -> None:
        """A new, empty database that the test user owns."""
        statements = [f"CREATE DATABASE {name}"]
        if self.scheme == "mysql":
            statements += [f"GRANT ALL ON {name}.* TO '{USER}'@'{host}'" for host in _MARIADB_HOSTS]
        for sql in statements:
            subprocess.run([*self.admin_sql, sql], check=True, capture_output=True)

    @property
    def pid(self) -> int:
        return self.process.pid

    def kill(self) -> None:
        """SIGKILL to every process of the server, as a crash or the OOM killer would end it;
        its data folder stays, for `restart()`."""
        for pid in server_processes(self):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        self.process.wait(30)
        deadline = time.monotonic() + 30
        while server_processes(self) and time.monotonic() < deadline:
            time.sleep(0.1)

    def restart(self) -> None:
        """Starts the server again on its data folder and port (after `kill()`)."""
        prefix, user, command, log = self.launch
        if self.scheme == "postgresql":  # a crashed postmaster leaves its pid file
            with contextlib.suppress(FileNotFoundError):
                (self.folder / "data" / "postmaster.pid").unlink()
            for lock in self.folder.glob(".s.PGSQL.*"):
                lock.unlink()
        self.process = _spawn(prefix, user, command, log)
        _wait_for_port(self.port, self.process, log)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(60)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
        shutil.rmtree(self.folder, ignore_errors=True)


def _stop_with_parent() -> None:
    """In the server's process (runuser, which passes signals on to the server): SIGTERM when
    the test process ends, however it ends, so that no server outlives the tests."""
    PR_SET_PDEATHSIG = 1
    ctypes.CDLL("libc.so.6", use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


def _spawn(prefix: list[str], user: str | None, command: list[str], log: Path) -> subprocess.Popen:
    """Starts a server as `user` (through `prefix`), its output in `log` (which it may write)."""
    with open(os.open(log, os.O_WRONLY | os.O_CREAT, 0o666), "w") as out:
        if user:
            shutil.chown(log, user, user)
        return subprocess.Popen(
            [*prefix, *command],
            stdout=out,
            stderr=subprocess.STDOUT,
            preexec_fn=_stop_with_parent,
        )


def _server_user(system_user: str) -> tuple[list[str], str | None]:
    """The command prefix that drops to an unprivileged user, and that user (None: ourselves)."""
    if os.geteuid() != 0:
        return [], None
    pwd.getpwnam(system_user)  # KeyError: the Debian package creates it
    return ["runuser", "-u", system_user, "--"], system_user


def _new_folder(prefix: str, owner: str | None) -> Path:
    folder = Path(tempfile.mkdtemp(prefix=prefix))
    if owner:
        shutil.chown(folder, owner, owner)
    return folder


def start_mariadb() -> DatabaseServer:
    server = shutil.which("mariadbd") or shutil.which("mysqld") or "/usr/sbin/mariadbd"
    prefix, user = _server_user("mysql")
    folder = _new_folder("mlmd-mariadb-", user)
    data, socket_path, log = folder / "data", folder / "mysqld.sock", folder / "server.log"
    subprocess.run(
        [
            *prefix,
            shutil.which("mariadb-install-db") or "mysql_install_db",
            "--no-defaults",
            f"--datadir={data}",
            "--auth-root-authentication-method=socket",
            "--skip-test-db",
        ],
        check=True,
        capture_output=True,
    )
    port = free_port()
    command = [
        server,
        "--no-defaults",
        f"--datadir={data}",
        f"--port={port}",
        "--bind-address=127.0.0.1",
        f"--socket={socket_path}",
        f"--pid-file={folder / 'mysqld.pid'}",
        f"--log-error={log}",
        "--skip-log-bin",
        "--innodb-buffer-pool-size=64M",
        "--max-connections=200",
    ]
    process = _spawn(prefix, user, command, log)
    _wait_for_port(port, process, log)
    # The server's superuser is the OS user that owns the server, over its socket
    # (mariadb-install-db makes that account authenticate by socket).
    account = user or pwd.getpwuid(os.geteuid()).pw_name
    client = shutil.which("mariadb") or "mysql"
    admin_sql = [*prefix, client, "--no-defaults", f"-u{account}", f"--socket={socket_path}", "-e"]
    server = DatabaseServer("mysql", port, folder, process, admin_sql, (prefix, user, command, log))
    for host in _MARIADB_HOSTS:
        sql = f"CREATE USER '{USER}'@'{host}' IDENTIFIED BY '{PASSWORD}'"
        subprocess.run([*admin_sql, sql], check=True, capture_output=True)
    server.create_database(DATABASE)
    return server


_MARIADB_HOSTS = ("127.0.0.1", "localhost")


def _postgres_bin(name: str) -> str:
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    return found[-1] if found else shutil.which(name) or name


def start_postgresql() -> DatabaseServer:
    prefix, user = _server_user("postgres")
    folder = _new_folder("mlmd-postgres-", user)
    data, log = folder / "data", folder / "server.log"
    password_file = folder / "superuser-password"
    password_file.write_text(PASSWORD + "\n")
    if user:
        shutil.chown(password_file, user, user)
    subprocess.run(
        [
            *prefix,
            _postgres_bin("initdb"),
            "-D",
            str(data),
            "-U",
            USER,
            f"--pwfile={password_file}",
            "--auth-local=trust",
            "--auth-host=scram-sha-256",
            "--encoding=UTF8",
            "--no-sync",
        ],
        check=True,
        capture_output=True,
    )
    port = free_port()
    command = [
        _postgres_bin("postgres"),
        "-D",
        str(data),
        "-p",
        str(port),
        "-k",
        str(folder),
        "-c",
        "listen_addresses=127.0.0.1",
        "-c",
        "fsync=off",
        "-c",
        "max_connections=200",
    ]
    process = _spawn(prefix, user, command, log)
    _wait_for_port(port, process, log)
    psql = shutil.which("psql") or "psql"
    admin_sql = [
        *prefix,
        psql,
        "-h",
        str(folder),
        "-p",
        str(port),
        "-U",
        USER,
        "-d",
        "postgres",
        "-c",
    ]
    server = DatabaseServer(
        "postgresql", port, folder, process, admin_sql, (prefix, user, command, log)
    )
    server.create_database(DATABASE)
    return server


def server_processes(server: DatabaseServer) -> list[int]:
    """Pids of processes still running from the server's data folder (none once stopped)."""
    found = subprocess.run(
        ["pgrep", "-f", str(server.folder)], capture_output=True, text=True
    ).stdout.split()
    return [int(pid) for pid in found if int(pid) != os.getpid()]

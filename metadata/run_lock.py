"""One run at a time per output directory: the lock a run holds while it writes there (its
artifacts, pushed models and, by default, the SQLite store), wherever its ML Metadata lives.

The lock is an advisory `flock` on `<output dir>/run.lock`, whose content names the run holding
it (run id, pid, host, start time). The kernel releases a `flock` when its process dies, however
it dies, so a lock left behind by a killed run is free and the next run takes it over; its stale
content only tells readers which run was interrupted.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime
import fcntl
import json
import os
import socket
from collections.abc import Iterator
from pathlib import Path

LOCK_FILE = "run.lock"


@dataclasses.dataclass(frozen=True)
class LockHolder:
    """The run that holds (or last held) an output directory's lock."""

    run_id: str
    pid: int
    host: str
    started: str

    def describe(self) -> str:
        return f"run {self.run_id} (pid {self.pid} on {self.host}, started {self.started})"


class RunLocked(Exception):
    """Another run is writing to this output directory; the message names it and what to do."""


def lock_path(output_dir: Path) -> Path:
    return Path(output_dir) / LOCK_FILE


def _read_holder(path: Path) -> LockHolder | None:
    try:
        return LockHolder(**json.loads(path.read_text()))
    except (OSError, ValueError, TypeError):
        return None


@contextlib.contextmanager
def hold(output_dir: Path, run_id: str) -> Iterator[LockHolder]:
    """Holds the output directory's run lock for `run_id`, or raises RunLocked at once."""
    path = lock_path(output_dir)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _read_holder(path)
            running = holder.describe() if holder else "another run"
            raise RunLocked(
                f"{running} is already running on {output_dir}. Wait for it to finish, stop it "
                "(Ctrl-C in its terminal, or `kill` its pid), or run with another --output-dir."
            ) from None
        holder = LockHolder(
            run_id=run_id,
            pid=os.getpid(),
            host=socket.gethostname(),
            started=datetime.datetime.now().isoformat(timespec="seconds"),
        )
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(dataclasses.asdict(holder)).encode(), 0)
        try:
            yield holder
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


def running_run(output_dir: Path) -> str | None:
    """The id of the run holding the output directory's lock now, or None when no run does."""
    path = lock_path(output_dir)
    if not path.is_file():
        return None
    fd = os.open(path, os.O_RDONLY)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _read_holder(path)
            return holder.run_id if holder else None
        fcntl.flock(fd, fcntl.LOCK_UN)
        return None
    finally:
        os.close(fd)

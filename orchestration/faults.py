"""Faults from outside the pipeline's code and data, told apart from a component's own failure.

A component that fails because its machine failed it (its process killed, the ML Metadata
server gone, the disk full, a folder read-only) needs a different message and a different
remedy from one whose code or data is wrong: the run names the fault in one sentence, exits
with `exit_codes.FAULT`, and, for the transient ones, `--retries` runs the component again.
The README's "Faults and what happens" lists each, with the test that causes it.
"""

from __future__ import annotations

import dataclasses
import errno
import os
import re
import shutil
from pathlib import Path

from metadata.connection_retry import is_unreachable
from orchestration.interrupts import causes

KILLED = "killed"
METADATA_LOST = "metadata server lost"
DISK_FULL = "disk full"
READ_ONLY = "read-only"

_DISK_FULL_TEXT = re.compile(
    r"No space left on device|database or disk is full|Disk quota exceeded"
)
_READ_ONLY_TEXT = re.compile(r"Read-only file system|attempt to write a readonly database")
_PATH_IN_TEXT = re.compile(r"(/[^\s'\":,;]+)")


@dataclasses.dataclass(frozen=True)
class Fault:
    """What failed, in one sentence for people, and whether running the step again can help
    without anyone fixing anything (`--retries`)."""

    kind: str
    sentence: str
    transient: bool


def _path_of(error: BaseException, output_dir: Path) -> str | None:
    """The file the error names: an OSError's own, else the first absolute path in its text
    under the output directory, else the first whose folder exists (TensorFlow's messages
    also hold device names such as /job:localhost)."""
    for cause in causes(error):
        if isinstance(cause, OSError) and cause.filename:
            return str(cause.filename)
    found = _PATH_IN_TEXT.findall(str(error))
    inside = [p for p in found if Path(p).is_relative_to(output_dir)]
    existing = [p for p in found if len(Path(p).parts) > 2 and Path(p).parent.exists()]
    return next(iter(inside + existing), None)


def _nearest_existing(path: str | Path) -> Path:
    """`path`, or its nearest parent that exists (what a failed write may not have made)."""
    folder = Path(path).absolute()
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    return folder


def _mount_point(path: str) -> Path:
    """The mount point of the filesystem holding `path` (or its nearest existing parent)."""
    folder = _nearest_existing(path).resolve()
    try:  # the longest mount point above it (bind mounts included, which st_dev cannot tell)
        with open("/proc/self/mounts") as mounts:
            points = [Path(line.split()[1].replace("\\040", " ")) for line in mounts]
        return max((p for p in points if folder.is_relative_to(p)), key=lambda p: len(p.parts))
    except (OSError, ValueError, IndexError):
        while not os.path.ismount(folder) and folder != folder.parent:
            folder = folder.parent
        return folder


def classify(
    error: BaseException | None,
    node_id: str | None,
    output_dir: Path,
    sqlite_store: Path | None = None,
    metadata_config=None,
) -> Fault | None:
    """The fault behind a failure of `node_id` (None: the runner's own), or None when the
    component's code or data failed it. `sqlite_store` is ML Metadata's SQLite file, if the
    run's store is one (SQLite names no file in its errors); `metadata_config`, a server store's
    connection config, lets a wordless ML Metadata error be judged by whether the server
    answers."""
    if error is None:
        return None
    where = node_id or "the run"
    from orchestration.node_process import NodeProcessDied  # noqa: PLC0415 - no cycle at import

    for cause in causes(error):
        if isinstance(cause, NodeProcessDied):
            return Fault(
                KILLED,
                f"{str(cause).rstrip('.')}. Nothing it wrote was published. If memory ran "
                "out (dmesg names the OOM killer), give the machine more memory or run fewer "
                "components at once (--parallelism 1); run again to resume from the cache, or "
                "pass --retries N to run a killed component again by itself.",
                transient=True,
            )
        if is_unreachable(cause, metadata_config):
            return Fault(
                METADATA_LOST,
                f"ML Metadata's database could not be reached during {where}: "
                f"{_type_and_first_line(cause)}. Start the server again (or wait until it is back) and "
                "run again: completed components are reused from the cache; "
                "--metadata-retry-seconds sets how long a run waits for it.",
                transient=True,
            )
    for cause in causes(error):
        number = cause.errno if isinstance(cause, OSError) else None
        text = str(cause)
        # SQLite names no file in its errors: its store is the run's, when the words are its.
        sqlite = sqlite_store is not None and (
            "database or disk is full" in text or "readonly database" in text
        )
        path = str(sqlite_store) if sqlite else _path_of(cause, output_dir) or str(output_dir)
        if number in (errno.ENOSPC, errno.EDQUOT) or _DISK_FULL_TEXT.search(text):
            return _disk_full(where, path, sqlite)
        if number == errno.EROFS or _READ_ONLY_TEXT.search(text) or number == errno.EACCES:
            why = (
                "may not be written (permission denied)"
                if number == errno.EACCES
                else f"is on a read-only filesystem (mounted at {_mount_point(path)})"
            )
            return Fault(
                READ_ONLY,
                f"{path} {why}, so {where} could not write its outputs. Make it writable, or "
                "choose another --output-dir, and run again: completed components are reused "
                "from the cache.",
                transient=False,
            )
    # Some libraries fail on a full disk in other words (TensorFlow: a NotFoundError for the file
    # its write could not finish): a filesystem left without room is taken as the cause.
    if _free_bytes(output_dir) < _NEARLY_FULL_BYTES:
        return _disk_full(where, str(output_dir), sqlite=False, said=_type_and_first_line(error))
    if sqlite_store is not None and _free_bytes(sqlite_store.parent) < _NEARLY_FULL_BYTES:
        return _disk_full(where, str(sqlite_store), sqlite=True, said=_type_and_first_line(error))
    return None


_NEARLY_FULL_BYTES = 1 << 20


def _free_bytes(path: str | Path) -> float:
    try:
        return shutil.disk_usage(_nearest_existing(path)).free
    except OSError:
        return float("inf")


def _free_mib(folder: Path) -> str:
    free = _free_bytes(folder)
    return "free space unknown" if free == float("inf") else f"{free / 2**20:.1f} MiB free"


def _disk_full(where: str, path: str, sqlite: bool, said: str | None = None) -> Fault:
    mount = _mount_point(path)
    what = f"ML Metadata's SQLite store {path}" if sqlite else path
    option = "--metadata-uri" if sqlite else "--output-dir"
    return Fault(
        DISK_FULL,
        f"the disk is full: {where} could not write {what} (the filesystem at {mount} has "
        f"{_free_mib(mount)}{'; it failed with ' + said if said else ''}). Free space there, "
        f"or point {option} at a larger disk, and run again: completed components are reused "
        "from the cache.",
        transient=False,
    )


def first_line(error: BaseException | None) -> str:
    """The first line of what `error` says, for a sentence (at most 200 characters)."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    return lines[0][:200] if lines else ""


def _type_and_first_line(error: BaseException) -> str:
    return f"{type(error).__name__}: {first_line(error)}"


def classify_in_run(error: BaseException | None, node_id: str | None, config) -> Fault | None:
    """`classify` for a run of `config` (a PipelineConfig): its output and its store."""
    location = config.metadata_location
    if location.is_sqlite:
        return classify(error, node_id, config.output_dir, sqlite_store=location.path)
    return classify(error, node_id, config.output_dir, metadata_config=location.connection_config())

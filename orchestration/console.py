"""Console output for people: component progress lines; everything else goes to a log file."""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TextIO

from absl import logging as absl_logging


@contextlib.contextmanager
def secrets_redacted(secrets: tuple[str, ...]) -> Iterator[None]:
    """Every log record made meanwhile, by any library, shows `secrets` as ****. (TFX's
    LocalDagRunner logs its whole ML Metadata connection config, password included.)"""
    secrets = tuple(s for s in secrets if s)
    if not secrets:
        yield
        return
    make_record = logging.getLogRecordFactory()

    def redacting_factory(*args, **kwargs) -> logging.LogRecord:
        record = make_record(*args, **kwargs)
        try:
            message = record.getMessage()
        except Exception:  # noqa: BLE001 - a malformed record is logging's to report, as before
            return record
        if any(secret in message for secret in secrets):
            for secret in secrets:
                message = message.replace(secret, "****")
            record.msg, record.args = message, None
        return record

    logging.setLogRecordFactory(redacting_factory)
    try:
        yield
    finally:
        logging.setLogRecordFactory(make_record)


@contextlib.contextmanager
def output_to_log_file(log_path: Path, secrets: tuple[str, ...] = ()) -> Iterator[TextIO]:
    """Sends file descriptors 1 and 2 (Python, TF's C++ runtime, Beam) to `log_path`, and yields
    a stream to the real terminal for the lines meant for people. Log records never show
    `secrets` (the ML Metadata password)."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    sys.stdout.flush()
    sys.stderr.flush()
    console = os.fdopen(os.dup(sys.stdout.fileno()), "w", buffering=1)
    saved_out, saved_err = os.dup(1), os.dup(2)
    with open(log_path, "a", buffering=1) as log, secrets_redacted(secrets):
        os.dup2(log.fileno(), 1)
        os.dup2(log.fileno(), 2)
        root = logging.getLogger()
        # A handler already writing to the terminal's streams (absl calls logging.basicConfig()
        # when a library logs before any handler exists) would write every record a second time
        # into the log file: it stands aside while this one writes there.
        standing_aside = [
            h
            for h in root.handlers
            if isinstance(h, logging.StreamHandler) and h.stream in (sys.stderr, sys.stdout)
        ]
        for other in standing_aside:
            root.removeHandler(other)
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        root.addHandler(handler)
        root.setLevel(logging.INFO)
        absl_logging.set_verbosity(absl_logging.INFO)
        try:
            yield console
        finally:
            root.removeHandler(handler)
            for other in standing_aside:
                root.addHandler(other)
            sys.stdout.flush()
            sys.stderr.flush()
            os.dup2(saved_out, 1)
            os.dup2(saved_err, 2)
            os.close(saved_out)
            os.close(saved_err)
            console.close()


class ComponentProgress:
    """Prints a line when each component starts (with the components it runs beside) and when it
    ends (state and seconds). A component's number is its place in the order of starting."""

    def __init__(self, console: TextIO, node_ids: list[str], state_of: Callable[[str], str]):
        self._console = console
        self._total = len(node_ids)
        self._width = max(len(n) for n in node_ids)
        self._state_of = state_of
        self._started: dict[str, float] = {}
        self._position: dict[str, int] = {}
        self._ended: set[str] = set()

    @property
    def running(self) -> list[str]:
        return [n for n in self._position if n not in self._ended]

    def started(self, node_id: str) -> None:
        alongside = self.running
        self._position[node_id] = len(self._position) + 1
        self._started[node_id] = time.monotonic()
        self._line(
            node_id, "running ..." + (f"  beside {', '.join(alongside)}" if alongside else "")
        )

    def finished(self, node_id: str, state: str | None = None) -> None:
        """Ends the component's line with `state`, or with its state in ML Metadata."""
        seconds = time.monotonic() - self._started[node_id]
        self._ended.add(node_id)
        self._line(node_id, f"{state or self._state_of(node_id):<9} {seconds:6.1f} s")

    def _line(self, node_id: str, text: str) -> None:
        position = self._position[node_id]
        self._console.write(f"[{position:>2}/{self._total}] {node_id:<{self._width}}  {text}\n")
        self._console.flush()

    def note(self, text: str) -> None:
        self._console.write(f"        {text}\n")
        self._console.flush()

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

from components import tfx_private


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
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        root.addHandler(handler)
        root.setLevel(logging.INFO)
        absl_logging.set_verbosity(absl_logging.INFO)
        try:
            yield console
        finally:
            root.removeHandler(handler)
            sys.stdout.flush()
            sys.stderr.flush()
            os.dup2(saved_out, 1)
            os.dup2(saved_err, 2)
            os.close(saved_out)
            os.close(saved_err)
            console.close()


class ComponentProgress(logging.Handler):
    """Prints a line when each component starts and when it ends (state and seconds).

    TFX's LocalDagRunner reports nodes only in its log; this handler reads those records.
    """

    def __init__(self, console: TextIO, node_ids: list[str], state_of: Callable[[str], str]):
        super().__init__(level=logging.INFO)
        self._console = console
        self._total = len(node_ids)
        self._width = max(len(n) for n in node_ids)
        self._state_of = state_of
        self._started: dict[str, float] = {}
        self.running: str | None = None
        self.finished: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        progress = tfx_private.node_progress(record.msg, record.args)
        if progress is None:
            return
        event, node_id = progress
        if event == "started":
            self.running = node_id
            self._started[node_id] = time.monotonic()
            self._line(len(self.finished) + 1, node_id, "running ...")
        else:
            seconds = time.monotonic() - self._started.get(node_id, time.monotonic())
            self.running = None
            self.finished.append(node_id)
            self._line(
                len(self.finished), node_id, f"{self._state_of(node_id):<9} {seconds:6.1f} s"
            )

    def mark(self, state: str, or_last_finished: bool = False) -> None:
        """Ends the running component's line with `state` (failed, canceled): TFX logs no
        "finished" for a component that raised or was stopped. With `or_last_finished`, a
        component TFX already reported finished (as failed) gets a line saying `state`."""
        if self.running is None and or_last_finished and self.finished:
            node_id = self.finished[-1]
            seconds = time.monotonic() - self._started.get(node_id, time.monotonic())
            self._line(len(self.finished), node_id, f"{state:<9} {seconds:6.1f} s")
            return
        if self.running is None:
            return
        seconds = time.monotonic() - self._started[self.running]
        self._line(len(self.finished) + 1, self.running, f"{state:<9} {seconds:6.1f} s")

    def _line(self, position: int, node_id: str, text: str) -> None:
        self._console.write(f"[{position:>2}/{self._total}] {node_id:<{self._width}}  {text}\n")
        self._console.flush()

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

# The two messages TFX 1.16's LocalDagRunner logs around each node (local_dag_runner.py).
_NODE_STARTED = "Component %s is running."
_NODE_FINISHED = "Component %s is finished."


@contextlib.contextmanager
def output_to_log_file(log_path: Path) -> Iterator[TextIO]:
    """Sends file descriptors 1 and 2 (Python, TF's C++ runtime, Beam) to `log_path`, and yields
    a stream to the real terminal for the lines meant for people."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    sys.stdout.flush()
    sys.stderr.flush()
    console = os.fdopen(os.dup(sys.stdout.fileno()), "w", buffering=1)
    saved_out, saved_err = os.dup(1), os.dup(2)
    with open(log_path, "a", buffering=1) as log:
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
    """Prints a line when each component starts and when it ends (state and seconds)."""

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
        if record.msg not in (_NODE_STARTED, _NODE_FINISHED) or not record.args:
            return
        node_id = str(record.args[0])
        if record.msg == _NODE_STARTED:
            self.running = node_id
            self._started[node_id] = time.monotonic()
            position = len(self.finished) + 1
            self._write(f"[{position:>2}/{self._total}] {node_id:<{self._width}}  running ...")
        else:
            seconds = time.monotonic() - self._started.get(node_id, time.monotonic())
            self.running = None
            self.finished.append(node_id)
            state = self._state_of(node_id)
            position = len(self.finished)
            self._write(
                f"[{position:>2}/{self._total}] {node_id:<{self._width}}  {state:<9} {seconds:6.1f} s"
            )

    def mark_failed(self) -> None:
        """Ends the running component's line as failed (TFX logs no "finished" for it)."""
        if self.running is None:
            return
        node_id, seconds = self.running, time.monotonic() - self._started[self.running]
        self._write(
            f"[{len(self.finished) + 1:>2}/{self._total}] {node_id:<{self._width}}  "
            f"{'failed':<9} {seconds:6.1f} s"
        )

    def _write(self, line: str) -> None:
        self._console.write(line + "\n")
        self._console.flush()

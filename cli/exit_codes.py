"""Exit codes of `python run_local.py` and its commands (the README lists them)."""

from __future__ import annotations

import logging
import os
import sys
from typing import NoReturn

OK = 0
COMPONENT_FAILED = 1  # a component failed (or the Kubeflow compile or submit did)
BAD_SETTINGS = 2  # bad settings or inputs found before anything ran
DATA_REFUSED = 3  # the data gate refused the data
MONITOR_ALERT = 4  # `monitor`: the served traffic crossed a threshold
NOT_REPRODUCED = 5  # `reproduce`: the replay's artifacts differ from the run's
# A fault outside the pipeline's code and data stopped the run (orchestration/faults.py): a
# component's process killed, ML Metadata's server lost, the disk full, a folder read-only.
FAULT = 6
INTERRUPTED = 130  # Ctrl-C (128 + SIGINT)
TERMINATED = 143  # SIGTERM (128 + SIGTERM)


def exit_without_teardown(code: int | str | None) -> NoReturn:
    """Ends the process with `code` (as `sys.exit` takes it) once its output is flushed, without
    Python's interpreter teardown: with TensorFlow, TFX and Beam imported, that teardown takes
    about 2 s (measured on 2 cores) and does nothing a finished command needs. Everything is
    written by then: ML Metadata commits each write, the log and the console are flushed here,
    and the node processes have ended (orchestration/node_process.py `shut_down`)."""
    if code is None:
        code = OK
    elif not isinstance(code, int):  # a message, as sys.exit("...") prints it
        print(code, file=sys.stderr)
        code = COMPONENT_FAILED
    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # closed, or a broken pipe: nothing more to write
            pass
    os._exit(code)

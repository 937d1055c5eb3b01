"""How a run is stopped: Ctrl-C (SIGINT) or a request to terminate (SIGTERM), in the runner's
process and in each component's process alike."""

from __future__ import annotations

import contextlib
import signal
from collections.abc import Iterator


class RunInterrupted(BaseException):
    """The run was stopped by a signal (Ctrl-C or SIGTERM); its unfinished executions are
    recorded CANCELED. A BaseException, like KeyboardInterrupt, so no `except Exception` in TFX,
    Beam or a component swallows it."""

    def __init__(self, signal_number: int):
        super().__init__(signal.Signals(signal_number).name)
        self.signal_number = signal_number


@contextlib.contextmanager
def sigterm_raises() -> Iterator[None]:
    """SIGTERM raises RunInterrupted in the main thread, as Ctrl-C raises KeyboardInterrupt."""

    def handler(signal_number, frame):
        raise RunInterrupted(signal_number)

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def causes(error: BaseException | None) -> Iterator[BaseException]:
    """`error`, then what it was raised from or while handling, and so on (each once)."""
    seen: set[int] = set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        yield error
        error = error.__cause__ or error.__context__


def interrupt_inside(error: BaseException) -> int | None:
    """The signal behind an error that is an interrupt, or one in disguise: Beam's DirectRunner
    re-raises a Ctrl-C (KeyboardInterrupt) or SIGTERM (RunInterrupted) that reached one of its
    steps as `RuntimeError("KeyboardInterrupt [while running '...']")`. None for a real failure."""
    for cause in causes(error):
        if isinstance(cause, KeyboardInterrupt):
            return signal.SIGINT
        if isinstance(cause, RunInterrupted):
            return signal.SIGTERM
        text = str(cause)
        if text.startswith("KeyboardInterrupt"):
            return signal.SIGINT
        if text.startswith(RunInterrupted.__name__):
            return signal.SIGTERM
    return None


def describe(signal_number: int) -> str:
    """ "SIGINT (Ctrl-C)" or "SIGTERM (a request to terminate)"."""
    name = signal.Signals(signal_number).name
    return f"{name} ({'Ctrl-C' if signal_number == signal.SIGINT else 'a request to terminate'})"

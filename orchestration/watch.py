"""`watch`: keeps the pipeline current. It starts a run when a new span lands in the labeled data
folder, and, with monitoring on, when `monitor` raises an alert on the served traffic.

- **A span lands** when its folder holds files that have stopped changing for `settle_seconds`
  (a copy still under way is not read half-written). A span counts as taken once a run's
  ExampleGen has read it (ML Metadata records the spans each run read): a run refused by the
  data gate is not started again and again on the same data.
- **One run at a time**: watch waits for its own run to end before it starts another, and while
  another process holds the output directory's run lock it waits for that run too.
- **Runs are `python run_local.py` processes** with the options watch was given, their console
  passed through: a run that fails is reported and watch goes on.
- **Ctrl-C or SIGTERM** stops watch; a run under way gets the same signal and stops as a run
  stopped by hand does (its finished steps are cached for the next).
"""

from __future__ import annotations

import dataclasses
import datetime
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from components.span_example_gen import spans
from metadata import run_lock
from metadata.store import NotFound, StoreIndex, UnusableStore, custom_property
from pipeline import node_ids
from pipeline.metadata_location import MetadataLocation

PROJECT_ROOT = Path(__file__).resolve().parent.parent
MONITOR_ALERT = 4  # cli/exit_codes.py


@dataclasses.dataclass(frozen=True)
class WatchSettings:
    labeled_dir: Path
    span_pattern: str
    output_dir: Path
    metadata: MetadataLocation
    run_args: tuple[str, ...]  # given to `python run_local.py`
    monitor_args: tuple[str, ...] | None  # `python run_local.py monitor ...`; None: no monitoring
    poll_seconds: float = 10.0
    settle_seconds: float = 5.0
    monitor_every_seconds: float = 900.0


def ready_spans(labeled_dir: Path, span_pattern: str, settle_seconds: float) -> dict[int, float]:
    """Span number -> the last change of its files, for span folders holding files that have not
    changed for `settle_seconds`."""
    ready = {}
    now = time.time()
    for number, folder in spans.span_folders(str(labeled_dir), span_pattern).items():
        try:
            files = [p for p in Path(folder).iterdir() if p.is_file()]
            changed = max((p.stat().st_mtime for p in files), default=None)
        except FileNotFoundError:
            continue
        if changed is not None and now - changed >= settle_seconds:
            ready[number] = changed
    return ready


def latest_span_read(location: MetadataLocation) -> int | None:
    """The latest span any run's ExampleGen read, as ML Metadata records it; None before the
    first run (or without a store)."""
    if location.is_sqlite and not location.path.is_file():
        return None
    try:
        index = StoreIndex.open(location)
    except (NotFound, UnusableStore):
        return None
    latest = None
    for examples in index.store.get_artifacts_by_type("Examples"):
        execution = index.producing_execution.get(examples.id)
        if index.node_of_execution.get(execution) != node_ids.LABELED_EXAMPLE_GEN:
            continue
        value = custom_property(examples, spans.spans_property(spans.LATEST))
        if value not in (None, ""):
            latest = max(latest or 0, int(value))
    return latest


class Watcher:
    def __init__(
        self,
        settings: WatchSettings,
        say: Callable[[str], None],
        program: tuple[str, ...] = (sys.executable, str(PROJECT_ROOT / "run_local.py")),
    ):
        self.settings = settings
        self.say = say
        self.program = program  # what runs and monitors are started with
        self.stop_signal: int | None = None
        self.child: subprocess.Popen | None = None
        self.runs = 0
        self._failed_attempt: tuple[int | None, float | None] | None = None

    def _stop(self, signal_number: int, frame) -> None:
        self.stop_signal = signal_number
        if self.child is not None and self.child.poll() is None:
            self.child.send_signal(signal_number)

    def _command(self, *args: str) -> list[str]:
        return [*self.program, *args]

    def _start_run(self, reason: str) -> int | None:
        holder = run_lock.running_run(self.settings.output_dir)
        if holder is not None:
            self.say(f"{reason}; waiting: run {holder} holds {self.settings.output_dir}")
            return None
        self.say(f"{reason}: starting a run")
        self.runs += 1
        # In a session of its own: a Ctrl-C at the terminal reaches watch, which passes it on
        # once (the run would take a second Ctrl-C as a demand to stop at once).
        self.child = subprocess.Popen(
            self._command(*self.settings.run_args), cwd=PROJECT_ROOT, start_new_session=True
        )
        code = self.child.wait()
        self.child = None
        meaning = {
            0: "finished",
            1: "failed (a component failed; its log says why)",
            2: "refused its settings or inputs",
            3: "stopped: the data gate refused the data",
            130: "stopped by Ctrl-C",
            143: "stopped by SIGTERM",
        }.get(code, "ended")
        self.say(f"the run {meaning} (exit {code})")
        return code

    def _monitor(self) -> bool:
        """Runs `monitor`; whether it raised an alert."""
        self.child = subprocess.Popen(
            self._command("monitor", *self.settings.monitor_args),
            cwd=PROJECT_ROOT,
            start_new_session=True,
        )
        code = self.child.wait()
        self.child = None
        if code not in (0, MONITOR_ALERT) and self.stop_signal is None:
            self.say(f"monitor could not check the traffic (exit {code})")
        return code == MONITOR_ALERT

    def watch(self) -> int:
        """Watches until stopped; the exit code (130 Ctrl-C, 143 SIGTERM)."""
        s = self.settings
        previous = {sig: signal.signal(sig, self._stop) for sig in (signal.SIGINT, signal.SIGTERM)}
        try:
            taken = latest_span_read(s.metadata)
            on_disk = ready_spans(s.labeled_dir, s.span_pattern, 0)
            self.say(
                f"Watching {s.labeled_dir} for new spans every {s.poll_seconds:g} s (on disk: "
                f"{', '.join(map(str, sorted(on_disk))) or 'none'}; latest run: "
                f"{'none yet' if taken is None else f'span {taken}'})"
                + (
                    f"; checking the served traffic every {s.monitor_every_seconds:g} s"
                    if s.monitor_args is not None
                    else ""
                )
                + ". Ctrl-C stops."
            )
            next_check = time.monotonic() + s.monitor_every_seconds
            while self.stop_signal is None:
                ready = ready_spans(s.labeled_dir, s.span_pattern, s.settle_seconds)
                newest = max(ready, default=None)
                if newest is not None and (taken is None or newest > taken):
                    # ML Metadata is read again only when a span looks new: a run (this
                    # watch's or another's) may have read it since.
                    taken = latest_span_read(s.metadata)
                attempt = (newest, ready.get(newest))
                if newest is not None and (taken is None or newest > taken):
                    if attempt != self._failed_attempt:
                        why = (
                            f"span {newest} landed in {s.labeled_dir}"
                            if taken is not None
                            else f"no run has read the data yet (latest span {newest})"
                        )
                        code = self._start_run(why)
                        if code not in (None, 0, 130, 143):
                            # Not run again on the same files: a run that stops before
                            # reading them (bad settings, exit 2) would otherwise loop.
                            self._failed_attempt = attempt
                            self.say(
                                f"span {newest} is not run again until its files change or a "
                                "newer span lands"
                            )
                elif s.monitor_args is not None and time.monotonic() >= next_check:
                    next_check = time.monotonic() + s.monitor_every_seconds
                    if self._monitor() and self.stop_signal is None:
                        self._start_run("monitor raised an alert on the served traffic")
                self._sleep(s.poll_seconds)
            self.say(f"Stopped ({signal.Signals(self.stop_signal).name}) after {self.runs} runs.")
            return 128 + self.stop_signal
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)

    def _sleep(self, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while self.stop_signal is None and time.monotonic() < deadline:
            time.sleep(min(0.2, seconds))


def say_with_time(message: str) -> None:
    stamp = datetime.datetime.now().strftime("%H:%M:%S")
    print(f"{stamp}  {message}", flush=True)

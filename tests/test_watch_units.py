"""`watch`'s loop with stand-in commands (a script that answers as `run_local.py` would): a
monitoring alert starts a run, a quiet check does not, and a span is taken once it has been read.
tests/test_watch.py runs the real thing on a new span."""

from __future__ import annotations

import signal
import sys
import threading
from pathlib import Path

from metadata.store import sqlite_location
from orchestration import watch

# Stands in for run_local.py: `monitor` exits with the code in the file MONITOR_CODES gives
# next (one per line, consumed), a run appends its arguments to RUNS and exits 0.
STAND_IN = """
import sys
from pathlib import Path
here = Path(sys.argv[0]).parent
if sys.argv[1] == "monitor":
    codes = (here / "codes").read_text().split()
    (here / "codes").write_text("\\n".join(codes[1:]))
    sys.exit(int(codes[0]) if codes else 0)
with (here / "runs").open("a") as f:
    f.write(" ".join(sys.argv[1:]) + "\\n")
sys.exit(int((here / "run-code").read_text()) if (here / "run-code").exists() else 0)
"""


def _watcher(tmp_path: Path, codes: list[int]) -> tuple[watch.Watcher, list[str]]:
    stand_in = tmp_path / "run_local.py"
    stand_in.write_text(STAND_IN)
    (tmp_path / "codes").write_text("\n".join(map(str, codes)))
    labeled = tmp_path / "data" / "labeled"
    (labeled / "span-1").mkdir(parents=True)
    settings = watch.WatchSettings(
        labeled_dir=labeled,
        span_pattern="span-{SPAN}/*.csv",
        output_dir=tmp_path / "outputs",
        metadata=sqlite_location(tmp_path / "outputs" / "metadata.db"),
        run_args=("--the-run",),
        monitor_args=("--since=1s",),
        poll_seconds=0.1,
        settle_seconds=0,
        monitor_every_seconds=0.3,
    )
    said: list[str] = []
    return watch.Watcher(settings, said.append, (sys.executable, str(stand_in))), said


def _watch_for(watcher: watch.Watcher, seconds: float) -> int:
    stopper = threading.Timer(seconds, lambda: watcher._stop(signal.SIGTERM, None))
    stopper.start()
    try:
        return watcher.watch()
    finally:
        stopper.cancel()


def test_an_alert_starts_a_run_and_a_quiet_check_does_not(tmp_path):
    watcher, said = _watcher(tmp_path, codes=[0, 4, 0, 0, 0, 0, 0, 0])
    assert _watch_for(watcher, 2.0) == 143
    runs = (tmp_path / "runs").read_text().splitlines()
    assert runs == ["--the-run"]  # one alert, one run; the quiet checks started none
    assert any("monitor raised an alert on the served traffic: starting a run" in s for s in said)
    assert said[-1] == "Stopped (SIGTERM) after 1 runs."


def test_monitor_that_cannot_check_is_reported_and_starts_nothing(tmp_path):
    watcher, said = _watcher(tmp_path, codes=[2, 2, 2, 2, 2, 2, 2, 2, 2, 2])
    assert _watch_for(watcher, 1.0) == 143
    assert not (tmp_path / "runs").exists()
    assert any("monitor could not check the traffic (exit 2)" in s for s in said)


def test_a_run_that_fails_before_reading_a_span_is_not_started_again_on_it(tmp_path):
    watcher, said = _watcher(tmp_path, codes=[])
    watcher.settings = watch.WatchSettings(**{**watcher.settings.__dict__, "monitor_args": None})
    (tmp_path / "run-code").write_text("2")  # as a run refusing its settings
    span = watcher.settings.labeled_dir / "span-1" / "taxi.csv"
    span.write_text("a,b\n1,2\n")
    assert _watch_for(watcher, 1.0) == 143
    assert (tmp_path / "runs").read_text().splitlines() == ["--the-run"]
    assert "no run has read the data yet (latest span 1): starting a run" in said[1]
    assert "the run refused its settings or inputs (exit 2)" in said[2]
    assert "span 1 is not run again until its files change or a newer span lands" in said[3]

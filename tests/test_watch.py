"""`watch` as a user runs it: a span lands while it watches, it starts one run on it, and SIGTERM
stops it. It starts from a copy of the session's taxi store, whose runs read spans 1 and 2, so
the only run it starts is the new span's. The new span has negative fares: the run reads it and
the data gate refuses it (exit 3), and watch does not start it again (its successful runs are the
session's own; this is the case a loop would hide in)."""

from __future__ import annotations

import shutil
import signal
import subprocess
import sys
import threading
import time

import pytest

from metadata.store import StoreIndex
from tests.conftest import FAST_RUN_ARGS, LATEST_SPAN, PROJECT_ROOT, edit_column

pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("taxi-sample")]


def _wait_for(lines: list[str], text: str, process: subprocess.Popen, seconds: float) -> None:
    deadline = time.time() + seconds
    while not any(text in line for line in lines):
        assert process.poll() is None, "".join(lines)
        assert time.time() < deadline, f"no {text!r} in {seconds} s:\n" + "".join(lines)
        time.sleep(0.2)


def test_a_new_span_starts_one_run_a_refused_span_is_not_run_again_and_sigterm_stops_watch(
    e2e_runs, sample_data_dir, tmp_path
):
    assert e2e_runs["first"].returncode == 0
    data = tmp_path / "data"
    shutil.copytree(sample_data_dir, data)
    store = tmp_path / "metadata.db"
    shutil.copy(e2e_runs["output_dir"] / "metadata.db", store)
    output = tmp_path / "outputs"
    process = subprocess.Popen(
        [
            sys.executable,
            "run_local.py",
            "watch",
            f"--data-dir={data}",
            f"--output-dir={output}",
            f"--metadata-uri={store}",
            "--poll-seconds=0.5",
            "--settle-seconds=1",
            "--",
            *FAST_RUN_ARGS,
        ],
        cwd=PROJECT_ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(process.stdout), daemon=True)
    reader.start()
    try:
        _wait_for(lines, "Ctrl-C stops.", process, 120)
        assert "latest run: span 2" in "".join(lines)
        time.sleep(2)  # nothing new: no run
        assert not any("starting a run" in line for line in lines), "".join(lines)
        staged = tmp_path / "taxi.csv"
        shutil.copy(data / LATEST_SPAN, staged)
        edit_column(staged, "fare", lambda i, v: "-7.25")
        span_3 = data / "labeled" / "span-3"
        span_3.mkdir()
        shutil.copy(staged, span_3 / "taxi.csv")
        _wait_for(lines, "span 3 landed", process, 60)
        _wait_for(lines, "the run stopped: the data gate refused the data (exit 3)", process, 600)
        time.sleep(2)  # span 3 was read, so it is taken: no second run on it
        assert sum("starting a run" in line for line in lines) == 1, "".join(lines)
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
        code = process.wait(timeout=120)
        reader.join(timeout=10)
    assert code == 143, "".join(lines)
    assert "Stopped (SIGTERM) after 1 runs." in "".join(lines)
    # The run read span 3 (before the gate refused it), recorded in the store watch was given.
    index = StoreIndex.open(store)
    spans_read = {
        a.custom_properties["spans_latest"].string_value
        for a in index.store.get_artifacts_by_type("Examples")
        if "spans_latest" in a.custom_properties
    }
    assert "3" in spans_read

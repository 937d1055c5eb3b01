"""One run at a time per output directory, and a stopped run recorded as such in ML Metadata.

`stopped_runs` starts the real CLI three times on one output directory and stops each run while
Transform is working: Ctrl-C, then SIGTERM, then SIGKILL. Each later run resumes from the
cache (CsvExampleGen is not read again); the lock the killed run left is taken over.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from metadata import run_lock
from tests.conftest import PROJECT_ROOT, invoke, node_status, run_cli, run_node_states

# How long a stopped component has been running: long enough for TFX to have registered its
# execution (Transform takes over ten seconds on the sample; StatisticsGen, in memory, two).
_INTO_THE_COMPONENT_SECONDS = 2.0


def run_and_stop(data_dir: Path, output_dir: Path, sig: signal.Signals) -> dict:
    """Starts a run, sends `sig` while Transform runs, and returns what the run printed."""
    process = subprocess.Popen(
        [sys.executable, "run_local.py", f"--data-dir={data_dir}", f"--output-dir={output_dir}"],
        cwd=PROJECT_ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        # As in a terminal: background jobs (CI, `cmd &`) start with SIGINT ignored.
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    seen = []
    for line in process.stdout:
        seen.append(line)
        if node_status(line).get("Transform", "").startswith("running ..."):
            time.sleep(_INTO_THE_COMPONENT_SECONDS)
            process.send_signal(sig)
            break
    out, err = process.communicate(timeout=120)
    return {"returncode": process.returncode, "stdout": "".join(seen) + out, "stderr": err}


def processes_still_logging(log_dir: Path, patience_seconds: float = 30.0) -> list[str]:
    """The processes (pid and command) that still hold a file in `log_dir` open once
    `patience_seconds` have passed: every process of a run writes to the run's log."""
    deadline = time.monotonic() + patience_seconds
    while True:
        holders = []
        for fd_dir in Path("/proc").glob("[0-9]*/fd"):
            try:
                targets = [os.readlink(fd) for fd in fd_dir.iterdir()]
                command = (fd_dir.parent / "cmdline").read_bytes().replace(b"\0", b" ")
            except OSError:  # the process ended meanwhile, or is not ours to read
                continue
            if any(target.startswith(f"{log_dir}/") for target in targets):
                holders.append(f"{fd_dir.parent.name}: {command.decode(errors='replace')[:200]}")
        if not holders or time.monotonic() > deadline:
            return holders
        time.sleep(0.5)


@pytest.fixture(scope="module")
def stopped_runs(sample_data_dir, tmp_path_factory):
    output_dir = tmp_path_factory.mktemp("stopped")
    runs = {
        sig.name: run_and_stop(sample_data_dir, output_dir, sig)
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGKILL)
    }
    killed_lock = json.loads(run_lock.lock_path(output_dir).read_text())
    left_running = processes_still_logging(output_dir / "logs")
    inspected = invoke("inspect", "runs", "--json", f"--metadata-path={output_dir / 'metadata.db'}")
    return {
        "output_dir": output_dir,
        "runs": runs,
        "killed_lock": killed_lock,
        "left_running": left_running,
        "inspected": inspected,
    }


@pytest.mark.e2e
@pytest.mark.parametrize("name, exit_code, position", [("SIGINT", 130, 2), ("SIGTERM", 143, 1)])
def test_ctrl_c_and_sigterm_record_the_unfinished_step_canceled(
    stopped_runs, name, exit_code, position
):
    result = stopped_runs["runs"][name]
    assert result["returncode"] == exit_code, result["stdout"] + result["stderr"]
    assert f"was stopped ({name}); nothing more was pushed." in result["stdout"]
    assert node_status(result["stdout"])["Transform"].startswith("canceled")
    assert "Traceback" not in result["stdout"]
    states = run_node_states(stopped_runs["output_dir"], position)
    assert states["Transform"] == "canceled", states
    runs = stopped_runs["inspected"]
    assert stopped_runs["inspected"].exit_code == 0
    run = json.loads(runs.stdout)[position]
    assert run["state"] == "CANCELED"
    transform = next(c for c in run["components"] if c["node_id"] == "Transform")
    assert transform["error"].startswith(f"canceled: the run was stopped by {name}")


@pytest.mark.e2e
def test_later_runs_resume_from_the_cache(stopped_runs):
    for position in (1, 0):  # the SIGTERM and SIGKILL runs, after the first was stopped
        assert run_node_states(stopped_runs["output_dir"], position)["CsvExampleGen"] == "cached"


@pytest.mark.e2e
def test_a_killed_run_reads_as_interrupted_not_running(stopped_runs):
    result = stopped_runs["runs"]["SIGKILL"]
    assert result["returncode"] == -signal.SIGKILL
    newest = json.loads(stopped_runs["inspected"].stdout)[0]
    assert newest["run_id"] == stopped_runs["killed_lock"]["run_id"]
    assert newest["state"] == "INTERRUPTED"
    states = {c["node_id"]: c["state"] for c in newest["components"]}
    assert states["Transform"] == "interrupted" and states["CsvExampleGen"] == "cached"
    # Its node processes died with it: the interrupted Transform cannot finish later.
    assert stopped_runs["left_running"] == []
    text = invoke(
        "inspect", "runs", f"--metadata-path={stopped_runs['output_dir'] / 'metadata.db'}"
    ).stdout
    # "#1  run ID  started ...  12.3 s  INTERRUPTED  by user@host in DIR"
    header = text.splitlines()[0]
    assert "s  INTERRUPTED  by " in header and f"in {stopped_runs['output_dir']}" in header


@pytest.mark.e2e
def test_the_lock_a_killed_run_left_is_taken_over(stopped_runs, tmp_path):
    """The killed run's lock file still names it, but its process is gone: the next run starts
    (here it stops at the pre-run checks, for a data folder that does not exist)."""
    output_dir = stopped_runs["output_dir"]
    assert run_lock.running_run(output_dir) is None
    result = run_cli(f"--data-dir={tmp_path / 'no-data'}", f"--output-dir={output_dir}")
    assert result.returncode == 2 and "The data directory" in result.stdout
    assert (
        json.loads(run_lock.lock_path(output_dir).read_text())["run_id"]
        != (stopped_runs["killed_lock"]["run_id"])
    )


HOLD_THE_LOCK = """
import sys, time
sys.path.insert(0, sys.argv[1])
from metadata import run_lock
with run_lock.hold(sys.argv[2], "2026-11-27T10:00:00.000001"):
    print("holding", flush=True)
    time.sleep(120)
"""


def test_a_second_run_on_the_same_output_directory_is_refused_at_once(tmp_path):
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD_THE_LOCK, str(PROJECT_ROOT), str(tmp_path)],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "holding"
        result = invoke(f"--output-dir={tmp_path}", "--tuner-trials=1")
        assert result.exit_code == 2
        assert result.stderr.startswith(
            f"error: run 2026-11-27T10:00:00.000001 (pid {holder.pid} on "
        )
        assert f"is already running on {tmp_path}" in result.stderr
        assert "or run with another --output-dir" in result.stderr
        assert run_lock.running_run(tmp_path) == "2026-11-27T10:00:00.000001"
        assert not (tmp_path / "logs").exists()  # refused before anything started
    finally:
        holder.kill()
        holder.wait()
    assert run_lock.running_run(tmp_path) is None
    with run_lock.hold(tmp_path, "next") as taken:
        assert taken.run_id == "next" and run_lock.running_run(tmp_path) == "next"


def test_an_interrupt_that_beam_wrapped_is_still_an_interrupt():
    """Beam's DirectRunner re-raises a Ctrl-C that reached one of its steps as a RuntimeError;
    the run must still read as stopped, not failed (seen on CI: StatisticsGen 'failed')."""
    from orchestration.interrupts import RunInterrupted
    from orchestration.interrupts import interrupt_inside as _interrupt_inside

    wrapped = RuntimeError("KeyboardInterrupt [while running 'TFXIORead[previous_train]/Read']")
    assert _interrupt_inside(wrapped) == signal.SIGINT
    try:
        try:
            raise RunInterrupted(signal.SIGTERM)
        except BaseException as e:
            raise RuntimeError("a step failed") from e
    except RuntimeError as chained:
        assert _interrupt_inside(chained) == signal.SIGTERM
    assert _interrupt_inside(ValueError("KeyError: 'body_mass'")) is None

"""Faults from outside the pipeline, each one caused for real, and what a run or `serve` does.

One output directory takes a sequence of runs, each meeting one fault and the next resuming from
what the last one kept (README, "Faults and what happens", lists each row with its test here):
- a component's process killed with SIGKILL (what the OOM killer does), with `--retries 1`: the
  component runs again and the run completes;
- the same without retries: exit 6, the step FAILED in ML Metadata with the reason;
- the disk under the output directory full in the middle of Trainer (a tmpfs this test mounts,
  filled by a file written until the filesystem is full): exit 6, Trainer FAILED, nothing pushed;
- the serving folder read-only (a read-only bind mount): Pusher fails, no version folder appears;
- ML Metadata's SQLite file on a full disk (a copy of the store on a 16 MiB tmpfs): exit 6, named;
- the next run, on that store freed, the faults gone, resumes: only what failed runs;
- the batch to score's CSV changed while ExampleGen reads it: exit 1, nothing kept; restored, the
  next run reads it again;
- `serve` whose served version's folder is deleted keeps answering, and says so;
- an output directory on a read-only filesystem is refused before the run (exit 2).
The database servers' faults (killed mid-run, unreachable at the start) are in
test_shared_metadata.py, beside their servers.

Mounting needs root (CAP_SYS_ADMIN), which `make test` has in its container; elsewhere those
faults are skipped with the reason.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from metadata.runs import run_contexts, run_executions
from metadata.store import StoreIndex
from orchestration import local_runner
from tests.conftest import FAST_RUN_ARGS, PIPELINE_NAME, PROJECT_ROOT, node_status

pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("faults")]

FAULT_EXIT = 6


def _can_mount() -> bool:
    if os.geteuid() != 0 or not shutil.which("mount"):
        return False
    probe = Path(f"/tmp/mount-probe-{os.getpid()}")
    probe.mkdir(exist_ok=True)
    try:
        mounted = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(probe)], capture_output=True
        )
        if mounted.returncode != 0:
            return False
        subprocess.run(["umount", str(probe)], check=True)
        return True
    finally:
        probe.rmdir()


CAN_MOUNT = _can_mount()
needs_mount = pytest.mark.skipif(
    not CAN_MOUNT, reason="mounting a tmpfs or a read-only bind mount needs root"
)


@contextlib.contextmanager
def mounted(*mount_args: str, at: Path):
    """`mount ARGS at`, unmounted afterwards (lazily, if something still holds it)."""
    at.mkdir(parents=True, exist_ok=True)
    subprocess.run(["mount", *mount_args, str(at)], check=True, capture_output=True)
    try:
        yield at
    finally:
        if subprocess.run(["umount", str(at)], capture_output=True).returncode != 0:
            subprocess.run(["umount", "-l", str(at)], capture_output=True)


@contextlib.contextmanager
def read_only(folder: Path):
    """`folder` on a read-only bind mount of itself (root ignores file permissions; a
    read-only filesystem it cannot)."""
    with mounted("--bind", str(folder), at=folder):
        subprocess.run(
            ["mount", "-o", "remount,bind,ro", str(folder)], check=True, capture_output=True
        )
        yield folder


def fill(folder: Path) -> Path:
    """Takes every free byte of `folder`'s filesystem with one file, returned: written until the
    filesystem says it is full (a component may be writing there at the same time)."""
    filler = folder / "filler"
    with open(filler, "wb", buffering=0) as out:
        for block in (1 << 20, 4096):
            zeros = bytes(block)
            try:
                while True:
                    out.write(zeros)
            except OSError as e:
                if e.errno != errno.ENOSPC:
                    raise
    assert shutil.disk_usage(folder).free < 64 * 1024
    return filler


class Run:
    """A `run_local.py` run whose console is read line by line while it runs."""

    def __init__(self, args: list[str]):
        self.output_dir = Path(next(a for a in args if a.startswith("--output-dir=")).split("=")[1])
        self.logs_before = set((self.output_dir / "logs").glob("run-*.log"))
        self.process = subprocess.Popen(
            [sys.executable, "run_local.py", *args],
            cwd=PROJECT_ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self.lines: list[str] = []

    def until(self, node_id: str, state: str = "running ...") -> None:
        """Reads the console until `node_id`'s line says `state`."""
        for line in self.process.stdout:
            self.lines.append(line)
            if node_status(line).get(node_id, "").startswith(state):
                return
        raise AssertionError(f"{node_id} never said {state!r}:\n{''.join(self.lines)}")

    def log_text(self) -> str:
        logs = set((self.output_dir / "logs").glob("run-*.log")) - self.logs_before
        return "".join(path.read_text(errors="replace") for path in logs)

    def wait_for_log(self, pattern: str, timeout: float = 60) -> re.Match:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = re.search(pattern, self.log_text())
            if found:
                return found
            time.sleep(0.02)
        raise AssertionError(f"the run's log never said {pattern!r}")

    def kill_node(self, node_id: str, after_seconds: float = 2.0) -> int:
        """SIGKILL to the process running `node_id` (the run's own process lives on)."""
        pid = int(self.wait_for_log(rf"Component {node_id} is running \(process (\d+)\)")[1])
        time.sleep(after_seconds)
        os.kill(pid, signal.SIGKILL)
        return pid

    def finish(self, timeout: float = 600) -> dict:
        out, _ = self.process.communicate(timeout=timeout)
        stdout = "".join(self.lines) + out
        return {"returncode": self.process.returncode, "stdout": stdout, "log": self.log_text()}


def _node_executions(metadata: Path, run_position: int = 0) -> dict:
    index = StoreIndex.open(metadata)
    run = run_contexts(index.store, PIPELINE_NAME)[run_position]
    return {n.node_id: n for n in run_executions(index, run.id)}


def _versions(serving: Path) -> list[str]:
    return sorted(p.name for p in serving.iterdir()) if serving.is_dir() else []


@pytest.fixture(scope="module")
def faulted(sample_data_dir, tmp_path_factory):
    """The sequence of faulted runs on one output directory (a tmpfs where mounting works)."""
    home = tmp_path_factory.mktemp("faults")
    data = home / "data"
    shutil.copytree(sample_data_dir, data)
    output_dir = home / "outputs"
    metadata = home / "store" / "metadata.db"  # beside the full disk, so failures are recorded
    metadata.parent.mkdir()
    serving = output_dir / "serving_model" / PIPELINE_NAME
    base = [f"--data-dir={data}", f"--output-dir={output_dir}", f"--metadata-uri={metadata}"]
    seen: dict = {"metadata": metadata, "serving": serving, "data": data, "output": output_dir}
    with contextlib.ExitStack() as stack:
        if CAN_MOUNT:
            stack.enter_context(mounted("-t", "tmpfs", "-o", "size=256m", "tmpfs", at=output_dir))

        # A component's process killed, retried once: the run completes.
        run = Run([*base, *FAST_RUN_ARGS, "--retries=1"])
        run.until("Transform")
        seen["killed_pid"] = run.kill_node("Transform")
        seen["retried"] = run.finish()
        assert seen["retried"]["returncode"] == 0, seen["retried"]["stdout"]
        seen["retried_executions"] = _node_executions(metadata)
        seen["versions_after_retry"] = _versions(serving)

        # The model code's setting changed (Trainer and after run again); Trainer killed.
        changed = [a for a in FAST_RUN_ARGS if not a.startswith("--train-steps=")]
        changed = [*base, *changed, "--train-steps=151"]
        run = Run(changed)
        run.until("Trainer")
        run.kill_node("Trainer", after_seconds=1.0)
        seen["killed"] = run.finish()
        seen["killed_executions"] = _node_executions(metadata)
        seen["versions_after_killed"] = _versions(serving)
        if not CAN_MOUNT:
            yield seen
            return

        # The disk under the output directory full while Trainer works.
        run = Run(changed)
        run.until("Trainer")
        run.wait_for_log(r"Component Trainer is running")
        time.sleep(1.0)
        filler = fill(output_dir)
        seen["disk_full"] = run.finish()
        seen["disk_full_executions"] = _node_executions(metadata)
        seen["versions_after_disk_full"] = _versions(serving)
        filler.unlink()

        # The serving folder read-only: Pusher cannot publish.
        with read_only(serving):
            seen["read_only"] = Run(changed).finish()
        seen["read_only_executions"] = _node_executions(metadata)
        seen["versions_after_read_only"] = _versions(serving)
        seen["push_leftovers"] = [p.name for p in serving.iterdir() if p.name.startswith(".")]

        # ML Metadata's SQLite file on a full disk (a copy of the store on a small tmpfs).
        small = stack.enter_context(
            mounted("-t", "tmpfs", "-o", "size=16m", "tmpfs", at=home / "small-disk")
        )
        shutil.copy(metadata, small / "metadata.db")
        metadata = small / "metadata.db"
        changed = [a for a in changed if not a.startswith("--metadata-uri=")]
        changed.append(f"--metadata-uri={metadata}")
        filler = fill(small)
        seen["sqlite_full"] = Run(changed).finish()
        filler.unlink()

        # The faults gone (room on both disks, the serving folder writable): the next run, on
        # the freed store, resumes from the cache.
        seen["resumed"] = Run(changed).finish()
        seen["versions_after_resume"] = _versions(serving)

        # The batch to score's CSV changed while UnlabeledExampleGen reads it (a large one, so
        # that the read takes a while): the run stops; restored, the next run reads it again.
        csv = data / "unlabeled" / "span-1" / "taxi.csv"
        original = csv.read_bytes()
        header, *rows = original.decode().splitlines(keepends=True)
        csv.write_text(header + "".join(rows * 400))
        run = Run(changed)
        run.wait_for_log(r"Reading 1 input file\(s\): \S*unlabeled/span-1/taxi\.csv")
        with csv.open("a") as appended:
            appended.write(rows[0])
        seen["csv_changed"] = run.finish()
        seen["csv_changed_executions"] = _node_executions(metadata)
        csv.write_bytes(original)
        seen["csv_restored"] = Run(changed).finish()

        # An output directory on a read-only filesystem: refused before the run.
        blocked = home / "read-only-outputs"
        blocked.mkdir()
        with read_only(blocked):
            seen["output_read_only"] = Run(
                [f"--data-dir={data}", f"--output-dir={blocked}", *FAST_RUN_ARGS]
            ).finish()
        yield seen  # the output directory's tmpfs stays mounted until the module's tests end


def _said(result: dict) -> str:
    """The console's `error:` paragraph."""
    text = result["stdout"]
    return text[text.index("\nerror: ") :] if "\nerror: " in text else text


def test_a_killed_component_is_run_again_with_retries(faulted):
    result = faulted["retried"]
    assert (
        "Transform: killed (the process running Transform was killed by SIGKILL"
        in (result["stdout"])
    )
    assert "retry 1 of 1 (--retries)" in result["stdout"]
    assert node_status(result["stdout"])["Transform"].startswith("executed")
    transform = faulted["retried_executions"]["Transform"]
    assert transform.state == "executed"  # TFX runs the node again in the same execution
    retried = transform.execution.custom_properties[local_runner.RETRIED_PROPERTY].string_value
    assert "killed by SIGKILL" in retried
    assert len(faulted["versions_after_retry"]) == 1


def _assert_fault(faulted: dict, run: str, node_id: str, said: str, recorded: str) -> str:
    """Run `run` stopped with exit 6 saying `error: NODE failed: SAID...`, recorded the node
    FAILED with `recorded` in its message, and pushed nothing. Returns its error paragraph."""
    result = faulted[run]
    assert result["returncode"] == FAULT_EXIT, result["stdout"]
    error = _said(result)
    assert f"error: {node_id} failed: {said}" in error
    assert "Nothing was pushed." in error and "Traceback" not in result["stdout"]
    execution = faulted[f"{run}_executions"][node_id]
    assert execution.state == "failed" and recorded in execution.failure
    assert faulted[f"versions_after_{run}"] == faulted["versions_after_retry"]
    return error


def test_a_killed_component_without_retries_fails_the_run_named_and_recorded(faulted):
    said = _assert_fault(
        faulted,
        "killed",
        "Trainer",
        "the process running Trainer was killed by SIGKILL",
        recorded="killed by SIGKILL",
    )
    assert "--retries N" in said
    assert faulted["killed_executions"]["Transform"].state == "cached"


@needs_mount
def test_a_full_disk_mid_step_fails_the_step_named_and_pushes_nothing(faulted):
    output = faulted["output"]
    said = _assert_fault(
        faulted,
        "disk_full",
        "Trainer",
        f"the disk is full: Trainer could not write {output}",
        recorded="the disk is full",
    )
    assert f"(the filesystem at {output} has 0.0 MiB free" in said and "Free space there" in said


@needs_mount
def test_a_read_only_serving_folder_fails_pusher_and_leaves_no_version(faulted):
    _assert_fault(
        faulted,
        "read_only",
        "Pusher",
        f"{faulted['serving']} is on a read-only filesystem",
        recorded="read-only filesystem",
    )
    status = node_status(faulted["read_only"]["stdout"])
    assert status["Transform"].startswith("cached")  # resumed after the full disk
    assert status["Trainer"].startswith("executed")
    assert faulted["push_leftovers"] == []


@needs_mount
def test_the_run_after_the_faults_resumes_from_the_cache_and_pushes(faulted):
    result = faulted["resumed"]
    assert result["returncode"] == 0, result["stdout"]
    status = node_status(result["stdout"])
    assert status["Trainer"].startswith("cached") and status["Evaluator"].startswith("cached")
    assert status["Pusher"].startswith("executed")
    new = set(faulted["versions_after_resume"]) - set(faulted["versions_after_retry"])
    assert len(new) == 1
    assert (faulted["serving"] / new.pop() / "saved_model.pb").is_file()


@needs_mount
def test_a_csv_changed_while_read_stops_the_run_and_keeps_nothing(faulted):
    result = faulted["csv_changed"]
    assert result["returncode"] == 1, result["stdout"]
    csv = faulted["data"] / "unlabeled" / "span-1" / "taxi.csv"
    assert (
        f"error: UnlabeledExampleGen failed: InputChangedWhileRead: {csv} was changed"
        in (result["stdout"])
    )
    assert "while ExampleGen read it" in result["stdout"]
    example_gen = faulted["csv_changed_executions"]["UnlabeledExampleGen"]
    assert example_gen.state == "failed" and "was changed" in example_gen.failure
    restored = faulted["csv_restored"]
    assert restored["returncode"] == 0, restored["stdout"]
    status = node_status(restored["stdout"])
    assert status["UnlabeledExampleGen"].startswith("executed")
    assert status["CsvExampleGen"].startswith("cached")


@needs_mount
def test_sqlite_on_a_full_disk_is_named_and_the_freed_store_resumes(faulted):
    result = faulted["sqlite_full"]
    assert result["returncode"] == FAULT_EXIT, result["stdout"]
    said = _said(result)
    assert "error: the disk is full: the run could not write ML Metadata's SQLite store" in said
    assert "--metadata-uri at a larger disk" in said
    assert "Traceback" not in result["stdout"]
    # The run after it, on the same store with room again, resumed (the next test's run).
    assert faulted["resumed"]["returncode"] == 0, faulted["resumed"]["stdout"]


@needs_mount
def test_an_output_dir_on_a_read_only_filesystem_is_refused_before_the_run(faulted):
    result = faulted["output_read_only"]
    assert result["returncode"] == 2, result["stdout"]
    assert "Cannot write to the output directory" in result["stdout"]
    assert "Read-only file system" in result["stdout"]


def test_serve_keeps_answering_when_the_served_versions_folder_is_deleted(faulted, tmp_path):
    from google.protobuf import text_format
    from tensorflow_metadata.proto.v0 import schema_pb2

    from tests.serving_helpers import Server, typed_rows

    model_dir = tmp_path / PIPELINE_NAME
    shutil.copytree(faulted["serving"], model_dir, ignore=shutil.ignore_patterns(".*"))
    [version] = _versions(model_dir)[-1:]
    schema = text_format.Parse(
        (model_dir / version / "assets.extra" / "schema.pbtxt").read_text(), schema_pb2.Schema()
    )
    instances = typed_rows(faulted["data"] / "labeled" / "span-2" / "taxi.csv", schema)[:5]
    for instance in instances:
        instance.pop("tips")
    server = Server(model_dir, "--workers=1")
    try:
        before = server.post("predict", {"instances": instances})
        assert before.status_code == 200, before.text
        shutil.rmtree(model_dir / version)
        deadline = time.monotonic() + 30
        while not any("was deleted; still serving it" in line for line in server.console):
            assert time.monotonic() < deadline, "".join(server.console)
            time.sleep(0.2)
        after = server.post("predict", {"instances": instances})
        assert after.status_code == 200, after.text
        assert after.json() == before.json()
        status = httpx.get(server.url, timeout=5).json()
        assert status["model_version_status"][0]["state"] == "AVAILABLE"
    finally:
        code, _, err = server.stop(signal.SIGTERM)
    assert code == 0, err
    said = next(line for line in server.console if "was deleted; still serving it" in line)
    assert f"version {version}: its folder {model_dir / version} was deleted" in said

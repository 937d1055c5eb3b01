"""Shared fixtures: a small, real sample of the taxi data, and the full runs tests share.

Full pipeline runs are the expensive part of the suite (about a minute each on 2 cores), so each
one is a session fixture that several tests read: `e2e_runs` (a cold run and an unchanged re-run)
and `data_lifecycle` (bad data refused, fixed, a schema change accepted, then trained).
"""

from __future__ import annotations

import csv
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from components import tfx_private

# As run_local.py does, before anything imports TFX: tfx.v1 without its Google Cloud extensions.
tfx_private.defer_cloud_extensions()

from cli.app import main as cli_main  # noqa: E402 - after the deferral above
from metadata.runs import run_contexts, run_executions  # noqa: E402
from metadata.store import StoreIndex  # noqa: E402
from pipeline.config import PipelineConfig  # noqa: E402

PROJECT_ROOT = Path(__file__).resolve().parent.parent
# The project's code, one folder a part, lowest first (see README "How the code is organized").
CODE_FOLDERS = (
    "serving",
    "components",
    "pipeline",
    "metadata",
    "profiling",
    "orchestration",
    "deployment",
    "cli",
)
DATA_DIR = PROJECT_ROOT / "data"
TAXI_PROFILE_DIR = PROJECT_ROOT / "profiles" / "taxi"
PIPELINE_NAME = "taxi-tips"
SAMPLE_LABELED_ROWS = 2500
SAMPLE_UNLABELED_ROWS = 150
# A small but real training budget so the e2e run stays within a minute or two.
FAST_RUN_SETTINGS = {
    "tuner_trials": 1,
    "tuner_train_steps": 30,
    "train_steps": 150,
    "eval_steps": 5,
}
FAST_RUN_ARGS = [f"--{name.replace('_', '-')}={value}" for name, value in FAST_RUN_SETTINGS.items()]
SAMPLE_SPANS = {
    "labeled/span-1/taxi.csv": SAMPLE_LABELED_ROWS // 2,
    "labeled/span-2/taxi.csv": SAMPLE_LABELED_ROWS // 2,
    "unlabeled/span-1/taxi.csv": SAMPLE_UNLABELED_ROWS,
}
LATEST_SPAN = Path("labeled") / "span-2" / "taxi.csv"


def taxi_config(**settings) -> PipelineConfig:
    """The shipped taxi profile's config (the CLI's default profile), `settings` overriding it."""
    return PipelineConfig.from_profile(TAXI_PROFILE_DIR, **settings)


def write_sample(source: Path, target: Path, rows: int) -> int:
    """Copies the header and the first `rows` rows of a CSV; returns the row count written."""
    target.parent.mkdir(parents=True, exist_ok=True)
    with source.open(newline="") as f_in, target.open("w", newline="") as f_out:
        reader, writer = csv.reader(f_in), csv.writer(f_out, lineterminator="\n")
        writer.writerow(next(reader))
        written = 0
        for row in reader:
            if written == rows:
                break
            writer.writerow(row)
            written += 1
    return written


def write_sample_data(data_dir: Path) -> Path:
    """The first rows of every shipped span, in the same layout."""
    for relative, rows in SAMPLE_SPANS.items():
        write_sample(DATA_DIR / relative, data_dir / relative, rows)
    return data_dir


def read_rows(path: Path) -> list[list[str]]:
    with path.open(newline="") as f:
        return list(csv.reader(f))


def write_rows(path: Path, rows: list[list[str]]) -> None:
    with path.open("w", newline="") as f:
        csv.writer(f, lineterminator="\n").writerows(rows)


def edit_column(path: Path, column: str, edit) -> None:
    """Applies `edit(row_number, value) -> value` to one column of every data row."""
    rows = read_rows(path)
    index = rows[0].index(column)
    for number, row in enumerate(rows[1:]):
        row[index] = edit(number, row[index])
    write_rows(path, rows)


@pytest.fixture(scope="session")
def sample_data_dir(tmp_path_factory) -> Path:
    return write_sample_data(tmp_path_factory.mktemp("data"))


def run_cli(
    *args: str, cwd: Path = PROJECT_ROOT, timeout: int = 900, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess:
    """Runs `python run_local.py ARGS` as a user would, capturing what the terminal would show.

    For runs of the pipeline: a run sends file descriptors 1 and 2 to its log file, which only a
    process of its own shows as a user sees it."""
    return subprocess.run(
        [sys.executable, "run_local.py", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
    )


def invoke(*args: str) -> Result:
    """Runs a command of the click app in this process (commands that read ML Metadata)."""
    return CliRunner().invoke(cli_main, list(args), catch_exceptions=False)


def copy_project(target: Path) -> Path:
    """A copy of the runnable project (entry point, code, schema, profiles) to edit without
    touching ours."""
    target.mkdir(parents=True)
    for part in ("run_local.py", *CODE_FOLDERS, "schema", "profiles"):
        source = PROJECT_ROOT / part
        (shutil.copytree if source.is_dir() else shutil.copy)(source, target / part)
    return target


_PROGRESS_LINE = re.compile(r"^\[\s*\d+/\d+\] (\S+)\s+(.*)$")


def node_status(output: str) -> dict[str, str]:
    """Node id -> what its last progress line in a run's console output says, e.g.
    "cached      0.1 s" (the line `[ 3/18] StatisticsGen  cached  0.1 s`)."""
    status = {}
    for line in output.splitlines():
        match = _PROGRESS_LINE.match(line)
        if match:
            status[match.group(1)] = match.group(2)
    return status


def run_node_states(output_dir: Path, run_position: int = 0) -> dict[str, str]:
    """Node id -> state in a run of the store in `output_dir` (0 = newest)."""
    index = StoreIndex.open(output_dir / "metadata.db")
    run = run_contexts(index.store, PIPELINE_NAME)[run_position]
    return {n.node_id: n.state for n in run_executions(index, run.id)}


@pytest.fixture(scope="session")
def e2e_runs(sample_data_dir, tmp_path_factory):
    """Two runs of the full pipeline on the sample: a cold one, then one with nothing changed."""
    output_dir = tmp_path_factory.mktemp("outputs")
    args = [f"--data-dir={sample_data_dir}", f"--output-dir={output_dir}", *FAST_RUN_ARGS]
    first = run_cli(*args)
    second = run_cli(*args) if first.returncode == 0 else None
    return {"output_dir": output_dir, "first": first, "second": second}


@pytest.fixture(scope="session")
def penguin_runs(tmp_path_factory):
    """The shipped penguin profile (multiclass), copied so a test can edit it: a cold run (one
    component at a time), a re-run with nothing changed, and a run after a change to the profile's blessing only."""
    profile_dir = tmp_path_factory.mktemp("profiles") / "penguin"
    shutil.copytree(PROJECT_ROOT / "profiles" / "penguin", profile_dir)
    output_dir = tmp_path_factory.mktemp("penguin-outputs")
    args = [f"--profile={profile_dir}", f"--output-dir={output_dir}"]
    # One component at a time, the way TFX's own LocalDagRunner runs them (test_parallel_runs).
    first = run_cli(*args, "--parallelism=1")
    second = run_cli(*args) if first.returncode == 0 else None
    profile_file = profile_dir / "profile.yaml"
    profile_file.write_text(
        profile_file.read_text().replace("max_regression: 0.02", "max_regression: 0.03")
    )
    blessing_changed = run_cli(*args) if first.returncode == 0 else None
    return {
        "profile_dir": profile_dir,
        "output_dir": output_dir,
        "first": first,
        "second": second,
        "blessing_changed": blessing_changed,
    }

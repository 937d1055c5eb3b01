"""Shared fixtures: a small, real sample of the taxi data and one end-to-end pipeline run."""

from __future__ import annotations

import csv
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DATA_DIR = PROJECT_ROOT / "data"
SAMPLE_LABELED_ROWS = 2500
SAMPLE_UNLABELED_ROWS = 150
# A small but real training budget so the e2e run stays within a few minutes.
FAST_RUN_ARGS = [
    "--tuner-trials=1",
    "--tuner-train-steps=30",
    "--train-steps=150",
    "--eval-steps=5",
]


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


SAMPLE_SPANS = {
    "labeled/span-1/taxi.csv": SAMPLE_LABELED_ROWS // 2,
    "labeled/span-2/taxi.csv": SAMPLE_LABELED_ROWS // 2,
    "unlabeled/span-1/taxi.csv": SAMPLE_UNLABELED_ROWS,
}


def write_sample_data(data_dir: Path) -> Path:
    """The first rows of every shipped span, in the same layout."""
    for relative, rows in SAMPLE_SPANS.items():
        write_sample(DATA_DIR / relative, data_dir / relative, rows)
    return data_dir


@pytest.fixture(scope="session")
def sample_data_dir(tmp_path_factory) -> Path:
    return write_sample_data(tmp_path_factory.mktemp("data"))


def run_cli(
    *args: str, cwd: Path = PROJECT_ROOT, timeout: int = 900
) -> subprocess.CompletedProcess:
    """Runs `python run_local.py ARGS` as a user would, capturing what the terminal would show."""
    return subprocess.run(
        [sys.executable, "run_local.py", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def copy_project(target: Path) -> Path:
    """A copy of the runnable project (entry point, code, schema) to edit without touching ours."""
    target.mkdir(parents=True)
    for part in ("run_local.py", "pipeline", "components", "schema"):
        source = PROJECT_ROOT / part
        (shutil.copytree if source.is_dir() else shutil.copy)(source, target / part)
    return target


@pytest.fixture(scope="session")
def e2e_runs(sample_data_dir, tmp_path_factory):
    """Two runs of the full pipeline on the sample: a cold one, then one with nothing changed."""
    output_dir = tmp_path_factory.mktemp("outputs")
    args = [f"--data-dir={sample_data_dir}", f"--output-dir={output_dir}", *FAST_RUN_ARGS]
    first = run_cli(*args)
    second = run_cli(*args) if first.returncode == 0 else None
    return {"output_dir": output_dir, "first": first, "second": second}

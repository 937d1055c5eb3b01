"""Reads the facts the harness records beside its measurements: the machine, the git state, the
code fingerprints of the project's components, and what a finished run left behind (ML Metadata via
bench/read_run.py, bytes on disk, console tail, CSV rows and hashes)."""

from __future__ import annotations

import csv
import hashlib
import importlib.metadata
import json
import os
import platform
import re
import subprocess
import sys
from pathlib import Path

import psutil

PROJECT_ROOT = Path(__file__).resolve().parent.parent
BENCH_DIR = PROJECT_ROOT / "bench"

# PipelineConfig field of each user-code entry point -> the node whose cache key covers it.
FINGERPRINTED_NODES = {"preprocessing_fn": "Transform", "tuner_fn": "Tuner", "run_fn": "Trainer"}


def project_relative(path: Path) -> str:
    """`path` relative to the project when inside it (symlinks such as the venv's python kept)."""
    path = Path(os.path.abspath(path))
    return str(path.relative_to(PROJECT_ROOT)) if path.is_relative_to(PROJECT_ROOT) else str(path)


def machine_info() -> dict:
    cpu_model = None
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu_model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    versions = {}
    for package in ("tfx", "tensorflow", "apache-beam", "tensorflow-transform", "numpy"):
        try:
            versions[package] = importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            versions[package] = None
    return {
        "cpu_model": cpu_model or platform.processor() or None,
        "cores": os.cpu_count(),
        "memory_bytes": psutil.virtual_memory().total,
        "platform": platform.platform(),
        "python": platform.python_version(),
        "versions": versions,
    }


def _git(*args: str) -> str | None:
    try:
        done = subprocess.run(
            ["git", *args], cwd=PROJECT_ROOT, capture_output=True, text=True, check=True
        )
    except (OSError, subprocess.CalledProcessError):
        return None
    return done.stdout.strip()


def git_commit() -> str | None:
    """The short hash of HEAD (None outside a git checkout)."""
    return _git("rev-parse", "--short", "HEAD")


def git_info() -> dict:
    """Commit, and whether tracked files differ from it (untracked files are listed apart)."""
    status = _git("status", "--porcelain")
    lines = status.splitlines() if status else []
    modified = [line[3:] for line in lines if not line.startswith("??")]
    untracked = [line[3:] for line in lines if line.startswith("??")]
    return {
        "commit": git_commit(),
        "dirty": bool(modified),
        "modified": modified,
        "untracked": untracked,
    }


def directory_bytes(path: Path) -> int:
    total = 0
    for root, _, files in os.walk(path):
        for name in files:
            try:
                total += os.lstat(os.path.join(root, name)).st_size
            except OSError:
                pass
    return total


def tail(path: Path, lines: int = 15) -> list[str]:
    try:
        return path.read_text(errors="replace").splitlines()[-lines:]
    except OSError:
        return []


def read_run(
    output_dir: Path,
    scratch: Path,
    upstream_of: str | None = None,
    pipeline_name: str | None = None,
) -> dict:
    """bench/read_run.py's facts about the latest run in `output_dir`'s ML Metadata (the
    project's pipeline, or with `pipeline_name` another one: what any TFX run records)."""
    metadata = output_dir / "metadata.db"
    if not metadata.is_file():
        return {"read_error": f"no ML Metadata store at {metadata}", "components": []}
    json_out = scratch / "read_run.json"
    command = [sys.executable, str(BENCH_DIR / "read_run.py"), str(metadata)]
    command += ["--json-out", str(json_out)]
    if upstream_of:
        command += ["--upstream-of", upstream_of]
    if pipeline_name:
        command += ["--pipeline-name", pipeline_name]
    done = subprocess.run(command, cwd=PROJECT_ROOT, capture_output=True, text=True)
    if done.returncode != 0 or not json_out.is_file():
        message = (done.stderr.strip().splitlines() or ["(no output)"])[-1]
        return {"read_error": f"read_run.py failed: {message}", "components": []}
    facts = json.loads(json_out.read_text())
    json_out.unlink()
    return facts


def code_fingerprints(project: Path) -> dict[str, str]:
    """The code fingerprint each component carries in its cache key (`custom_config`), as
    `project`'s own `create_pipeline()` computes it, keyed by the user function it covers."""
    snippet = (
        "import json\n"
        "from pathlib import Path\n"
        "from pipeline.config import PipelineConfig\n"
        "from pipeline.definition import create_pipeline\n"
        f"nodes = {dict((v, k) for k, v in FINGERPRINTED_NODES.items())!r}\n"
        "out = {}\n"
        "for c in create_pipeline(PipelineConfig.from_profile(Path('profiles/taxi'))).components:\n"
        "    config = c.exec_properties.get('custom_config')\n"
        "    config = json.loads(config) if isinstance(config, str) else (config or {})\n"
        "    if c.id in nodes and 'code_fingerprint' in config:\n"
        "        out[nodes[c.id]] = config['code_fingerprint']\n"
        "print(json.dumps(out))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", snippet], cwd=project, capture_output=True, text=True
    )
    if done.returncode != 0:
        return {}
    return json.loads(done.stdout.strip().splitlines()[-1])


def sha256_of(*paths: Path) -> str:
    digest = hashlib.sha256()
    for path in paths:
        digest.update(path.name.encode() + b"\0")
        with path.open("rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()


def csv_rows(path: Path) -> int:
    """Data rows of a CSV file (its header and blank lines not counted)."""
    with path.open(newline="", encoding="utf-8", errors="replace") as f:
        reader = csv.reader(f)
        next(reader, None)
        return sum(1 for row in reader if row)


def span_key(path: Path) -> tuple:
    """Sort key of a span CSV: its span number (span-2 before span-10), then its path."""
    match = re.search(r"(\d+)", path.parent.name)
    return (int(match.group(1)) if match else -1, str(path))

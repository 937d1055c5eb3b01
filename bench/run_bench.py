"""Benchmark harness: times the local pipeline, beside TFX's own taxi example, and writes BENCHMARKS.md.

    python bench/run_bench.py [--only reference,cold,...] [--scale-rows 100000 1000000 10000000]
                              [--scale-timeout-minutes 45] [--skip-scale] [--skip-serving]
                              [--out-dir bench/work] [--data-dir data] [--run-arg=ARG ...]
                              [--results bench/results.json] [--markdown BENCHMARKS.md]
    python bench/run_bench.py --render-only     # re-render the Markdown from the results JSON
    python bench/run_bench.py --serving-only    # only the serving load (bench/serve_load.py)

Scenarios, in this order, each one a measured subprocess with its own output directory:

  reference           TFX 1.16's own Chicago taxi example (taxi_pipeline_native_keras.py with its
                      module file taxi_utils_native_keras.py, as installed in the `tfx` package),
                      run by bench/reference_taxi.py with TFX's LocalDagRunner on a folder holding
                      copies of --data-dir's labeled span CSVs (the rows the project's cold run
                      reads), Beam's DirectRunner in_memory as the project's cold run, its own fresh
                      pipeline root and SQLite ML Metadata. Right before the project's cold run, so
                      that the two compare like with like on a shared machine; both follow one
                      unmeasured import of TensorFlow/TFX, so that neither pays for a cold page cache;
  cold                full chain on --data-dir, fresh output directory;
  rerun_unchanged     the same command again on the same output directory (cache hits);
  rerun_model_change  a copy of the project (run_local.py, code folders, schema/) whose
                      components/model.py has one appended line, run on the same output
                      directory with the project's own curated schema file (--schema):
                      Trainer and what follows must re-execute, and what is upstream of
                      Trainer must stay cached unless its own code fingerprint changed;
  serving_load        `run_local.py serve` on the cold run's model under load: requests/s and
                      p50/p99 latency of REST :predict, 1 and 64 rows per request, 1, 8 and 32
                      concurrent clients (bench/serve_load.py);
  scale (scale_N)     for each N of --scale-rows: N rows from bench/generate_data.py (timed on its
                      own; kept in --out-dir/data-N and reused while the generator, its inputs, N
                      and the seed are unchanged), then a cold run on them, stopped (its process
                      group ended, SIGTERM then SIGKILL) after --scale-timeout-minutes.

--only runs a subset (e.g. `--only reference,cold`) and merges it into an existing results JSON:
the other scenarios keep what an earlier invocation measured, and each run says which invocation
and commit measured it. The re-runs and the serving load need a cold run's outputs in --out-dir.

What is measured for each run:

  wall seconds        from start to exit of the process;
  CPU seconds         user + system time of the process and every descendant it waited for, from
                      os.wait4's resource usage (what `time` reports); when larger, the sum of each
                      process's own CPU time as last sampled (a descendant nobody waits for, such
                      as a multiprocessing forkserver that reaps its own workers, is missing from
                      wait4's figure);
  peak RSS            the largest sum of resident memory over the process and all its descendants,
                      sampled every --sample-interval seconds with psutil (shared pages count once
                      per process, so forked workers can be over-counted); also the largest single
                      process's peak (ru_maxrss of the waited-for tree, which sampling cannot
                      miss, or the largest sampled process if larger);
  load average        the 1-minute load average just before the run started;
  exit code, per-component state and duration (ML Metadata, via bench/read_run.py), Evaluator
  metrics (AUC, binary accuracy, ...) and how much the output directory holds on disk. The
  reference's Evaluator computes binary accuracy only; its AUC is computed after its run, untimed,
  from its model on its own eval split (bench/reference_taxi.py score).

Everything goes to the results JSON (written after each run, so a crash keeps what was measured)
and is rendered to BENCHMARKS.md, including a targets section where a missed target says MISSED.
Runs go one at a time; extra `run_local.py` options (budgets, Beam options) are passed with
--run-arg, e.g. --run-arg=--beam-arg=--direct_num_workers=2 (they do not apply to the reference).
"""

from __future__ import annotations

import argparse
import csv
import datetime
import hashlib
import importlib.metadata
import json
import os
import platform
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import psutil

PROJECT_ROOT = Path(__file__).resolve().parent.parent
BENCH_DIR = PROJECT_ROOT / "bench"
DEFAULT_RESULTS = BENCH_DIR / "results.json"
DEFAULT_MARKDOWN = PROJECT_ROOT / "BENCHMARKS.md"
DEFAULT_OUT_DIR = BENCH_DIR / "work"
DEFAULT_DATA_DIR = PROJECT_ROOT / "data"
DEFAULT_SCALE_ROWS = (100_000, 1_000_000, 10_000_000)
DEFAULT_SCALE_TIMEOUT_MINUTES = 45.0
RESULTS_VERSION = 2
GIB = 1024**3

# Scenario names for --only, in the order they run ("scale" is every scale_N of --scale-rows).
SCENARIOS = (
    "reference",
    "cold",
    "parallelism",
    "rerun_unchanged",
    "rerun_model_change",
    "serving_load",
    "scale",
)
NEEDS_COLD_OUTPUT = ("rerun_unchanged", "rerun_model_change", "serving_load")

# The reference: TFX 1.16's own taxi example, run by bench/reference_taxi.py with the DirectRunner
# options of the project's cold run on the default data (orchestration/beam_mode.py, in_memory).
REFERENCE_DRIVER = BENCH_DIR / "reference_taxi.py"
REFERENCE_PIPELINE_NAME = "chicago_taxi_native_keras"
REFERENCE_BEAM_ARGS = ("--direct_running_mode=in_memory", "--direct_num_workers=1")
# Imported once, unmeasured, before the reference and the cold run (page cache, not timing).
WARM_UP_IMPORTS = "import tensorflow, tensorflow_transform, tensorflow_model_analysis, tfx.v1"
# Stamp of a generated scale data set: what it was generated from, and how long that took.
GENERATED_STAMP = "bench-generated.json"

# The parts of the project a run needs (as tests/conftest.py's copy_project copies them).
PROJECT_PARTS = (
    "run_local.py",
    "serving",
    "pipeline",
    "components",
    "orchestration",
    "metadata",
    "cli",
    "schema",
    "profiles",
)
CHANGED_MODULE = "components/model.py"
# A real change to the module's bytes (the code fingerprint hashes file contents): a new
# module-level constant that nothing reads.
MODEL_CHANGE = (
    "\n\n# Appended by bench/run_bench.py (rerun_model_change scenario).\n"
    "BENCH_MODEL_CHANGE_MARKER = 1\n"
)
# PipelineConfig field of each user-code entry point -> the node whose cache key covers it.
FINGERPRINTED_NODES = {"preprocessing_fn": "Transform", "tuner_fn": "Tuner", "run_fn": "Trainer"}

# Targets. A scale target applies when --scale-rows includes its row count.
TARGET_COLD_VS_REFERENCE = 0.78  # project cold wall / reference cold wall
TARGET_RERUN_RATIO = 0.15  # unchanged re-run wall / cold wall
TARGET_MODEL_CHANGE_RATIO = 0.35  # model-code-change re-run wall / cold wall
TARGET_1M_ROWS = 1_000_000
TARGET_1M_SECONDS = 4 * 60.0
TARGET_10M_ROWS = 10_000_000
TARGET_10M_SECONDS = 40 * 60.0
TARGET_10M_PEAK_BYTES = 8 * GIB
TARGET_CORES = 2
TARGET_AUC = 0.947  # the project's cold run on the default data

MET, MISSED, NOT_MEASURED = "met", "MISSED", "not measured"


# --------------------------------------------------------------------------------------------
# Measuring one process tree


@dataclass
class Measurement:
    """Resource use of one command and all its descendants."""

    wall_seconds: float
    cpu_user_seconds: float  # os.wait4: the process and every descendant it waited for
    cpu_system_seconds: float
    cpu_sampled_seconds: float  # sum of each sampled process's own CPU, as last seen
    peak_rss_bytes: int  # sampled sum over the process tree
    max_process_rss_bytes: int  # the largest single process: ru_maxrss, or sampled if larger
    rss_samples: int
    exit_code: int
    timed_out: bool
    leftover_processes: int  # descendants still alive after the command exited (then ended)

    @property
    def cpu_seconds(self) -> float:
        """wait4's figure, exact when every descendant was waited for; the sampled sum when that
        is larger (a descendant nobody waited for, e.g. a multiprocessing forkserver whose
        workers it reaps itself, is missing from wait4's usage)."""
        return max(self.cpu_user_seconds + self.cpu_system_seconds, self.cpu_sampled_seconds)


class TreeSampler(threading.Thread):
    """Samples a process and its descendants until stopped: the largest summed RSS, the largest
    single process's RSS, and each process's own CPU time as last seen."""

    def __init__(self, pid: int, interval: float):
        super().__init__(daemon=True)
        self.process = psutil.Process(pid)
        self.interval = interval
        self.peak = 0
        self.process_peak = 0
        self.samples = 0
        self._cpu: dict[tuple[int, float], float] = {}  # (pid, start time) -> user + system
        self._stop_event = threading.Event()

    @property
    def cpu_seconds(self) -> float:
        """A lower bound: each process's CPU after its last sample is missed."""
        return sum(self._cpu.values())

    def sample(self) -> None:
        try:
            tree = [self.process, *self.process.children(recursive=True)]
        except psutil.Error:
            return
        total = 0
        for process in tree:
            try:
                with process.oneshot():
                    rss = process.memory_info().rss
                    times = process.cpu_times()
                    key = (process.pid, process.create_time())
            except psutil.Error:
                continue  # exited between listing and reading
            total += rss
            self.process_peak = max(self.process_peak, rss)
            self._cpu[key] = times.user + times.system
        self.peak = max(self.peak, total)
        self.samples += 1

    def run(self) -> None:
        while not self._stop_event.is_set():
            self.sample()
            self._stop_event.wait(self.interval)

    def stop(self) -> None:
        self._stop_event.set()
        self.join()


def _processes_in_group(pgid: int) -> list[psutil.Process]:
    found = []
    for process in psutil.process_iter():
        try:
            if os.getpgid(process.pid) == pgid:
                found.append(process)
        except (OSError, psutil.Error):
            pass
    return found


def _end_group(pgid: int, grace_seconds: float = 15.0) -> None:
    """SIGTERM, then SIGKILL, to the process group this harness started (by its id)."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(pgid, sig)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + grace_seconds
        while time.monotonic() < deadline and _processes_in_group(pgid):
            time.sleep(0.5)


def measure(
    command: list[str], cwd: Path, log_path: Path, timeout: float, interval: float
) -> Measurement:
    """Runs `command` (stdout and stderr to `log_path`) in its own session and measures it."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    timed_out = threading.Event()
    with log_path.open("wb") as log:
        started = time.perf_counter()
        process = subprocess.Popen(
            command, cwd=cwd, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        sampler = TreeSampler(process.pid, interval)
        sampler.start()

        def on_timeout() -> None:
            timed_out.set()
            _end_group(process.pid)

        timer = threading.Timer(timeout, on_timeout)
        timer.start()
        try:
            # wait4 rather than Popen.wait: it also returns the tree's resource usage.
            _, status, usage = os.wait4(process.pid, 0)
        except BaseException:  # Ctrl-C: the run is in its own session, so end it here
            timer.cancel()
            _end_group(process.pid)
            raise
        wall = time.perf_counter() - started
        process.returncode = os.waitstatus_to_exitcode(status)
        timer.cancel()
        if timed_out.is_set():
            timer.join()  # let _end_group finish with the rest of the group before counting
        sampler.stop()
    leftovers = _processes_in_group(process.pid)
    if leftovers:
        _end_group(process.pid)
    return Measurement(
        wall_seconds=round(wall, 3),
        cpu_user_seconds=round(usage.ru_utime, 3),
        cpu_system_seconds=round(usage.ru_stime, 3),
        cpu_sampled_seconds=round(sampler.cpu_seconds, 3),
        peak_rss_bytes=sampler.peak,
        max_process_rss_bytes=max(usage.ru_maxrss * 1024, sampler.process_peak),  # KiB on Linux
        rss_samples=sampler.samples,
        exit_code=process.returncode,
        timed_out=timed_out.is_set(),
        leftover_processes=len(leftovers),
    )


def measurement_dict(m: Measurement) -> dict:
    return {**asdict(m), "cpu_seconds": round(m.cpu_seconds, 3)}


# --------------------------------------------------------------------------------------------
# Facts about the machine, the code and a run's outputs


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


def git_info() -> dict:
    """Commit, and whether tracked files differ from it (untracked files are listed apart)."""
    status = _git("status", "--porcelain")
    lines = status.splitlines() if status else []
    modified = [line[3:] for line in lines if not line.startswith("??")]
    untracked = [line[3:] for line in lines if line.startswith("??")]
    return {
        "commit": _git("rev-parse", "--short", "HEAD"),
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
        "from pipeline.config import PipelineConfig\n"
        "from pipeline.definition import create_pipeline\n"
        f"nodes = {dict((v, k) for k, v in FINGERPRINTED_NODES.items())!r}\n"
        "out = {}\n"
        "for c in create_pipeline(PipelineConfig()).components:\n"
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


def _span_key(path: Path) -> tuple:
    """Sort key of a span CSV: its span number (span-2 before span-10), then its path."""
    match = re.search(r"(\d+)", path.parent.name)
    return (int(match.group(1)) if match else -1, str(path))


# --------------------------------------------------------------------------------------------
# Scenarios


@dataclass
class Settings:
    out_dir: Path
    data_dir: Path
    run_args: list[str]
    timeout: float
    interval: float
    seed: int
    scale_timeout: float = DEFAULT_SCALE_TIMEOUT_MINUTES * 60.0
    invocation: str | None = None  # started_at of the harness invocation
    commit: str | None = None

    @property
    def logs(self) -> Path:
        return self.out_dir / "logs"


def _relative(path: Path) -> str:
    """`path` relative to the project when inside it (symlinks such as the venv's python kept)."""
    path = Path(os.path.abspath(path))
    return str(path.relative_to(PROJECT_ROOT)) if path.is_relative_to(PROJECT_ROOT) else str(path)


def measured_run(
    settings: Settings,
    scenario: str,
    description: str,
    command: list[str],
    cwd: Path,
    timeout: float | None = None,
) -> dict:
    """One measured command: the record's resources part, printed as it ends."""
    timeout = settings.timeout if timeout is None else min(timeout, settings.timeout)
    log_path = settings.logs / f"{scenario}.log"
    print(f"[bench] {now()}  {scenario}: {description}", flush=True)
    started_at, load_before = now(), os.getloadavg()[0]
    m = measure(command, cwd, log_path, timeout, settings.interval)
    stopped = f" (stopped at the {fmt_minutes(timeout)} cap)" if m.timed_out else ""
    print(
        f"[bench] {scenario}: exit {m.exit_code}{stopped}, {m.wall_seconds:.1f} s wall, "
        f"{m.cpu_seconds:.1f} s CPU, peak RSS {m.peak_rss_bytes / GIB:.2f} GiB",
        flush=True,
    )
    record = {
        "scenario": scenario,
        "description": description,
        "invocation": settings.invocation,
        "git_commit": settings.commit,
        "started_at": started_at,
        "load_average_before": round(load_before, 2),
        "command": [_relative(Path(command[0])), *command[1:]],
        "cwd": _relative(cwd),
        "console_log": _relative(log_path),
        "timeout_seconds": timeout,
        **measurement_dict(m),
    }
    if m.exit_code != 0:
        record["console_tail"] = tail(log_path)
    return record


def pipeline_run(
    settings: Settings,
    scenario: str,
    description: str,
    data_dir: Path,
    output_dir: Path,
    cwd: Path = PROJECT_ROOT,
    upstream_of: str | None = None,
    timeout: float | None = None,
    extra_args: tuple[str, ...] = (),
) -> dict:
    """One measured `python run_local.py` and what ML Metadata says it did."""
    command = [
        sys.executable,
        "run_local.py",
        f"--data-dir={data_dir}",
        f"--output-dir={output_dir}",
        *settings.run_args,
        *extra_args,
    ]
    record = measured_run(settings, scenario, description, command, cwd, timeout)
    record["data_dir"] = _relative(data_dir)
    record["output_dir"] = _relative(output_dir)
    record["output_bytes"] = directory_bytes(output_dir)
    facts = read_run(output_dir, settings.logs, upstream_of)
    record.update(facts)
    _add_states(record)
    return record


def _add_states(record: dict) -> None:
    components = record.get("components", [])
    record["executed"] = [c["node_id"] for c in components if c["state"] == "executed"]
    record["cached"] = [c["node_id"] for c in components if c["state"] == "cached"]
    record["failed"] = [c["node_id"] for c in components if c["state"] == "failed"]


def reference_data(settings: Settings) -> tuple[Path, list[dict]]:
    """One folder of CSV files for the reference's CsvExampleGen: a copy of each labeled span CSV
    of --data-dir (the rows the project's cold run reads), named after its span."""
    sources = sorted(settings.data_dir.glob("labeled/*/*.csv"), key=_span_key)
    if not sources:
        raise FileNotFoundError(f"no labeled CSV under {settings.data_dir / 'labeled'}")
    target = fresh(settings.out_dir / "reference-data")
    target.mkdir(parents=True)
    files = []
    for source in sources:
        copy = target / f"{source.parent.name}-{source.name}"
        shutil.copyfile(source, copy)
        files.append(
            {
                "source": _relative(source),
                "copy": _relative(copy),
                "rows": csv_rows(copy),
                "bytes": copy.stat().st_size,
                "sha256": sha256_of(copy),
            }
        )
    return target, files


def reference_run(settings: Settings) -> dict:
    """Scenario reference: TFX 1.16's own taxi example (bench/reference_taxi.py), measured like the
    project's runs, then read from its ML Metadata and scored (AUC) untimed."""
    data_dir, files = reference_data(settings)
    work_dir = fresh(settings.out_dir / "runs" / "reference")
    command = [
        sys.executable,
        str(REFERENCE_DRIVER),
        "run",
        f"--data-root={data_dir}",
        f"--work-dir={work_dir}",
        *(f"--beam-arg={arg}" for arg in REFERENCE_BEAM_ARGS),
    ]
    record = measured_run(
        settings,
        "reference",
        "TFX 1.16's own Chicago taxi example (taxi_pipeline_native_keras.py), as installed, "
        "fresh pipeline root and ML Metadata",
        command,
        PROJECT_ROOT,
    )
    record["data_dir"] = _relative(data_dir)
    record["data_files"] = files
    record["rows"] = sum(f["rows"] for f in files)
    record["output_dir"] = _relative(work_dir)
    record["output_bytes"] = directory_bytes(work_dir)
    record["beam_args"] = list(REFERENCE_BEAM_ARGS)
    environment = work_dir / "environment.json"
    if environment.is_file():
        record["environment"] = json.loads(environment.read_text())
    record.update(read_run(work_dir, settings.logs, pipeline_name=REFERENCE_PIPELINE_NAME))
    _add_states(record)
    if record["exit_code"] == 0:
        record["scored"] = score_reference(settings, work_dir)
    return record


def score_reference(settings: Settings, work_dir: Path) -> dict:
    """AUC of the reference's model on its eval split (bench/reference_taxi.py score), untimed."""
    json_out = settings.logs / "reference-score.json"
    command = [sys.executable, str(REFERENCE_DRIVER), "score", f"--work-dir={work_dir}"]
    command += [f"--json-out={json_out}"]
    done = subprocess.run(command, cwd=PROJECT_ROOT, capture_output=True, text=True)
    if done.returncode != 0 or not json_out.is_file():
        message = (done.stderr.strip().splitlines() or ["(no output)"])[-1]
        return {"error": f"reference_taxi.py score failed: {message}"}
    scored = json.loads(json_out.read_text())
    json_out.unlink()
    return scored


def warm_up(settings: Settings) -> dict:
    """Imports TensorFlow and TFX once, unmeasured as a run, so that the first measured run does
    not pay for reading them from disk into the page cache and the second one not."""
    log_path = settings.logs / "warm-up.log"
    print(f"[bench] {now()}  warm-up: {WARM_UP_IMPORTS}", flush=True)
    m = measure(
        [sys.executable, "-c", WARM_UP_IMPORTS],
        PROJECT_ROOT,
        log_path,
        settings.timeout,
        settings.interval,
    )
    return {"command": WARM_UP_IMPORTS, "wall_seconds": m.wall_seconds, "exit_code": m.exit_code}


def copy_project(target: Path) -> Path:
    """A copy of the runnable project, as tests/conftest.py makes one."""
    if target.exists():
        shutil.rmtree(target)
    target.mkdir(parents=True)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for part in PROJECT_PARTS:
        source = PROJECT_ROOT / part
        if source.is_dir():
            shutil.copytree(source, target / part, ignore=ignore)
        else:
            shutil.copy2(source, target / part)
    return target


def model_change_run(settings: Settings, output_dir: Path) -> dict:
    """Scenario rerun_model_change: an edited copy of the project on the cold run's outputs."""
    project = copy_project(settings.out_dir / "project-model-change")
    before = code_fingerprints(project)
    with (project / CHANGED_MODULE).open("a") as f:
        f.write(MODEL_CHANGE)
    after = code_fingerprints(project)
    record = pipeline_run(
        settings,
        "rerun_model_change",
        f"a copy of the project with a line appended to {CHANGED_MODULE}, same output directory "
        "and curated schema file",
        settings.data_dir,
        output_dir,
        cwd=project,
        upstream_of="Trainer",
        # The curated schema's path is an input of CuratedSchemaImporter (TFX's ImportSchemaGen
        # keys on it): the copy's own schema/ would re-import it, and so re-run everything
        # downstream, Transform and Tuner included. A user editing model.py in place keeps it.
        extra_args=(f"--schema={PROJECT_ROOT / 'schema' / 'schema.pbtxt'}",),
    )
    states = {c["node_id"]: c["state"] for c in record.get("components", [])}
    upstream = record.get("upstream_of", {}).get("Trainer")
    changed = [k for k in FINGERPRINTED_NODES if before.get(k) != after.get(k)]
    changed_nodes = {FINGERPRINTED_NODES[k] for k in changed}
    record["model_change"] = {
        "file": CHANGED_MODULE,
        "appended": MODEL_CHANGE.strip(),
        "fingerprints_before": before,
        "fingerprints_after": after,
        "fingerprints_changed": changed,
        "upstream_of_trainer": upstream,
        "upstream_states": {n: states.get(n, "not run") for n in upstream or []},
        "upstream_not_cached": [n for n in upstream or [] if states.get(n) != "cached"],
        # Re-executed although their own code and inputs did not change: a cache miss to explain.
        "upstream_unexpectedly_executed": [
            n for n in upstream or [] if states.get(n) != "cached" and n not in changed_nodes
        ],
        "trainer_state": states.get("Trainer", "not run"),
    }
    return record


def generation_key(settings: Settings, rows: int) -> dict:
    """What a generated data set depends on: the generator, its inputs, the row count, the seed."""
    inputs = sorted(DEFAULT_DATA_DIR.glob("*labeled/*/*.csv"))
    return {
        "rows": rows,
        "seed": settings.seed,
        "generator_sha256": sha256_of(BENCH_DIR / "generate_data.py"),
        "inputs_sha256": sha256_of(*inputs, PROJECT_ROOT / "schema" / "schema.pbtxt"),
    }


def scale_data(settings: Settings, rows: int) -> tuple[Path, dict]:
    """The scale data set of `rows` rows in --out-dir/data-N: reused when its stamp says it was
    generated from the same generator, inputs, row count and seed, else generated (measured)."""
    data_dir = settings.out_dir / f"data-{rows}"
    stamp = data_dir / GENERATED_STAMP
    key = generation_key(settings, rows)
    if stamp.is_file():
        try:
            previous = json.loads(stamp.read_text())
        except (OSError, json.JSONDecodeError):
            previous = {}
        if previous.get("key") == key and previous.get("generation", {}).get("exit_code") == 0:
            print(f"[bench] reusing {rows:,} generated rows in {data_dir}", flush=True)
            return data_dir, {**previous["generation"], "reused": True}
        stamp.unlink()
    generation = generate(settings, rows, data_dir)
    if generation["exit_code"] == 0:
        stamp.write_text(json.dumps({"key": key, "generation": generation}, indent=2) + "\n")
    return data_dir, {**generation, "reused": False}


def generate(settings: Settings, rows: int, data_dir: Path) -> dict:
    """Scale data via bench/generate_data.py, measured like a run."""
    command = [sys.executable, str(BENCH_DIR / "generate_data.py"), f"--rows={rows}"]
    command += [f"--out={data_dir}", f"--seed={settings.seed}", "--overwrite"]
    log_path = settings.logs / f"generate-{rows}.log"
    print(f"[bench] {now()}  generating {rows:,} rows into {data_dir}", flush=True)
    generated_at = now()
    m = measure(command, PROJECT_ROOT, log_path, settings.timeout, settings.interval)
    record = {
        "rows": rows,
        "seed": settings.seed,
        "generated_at": generated_at,
        "data_dir": _relative(data_dir),
        "console_log": _relative(log_path),
        **measurement_dict(m),
        "data_bytes": directory_bytes(data_dir),
    }
    if m.exit_code != 0:
        record["console_tail"] = tail(log_path)
    return record


def scale_run(settings: Settings, rows: int) -> dict:
    """Scenario scale_N: generated (or reused) data, then a cold run stopped at the cap."""
    data_dir, generation = scale_data(settings, rows)
    scenario = f"scale_{rows}"
    if generation["exit_code"] != 0:
        return {
            "scenario": scenario,
            "description": f"generating {rows:,} rows failed",
            "invocation": settings.invocation,
            "git_commit": settings.commit,
            "rows": rows,
            "generation": generation,
            "exit_code": None,
        }
    record = pipeline_run(
        settings,
        scenario,
        f"cold run on {rows:,} generated rows, fresh output directory, stopped after "
        f"{fmt_minutes(settings.scale_timeout)}",
        data_dir,
        fresh(settings.out_dir / "runs" / f"scale-{rows}"),
        timeout=settings.scale_timeout,
    )
    record["rows"] = rows
    record["generation"] = generation
    return record


def now() -> str:
    return datetime.datetime.now().astimezone().isoformat(timespec="seconds")


def fresh(path: Path) -> Path:
    if path.exists():
        shutil.rmtree(path)
    return path


def _unlabeled_csv(data_dir: Path) -> Path:
    """A CSV of rows to score: the latest span of unlabeled/ (as the pipeline's batch)."""
    spans = sorted((data_dir / "unlabeled").glob("*/*.csv"), key=_span_key)
    if not spans:
        raise FileNotFoundError(f"no unlabeled CSV under {data_dir / 'unlabeled'}")
    return spans[-1]


def serving_load(settings: Settings, cold_output: Path, seconds: float) -> dict:
    """Load on `run_local.py serve` with the model the cold run pushed (bench/serve_load.py)."""
    import serve_load  # bench/serve_load.py, beside this file

    model_dirs = sorted((cold_output / "serving_model").glob("*"))
    if not model_dirs:
        return {"error": f"the cold run pushed no model under {cold_output / 'serving_model'}"}
    print(f"[bench] {now()}  serving load on {model_dirs[0]}", flush=True)
    try:
        load = serve_load.measure(
            model_dirs[0],
            _unlabeled_csv(settings.data_dir),
            seconds,
            settings.out_dir / "serve-load.log",
        )
    except (RuntimeError, FileNotFoundError) as e:
        return {"error": str(e)}
    return {**load, "git": git_info(), "invocation": settings.invocation}


def settings_from(args: argparse.Namespace, invocation: str | None = None) -> Settings:
    return Settings(
        out_dir=args.out_dir.resolve(),
        data_dir=args.data_dir.resolve(),
        run_args=list(args.run_arg),
        timeout=args.timeout,
        interval=args.sample_interval,
        seed=args.seed,
        scale_timeout=args.scale_timeout_minutes * 60.0,
        invocation=invocation,
        commit=_git("rev-parse", "--short", "HEAD"),
    )


def selected_scenarios(args: argparse.Namespace) -> list[str]:
    """The scenarios this invocation runs, in SCENARIOS order."""
    chosen = set(args.only or SCENARIOS)
    if args.skip_scale:
        chosen.discard("scale")
    if args.skip_serving:
        chosen.discard("serving_load")
    return [s for s in SCENARIOS if s in chosen]


def _run_order(name: str) -> tuple:
    for family in ("scale", "parallelism"):  # scale_N, parallelism_N: by N
        if name.startswith(family + "_"):
            number = name.removeprefix(family + "_")
            return (SCENARIOS.index(family), int(number) if number.isdigit() else 0, name)
    return (SCENARIOS.index(name) if name in SCENARIOS else len(SCENARIOS), 0, name)


def ordered_runs(runs: dict) -> dict:
    """Runs in the order the scenarios run (merged results keep it too)."""
    return {name: runs[name] for name in sorted(runs, key=_run_order)}


def earlier_results(args: argparse.Namespace) -> dict | None:
    """The results JSON a subset (--only) is merged into, if there is one."""
    if not args.only or not args.results.is_file():
        return None
    try:
        return json.loads(args.results.read_text())
    except (OSError, json.JSONDecodeError):
        return None


def default_parallelism() -> int:
    """The runner's default --parallelism: one per core (orchestration/dag_schedule.py; the
    harness runs outside the project's imports)."""
    return max(1, os.cpu_count() or 1)


def parallelism_levels() -> list[int]:
    """The --parallelism values measured beside the default (the cold run): one at a time, and
    one more than the cores."""
    return [level for level in (1, default_parallelism() + 1) if level != default_parallelism()]


def parallelism_section(runs: dict) -> list[str]:
    """Cold runs at each measured --parallelism: the evidence for the default."""
    cold = runs.get("cold")
    measured = [(cold.get("parallelism") or default_parallelism(), cold)] if cold else []
    measured += [
        (int(name.removeprefix("parallelism_")), run)
        for name, run in runs.items()
        if name.startswith("parallelism_")
    ]
    if len(measured) < 2:
        return []
    measured.sort(key=lambda pair: pair[0])
    rows = []
    for level, run in measured:
        wall, cpu = run.get("wall_seconds"), run.get("cpu_seconds")
        if run is cold:
            ratio = "1.00 (the default)"
        else:
            ratio = f"{wall / cold['wall_seconds']:.2f}" if cold and wall else ""
        rows.append(
            [
                level,
                fmt_seconds(wall),
                fmt_seconds(cpu),
                f"{cpu / wall:.2f}" if cpu and wall else "",
                run.get("most_at_once", ""),
                ratio,
                run.get("exit_code"),
            ]
        )
    return [
        "## Parallelism",
        "",
        "Cold runs on the same data at each `--parallelism` (components at most at once, each in "
        'its own process); the default is one per core. "At once" is the most components whose '
        "executions overlapped in ML Metadata.",
        "",
        *_table(
            ["--parallelism", "Wall", "CPU", "CPU/wall", "At once", "Wall / default", "Exit"],
            rows,
        ),
    ]


def run_all(args: argparse.Namespace) -> dict:
    started_at = now()
    settings = settings_from(args, invocation=started_at)
    settings.out_dir.mkdir(parents=True, exist_ok=True)
    scenarios = selected_scenarios(args)
    results = {
        "version": RESULTS_VERSION,
        "started_at": started_at,
        "finished_at": None,
        "machine": machine_info(),
        "git": git_info(),
        "settings": {
            "scenarios": scenarios,
            "data_dir": _relative(settings.data_dir),
            "out_dir": _relative(settings.out_dir),
            "run_args": settings.run_args,
            "scale_rows": list(args.scale_rows) if "scale" in scenarios else [],
            "scale_timeout_seconds": settings.scale_timeout,
            "seed": settings.seed,
            "timeout_seconds": settings.timeout,
            "sample_interval_seconds": settings.interval,
            "reference_beam_args": list(REFERENCE_BEAM_ARGS),
        },
        "runs": {},
        "targets": [],
    }
    earlier = earlier_results(args)
    if earlier:
        # Keep what this invocation does not measure again; say where it came from.
        results["runs"] = dict(earlier.get("runs", {}))
        if "serving_load" in earlier:
            results["serving_load"] = earlier["serving_load"]
        results["earlier_invocations"] = [
            *earlier.get("earlier_invocations", []),
            {
                "started_at": earlier.get("started_at"),
                "git": earlier.get("git"),
                "settings": earlier.get("settings"),
            },
        ]

    def save(record: dict) -> None:
        results["runs"][record["scenario"]] = record
        results["runs"] = ordered_runs(results["runs"])
        write_json(results, args.results)

    cold_output = settings.out_dir / "runs" / "cold"
    if "reference" in scenarios or "cold" in scenarios:
        results["warm_up"] = warm_up(settings)
    if "reference" in scenarios:
        save(reference_run(settings))
    if "cold" in scenarios:
        save(
            pipeline_run(
                settings,
                "cold",
                "full chain on the data, fresh output directory",
                settings.data_dir,
                fresh(cold_output),
            )
        )
    if "parallelism" in scenarios:
        for level in parallelism_levels():
            save(
                pipeline_run(
                    settings,
                    f"parallelism_{level}",
                    f"as cold, with --parallelism {level} (the default is "
                    f"{default_parallelism()}, one per core: the cold run)",
                    settings.data_dir,
                    fresh(settings.out_dir / "runs" / f"parallelism_{level}"),
                    extra_args=(f"--parallelism={level}",),
                )
            )
    if "rerun_unchanged" in scenarios:
        save(
            pipeline_run(
                settings,
                "rerun_unchanged",
                "the same command again on the same output directory",
                settings.data_dir,
                cold_output,
            )
        )
    if "rerun_model_change" in scenarios:
        save(model_change_run(settings, cold_output))
    if "serving_load" in scenarios:
        results["serving_load"] = serving_load(settings, cold_output, args.serving_seconds)
        write_json(results, args.results)
    if "scale" in scenarios:
        for rows in args.scale_rows:
            save(scale_run(settings, rows))
    results["finished_at"] = now()
    return results


# --------------------------------------------------------------------------------------------
# Targets and rendering


def _run_ok(run: dict | None) -> bool:
    return bool(run) and run.get("exit_code") == 0


def _target(name: str, goal: str, measured: str | None, ok: bool | None, note: str = "") -> dict:
    status = NOT_MEASURED if ok is None else MET if ok else MISSED
    return {"target": name, "goal": goal, "measured": measured, "status": status, "note": note}


def _why_not_ok(run: dict) -> str:
    """Why a run that did not exit 0 did not: stopped at the cap, or failed."""
    if run.get("timed_out"):
        return f"stopped at the {fmt_minutes(run.get('timeout_seconds'))} cap before it finished"
    if run.get("exit_code") is None:
        return run.get("description") or "not run"
    return f"the run failed (exit {run.get('exit_code')})"


def _other_invocation(run: dict, base: dict, base_name: str) -> str:
    """A note when two runs compared were measured by different harness invocations."""
    if run.get("invocation") == base.get("invocation"):
        return ""
    return f"measured in another invocation than the {base_name} ({base.get('started_at')})"


def _join(*notes: str) -> str:
    return "; ".join(n for n in notes if n)


def reference_auc(reference: dict | None) -> float | None:
    """The reference's AUC: its Evaluator's if it computed one, else the untimed scoring's."""
    if not reference:
        return None
    metrics = reference.get("metrics") or {}
    if "auc" in metrics:
        return metrics["auc"]
    return (reference.get("scored") or {}).get("auc")


def _reference_note(reference: dict | None) -> str:
    """The reference's model quality, for information beside the project's AUC."""
    if not reference:
        return "reference not run"
    if not _run_ok(reference):
        return f"reference: {_why_not_ok(reference)}"
    auc = reference_auc(reference)
    accuracy = (reference.get("metrics") or {}).get("binary_accuracy")
    parts = []
    if auc is not None:
        count = (reference.get("scored") or {}).get("example_count")
        on = f" on its {count:,} eval rows" if count else ""
        parts.append(f"AUC {auc:.4f}{on} (scored after its run)")
    elif (reference.get("scored") or {}).get("error"):
        parts.append(f"AUC not computed: {reference['scored']['error']}")
    if accuracy is not None:
        parts.append(f"its Evaluator's binary accuracy {accuracy:.4f}")
    return "for information, the reference (TFX's taxi example): " + (
        ", ".join(parts) or "no metrics read"
    )


def _ratio_target(
    name: str,
    goal: str,
    runs: dict,
    scenario: str,
    base_scenario: str,
    base_name: str,
    limit: float,
) -> dict:
    """Wall of `scenario` / wall of `base_scenario` <= limit. A failed base (nothing to compare
    with) is not measured; a failed or stopped run is MISSED."""
    run, base = runs.get(scenario), runs.get(base_scenario)
    if not run or not base:
        missing = [n for n, r in ((scenario, run), (base_scenario, base)) if not r]
        return _target(name, goal, None, None, f"not run: {', '.join(missing)}")
    if not _run_ok(base):
        return _target(name, goal, None, None, f"the {base_name}: {_why_not_ok(base)}")
    wall, base_wall = run.get("wall_seconds"), base["wall_seconds"]
    ratio = wall / base_wall if wall is not None and base_wall else None
    measured = (
        None if ratio is None else f"{ratio:.2f}x ({fmt_seconds(wall)} / {fmt_seconds(base_wall)})"
    )
    if not _run_ok(run):
        return _target(name, goal, measured, False, _why_not_ok(run))
    return _target(name, goal, measured, ratio <= limit, _other_invocation(run, base, base_name))


def _scale_target(
    runs: dict, rows: int, name: str, goal: str, key: str, limit: float, cores: int | None
) -> dict:
    """A scale run's wall or peak RSS against its limit; a run stopped at the cap is MISSED."""
    run = runs.get(f"scale_{rows}")
    if not run:
        return _target(name, goal, None, None, f"not run (--scale-rows without {rows:,})")
    if run.get("exit_code") is None:
        return _target(name, goal, None, None, _why_not_ok(run))
    value = run.get(key)
    shown = (
        None if value is None else fmt_seconds(value) if key == "wall_seconds" else fmt_bytes(value)
    )
    cores_note = (
        f"measured on {cores} cores (the target is for {TARGET_CORES})"
        if cores and cores != TARGET_CORES
        else ""
    )
    if run.get("timed_out"):
        if key == "wall_seconds":
            shown = f"stopped at {fmt_minutes(run.get('timeout_seconds'))}"
        else:
            shown = f"{shown} until stopped" if shown else None
        return _target(name, goal, shown, False, _join(_why_not_ok(run), cores_note))
    if not _run_ok(run):
        return _target(name, goal, shown, False, _join(_why_not_ok(run), cores_note))
    return _target(name, goal, shown, value <= limit, cores_note)


def evaluate_targets(results: dict) -> list[dict]:
    """Each target with what was measured and met / MISSED / not measured."""
    runs = results.get("runs", {})
    cores = (results.get("machine") or {}).get("cores")
    reference, cold = runs.get("reference"), runs.get("cold")
    targets = [
        _ratio_target(
            "Cold run vs TFX's taxi example",
            f"<= {TARGET_COLD_VS_REFERENCE:.2f}x the reference's cold wall",
            runs,
            "cold",
            "reference",
            "reference",
            TARGET_COLD_VS_REFERENCE,
        ),
        _ratio_target(
            "Unchanged re-run",
            f"<= {TARGET_RERUN_RATIO:.2f}x cold",
            runs,
            "rerun_unchanged",
            "cold",
            "cold run",
            TARGET_RERUN_RATIO,
        ),
        _ratio_target(
            "Model-code-change re-run",
            f"<= {TARGET_MODEL_CHANGE_RATIO:.2f}x cold",
            runs,
            "rerun_model_change",
            "cold",
            "cold run",
            TARGET_MODEL_CHANGE_RATIO,
        ),
        _scale_target(
            runs,
            TARGET_1M_ROWS,
            f"{TARGET_1M_ROWS:,} rows, wall",
            f"<= {fmt_minutes(TARGET_1M_SECONDS)}",
            "wall_seconds",
            TARGET_1M_SECONDS,
            cores,
        ),
        _scale_target(
            runs,
            TARGET_10M_ROWS,
            f"{TARGET_10M_ROWS:,} rows, wall",
            f"<= {fmt_minutes(TARGET_10M_SECONDS)} on {TARGET_CORES} cores",
            "wall_seconds",
            TARGET_10M_SECONDS,
            cores,
        ),
        _scale_target(
            runs,
            TARGET_10M_ROWS,
            f"{TARGET_10M_ROWS:,} rows, peak RSS (tree)",
            f"<= {TARGET_10M_PEAK_BYTES / GIB:g} GiB on {TARGET_CORES} cores",
            "peak_rss_bytes",
            TARGET_10M_PEAK_BYTES,
            cores,
        ),
    ]
    # Model quality: the project's cold run on the default data.
    name, goal = "AUC, cold run on the default data", f">= {TARGET_AUC}"
    auc = ((cold or {}).get("metrics") or {}).get("auc")
    if not cold:
        targets.append(
            _target(name, goal, None, None, _join("not run", _reference_note(reference)))
        )
    elif auc is None:
        why = _why_not_ok(cold) if not _run_ok(cold) else "no AUC in its evaluation"
        ok = False if not _run_ok(cold) else None
        targets.append(_target(name, goal, None, ok, _join(why, _reference_note(reference))))
    elif not _run_ok(cold):
        note = _join(_why_not_ok(cold), _reference_note(reference))
        targets.append(_target(name, goal, f"{auc:.4f}", False, note))
    else:
        targets.append(
            _target(name, goal, f"{auc:.4f}", auc >= TARGET_AUC, _reference_note(reference))
        )
    return targets


def fmt_seconds(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    if seconds < 120:
        return f"{seconds:.1f} s"
    minutes, rest = divmod(seconds, 60)
    return f"{int(minutes)} min {rest:04.1f} s"


def fmt_minutes(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    return f"{seconds / 60:g} min"


def fmt_bytes(n: int | None) -> str:
    if n is None:
        return "-"
    if n >= GIB:
        return f"{n / GIB:.2f} GiB"
    if n >= 1024**2:
        return f"{n / 1024**2:.0f} MiB"
    return f"{n / 1024:.0f} KiB"


def fmt_ratio(value: float | None, base: float | None) -> str:
    return f"{value / base:.2f}x" if value is not None and base else "-"


def _table(header: list[str], rows: list[list]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return lines + [""]


def _exit_text(run: dict) -> str:
    exit_code = run.get("exit_code")
    if exit_code is None:
        return "-"
    if run.get("timed_out"):
        return f"{exit_code} (stopped at the {fmt_minutes(run.get('timeout_seconds'))} cap)"
    return str(exit_code)


def _resources_row(run: dict) -> list:
    wall = run.get("wall_seconds")
    cpu = run.get("cpu_seconds")
    load = run.get("load_average_before")
    return [
        fmt_seconds(wall),
        fmt_seconds(cpu),
        f"{cpu / wall:.2f}" if wall and cpu is not None else "-",
        fmt_bytes(run.get("peak_rss_bytes")),
        fmt_bytes(run.get("max_process_rss_bytes")),
        "-" if load is None else f"{load:.2f}",
        _exit_text(run),
    ]


RESOURCE_HEADER = [
    "Wall",
    "CPU (user+sys)",
    "CPU/wall",
    "Peak RSS (tree)",
    "Largest process",
    "Load before",
    "Exit",
]


def _names(nodes: list[str] | None) -> str:
    return ", ".join(nodes) if nodes else "none"


def _run_section(run: dict, cold: dict | None) -> list[str]:
    lines = [f"### {run['scenario']}", "", run.get("description", ""), ""]
    if run.get("command"):
        cwd = run.get("cwd", ".")
        lines += [f"Command (in `{cwd}`): `{' '.join(run['command'])}`", ""]
    lines += _table(RESOURCE_HEADER, [_resources_row(run)])
    if run.get("output_bytes") is not None:
        lines += [f"Output directory on disk after the run: {fmt_bytes(run['output_bytes'])}.", ""]
    if run.get("timed_out"):
        lines += [
            f"Stopped at the {fmt_minutes(run.get('timeout_seconds'))} cap: the harness ended "
            "its process group (SIGTERM, then SIGKILL after 15 s); what is above is up to then.",
            "",
        ]
    if run.get("read_error"):
        lines += [f"ML Metadata could not be read fully: {run['read_error']}", ""]
    if run.get("failed"):
        lines += [f"Failed component(s): {_names(run['failed'])}.", ""]
    if run.get("console_tail"):
        lines += ["Last lines of the console output:", "", "```", *run["console_tail"], "```", ""]
    if run["scenario"].startswith("rerun"):
        lines += [
            f"Re-executed: {_names(run.get('executed'))}.",
            "",
            f"Cached: {_names(run.get('cached'))}.",
            "",
        ]
        if cold and cold.get("wall_seconds") and run.get("wall_seconds") is not None:
            ratio = run["wall_seconds"] / cold["wall_seconds"]
            lines += [f"Re-run / cold wall time: {ratio:.2f}x.", ""]
    change = run.get("model_change")
    if change:
        lines += [
            f"Change appended to `{change['file']}`; code fingerprints changed for: "
            f"{_names(change['fingerprints_changed'])}.",
            "",
            "```python",
            *change["appended"].splitlines(),
            "```",
            "",
        ]
        if change["upstream_of_trainer"] is None:
            lines += ["The nodes upstream of Trainer could not be read from the pipeline.", ""]
        else:
            states = ", ".join(f"{n} {s}" for n, s in change["upstream_states"].items())
            lines += [f"Upstream of Trainer: {states}.", ""]
            unexpected = change["upstream_unexpectedly_executed"]
            not_cached = change["upstream_not_cached"]
            if not not_cached:
                verdict = "every component upstream of Trainer stayed cached."
            elif not unexpected:
                verdict = (
                    f"{_names(not_cached)} re-executed because its own code fingerprint covers "
                    f"{change['file']} (by design); every other component upstream of Trainer "
                    "stayed cached."
                )
            else:
                verdict = (
                    f"MISSED: {_names(unexpected)} re-executed although neither its code "
                    "fingerprint nor its inputs should have changed."
                )
            lines += [f"Verdict: {verdict}", "", f"Trainer: {change['trainer_state']}.", ""]
    return lines


def _component_table(run: dict) -> list[str]:
    wall = run.get("wall_seconds") or 0
    rows = []
    for c in run.get("components", []):
        share = f"{c['seconds'] / wall:.0%}" if wall else "-"
        rows.append([c["node_id"], c["state"], f"{c['seconds']:.1f}", share])
    if not rows:
        return ["No component executions were recorded.", ""]
    total = sum(c["seconds"] for c in run["components"])
    rows.append(
        ["**sum of components**", "", f"{total:.1f}", f"{total / wall:.0%}" if wall else "-"]
    )
    return _table(["Component", "State", "Seconds", "Share of wall"], rows)


def _side_by_side_components(cold: dict, reference: dict) -> list[str]:
    """Seconds of each component both pipelines have (TFX's standard ones), side by side."""
    project = {c["node_id"]: c["seconds"] for c in cold.get("components", [])}
    theirs = {c["node_id"]: c["seconds"] for c in reference.get("components", [])}
    shared = [n for n in theirs if n in project]
    if not shared:
        return []
    rows = [
        [n, f"{project[n]:.1f}", f"{theirs[n]:.1f}", fmt_ratio(project[n], theirs[n])]
        for n in shared
    ]
    only_project = sum(s for n, s in project.items() if n not in theirs)
    only_reference = sum(s for n, s in theirs.items() if n not in project)
    rows.append(
        ["components only one of them has", f"{only_project:.1f}", f"{only_reference:.1f}", ""]
    )
    outside = [
        (run.get("wall_seconds") or 0) - sum(c["seconds"] for c in run.get("components", []))
        for run in (cold, reference)
    ]
    rows.append(
        [
            # Not the time outside every component when components overlapped (the project's
            # run at --parallelism 2): their seconds then add up to more than the time they took.
            "wall minus the components' summed seconds (imports, compiling the pipeline, ...; "
            "less than the time outside them where components ran at once)",
            f"{outside[0]:.1f}",
            f"{outside[1]:.1f}",
            "",
        ]
    )
    return [
        "Per component, the components both pipelines have (seconds, ML Metadata):",
        "",
        *_table(["Component", "Project", "Reference", "Project / reference"], rows),
    ]


# What the reference run is, and how it differs from the project's run: rendered as is.
REFERENCE_ABOUT = [
    "TFX 1.16's own Chicago taxi example, `taxi_pipeline_native_keras.py`, with its module file "
    "`taxi_utils_native_keras.py` (Transform's `preprocessing_fn`, Trainer's `run_fn`), both as "
    "installed in the `tfx` package (`tfx/examples/chicago_taxi_pipeline/`), unmodified. "
    "`bench/reference_taxi.py run` imports the example, calls its own `_create_pipeline(...)` "
    "with its own pipeline name and only these arguments of ours: the data folder, a fresh "
    "pipeline root, a fresh SQLite ML Metadata file and the push destination (all under the "
    "output directory below) and the Beam options below; and runs the pipeline with TFX's "
    "`LocalDagRunner` (the example's `__main__` uses `BeamDagRunner` and the DirectRunner in "
    "`multi_processing` mode; like the project's cold run on this data, the reference here runs "
    "`in_memory`). absl logs at INFO, as in the example's `__main__`.",
    "",
    "Its 9 nodes: CsvExampleGen (default 2:1 hash split), StatisticsGen, SchemaGen, "
    "ExampleValidator, Transform, Trainer (1,000 steps of a wide-and-deep Keras model), the "
    "latest-blessed-model resolver, Evaluator (binary accuracy >= 0.6) and Pusher. The project's "
    "cold run does more on the same rows: 18 nodes, among them a curated schema import, drift "
    "and skew checks, a data gate, a Tuner (2 trials), an InfraValidator that serves the model, "
    "and statistics and batch inference for an unlabeled span (1,001 more rows).",
    "",
    "Environment: nothing had to be set, and the harness sets nothing. In the example's process "
    "`tf.keras` is Keras 3.6: TF 2.16 picks Keras 3 when `tf.keras` is first used with "
    "`TF_USE_LEGACY_KERAS` unset, which the example's first import (TFMA) does. "
    "tensorflow_transform then sets `TF_USE_LEGACY_KERAS=1` itself when imported (its "
    "`keras_lib.py`, for its own layers, which use tf_keras 2.16), too late to change `tf.keras`; "
    "that is why the variable shows as set after the imports below. So the example's model is a "
    "Keras 3 model holding TFT's tf_keras transform layer, saved with `tf.saved_model.save` and "
    "its two `tf.function` signatures; its Evaluator loads that SavedModel and every component "
    "completes. The Keras 3 failures STACK.md records are in components this example does not "
    "have (BulkInferrer's TF1 session; keras-tuner under `TF_USE_LEGACY_KERAS=1`). Which Keras "
    "`tf.keras` is depends on import order (importing tensorflow_transform before anything uses "
    "`tf.keras` gives tf_keras instead), so the driver imports the example module first and lets "
    "its own imports decide, as when it runs as a script. TFX packages the module file into a "
    "wheel under the pipeline root before the run (its standard handling of `module_file`), "
    "inside the measured time as for any user of the example.",
]


def _reference_section(run: dict, cold: dict | None) -> list[str]:
    lines = ["## Reference: TFX's own taxi example", "", *REFERENCE_ABOUT, ""]
    if run.get("command"):
        lines += [f"Command (in `{run.get('cwd', '.')}`): `{' '.join(run['command'])}`", ""]
    env = run.get("environment")
    if env:
        start = env.get("variables_at_start") or {}
        after = env.get("variables_after_imports") or env.get("variables") or {}
        set_at_start = ", ".join(f"`{k}={v}`" for k, v in start.items() if v is not None)
        set_by_imports = ", ".join(
            f"`{k}={v}`" for k, v in after.items() if v != start.get(k) and v is not None
        )
        versions = ", ".join(f"{k} {v}" for k, v in (env.get("versions") or {}).items() if v)
        lines += [
            f"As the run saw it: {versions}; `tf.keras` is `{env.get('tf_keras_module')}` "
            f"{env.get('tf_keras_version')}. Of the variables that choose Keras, backend or "
            f"devices ({', '.join(start or after)}): set when the run started: "
            f"{set_at_start or 'none'}; set by the stack's own imports: "
            f"{set_by_imports or 'none'}.",
            "",
        ]
    files = run.get("data_files") or []
    if files:
        lines += [
            f"Data: {run.get('rows', 0):,} rows, copies of the project's labeled span CSVs "
            f"in one folder (`{run.get('data_dir')}`), the labeled rows the project's cold run "
            "reads:",
            "",
            *_table(
                ["File read", "Copy of", "Rows", "Size", "SHA-256"],
                [
                    [
                        f"`{f['copy']}`",
                        f"`{f['source']}`",
                        f"{f['rows']:,}",
                        fmt_bytes(f["bytes"]),
                        f"`{f['sha256'][:16]}...`",
                    ]
                    for f in files
                ],
            ),
        ]
        spans = (cold or {}).get("training_spans")
        if spans:
            lines += [
                f"The project's cold run trained on span(s) {spans} of the same folders "
                f"(ML Metadata); the reference read {len(files)} file(s).",
                "",
            ]
    if run.get("beam_args"):
        lines += [f"Beam options: {' '.join(f'`{a}`' for a in run['beam_args'])}.", ""]
    lines += _table(RESOURCE_HEADER, [_resources_row(run)])
    if run.get("output_bytes") is not None:
        lines += [f"Output directory on disk after the run: {fmt_bytes(run['output_bytes'])}.", ""]
    if run.get("read_error"):
        lines += [f"ML Metadata could not be read fully: {run['read_error']}", ""]
    if run.get("console_tail"):
        lines += ["Last lines of the console output:", "", "```", *run["console_tail"], "```", ""]
    lines += ["Per component (ML Metadata: creation to last update of each execution):", ""]
    lines += _component_table(run)
    metrics = run.get("metrics") or {}
    scored = run.get("scored") or {}
    quality = []
    if "binary_accuracy" in metrics:
        quality.append(f"its Evaluator's binary accuracy {metrics['binary_accuracy']:.4f}")
    blessed = {True: "blessed", False: "NOT blessed", None: None}[run.get("blessed")]
    if blessed:
        quality.append(blessed)
    if run.get("pushed_version"):
        quality.append(f"pushed version {run['pushed_version']}")
    if quality:
        lines += [f"Model: {', '.join(quality)}.", ""]
    if "auc" in scored:
        rate = scored.get("mean_label")
        positive_rate = "" if rate is None else f" (positive rate {rate:.3f})"
        lines += [
            f"AUC {scored['auc']:.4f} and binary accuracy {scored['binary_accuracy']:.4f} on "
            f"its {scored['example_count']:,} eval rows{positive_rate}: its Evaluator computes binary accuracy only (its eval "
            "config asks for nothing else and its model compiles no other metric), so after the "
            "run, untimed, `bench/reference_taxi.py score` ran the model's `serving_default` "
            "signature on the example's own eval split, took the label from its "
            "`transform_features` signature (`tips_xf`, the Evaluator's label key) and computed "
            "ROC AUC exactly (scikit-learn). Its binary accuracy equals the Evaluator's when the "
            "two agree on the rows. The project evaluates on another split of the same rows "
            "(3:1 per span).",
            "",
        ]
    elif scored.get("error"):
        lines += [f"AUC not computed: {scored['error']}", ""]
    return lines


def _comparison_section(runs: dict) -> list[str]:
    """Near the top: project cold vs the reference, and the ratios of re-runs and scales."""
    cold, reference = runs.get("cold"), runs.get("reference")
    lines = ["## The project beside TFX's own example", ""]
    if not cold or not reference:
        missing = " and ".join(n for n, r in (("cold", cold), ("reference", reference)) if not r)
        lines += [f"Not compared: no {missing} run in these results.", ""]
    else:

        def pair(key: str, fmt) -> list:
            a, b = cold.get(key), reference.get(key)
            return [fmt(a), fmt(b), fmt_ratio(a, b)]

        def per_wall(run: dict) -> str:
            wall, cpu = run.get("wall_seconds"), run.get("cpu_seconds")
            return f"{cpu / wall:.2f}" if wall and cpu is not None else "-"

        cold_auc = (cold.get("metrics") or {}).get("auc")
        ref_auc = reference_auc(reference)
        rows = [
            ["Wall", *pair("wall_seconds", fmt_seconds)],
            ["CPU (user+sys)", *pair("cpu_seconds", fmt_seconds)],
            ["CPU/wall", per_wall(cold), per_wall(reference), ""],
            ["Peak RSS (tree)", *pair("peak_rss_bytes", fmt_bytes)],
            ["Largest process", *pair("max_process_rss_bytes", fmt_bytes)],
            [
                "AUC",
                "-" if cold_auc is None else f"{cold_auc:.4f} (Evaluator)",
                "-" if ref_auc is None else f"{ref_auc:.4f} (scored after the run)",
                "",
            ],
            [
                "Nodes executed",
                len(cold.get("executed") or []),
                len(reference.get("executed") or []),
                "",
            ],
            [
                "Load average before",
                cold.get("load_average_before", "-"),
                reference.get("load_average_before", "-"),
                "",
            ],
            ["Exit", _exit_text(cold), _exit_text(reference), ""],
        ]
        lines += _table(["", "Project cold", "Reference cold", "Project / reference"], rows)
        if cold.get("invocation") != reference.get("invocation"):
            lines += [
                "The two runs come from different invocations of the harness "
                f"(cold {cold.get('started_at')}, reference {reference.get('started_at')}): "
                "not a like-for-like pair.",
                "",
            ]
        else:
            first, second = sorted((cold, reference), key=lambda r: r.get("started_at") or "")
            lines += [
                f"Run one after the other ({first['scenario']}, then {second['scenario']}) "
                "after one unmeasured import of TensorFlow/TFX.",
                "",
            ]
    cold_wall = (cold or {}).get("wall_seconds") if _run_ok(cold) else None
    ref_wall = (reference or {}).get("wall_seconds") if _run_ok(reference) else None
    others = [
        run for name, run in runs.items() if name.startswith("rerun") or name.startswith("scale_")
    ]
    if others:
        rows = []
        for run in others:
            wall = run.get("wall_seconds")
            shown = fmt_seconds(wall)
            if run.get("timed_out"):
                shown += " (stopped at the cap)"
            elif run.get("exit_code") not in (0, None):
                shown += f" (exit {run['exit_code']})"
            rows.append(
                [
                    run["scenario"],
                    shown,
                    fmt_ratio(wall, cold_wall),
                    fmt_ratio(wall, ref_wall),
                ]
            )
        lines += _table(["Run", "Wall", "x project cold", "x reference cold"], rows)
    return lines


def render_markdown(results: dict) -> str:
    """BENCHMARKS.md from the results JSON."""
    machine, git, settings = results["machine"], results["git"], results["settings"]
    runs = ordered_runs(results.get("runs", {}))
    targets = evaluate_targets(results)
    counts = {s: sum(t["status"] == s for t in targets) for s in (MET, MISSED, NOT_MEASURED)}
    commit = git.get("commit") or "unknown"
    if git.get("dirty"):
        commit += f" (dirty: {len(git['modified'])} modified tracked file(s))"
    versions = ", ".join(f"{k} {v}" for k, v in machine["versions"].items() if v)
    lines = [
        "# Benchmarks",
        "",
        "Generated by `python bench/run_bench.py` from its results JSON; re-render with "
        "`python bench/run_bench.py --render-only`. Do not edit by hand.",
        "",
        f"**Targets: {counts[MET]} met, {counts[MISSED]} MISSED, {counts[NOT_MEASURED]} not "
        "measured** (see [Targets](#targets)).",
        "",
        *_comparison_section(runs),
        "## Machine and code",
        "",
        *_table(
            ["", ""],
            [
                ["Date", results.get("finished_at") or results.get("started_at")],
                ["Commit", commit],
                ["CPU", machine.get("cpu_model") or "unknown"],
                ["Cores (os.cpu_count)", machine.get("cores")],
                ["Memory", fmt_bytes(machine.get("memory_bytes"))],
                ["Platform", machine.get("platform")],
                ["Python", machine.get("python")],
                ["Packages", versions],
                ["Data (reference, cold and re-runs)", f"`{settings['data_dir']}`"],
                [
                    "Extra run_local.py options (not the reference's)",
                    " ".join(f"`{a}`" for a in settings["run_args"]) or "none",
                ],
                [
                    "Scale runs stopped after",
                    fmt_minutes(settings.get("scale_timeout_seconds")),
                ],
            ],
        ),
    ]
    earlier = results.get("earlier_invocations") or []
    if earlier:
        this = results.get("started_at")
        kept = [
            f"{name} ({run.get('started_at')}, commit {run.get('git_commit') or 'unknown'})"
            for name, run in runs.items()
            if run.get("invocation") != this
        ]
        lines += [
            f"This invocation ({this}) ran {', '.join(settings.get('scenarios') or []) or 'nothing'}; "
            f"kept from earlier invocations: {', '.join(kept) or 'nothing'}.",
            "",
        ]
    lines += [
        "## Runs",
        "",
        *_table(
            ["Scenario", *RESOURCE_HEADER],
            [[name, *_resources_row(run)] for name, run in runs.items()],
        ),
    ]
    busy = [
        f"{name} ({run['load_average_before']:.2f})"
        for name, run in runs.items()
        if (run.get("load_average_before") or 0) >= 0.5
    ]
    if busy:
        lines += [
            "Other work was running on the machine when these runs started (1-minute load "
            f"average): {', '.join(busy)}; their times may be inflated.",
            "",
        ]
    warm = results.get("warm_up")
    if warm:
        lines += [
            f'Before the reference and cold runs, `python -c "{warm["command"]}"` ran once, '
            f"unmeasured as a run ({warm['wall_seconds']:.1f} s), so that neither pays for "
            "reading TensorFlow from disk.",
            "",
        ]
    cold = runs.get("cold")
    reference = runs.get("reference")
    if reference:
        lines += _reference_section(reference, cold)
    lines += parallelism_section(runs)
    lines += ["## The project's runs", ""]
    for run in runs.values():
        if run["scenario"] == "reference":
            continue
        lines += _run_section(run, cold)
        if run["scenario"] == "cold":
            lines += ["Per component (ML Metadata: creation to last update of each execution):", ""]
            lines += _component_table(run)
            if reference:
                lines += _side_by_side_components(run, reference)

    lines += ["## Model metrics", ""]
    metric_rows = []
    for name, run in runs.items():
        metrics = dict(run.get("metrics") or {})
        if name == "reference" and "auc" not in metrics and "auc" in (run.get("scored") or {}):
            metrics["auc"] = run["scored"]["auc"]
        metric_rows.append(
            [
                name,
                *(
                    f"{metrics[k]:.4f}" if k in metrics else "-"
                    for k in ("auc", "binary_accuracy", "precision", "recall")
                ),
                {True: "yes", False: "no", None: "-"}[run.get("blessed")],
                run.get("pushed_version") or "-",
                "-" if run.get("predictions") is None else f"{run['predictions']:,}",
            ]
        )
    lines += _table(
        [
            "Run",
            "AUC",
            "Binary accuracy",
            "Precision",
            "Recall",
            "Blessed",
            "Pushed version",
            "Predictions",
        ],
        metric_rows,
    )
    for name, run in runs.items():
        reasons = run.get("blessing_reasons") or []
        if run.get("blessed") is False and reasons:
            more = f" (and {len(reasons) - 3} more)" if len(reasons) > 3 else ""
            lines += [f"{name} not blessed: {'; '.join(reasons[:3])}{more}.", ""]
    lines += [
        "Re-runs report the metrics of the evaluation their run used (a cached Evaluator's are "
        "those of the run that computed them). The reference's AUC is scored after its run "
        "(see its section); its binary accuracy is its Evaluator's.",
        "",
    ]

    scale = [run for name, run in runs.items() if name.startswith("scale_")]
    lines += ["## Scale", ""]
    if not scale:
        lines += ["No scale runs in these results (`--skip-scale`, or not in `--only`).", ""]
    else:
        rows = []
        smallest = scale[0]
        for run in scale:
            generation = run.get("generation", {})
            generated = fmt_seconds(generation.get("wall_seconds"))
            if generation.get("reused"):
                generated = f"reused (generated in {generated}, {generation.get('generated_at')})"
            rows.append(
                [
                    f"{run['rows']:,}",
                    generated,
                    fmt_bytes(generation.get("max_process_rss_bytes")),
                    fmt_bytes(generation.get("data_bytes")),
                    *_resources_row(run),
                    fmt_ratio(run.get("wall_seconds"), smallest.get("wall_seconds")),
                ]
            )
        lines += _table(
            [
                "Labeled rows",
                "Generation wall",
                "Generation peak RSS",
                "Data on disk",
                *RESOURCE_HEADER,
                f"Wall vs {smallest['rows']:,} rows",
            ],
            rows,
        )
        lines += [
            "Data: `bench/generate_data.py` (resampled shipped rows with noise, seed "
            f"{settings['seed']}), split evenly over 2 labeled spans; the batch to score has "
            "rows/14 rows (at most 100,000). Generated once into the output directory "
            "(`data-N/`) and reused while the generator, the shipped data, the row count and the "
            f"seed stay the same. Each scale run is stopped after "
            f"{fmt_minutes(settings.get('scale_timeout_seconds'))} (its process group ended); a "
            "stopped run misses its targets.",
            "",
        ]

    lines += _serving_section(results.get("serving_load"))
    lines += ["## Targets", ""]
    lines += _table(
        ["Target", "Goal", "Measured", "Result", "Note"],
        [
            [t["target"], t["goal"], t["measured"] or "-", f"**{t['status']}**", t["note"]]
            for t in targets
        ],
    )
    lines += [
        "## How this was measured",
        "",
        "- Wall: start to exit of the measured process (`run_local.py`, or "
        "`bench/reference_taxi.py run` for the reference); each run is a subprocess, one at a "
        "time.",
        "- CPU: user + system seconds of the process and every descendant it waited for "
        "(`os.wait4`), as `time` reports them, or, when larger, the sum of each process's own "
        "CPU time as last sampled (descendants nobody waits for, such as a multiprocessing "
        "forkserver reaping its own workers, are missing from `wait4`'s figure; sampling misses "
        "at most the last sampling period of each process); CPU/wall above 1 means more than "
        "one core was busy.",
        "- Peak RSS (tree): the largest sum of resident memory of the process and all its "
        f"descendants, sampled with psutil every {settings['sample_interval_seconds']:g} s; "
        "pages shared between processes count once per process. Largest process: the peak "
        "resident memory of the single largest process (`ru_maxrss` of the waited-for "
        "processes, exact; the largest sampled process if that is larger).",
        "- Load before: the 1-minute load average just before the run started (the machine is "
        "shared; above 0.5 means other work was running).",
        "- Components: ML Metadata's creation and last-update times of each execution (cached "
        "executions take almost none); states as `run_local.py inspect` reports them.",
        "",
    ]
    return "\n".join(lines)


# TF Serving's published figure, the reference beside the serving load.
TF_SERVING_REFERENCE = (
    "TensorFlow Serving's authors report about 100,000 requests per second per core for its "
    "request handling alone, TensorFlow inference time excluded, on a 16-vCPU Intel Xeon E5 "
    "2.6 GHz machine (Olston et al., *TensorFlow-Serving: Flexible, High-Performance ML "
    "Serving*, NIPS ML Systems Workshop 2017, arXiv:1712.06139). That is the C++ binary's "
    "overhead, not a model's end-to-end answer: it is the ceiling a Python server is measured "
    "against, not a like-for-like number (the binary does not install here; see README)."
)


def _serving_section(load: dict | None) -> list[str]:
    lines = ["## Serving load", ""]
    if not load:
        return lines + ["Not measured (--skip-serving, or results from before it existed).", ""]
    if "error" in load:
        return lines + [f"Not measured: {load['error']}", ""]
    lines += [
        f"`run_local.py serve` (the project's server) on the cold run's model, REST `:predict` "
        f"with raw feature values (JSON rows typed by the model's schema), "
        f"{load['seconds_per_point']:g} s per point after a {load['warmup_seconds']:g} s "
        f"warm-up; clients are asyncio tasks (httpx) in the harness process, on the same "
        f"{load['cores']} cores as the server. Measured {load['measured_at']} at commit "
        f"{load.get('git', {}).get('commit') or 'unknown'}.",
        "",
    ]
    lines += _table(
        ["Rows/request", "Clients", "Requests/s", "Rows/s", "p50 ms", "p99 ms", "Errors"],
        [
            [
                p["rows_per_request"],
                p["clients"],
                f"{p['requests_per_second']:,.1f}",
                f"{p['rows_per_second']:,.0f}",
                p["p50_ms"],
                p["p99_ms"],
                p["errors"],
            ]
            for p in load["points"]
        ],
    )
    return lines + [f"Reference: {TF_SERVING_REFERENCE}", ""]


def write_json(results: dict, path: Path) -> None:
    results["targets"] = evaluate_targets(results)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(results, indent=2) + "\n")


def write_markdown(results: dict, path: Path) -> None:
    path.write_text(render_markdown(results))


# --------------------------------------------------------------------------------------------
# Command line


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Benchmark the local pipeline (beside TFX's taxi example, cold, re-runs, "
        "serving, scale) and write BENCHMARKS.md.",
    )
    parser.add_argument(
        "--only",
        type=_scenario_list,
        default=None,
        metavar="SCENARIO[,SCENARIO...]",
        help=f"run only these scenarios ({', '.join(SCENARIOS)}) and merge them into the results "
        "JSON if it exists (default: all)",
    )
    parser.add_argument(
        "--scale-rows",
        type=int,
        nargs="+",
        default=list(DEFAULT_SCALE_ROWS),
        metavar="N",
        help="labeled row counts for the scale runs (default: %(default)s)",
    )
    parser.add_argument(
        "--scale-timeout-minutes",
        type=float,
        default=DEFAULT_SCALE_TIMEOUT_MINUTES,
        metavar="MINUTES",
        help="stop a scale run (its process group) after this long; it then misses its targets "
        "(default: %(default)s)",
    )
    parser.add_argument("--skip-scale", action="store_true", help="no scale runs")
    parser.add_argument("--skip-serving", action="store_true", help="no serving load")
    parser.add_argument(
        "--serving-only",
        action="store_true",
        help="only the serving load, on the model of the cold run already in --out-dir; added "
        "to the results JSON and re-rendered",
    )
    parser.add_argument(
        "--serving-seconds",
        type=float,
        default=10.0,
        metavar="SECONDS",
        help="measured seconds per serving-load point (default: %(default)s)",
    )
    parser.add_argument(
        "--data-dir",
        type=Path,
        default=DEFAULT_DATA_DIR,
        help="data for the cold and re-run scenarios (default: %(default)s)",
    )
    parser.add_argument(
        "--out-dir",
        type=Path,
        default=DEFAULT_OUT_DIR,
        help="where runs' outputs, generated data and console logs go (default: %(default)s)",
    )
    parser.add_argument(
        "--run-arg",
        action="append",
        default=[],
        metavar="ARG",
        help="extra run_local.py option for every run, repeatable; write it with '=', e.g. "
        "--run-arg=--train-steps=100 or --run-arg=--beam-arg=--direct_num_workers=2",
    )
    parser.add_argument(
        "--results",
        type=Path,
        default=DEFAULT_RESULTS,
        help="results JSON to write, or to read with --render-only (default: %(default)s)",
    )
    parser.add_argument(
        "--markdown",
        type=Path,
        default=DEFAULT_MARKDOWN,
        help="Markdown report to write (default: %(default)s)",
    )
    parser.add_argument(
        "--render-only",
        action="store_true",
        help="only re-render the Markdown from the results JSON",
    )
    parser.add_argument(
        "--seed", type=int, default=42, help="seed of the generated scale data (default: 42)"
    )
    parser.add_argument(
        "--timeout",
        type=float,
        default=3 * 3600.0,
        metavar="SECONDS",
        help="end a run that takes longer (default: %(default)s)",
    )
    parser.add_argument(
        "--sample-interval",
        type=float,
        default=0.2,
        metavar="SECONDS",
        help="RSS sampling period (default: %(default)s)",
    )
    args = parser.parse_args(argv)
    for arg in args.run_arg:
        if arg.split("=", 1)[0] in ("--data-dir", "--output-dir"):
            parser.error(f"--run-arg={arg}: the harness sets --data-dir and --output-dir itself")
    if any(n < 2 for n in args.scale_rows):
        parser.error("--scale-rows: each N must be at least 2 (two labeled spans)")
    if args.scale_timeout_minutes <= 0:
        parser.error("--scale-timeout-minutes must be positive")
    if not (args.render_only or args.serving_only):
        scenarios = selected_scenarios(args)
        if not scenarios:
            parser.error("no scenario left to run (--only, --skip-scale, --skip-serving)")
        cold_metadata = args.out_dir / "runs" / "cold" / "metadata.db"
        needs_cold = [s for s in scenarios if s in NEEDS_COLD_OUTPUT]
        if needs_cold and "cold" not in scenarios and not cold_metadata.is_file():
            parser.error(
                f"{', '.join(needs_cold)} need(s) a cold run's outputs: add cold to --only "
                f"(there is no {cold_metadata})"
            )
    return args


def _scenario_list(text: str) -> list[str]:
    names = [n.strip() for n in text.split(",") if n.strip()]
    unknown = [n for n in names if n not in SCENARIOS]
    if unknown or not names:
        raise argparse.ArgumentTypeError(
            f"unknown scenario(s) {', '.join(unknown) or '(none given)'}; choose from "
            f"{', '.join(SCENARIOS)}"
        )
    return names


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.serving_only:
        if not args.results.is_file():
            print(f"error: no results at {args.results}; run the benchmark first", file=sys.stderr)
            return 2
        results = json.loads(args.results.read_text())
        settings = settings_from(args, invocation=now())
        cold_output = settings.out_dir / "runs" / "cold"
        results["serving_load"] = serving_load(settings, cold_output, args.serving_seconds)
        write_json(results, args.results)
        write_markdown(results, args.markdown)
        print(f"[bench] results: {args.results}\n[bench] report:  {args.markdown}")
        return 0 if "error" not in results["serving_load"] else 1
    if args.render_only:
        if not args.results.is_file():
            print(f"error: no results at {args.results}; run the benchmark first", file=sys.stderr)
            return 2
        results = json.loads(args.results.read_text())
    else:
        results = run_all(args)
        write_json(results, args.results)
    write_markdown(results, args.markdown)
    print(f"[bench] results: {args.results}\n[bench] report:  {args.markdown}")
    failed = [
        name
        for name, run in results["runs"].items()
        if run.get("exit_code") != 0 and run.get("invocation") == results.get("started_at")
    ]
    if failed and not args.render_only:
        print(f"[bench] run(s) that did not exit 0: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

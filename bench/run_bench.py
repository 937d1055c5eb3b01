"""Benchmark harness: times the local pipeline in a few scenarios and writes BENCHMARKS.md.

    python bench/run_bench.py [--scale-rows 100000 1000000] [--skip-scale] [--out-dir bench/work]
                              [--data-dir data] [--run-arg=ARG ...]
                              [--results bench/results.json] [--markdown BENCHMARKS.md]
    python bench/run_bench.py --render-only     # re-render the Markdown from the results JSON
    python bench/run_bench.py --serving-only    # only the serving load (bench/serve_load.py)

Scenarios, each one `python run_local.py ...` in a subprocess with its own output directory:

  cold                full chain on --data-dir, fresh output directory;
  rerun_unchanged     the same command again on the same output directory (cache hits);
  rerun_model_change  a copy of the project (run_local.py, code folders, schema/) whose
                      components/model.py has one appended line, run on the same output
                      directory: Trainer and what follows must re-execute, and what is upstream
                      of Trainer must stay cached unless its own code fingerprint changed;
  serving_load        `run_local.py serve` on the cold run's model under load: requests/s and
                      p50/p99 latency of REST :predict, 1 and 64 rows per request, 1, 8 and 32
                      concurrent clients (bench/serve_load.py);
  scale_N             for each N of --scale-rows: generate N rows with bench/generate_data.py
                      (timed on its own), then a cold run on them.

What is measured for each run:

  wall seconds        from start to exit of `run_local.py`;
  CPU seconds         user + system time of the process and every descendant it waited for, from
                      os.wait4's resource usage (what `time` reports);
  peak RSS            the largest sum of resident memory over the process and all its descendants,
                      sampled every --sample-interval seconds with psutil (shared pages count once
                      per process, so forked workers can be over-counted); also the largest single
                      process's peak (ru_maxrss), which sampling cannot miss;
  exit code, per-component state and duration (ML Metadata, via bench/read_run.py), Evaluator
  metrics (AUC, binary accuracy, ...) and how much the output directory holds on disk.

Everything goes to the results JSON (written after each run, so a crash keeps what was measured)
and is rendered to BENCHMARKS.md, including a targets section where a missed target says MISSED.
Pipeline runs go one at a time; extra `run_local.py` options (budgets, Beam options) are passed
with --run-arg, e.g. --run-arg=--beam-arg=--direct_num_workers=2.
"""

from __future__ import annotations

import argparse
import datetime
import importlib.metadata
import json
import os
import platform
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
DEFAULT_SCALE_ROWS = (100_000, 1_000_000)
RESULTS_VERSION = 1
GIB = 1024**3

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

# Targets. A scale target applies when --scale-rows includes its row counts.
TARGET_COLD_SECONDS = 45.0
TARGET_RERUN_RATIO = 0.15
TARGET_LARGE_ROWS = 1_000_000
TARGET_SMALL_ROWS = 100_000
TARGET_LARGE_SECONDS = 15 * 60.0
TARGET_LARGE_PEAK_BYTES = 6 * GIB
TARGET_SCALE_RATIO = 11.0
TARGET_ACCURACY = 0.787

MET, MISSED, NOT_MEASURED = "met", "MISSED", "NOT MEASURED"


# --------------------------------------------------------------------------------------------
# Measuring one process tree


@dataclass
class Measurement:
    """Resource use of one command and all its descendants."""

    wall_seconds: float
    cpu_user_seconds: float
    cpu_system_seconds: float
    peak_rss_bytes: int  # sampled sum over the process tree
    max_process_rss_bytes: int  # ru_maxrss: the largest single process, exact
    rss_samples: int
    exit_code: int
    timed_out: bool
    leftover_processes: int  # descendants still alive after the command exited (then ended)

    @property
    def cpu_seconds(self) -> float:
        return self.cpu_user_seconds + self.cpu_system_seconds


class TreeSampler(threading.Thread):
    """Samples the summed RSS of a process and its descendants until stopped; keeps the max."""

    def __init__(self, pid: int, interval: float):
        super().__init__(daemon=True)
        self.process = psutil.Process(pid)
        self.interval = interval
        self.peak = 0
        self.samples = 0
        self._stop_event = threading.Event()

    def sample(self) -> None:
        try:
            tree = [self.process, *self.process.children(recursive=True)]
        except psutil.Error:
            return
        total = 0
        for process in tree:
            try:
                total += process.memory_info().rss
            except psutil.Error:
                pass  # exited between listing and reading, or a zombie
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
        sampler.stop()
    leftovers = _processes_in_group(process.pid)
    if leftovers:
        _end_group(process.pid)
    return Measurement(
        wall_seconds=round(wall, 3),
        cpu_user_seconds=round(usage.ru_utime, 3),
        cpu_system_seconds=round(usage.ru_stime, 3),
        peak_rss_bytes=sampler.peak,
        max_process_rss_bytes=usage.ru_maxrss * 1024,  # Linux reports KiB
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


def read_run(output_dir: Path, scratch: Path, upstream_of: str | None = None) -> dict:
    """bench/read_run.py's facts about the latest run in `output_dir`'s ML Metadata."""
    metadata = output_dir / "metadata.db"
    if not metadata.is_file():
        return {"read_error": f"no ML Metadata store at {metadata}", "components": []}
    json_out = scratch / "read_run.json"
    command = [sys.executable, str(BENCH_DIR / "read_run.py"), str(metadata)]
    command += ["--json-out", str(json_out)]
    if upstream_of:
        command += ["--upstream-of", upstream_of]
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

    @property
    def logs(self) -> Path:
        return self.out_dir / "logs"


def _relative(path: Path) -> str:
    """`path` relative to the project when inside it (symlinks such as the venv's python kept)."""
    path = Path(os.path.abspath(path))
    return str(path.relative_to(PROJECT_ROOT)) if path.is_relative_to(PROJECT_ROOT) else str(path)


def pipeline_run(
    settings: Settings,
    scenario: str,
    description: str,
    data_dir: Path,
    output_dir: Path,
    cwd: Path = PROJECT_ROOT,
    upstream_of: str | None = None,
) -> dict:
    """One measured `python run_local.py` and what ML Metadata says it did."""
    command = [
        sys.executable,
        "run_local.py",
        f"--data-dir={data_dir}",
        f"--output-dir={output_dir}",
        *settings.run_args,
    ]
    log_path = settings.logs / f"{scenario}.log"
    print(f"[bench] {scenario}: {description}", flush=True)
    started_at, load_before = now(), os.getloadavg()[0]
    m = measure(command, cwd, log_path, settings.timeout, settings.interval)
    print(
        f"[bench] {scenario}: exit {m.exit_code}, {m.wall_seconds:.1f} s wall, "
        f"{m.cpu_seconds:.1f} s CPU, peak RSS {m.peak_rss_bytes / GIB:.2f} GiB",
        flush=True,
    )
    record = {
        "scenario": scenario,
        "description": description,
        "started_at": started_at,
        "load_average_before": round(load_before, 2),
        "command": [_relative(Path(command[0])), *command[1:]],
        "cwd": _relative(cwd),
        "data_dir": _relative(data_dir),
        "output_dir": _relative(output_dir),
        "console_log": _relative(log_path),
        **measurement_dict(m),
        "output_bytes": directory_bytes(output_dir),
    }
    if m.exit_code != 0:
        record["console_tail"] = tail(log_path)
    facts = read_run(output_dir, settings.logs, upstream_of)
    components = facts.get("components", [])
    record.update(facts)
    record["executed"] = [c["node_id"] for c in components if c["state"] == "executed"]
    record["cached"] = [c["node_id"] for c in components if c["state"] == "cached"]
    record["failed"] = [c["node_id"] for c in components if c["state"] == "failed"]
    return record


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
        f"a copy of the project with a line appended to {CHANGED_MODULE}, same output directory",
        settings.data_dir,
        output_dir,
        cwd=project,
        upstream_of="Trainer",
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


def generate(settings: Settings, rows: int, data_dir: Path) -> dict:
    """Scale data via bench/generate_data.py, measured like a run."""
    command = [sys.executable, str(BENCH_DIR / "generate_data.py"), f"--rows={rows}"]
    command += [f"--out={data_dir}", f"--seed={settings.seed}", "--overwrite"]
    log_path = settings.logs / f"generate-{rows}.log"
    print(f"[bench] generating {rows:,} rows into {data_dir}", flush=True)
    m = measure(command, PROJECT_ROOT, log_path, settings.timeout, settings.interval)
    record = {
        "rows": rows,
        "seed": settings.seed,
        "data_dir": _relative(data_dir),
        "console_log": _relative(log_path),
        **measurement_dict(m),
        "data_bytes": directory_bytes(data_dir),
    }
    if m.exit_code != 0:
        record["console_tail"] = tail(log_path)
    return record


def now() -> str:
    return datetime.datetime.now().astimezone().isoformat(timespec="seconds")


def fresh(path: Path) -> Path:
    if path.exists():
        shutil.rmtree(path)
    return path


def _unlabeled_csv(data_dir: Path) -> Path:
    """A CSV of rows to score: the latest span of unlabeled/ (as the pipeline's batch)."""
    spans = sorted((data_dir / "unlabeled").glob("*/*.csv"))
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
    return {**load, "git": git_info()}


def settings_from(args: argparse.Namespace) -> Settings:
    return Settings(
        out_dir=args.out_dir.resolve(),
        data_dir=args.data_dir.resolve(),
        run_args=list(args.run_arg),
        timeout=args.timeout,
        interval=args.sample_interval,
        seed=args.seed,
    )


def run_all(args: argparse.Namespace) -> dict:
    settings = settings_from(args)
    settings.out_dir.mkdir(parents=True, exist_ok=True)
    results = {
        "version": RESULTS_VERSION,
        "started_at": now(),
        "finished_at": None,
        "machine": machine_info(),
        "git": git_info(),
        "settings": {
            "data_dir": _relative(settings.data_dir),
            "out_dir": _relative(settings.out_dir),
            "run_args": settings.run_args,
            "scale_rows": [] if args.skip_scale else list(args.scale_rows),
            "seed": settings.seed,
            "timeout_seconds": settings.timeout,
            "sample_interval_seconds": settings.interval,
        },
        "runs": {},
        "targets": [],
    }

    def save(record: dict) -> None:
        results["runs"][record["scenario"]] = record
        write_json(results, args.results)

    cold_output = fresh(settings.out_dir / "runs" / "cold")
    save(
        pipeline_run(
            settings,
            "cold",
            "full chain on the data, fresh output directory",
            settings.data_dir,
            cold_output,
        )
    )
    save(
        pipeline_run(
            settings,
            "rerun_unchanged",
            "the same command again on the same output directory",
            settings.data_dir,
            cold_output,
        )
    )
    save(model_change_run(settings, cold_output))
    if not args.skip_serving:
        results["serving_load"] = serving_load(settings, cold_output, args.serving_seconds)
        write_json(results, args.results)
    for rows in results["settings"]["scale_rows"]:
        data_dir = settings.out_dir / f"data-{rows}"
        generation = generate(settings, rows, data_dir)
        if generation["exit_code"] != 0:
            record = {
                "scenario": f"scale_{rows}",
                "description": f"generating {rows:,} rows failed",
                "rows": rows,
                "generation": generation,
                "exit_code": None,
            }
        else:
            record = pipeline_run(
                settings,
                f"scale_{rows}",
                f"cold run on {rows:,} generated rows, fresh output directory",
                data_dir,
                fresh(settings.out_dir / "runs" / f"scale-{rows}"),
            )
            record["rows"] = rows
            record["generation"] = generation
        save(record)
    results["finished_at"] = now()
    return results


# --------------------------------------------------------------------------------------------
# Targets and rendering


def _run_ok(run: dict | None) -> bool:
    return bool(run) and run.get("exit_code") == 0


def _target(name: str, goal: str, measured: str | None, ok: bool | None, note: str = "") -> dict:
    status = NOT_MEASURED if ok is None else MET if ok else MISSED
    return {"target": name, "goal": goal, "measured": measured, "status": status, "note": note}


def evaluate_targets(results: dict) -> list[dict]:
    """Each target with what was measured and met / MISSED / NOT MEASURED."""
    runs = results.get("runs", {})
    cold, rerun = runs.get("cold"), runs.get("rerun_unchanged")
    targets = []

    def failed_note(run: dict | None) -> str:
        if not run:
            return "not run"
        return "" if _run_ok(run) else f"the run failed (exit {run.get('exit_code')})"

    # Cold run.
    if cold:
        wall = cold["wall_seconds"]
        targets.append(
            _target(
                "Cold run",
                f"<= {TARGET_COLD_SECONDS:g} s",
                fmt_seconds(wall),
                _run_ok(cold) and wall <= TARGET_COLD_SECONDS,
                failed_note(cold),
            )
        )
    else:
        targets.append(_target("Cold run", f"<= {TARGET_COLD_SECONDS:g} s", None, None, "not run"))
    # Unchanged re-run.
    if cold and rerun:
        ratio = rerun["wall_seconds"] / cold["wall_seconds"]
        targets.append(
            _target(
                "Unchanged re-run",
                f"<= {TARGET_RERUN_RATIO:.0%} of cold",
                f"{ratio:.1%} ({fmt_seconds(rerun['wall_seconds'])})",
                _run_ok(cold) and _run_ok(rerun) and ratio <= TARGET_RERUN_RATIO,
                failed_note(rerun) or failed_note(cold),
            )
        )
    else:
        targets.append(
            _target("Unchanged re-run", f"<= {TARGET_RERUN_RATIO:.0%} of cold", None, None)
        )
    # Scale.
    large = runs.get(f"scale_{TARGET_LARGE_ROWS}")
    small = runs.get(f"scale_{TARGET_SMALL_ROWS}")
    rows_label = f"{TARGET_LARGE_ROWS:,} rows"
    for name, goal, value, ok in (
        (
            f"{rows_label}, wall",
            f"<= {TARGET_LARGE_SECONDS / 60:g} min",
            large and large.get("wall_seconds"),
            lambda v: v <= TARGET_LARGE_SECONDS,
        ),
        (
            f"{rows_label}, peak RSS",
            f"<= {TARGET_LARGE_PEAK_BYTES / GIB:g} GiB",
            large and large.get("peak_rss_bytes"),
            lambda v: v <= TARGET_LARGE_PEAK_BYTES,
        ),
    ):
        if value is None:
            targets.append(_target(name, goal, None, None, failed_note(large) or "not run"))
        else:
            shown = fmt_seconds(value) if "wall" in name else fmt_bytes(value)
            targets.append(
                _target(name, goal, shown, _run_ok(large) and ok(value), failed_note(large))
            )
    goal = f"<= {TARGET_SCALE_RATIO:g}x the {TARGET_SMALL_ROWS:,}-row run"
    if large and small and large.get("wall_seconds") and small.get("wall_seconds"):
        ratio = large["wall_seconds"] / small["wall_seconds"]
        targets.append(
            _target(
                f"{rows_label} vs {TARGET_SMALL_ROWS:,}, wall",
                goal,
                f"{ratio:.2f}x",
                _run_ok(large) and _run_ok(small) and ratio <= TARGET_SCALE_RATIO,
                failed_note(large) or failed_note(small),
            )
        )
    else:
        targets.append(
            _target(f"{rows_label} vs {TARGET_SMALL_ROWS:,}, wall", goal, None, None, "not run")
        )
    # Model quality: the cold run on the default data, and each scale run.
    for scenario, run in runs.items():
        if scenario != "cold" and not scenario.startswith("scale_"):
            continue
        accuracy = (run.get("metrics") or {}).get("binary_accuracy")
        targets.append(
            _target(
                f"Binary accuracy, {scenario}",
                f">= {TARGET_ACCURACY}",
                None if accuracy is None else f"{accuracy:.4f}",
                None if accuracy is None else accuracy >= TARGET_ACCURACY,
                "" if accuracy is not None else failed_note(run) or "no evaluation metrics",
            )
        )
    if "cold" not in runs:
        targets.append(_target("Binary accuracy, cold", f">= {TARGET_ACCURACY}", None, None))
    return targets


def fmt_seconds(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    if seconds < 120:
        return f"{seconds:.1f} s"
    minutes, rest = divmod(seconds, 60)
    return f"{int(minutes)} min {rest:04.1f} s"


def fmt_bytes(n: int | None) -> str:
    if n is None:
        return "-"
    if n >= GIB:
        return f"{n / GIB:.2f} GiB"
    if n >= 1024**2:
        return f"{n / 1024**2:.0f} MiB"
    return f"{n / 1024:.0f} KiB"


def _table(header: list[str], rows: list[list]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return lines + [""]


def _resources_row(run: dict) -> list:
    wall = run.get("wall_seconds")
    cpu = run.get("cpu_seconds")
    exit_code = run.get("exit_code")
    return [
        fmt_seconds(wall),
        fmt_seconds(cpu),
        f"{cpu / wall:.2f}" if wall and cpu is not None else "-",
        fmt_bytes(run.get("peak_rss_bytes")),
        fmt_bytes(run.get("max_process_rss_bytes")),
        "-"
        if exit_code is None
        else str(exit_code) + (" (timed out)" if run.get("timed_out") else ""),
    ]


RESOURCE_HEADER = [
    "Wall",
    "CPU (user+sys)",
    "CPU/wall",
    "Peak RSS (tree)",
    "Largest process",
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
            lines += [f"Re-run / cold wall time: {ratio:.1%}.", ""]
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


def render_markdown(results: dict) -> str:
    """BENCHMARKS.md from the results JSON."""
    machine, git, settings = results["machine"], results["git"], results["settings"]
    runs = results.get("runs", {})
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
                ["Data (cold and re-runs)", f"`{settings['data_dir']}`"],
                [
                    "Extra run_local.py options",
                    " ".join(f"`{a}`" for a in settings["run_args"]) or "none",
                ],
            ],
        ),
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
    cold = runs.get("cold")
    for run in runs.values():
        lines += _run_section(run, cold)
        if run["scenario"] == "cold":
            lines += ["Per component (ML Metadata: creation to last update of each execution):", ""]
            lines += _component_table(run)

    lines += ["## Model metrics", ""]
    metric_rows = []
    for name, run in runs.items():
        metrics = run.get("metrics") or {}
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
        "those of the run that computed them).",
        "",
    ]

    scale = sorted(
        (run for name, run in runs.items() if name.startswith("scale_")), key=lambda r: r["rows"]
    )
    lines += ["## Scale", ""]
    if not scale:
        lines += ["No scale runs in this benchmark (`--skip-scale`).", ""]
    else:
        rows = []
        smallest = scale[0]
        for run in scale:
            generation = run.get("generation", {})
            ratio = (
                f"{run['wall_seconds'] / smallest['wall_seconds']:.2f}x"
                if run.get("wall_seconds") and smallest.get("wall_seconds")
                else "-"
            )
            rows.append(
                [
                    f"{run['rows']:,}",
                    fmt_seconds(generation.get("wall_seconds")),
                    fmt_bytes(generation.get("max_process_rss_bytes")),
                    fmt_bytes(generation.get("data_bytes")),
                    *_resources_row(run),
                    ratio,
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
            "rows/14 rows (at most 100,000).",
            "",
        ]
        large = runs.get(f"scale_{TARGET_LARGE_ROWS}")
        small = runs.get(f"scale_{TARGET_SMALL_ROWS}")
        if large and small and large.get("wall_seconds") and small.get("wall_seconds"):
            lines += [
                f"{TARGET_LARGE_ROWS:,} / {TARGET_SMALL_ROWS:,} rows wall ratio: "
                f"{large['wall_seconds'] / small['wall_seconds']:.2f}x.",
                "",
            ]
        else:
            lines += [
                f"{TARGET_LARGE_ROWS:,} / {TARGET_SMALL_ROWS:,} rows wall ratio: not measured "
                "(both sizes need to be in --scale-rows).",
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
        "- Wall: start to exit of the `run_local.py` process; each run is a subprocess, one at a "
        "time.",
        "- CPU: user + system seconds of the process and every descendant it waited for "
        "(`os.wait4`), as `time` reports them; CPU/wall above 1 means more than one core was busy.",
        "- Peak RSS (tree): the largest sum of resident memory of the process and all its "
        f"descendants, sampled with psutil every {settings['sample_interval_seconds']:g} s; "
        "pages shared between processes count once per process. Largest process: the peak "
        "resident memory of the single largest process (`ru_maxrss`), exact.",
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
        description="Benchmark the local pipeline (cold, re-runs, scale) and write BENCHMARKS.md.",
    )
    parser.add_argument(
        "--scale-rows",
        type=int,
        nargs="+",
        default=list(DEFAULT_SCALE_ROWS),
        metavar="N",
        help="labeled row counts for the scale runs (default: %(default)s)",
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
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.serving_only:
        if not args.results.is_file():
            print(f"error: no results at {args.results}; run the benchmark first", file=sys.stderr)
            return 2
        results = json.loads(args.results.read_text())
        settings = settings_from(args)
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
    failed = [name for name, run in results["runs"].items() if run.get("exit_code") != 0]
    if failed and not args.render_only:
        print(f"[bench] run(s) that did not exit 0: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

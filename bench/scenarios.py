"""What each scenario runs and how it is recorded: the reference (TFX's taxi example), the
warm-up, cold and parallelism runs, the re-runs (unchanged, model code changed), the scale runs on
generated data, the serving load; the settings they share and the order they run in."""

from __future__ import annotations

import argparse
import datetime
import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from facts import (
    BENCH_DIR,
    FINGERPRINTED_NODES,
    PROJECT_ROOT,
    code_fingerprints,
    csv_rows,
    directory_bytes,
    git_commit,
    git_info,
    project_relative,
    read_run,
    sha256_of,
    span_key,
    tail,
)
from formatting import GIB, fmt_minutes
from measure import measure, measurement_dict

DEFAULT_DATA_DIR = PROJECT_ROOT / "data"
DEFAULT_SCALE_ROWS = (100_000, 1_000_000, 10_000_000)
DEFAULT_SCALE_TIMEOUT_MINUTES = 45.0

# Scenario names for --only, in the order they run ("scale" is every scale_N of --scale-rows).
SCENARIOS = (
    "reference",
    "cold",
    "parallelism",
    "determinism",
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
        "command": [project_relative(Path(command[0])), *command[1:]],
        "cwd": project_relative(cwd),
        "console_log": project_relative(log_path),
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
    record["data_dir"] = project_relative(data_dir)
    record["output_dir"] = project_relative(output_dir)
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
    sources = sorted(settings.data_dir.glob("labeled/*/*.csv"), key=span_key)
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
                "source": project_relative(source),
                "copy": project_relative(copy),
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
    record["data_dir"] = project_relative(data_dir)
    record["data_files"] = files
    record["rows"] = sum(f["rows"] for f in files)
    record["output_dir"] = project_relative(work_dir)
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


# The cost of determinism: cold runs with and without --no-deterministic, alternating, so that a
# drift in the machine's speed falls on both alike.
DETERMINISM_PAIRS = 2


def _same_outputs(output_a: Path, output_b: Path) -> str:
    """Whether two runs' artifacts are the same, artifact by artifact (the comparison `reproduce`
    makes, metadata/run_comparison.py, in a process of its own), or what differs."""
    script = (
        "import sys\n"
        "from pathlib import Path\n"
        "from metadata.run_comparison import compare_runs\n"
        "from metadata.runs import find_run\n"
        "from metadata.store import StoreIndex\n"
        "a, b = (StoreIndex.open(Path(d) / 'metadata.db') for d in sys.argv[1:])\n"
        "result = compare_runs(a, find_run(a, '1')['run_id'], b, find_run(b, '1')['run_id'])\n"
        "outputs = len(result['artifacts'])\n"
        "print(f'identical ({outputs} outputs)' if result['identical'] else "
        "'; '.join(result['differences'][:3]))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script, str(output_a), str(output_b)],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"},
    )
    lines = done.stdout.strip().splitlines()
    return lines[-1] if done.returncode == 0 and lines else f"not compared: {done.stderr[-300:]}"


def determinism_runs(settings: Settings) -> list[dict]:
    """Scenario determinism: cold runs, alternating --no-deterministic and the default; each
    pair's second run says whether its artifacts are identical to the first pair's."""
    records = []
    for pair in range(1, DETERMINISM_PAIRS + 1):
        for mode, extra_args in (("off", ("--no-deterministic",)), ("on", ())):
            name = f"determinism_{mode}_{pair}"
            record = pipeline_run(
                settings,
                name,
                f"as cold, {'with --no-deterministic' if mode == 'off' else 'deterministic (the default)'}"
                f"; pair {pair} of {DETERMINISM_PAIRS}, the two modes alternating",
                settings.data_dir,
                fresh(settings.out_dir / "runs" / name),
                extra_args=extra_args,
            )
            if pair > 1:
                record["same_as_pair_1"] = _same_outputs(
                    settings.out_dir / "runs" / f"determinism_{mode}_1",
                    settings.out_dir / "runs" / name,
                )
            records.append(record)
    return records


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
        "data_dir": project_relative(data_dir),
        "console_log": project_relative(log_path),
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
    spans = sorted((data_dir / "unlabeled").glob("*/*.csv"), key=span_key)
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
        commit=git_commit(),
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
    for family in ("scale", "parallelism", "determinism"):  # scale_N, parallelism_N: by N
        if name.startswith(family + "_"):
            number = name.removeprefix(family + "_")
            return (SCENARIOS.index(family), int(number) if number.isdigit() else 0, name)
    return (SCENARIOS.index(name) if name in SCENARIOS else len(SCENARIOS), 0, name)


def ordered_runs(runs: dict) -> dict:
    """Runs in the order the scenarios run (merged results keep it too)."""
    return {name: runs[name] for name in sorted(runs, key=_run_order)}


def default_parallelism() -> int:
    """The runner's default --parallelism: one per core (orchestration/dag_schedule.py; the
    harness runs outside the project's imports)."""
    return max(1, os.cpu_count() or 1)


def parallelism_levels() -> list[int]:
    """The --parallelism values measured beside the default (the cold run): one at a time, and
    one more than the cores."""
    return [level for level in (1, default_parallelism() + 1) if level != default_parallelism()]

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
  serving_load        `run_local.py serve` on the cold run's model under load from C clients in
                      their own processes (wrk for REST :predict, h2load for gRPC Predict): 1 and
                      64 rows per request, 1, 8 and 32 connections; requests/s, p50/p99 latency,
                      client and server CPU, beside the model's own call measured in the same
                      run as the floor (bench/serve_load.py);
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

The harness is this file and its neighbours in bench/, imported by plain module name (bench/ is on
sys.path when this file runs): measure.py measures one process tree and ends it at its cap,
facts.py reads the machine, git and a run's outputs, scenarios.py runs each scenario,
targets.py checks the targets, formatting.py writes numbers as text and report_markdown.py writes
BENCHMARKS.md and the results JSON. This file parses the command line and runs the scenarios in
order (run_all, main).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from facts import BENCH_DIR, PROJECT_ROOT, git_info, machine_info, project_relative
from report_markdown import write_json, write_markdown
from scenarios import (
    DEFAULT_DATA_DIR,
    DEFAULT_SCALE_ROWS,
    DEFAULT_SCALE_TIMEOUT_MINUTES,
    NEEDS_COLD_OUTPUT,
    REFERENCE_BEAM_ARGS,
    SCENARIOS,
    default_parallelism,
    determinism_runs,
    fresh,
    model_change_run,
    now,
    ordered_runs,
    parallelism_levels,
    pipeline_run,
    reference_run,
    scale_run,
    selected_scenarios,
    serving_load,
    settings_from,
    warm_up,
)

DEFAULT_RESULTS = BENCH_DIR / "results.json"
DEFAULT_MARKDOWN = PROJECT_ROOT / "BENCHMARKS.md"
DEFAULT_OUT_DIR = BENCH_DIR / "work"
RESULTS_VERSION = 2


def earlier_results(args: argparse.Namespace) -> dict | None:
    """The results JSON a subset (--only) is merged into, if there is one."""
    if not args.only or not args.results.is_file():
        return None
    try:
        return json.loads(args.results.read_text())
    except (OSError, json.JSONDecodeError):
        return None


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
            "data_dir": project_relative(settings.data_dir),
            "out_dir": project_relative(settings.out_dir),
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
    if "determinism" in scenarios:
        for record in determinism_runs(settings):
            save(record)
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

"""The benchmark harness (bench/run_bench.py and its modules) without running a pipeline: its
targets (met, MISSED, not measured, a scale run stopped at its cap), its scenario selection, the
cap itself on a real process group, the reuse of generated data, the reference's data folder, and
rendering."""

from __future__ import annotations

import datetime
import json
import sys
import time
from pathlib import Path

import pytest

# The harness's modules import their neighbours by plain name, as bench/ is on sys.path when
# bench/run_bench.py runs.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "bench"))

import report_markdown
import scenarios
from measure import measure
from report_markdown import parallelism_section, render_markdown
from run_bench import RESULTS_VERSION, main, parse_args
from scenarios import (
    DEFAULT_SCALE_ROWS,
    DEFAULT_SCALE_TIMEOUT_MINUTES,
    SCENARIOS,
    Settings,
    ordered_runs,
    parallelism_levels,
    reference_data,
    scale_data,
    scale_run,
    selected_scenarios,
)
from targets import MET, MISSED, NOT_MEASURED, TARGET_10M_SECONDS, evaluate_targets

GIB = 1024**3


def run(scenario: str, wall: float, exit_code: int = 0, **extra) -> dict:
    return {
        "scenario": scenario,
        "description": scenario,
        "invocation": "inv-1",
        "started_at": "2026-11-30T09:00:00+00:00",
        "wall_seconds": wall,
        "cpu_seconds": wall,
        "peak_rss_bytes": 2 * GIB,
        "peak_pss_bytes": int(1.5 * GIB),
        "max_process_rss_bytes": GIB,
        "load_average_before": 0.1,
        "exit_code": exit_code,
        "timed_out": False,
        "components": [],
        **extra,
    }


def results_with(*runs: dict, cores: int = 2) -> dict:
    return {
        "version": RESULTS_VERSION,
        "started_at": "inv-1",
        "finished_at": "2026-11-30T10:00:00+00:00",
        "machine": {"cores": cores, "memory_bytes": 24 * GIB, "versions": {"tfx": "1.16.0"}},
        "git": {"commit": "abc1234", "dirty": False, "modified": []},
        "settings": {
            "scenarios": list(SCENARIOS),
            "data_dir": "data",
            "run_args": [],
            "seed": 42,
            "sample_interval_seconds": 0.2,
            "scale_timeout_seconds": 45 * 60.0,
        },
        "runs": {r["scenario"]: r for r in runs},
    }


def all_passing_runs() -> list[dict]:
    return [
        run(
            "reference",
            100.0,
            metrics={"binary_accuracy": 0.789},
            scored={"auc": 0.933, "binary_accuracy": 0.789, "example_count": 4612},
        ),
        run("cold", 78.0, metrics={"auc": 0.95, "binary_accuracy": 0.9}),  # exactly 0.78x
        run("rerun_unchanged", 7.0),
        run("rerun_model_change", 27.0),
        run("scale_1000000", 239.0, rows=1_000_000),
        run("scale_10000000", 39 * 60.0, rows=10_000_000, peak_pss_bytes=8 * GIB),
    ]


def by_name(targets: list[dict]) -> dict[str, dict]:
    return {t["target"]: t for t in targets}


COLD = "Cold run vs TFX's taxi example"
RERUN = "Unchanged re-run"
MODEL_CHANGE = "Model-code-change re-run"
WALL_1M = "1,000,000 rows, wall"
WALL_10M = "10,000,000 rows, wall"
RSS_10M = "10,000,000 rows, peak PSS (tree)"
AUC = "AUC, cold run on the default data"
SERVING = [
    "Serving, 1 client, 1 row",
    "Serving, 32 clients, 1 row",
    "Serving, 64 rows per request",
    "Serving, gRPC vs REST",
    "Serving, request logging cost",
]


def run_targets(targets: list[dict]) -> list[dict]:
    """The targets the pipeline runs are judged by (the serving load's have their own test)."""
    return [t for t in targets if t["target"] not in SERVING]


def test_the_targets_are_exactly_the_new_ones():
    targets = evaluate_targets(results_with())
    assert [t["target"] for t in targets] == [
        COLD,
        RERUN,
        MODEL_CHANGE,
        WALL_1M,
        WALL_10M,
        RSS_10M,
        *SERVING,
        AUC,
    ]
    goals = {t["target"]: t["goal"] for t in targets}
    assert goals[COLD] == "<= 0.78x the reference's cold wall"
    assert goals[RERUN] == "<= 0.10x cold"
    assert goals[MODEL_CHANGE] == "<= 0.35x cold"
    assert goals[WALL_1M] == "<= 4 min"
    assert goals[WALL_10M] == "<= 40 min on 2 cores"
    assert goals[RSS_10M] == "<= 8 GiB on 2 cores"
    assert goals[AUC] == ">= 0.947"
    assert DEFAULT_SCALE_ROWS == (100_000, 1_000_000, 10_000_000)
    # The cap lets a 10M run reach its 40-minute target, and not run for hours.
    assert TARGET_10M_SECONDS < DEFAULT_SCALE_TIMEOUT_MINUTES * 60 <= 60 * 60


def test_targets_met_at_their_limits():
    targets = by_name(run_targets(evaluate_targets(results_with(*all_passing_runs()))))
    assert {name: t["status"] for name, t in targets.items()} == dict.fromkeys(targets, MET)
    assert targets[COLD]["measured"] == "0.78x (78.0 s / 100.0 s)"
    # The reference's AUC is shown beside the project's, for information.
    assert "0.9330" in targets[AUC]["note"] and "0.7890" in targets[AUC]["note"]


def test_targets_missed_just_past_their_limits():
    runs = {r["scenario"]: r for r in all_passing_runs()}
    runs["cold"].update(wall_seconds=78.1, metrics={"auc": 0.9469})
    runs["rerun_unchanged"]["wall_seconds"] = 0.11 * 78.1
    runs["rerun_model_change"]["wall_seconds"] = 0.36 * 78.1
    runs["scale_1000000"]["wall_seconds"] = 241.0
    runs["scale_10000000"].update(wall_seconds=40 * 60 + 1.0, peak_pss_bytes=8 * GIB + 1)
    targets = run_targets(evaluate_targets(results_with(*runs.values())))
    assert [t["status"] for t in targets] == [MISSED] * len(targets)


def test_targets_not_measured_without_runs():
    targets = evaluate_targets(results_with())
    assert [t["status"] for t in targets] == [NOT_MEASURED] * len(targets)
    assert by_name(targets)[COLD]["note"] == "not run: cold, reference"


def test_a_failed_reference_is_not_measured_and_a_failed_cold_run_is_missed():
    runs = {r["scenario"]: r for r in all_passing_runs()}
    runs["reference"]["exit_code"] = 1
    cold = by_name(evaluate_targets(results_with(*runs.values())))[COLD]
    assert cold["status"] == NOT_MEASURED
    assert "the reference: the run failed (exit 1)" in cold["note"]

    runs = {r["scenario"]: r for r in all_passing_runs()}
    runs["cold"]["exit_code"] = 1
    targets = by_name(evaluate_targets(results_with(*runs.values())))
    assert targets[COLD]["status"] == MISSED
    assert targets[AUC]["status"] == MISSED
    # Re-runs on a failed cold run have nothing to be compared with.
    assert targets[RERUN]["status"] == NOT_MEASURED


def test_a_scale_run_stopped_at_the_cap_misses_its_targets():
    runs = {r["scenario"]: r for r in all_passing_runs()}
    runs["scale_10000000"].update(
        wall_seconds=45 * 60 + 2.0,
        exit_code=143,
        timed_out=True,
        timeout_seconds=45 * 60.0,
        peak_pss_bytes=5 * GIB,  # under the limit so far, but the run never finished
    )
    targets = by_name(evaluate_targets(results_with(*runs.values())))
    for name in (WALL_10M, RSS_10M):
        assert targets[name]["status"] == MISSED
        assert "stopped at the 45 min cap" in targets[name]["note"]
    assert targets[WALL_10M]["measured"] == "stopped at 45 min"
    assert targets[RSS_10M]["measured"] == "5.00 GiB until stopped"
    assert targets[WALL_1M]["status"] == MET
    markdown = render_markdown(results_with(*runs.values()))
    assert "143 (stopped at the 45 min cap)" in markdown
    assert "**MISSED**" in markdown


def test_scale_targets_say_when_cores_differ():
    targets = by_name(evaluate_targets(results_with(*all_passing_runs(), cores=8)))
    assert "measured on 8 cores" in targets[WALL_10M]["note"]


def test_runs_of_different_invocations_are_flagged():
    runs = {r["scenario"]: r for r in all_passing_runs()}
    runs["reference"]["invocation"] = "inv-0"
    cold = by_name(evaluate_targets(results_with(*runs.values())))[COLD]
    assert "another invocation" in cold["note"]


def test_render_shows_the_reference_and_the_comparison():
    results = results_with(*all_passing_runs())
    results["runs"]["reference"].update(
        command=[".venv/bin/python", "bench/reference_taxi.py", "run"],
        data_files=[
            {
                "source": "data/labeled/span-1/taxi.csv",
                "copy": "bench/work/reference-data/span-1-taxi.csv",
                "rows": 7001,
                "bytes": 894605,
                "sha256": "0" * 64,
            }
        ],
        rows=7001,
        components=[{"node_id": "Transform", "state": "executed", "seconds": 40.0}],
    )
    results["runs"]["cold"]["components"] = [
        {"node_id": "Transform", "state": "executed", "seconds": 30.0}
    ]
    markdown = render_markdown(results)
    assert "## The project beside TFX's own example" in markdown
    assert "| Wall | 78.0 s | 100.0 s | 0.78x |" in markdown
    assert "## Reference: TFX's own taxi example" in markdown
    assert "`data/labeled/span-1/taxi.csv` | 7,001 |" in markdown
    assert "| Transform | 30.0 | 40.0 | 0.75x |" in markdown
    assert "| rerun_unchanged | 7.0 s | 0.09x | 0.07x |" in markdown
    # The serving load was not run in these results: its five targets are not measured.
    assert "**Targets: 7 met, 0 MISSED, 5 not measured**" in markdown


def test_render_only_rerenders_from_the_json(tmp_path):
    results_path, markdown_path = tmp_path / "results.json", tmp_path / "BENCHMARKS.md"
    results_path.write_text(json.dumps(results_with(*all_passing_runs())))
    assert main(["--render-only", f"--results={results_path}", f"--markdown={markdown_path}"]) == 0
    assert "# Benchmarks" in markdown_path.read_text()


def test_only_selects_scenarios_in_run_order(tmp_path):
    args = parse_args(["--only", "cold,reference", f"--out-dir={tmp_path}"])
    assert selected_scenarios(args) == ["reference", "cold"]
    args = parse_args(["--skip-scale", "--skip-serving", f"--out-dir={tmp_path}"])
    assert selected_scenarios(args) == [
        "reference",
        "cold",
        "parallelism",
        "determinism",
        "rerun_unchanged",
        "rerun_model_change",
    ]
    with pytest.raises(SystemExit):
        parse_args(["--only", "cold,warm"])
    with pytest.raises(SystemExit):  # a re-run needs a cold run's outputs
        parse_args(["--only", "rerun_unchanged", f"--out-dir={tmp_path}"])


def test_the_cap_ends_the_whole_process_group(tmp_path):
    child = "import subprocess, time; subprocess.Popen(['sleep', '120']); time.sleep(120)"
    started = time.monotonic()
    m = measure([sys.executable, "-c", child], tmp_path, tmp_path / "log", 1.0, 0.1)
    assert m.timed_out
    assert m.exit_code != 0
    assert time.monotonic() - started < 30
    assert m.leftover_processes == 0


def test_cpu_of_a_descendant_nobody_waits_for_is_counted(tmp_path):
    # A child that burns CPU and is never waited for (as a multiprocessing forkserver): wait4's
    # usage of the parent does not include it, the sampled CPU does.
    # The child says when it has burnt its CPU (however busy the machine), and stays a moment
    # for the sampler to read it; the parent exits then without waiting for it.
    done = tmp_path / "burnt"
    burn = (
        "import pathlib, time\nend = time.process_time() + 1.5\n"
        "while time.process_time() < end: pass\n"
        f"pathlib.Path({str(done)!r}).touch()\ntime.sleep(1)"
    )
    parent = (
        "import os, pathlib, subprocess, sys, time\n"
        f"subprocess.Popen([sys.executable, '-c', {burn!r}])\n"
        f"while not pathlib.Path({str(done)!r}).exists(): time.sleep(0.05)\n"
        "time.sleep(0.5)\n"
        "os._exit(0)\n"
    )
    m = measure([sys.executable, "-c", parent], tmp_path, tmp_path / "log", 60.0, 0.1)
    assert m.exit_code == 0
    assert m.cpu_user_seconds + m.cpu_system_seconds < 1.0
    assert m.cpu_seconds >= 1.2


def test_shared_pages_count_once_in_the_peak_pss(tmp_path):
    # A parent fills 300 MiB, then forks 3 children that only read it: summed RSS counts the
    # pages 4 times, PSS once (split between the processes that map them).
    script = (
        "import os, time\n"
        "block = bytearray(300 * 2**20)\n"
        "for i in range(0, len(block), 4096): block[i] = 1\n"
        "children = []\n"
        "for _ in range(3):\n"
        "    pid = os.fork()\n"
        "    if pid == 0: time.sleep(3); os._exit(0)\n"
        "    children.append(pid)\n"
        "for pid in children: os.waitpid(pid, 0)\n"
    )
    m = measure([sys.executable, "-c", script], tmp_path, tmp_path / "log", 60.0, 0.1, 0.5)
    assert m.exit_code == 0
    mib = 2**20
    assert m.peak_rss_bytes > 1000 * mib  # 4 x 300 MiB, and the interpreters
    assert 300 * mib < m.peak_pss_bytes < 500 * mib
    assert 0 < m.peak_pss_at_seconds < 10


def test_scale_runs_get_the_cap(monkeypatch, tmp_path):
    settings = Settings(
        out_dir=tmp_path,
        data_dir=tmp_path,
        run_args=[],
        timeout=3 * 3600.0,
        interval=0.2,
        seed=42,
        scale_timeout=45 * 60.0,
    )
    seen = {}
    monkeypatch.setattr(scenarios, "scale_data", lambda s, rows: (tmp_path / "d", {"exit_code": 0}))

    def fake_pipeline_run(settings, scenario, description, data_dir, output_dir, **kwargs):
        seen.update(kwargs, scenario=scenario)
        return {"scenario": scenario}

    monkeypatch.setattr(scenarios, "pipeline_run", fake_pipeline_run)
    record = scale_run(settings, 10_000_000)
    assert seen == {"timeout": 45 * 60.0, "scenario": "scale_10000000"}
    assert record["rows"] == 10_000_000


def test_generated_data_is_reused_until_its_inputs_change(monkeypatch, tmp_path):
    settings = Settings(
        out_dir=tmp_path, data_dir=tmp_path, run_args=[], timeout=60.0, interval=0.2, seed=42
    )
    calls = []

    def fake_generate(settings, rows, data_dir):
        calls.append(rows)
        data_dir.mkdir(parents=True, exist_ok=True)
        return {"rows": rows, "exit_code": 0, "wall_seconds": 1.0}

    monkeypatch.setattr(scenarios, "generate", fake_generate)
    first = scale_data(settings, 1000)[1]
    second = scale_data(settings, 1000)[1]
    assert (first["reused"], second["reused"]) == (False, True)
    assert calls == [1000]
    settings.seed = 7
    assert scale_data(settings, 1000)[1]["reused"] is False
    assert calls == [1000, 1000]


def test_reference_data_copies_the_labeled_spans(tmp_path):
    data = tmp_path / "data"
    for span, rows in ((2, 3), (1, 2), (10, 1)):
        folder = data / "labeled" / f"span-{span}"
        folder.mkdir(parents=True)
        body = "".join(f"{i},x\n" for i in range(rows))
        (folder / "taxi.csv").write_text("a,b\n" + body)
    (data / "unlabeled" / "span-1").mkdir(parents=True)
    (data / "unlabeled" / "span-1" / "taxi.csv").write_text("a\n1\n")
    settings = Settings(
        out_dir=tmp_path / "out", data_dir=data, run_args=[], timeout=60.0, interval=0.2, seed=42
    )
    folder, files = reference_data(settings)
    assert sorted(p.name for p in folder.iterdir()) == [
        "span-1-taxi.csv",
        "span-10-taxi.csv",
        "span-2-taxi.csv",
    ]
    assert [(Path(f["copy"]).name, f["rows"]) for f in files] == [
        ("span-1-taxi.csv", 2),
        ("span-2-taxi.csv", 3),
        ("span-10-taxi.csv", 1),
    ]


def test_the_parallelism_section_compares_each_level_with_the_default_cold_run(monkeypatch):
    # parallelism_levels looks it up in scenarios, parallelism_section in report_markdown.
    monkeypatch.setattr(scenarios, "default_parallelism", lambda: 2)
    monkeypatch.setattr(report_markdown, "default_parallelism", lambda: 2)
    assert parallelism_levels() == [1, 3]
    runs = ordered_runs(
        {
            "parallelism_3": {"wall_seconds": 55.0, "cpu_seconds": 99.0, "most_at_once": 3},
            "cold": {"wall_seconds": 50.0, "cpu_seconds": 90.0, "parallelism": 2, "exit_code": 0},
            "parallelism_1": {"wall_seconds": 60.0, "cpu_seconds": 60.0, "most_at_once": 1},
        }
    )
    assert list(runs) == ["cold", "parallelism_1", "parallelism_3"]
    table = [line for line in parallelism_section(runs) if line.startswith("| ")]
    assert table[1] == "| 1 | 60.0 s | 60.0 s | 1.00 | 1 | 1.20 | None |"
    assert "| 1.20 |" in table[1] and "1.00 (the default)" in table[2] and "| 1.10 |" in table[3]
    assert parallelism_section({"cold": runs["cold"]}) == []


def _serving_point(api: str, rows: int, clients: int, rps: float, p50=1.5, p99=20.0, errors=0):
    return {
        "api": api,
        "rows_per_request": rows,
        "clients": clients,
        "requests_per_second": rps,
        "rows_per_second": rps * rows,
        "p50_ms": p50,
        "p99_ms": p99,
        "errors": errors,
        "client_cpu": 0.05,
        "server_cpu": 1.9,
    }


def test_serving_targets_judge_each_goal_and_name_where_grpc_is_slower():
    from targets import serving_targets

    load = {
        "floor": {"1": {"p50_ms": 0.47, "p99_ms": 0.7}, "64": {"p50_ms": 0.8, "p99_ms": 1.2}},
        "points": [
            _serving_point("REST", 1, 1, 680, p50=1.43),
            _serving_point("REST", 1, 32, 3000, p99=18),
            _serving_point("REST", 64, 8, 590),
            _serving_point("gRPC", 1, 1, 760),
            _serving_point("gRPC", 1, 32, 2050),
            _serving_point("gRPC", 64, 8, 1200),
        ],
    }
    load["request_log"] = {
        "logged_mb": 12.0,
        "cost": [
            {
                "api": "REST",
                "rows_per_request": 1,
                "clients": 32,
                "on": 2800,
                "off": 3000,
                "throughput_lost": 0.067,
            },
            {
                "api": "gRPC",
                "rows_per_request": 1,
                "clients": 32,
                "on": 1900,
                "off": 2050,
                "throughput_lost": 0.073,
            },
        ],
    }
    one, many, wide, grpc, logging = serving_targets(load)
    assert (logging["status"], logging["measured"]) == (
        MET,
        "7.3% at most (gRPC, 1 row(s) x 32 clients: 1,900 vs 2,050 req/s)",
    )
    # Rounds of one server further apart than the effect looked for: not decided either way.
    for cost, share in zip(load["request_log"]["cost"], (0.04, 0.025), strict=True):
        cost.update(spread=0.17, logger_cpu_share=share)
    noisy = serving_targets(load)[4]
    assert noisy["status"] == NOT_MEASURED
    assert noisy["note"].startswith(
        "too noisy to tell: the rounds of one server differed by up to 17%"
    )
    assert "the logger's own CPU is 2.5% to 4.0% of a request's" in noisy["note"]
    for cost in load["request_log"]["cost"]:
        cost["spread"] = 0.05
    assert serving_targets(load)[4]["status"] == MET
    assert (one["status"], one["measured"]) == (MET, "p50 1.43 ms")
    assert "0.47 ms for 1 row" in one["note"]
    assert many["status"] == MET
    assert (wide["status"], wide["measured"]) == (MET, "37,760 rows/s (8 clients)")
    assert grpc["status"] == MISSED
    assert grpc["note"] == "1 row(s) x 32 clients: 2,050 vs 3,000 req/s"
    # Errors under load, or a p99 past 50 ms, miss the 32-client goal whatever the rate.
    load["points"][1] = _serving_point("REST", 1, 32, 3000, p99=18, errors=3)
    assert serving_targets(load)[1]["status"] == MISSED
    assert {t["status"] for t in serving_targets({"error": "wrk not found"})} == {NOT_MEASURED}


def test_the_scale_limits_give_rows_per_minute_per_stage_and_what_ran_at_the_peak():
    start = datetime.datetime.fromisoformat("2026-11-30T09:00:00+00:00").timestamp()
    scale = run(
        "scale_1000000",
        200.0,
        rows=1_000_000,
        peak_pss_bytes=3 * GIB,
        peak_pss_at_seconds=150.0,
        components=[
            {
                "node_id": "CsvExampleGen",
                "state": "executed",
                "seconds": 30.0,
                "started_epoch": start + 10,
            },
            {
                "node_id": "Transform",
                "state": "executed",
                "seconds": 40.0,
                "started_epoch": start + 60,
            },
            {
                "node_id": "Evaluator",
                "state": "executed",
                "seconds": 60.0,
                "started_epoch": start + 120,
            },
            {
                "node_id": "InfraValidator",
                "state": "executed",
                "seconds": 5.0,
                "started_epoch": start + 120,
            },
        ],
    )
    markdown = render_markdown(results_with(scale))
    # 1M rows in 30 s is 2M rows a minute; no StatisticsGen in this run; 3 GiB over 1M rows.
    assert (
        "| 1,000,000 | 2,000,000 | - | 1,500,000 | 1,000,000 | 3.00 GiB | Evaluator |" in markdown
    )

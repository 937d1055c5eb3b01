"""Writes the results: BENCHMARKS.md rendered from the results JSON (every section, tables and
notes) and the results JSON itself, with its targets evaluated."""

from __future__ import annotations

import datetime
import json
from pathlib import Path

from formatting import fmt_bytes, fmt_minutes, fmt_ratio, fmt_seconds
from scenarios import default_parallelism, ordered_runs
from targets import MET, MISSED, NOT_MEASURED, evaluate_targets, reference_auc, run_ok


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
        fmt_bytes(run.get("peak_pss_bytes")),
        fmt_bytes(run.get("max_process_rss_bytes")),
        "-" if load is None else f"{load:.2f}",
        _exit_text(run),
    ]


RESOURCE_HEADER = [
    "Wall",
    "CPU (user+sys)",
    "CPU/wall",
    "Peak RSS (tree)",
    "Peak PSS (tree)",
    "Largest process",
    "Load before",
    "Exit",
]


def _names(nodes: list[str] | None) -> str:
    return ", ".join(nodes) if nodes else "none"


def _running_at_peak(run: dict) -> str:
    """The components running when the run's summed PSS peaked."""
    at = run.get("peak_pss_at_seconds")
    started = run.get("started_at")
    if at is None or not started:
        return "-"
    moment = datetime.datetime.fromisoformat(started).timestamp() + at
    running = [
        c["node_id"]
        for c in run.get("components") or []
        if "started_epoch" in c
        and c["started_epoch"] <= moment <= c["started_epoch"] + c["seconds"]
    ]
    return ", ".join(running) or "none (start-up or summary)"


# The stages whose work grows with the labeled rows (the others train for a number of steps,
# read one small artifact, or read only the batch to score, which the generator caps).
ROW_BOUND_STAGES = ("CsvExampleGen", "StatisticsGen", "Transform", "Evaluator")


def _scale_limits(scale: list[dict]) -> list[str]:
    """Per scale run: rows per minute of each row-bound stage, memory per million rows, and what
    ran at the memory peak: the single-box limits README "Scaling out" quotes."""
    rows = []
    for run in scale:
        seconds = {c["node_id"]: c["seconds"] for c in run.get("components") or []}
        per_stage = [
            f"{run['rows'] / seconds[stage] * 60:,.0f}" if seconds.get(stage) else "-"
            for stage in ROW_BOUND_STAGES
        ]
        pss = run.get("peak_pss_bytes")
        rows.append(
            [
                f"{run['rows']:,}",
                *per_stage,
                fmt_bytes(pss / (run["rows"] / 1e6)) if pss else "-",
                _running_at_peak(run),
            ]
        )
    return _table(
        [
            "Labeled rows",
            *(f"{stage} rows/min" for stage in ROW_BOUND_STAGES),
            "Peak PSS per million rows",
            "Running at the PSS peak",
        ],
        rows,
    )


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
    cold_wall = (cold or {}).get("wall_seconds") if run_ok(cold) else None
    ref_wall = (reference or {}).get("wall_seconds") if run_ok(reference) else None
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
            ratio = (
                f"{wall / cold['wall_seconds']:.2f}"
                if cold and cold.get("wall_seconds") and wall
                else ""
            )
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


def determinism_section(runs: dict) -> list[str]:
    """The cost of determinism: alternating cold runs with and without --no-deterministic."""
    by_mode: dict[str, list[dict]] = {"on": [], "off": []}
    for name, run in runs.items():
        for mode in by_mode:
            if name.startswith(f"determinism_{mode}_") and run.get("wall_seconds"):
                by_mode[mode].append(run)
    if not by_mode["on"] or not by_mode["off"]:
        return []

    def median(values: list[float]) -> float:
        ordered = sorted(values)
        middle = len(ordered) // 2
        return ordered[middle] if len(ordered) % 2 else (ordered[middle - 1] + ordered[middle]) / 2

    rows = []
    for name, run in runs.items():
        if not name.startswith("determinism_"):
            continue
        metrics = run.get("metrics") or {}
        rows.append(
            [
                name,
                "yes" if name.startswith("determinism_on_") else "no (--no-deterministic)",
                fmt_seconds(run.get("wall_seconds")),
                fmt_seconds(run.get("cpu_seconds")),
                f"{metrics['auc']:.6f}" if "auc" in metrics else "",
                run.get("same_as_pair_1", "(first of its mode)"),
                run.get("exit_code"),
            ]
        )
    wall = {mode: median([r["wall_seconds"] for r in found]) for mode, found in by_mode.items()}
    cpu = {
        mode: median([r.get("cpu_seconds") or 0.0 for r in found])
        for mode, found in by_mode.items()
    }
    return [
        "## The cost of determinism",
        "",
        "Cold runs on the same data, alternating `--no-deterministic` and the default (TensorFlow's "
        "op determinism in Tuner and Trainer, every tuner trial seeded, tfx_bsl batching by byte "
        "size and BulkInferrer by fixed-size batches, a fixed hash seed). The last column compares "
        "each run's artifacts with the first run of the same mode, as `reproduce` does.",
        "",
        *_table(
            ["Run", "Deterministic", "Wall", "CPU", "AUC", "Artifacts vs pair 1", "Exit"], rows
        ),
        "",
        f"Median wall time deterministic {wall['on']:.1f} s against {wall['off']:.1f} s: "
        f"{(wall['on'] / wall['off'] - 1) * 100:+.1f}%; median CPU {cpu['on']:.1f} s against "
        f"{cpu['off']:.1f} s: {(cpu['on'] / cpu['off'] - 1) * 100:+.1f}%.",
        "",
    ]


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
    lines += determinism_section(runs)
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
        lines += _scale_limits(scale)
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
    commit = load.get("git", {}).get("commit") or "unknown"
    if "floor" not in load:  # results from the asyncio-client harness, before the floor
        return lines + [
            f"Measured {load['measured_at']} at commit {commit} by the earlier harness, whose "
            "clients shared the server's process and cores; its figures measured the clients. "
            "Run `make bench BENCH_ARGS=--serving-only` for figures from this harness.",
            "",
        ]
    floor = load["floor"]
    lines += [
        f"{load['server']}. On the cold run's model, {load['cores']} cores, "
        f"{load['seconds_per_point']:g} s per point after a {load['warmup_seconds']:g} s warm-up. "
        f"Clients: {load['clients']}; REST `:predict` takes JSON rows of raw feature values, "
        "gRPC `Predict` serialized tf.Examples. Measured "
        f"{load['measured_at']} at commit {commit}.",
        "",
        f"**Floor** (the model's own `serving_default` call in a process of its own, same run, "
        f"before the load): one row p50 **{floor['1']['p50_ms']} ms** (p99 "
        f"{floor['1']['p99_ms']}), 64 rows p50 **{floor['64']['p50_ms']} ms** (p99 "
        f"{floor['64']['p99_ms']}).",
        "",
        "CPU is seconds of CPU per second of load (1.0: one core busy), for the client process "
        "and for the server's process tree.",
        "",
    ]
    lines += _table(
        [
            "API",
            "Rows/request",
            "Clients",
            "Requests/s",
            "Rows/s",
            "p50 ms",
            "p99 ms",
            "Errors",
            "Client CPU",
            "Server CPU",
        ],
        [
            [
                p["api"],
                p["rows_per_request"],
                p["clients"],
                f"{p['requests_per_second']:,.1f}",
                f"{p['rows_per_second']:,.0f}",
                p["p50_ms"],
                p["p99_ms"],
                p["errors"],
                p["client_cpu"],
                p["server_cpu"],
            ]
            for p in load["points"]
        ],
    )
    costs = (load.get("request_log") or {}).get("cost")
    if costs:
        lines += [
            "**Request logging** (every request and answer as a PredictionLog, the default) against "
            "`--log-sample-rate 0`, same run: servers with logging off and on in the order off, "
            f"on, on, off ({costs[0].get('rounds', 1)} rounds), the median of each side; the "
            "logged server of the "
            f"table above wrote {load['request_log']['logged_mb']:,.1f} MB of logs:",
            "",
        ]
        lines += _table(
            [
                "API",
                "Rows/request",
                "Clients",
                "Logging on, req/s",
                "Off, req/s",
                "Lost",
                "Rounds apart",
                "Server CPU/request",
                "Logger CPU/request",
                "Logger share",
            ],
            [
                [
                    c["api"],
                    c["rows_per_request"],
                    c["clients"],
                    f"{c['on']:,.1f}",
                    f"{c['off']:,.1f}",
                    f"{c['throughput_lost']:.1%}",
                    f"{c['spread']:.0%}" if "spread" in c else "",
                    f"{c['server_cpu_us_per_request']:,.0f} µs" if "spread" in c else "",
                    f"{c['logger_cpu_us_per_request']:,.0f} µs" if "spread" in c else "",
                    f"{c['logger_cpu_share']:.1%}" if "spread" in c else "",
                ]
                for c in costs
            ],
        )
        lines += [
            "",
            "*Rounds apart*: how far two rounds of the same server were from each other, the noise "
            "the comparison carries. *Logger CPU*: the request log's own work per request (the "
            "record built and written), timed alone in a process of its own; its share is of the "
            "server's CPU per request with logging off plus it.",
            "",
        ]
    return lines + [f"Reference: {TF_SERVING_REFERENCE}", ""]


def write_json(results: dict, path: Path) -> None:
    results["targets"] = evaluate_targets(results)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(results, indent=2) + "\n")


# Sections other scripts write into the same file, kept as they are when it is rewritten
# (bench/model_quality.py's table of the model against a linear baseline).
KEPT_SECTIONS = (("<!-- model-quality:start -->", "<!-- model-quality:end -->"),)


def write_markdown(results: dict, path: Path) -> None:
    text = render_markdown(results)
    earlier = path.read_text() if path.exists() else ""
    for start, end in KEPT_SECTIONS:
        begin, finish = earlier.find(start), earlier.find(end)
        if begin != -1 and finish > begin:
            text = text.rstrip("\n") + "\n\n" + earlier[begin : finish + len(end)] + "\n"
    path.write_text(text)

"""Model quality against a linear baseline: does the pipeline's model do at least as well as a
plain linear model on the same data, for CSVs the project was not tuned on?

    python bench/model_quality.py [--only customers,digits] [--rows-scale 0.5] [--keep DIR]
                                  [--timeout-minutes 40] [--json bench/model_quality.json]
                                  [--markdown BENCHMARKS.md]

For each dataset, in a folder of its own (a temporary one, removed at the end, unless --keep):

  1. its CSV is written: `customers` and `sensors` are synthetic (bench/quality_data.py; their
     rows times --rows-scale), `breast_cancer`, `digits` and `diabetes` are scikit-learn's bundled
     datasets, `penguin` is the CSVs under profiles/penguin/data/labeled/*/ in one file;
  2. `run_local.py init --csv CSV --label LABEL --out PROFILE` makes a profile for it, unreviewed
     (what a user who accepts init's choices gets), and `run_local.py --profile PROFILE
     --output-dir OUT` runs the whole pipeline on it; both are subprocesses of this Python, run
     from the project folder, timed, one at a time;
  3. the Evaluator's latest evaluation (the highest execution id under
     OUT/*/Evaluator/evaluation/) gives the figures: linear_baseline.json (the model's headline
     metric beside a linear model's, trained on the same training rows and scored on the same
     eval rows) and trivial_baseline.json (the model's figure, should the other be missing).

The goal, per dataset: the model at most 0.01 below the linear baseline in AUC or accuracy, or its
RMSE at most 2% above the linear baseline's. The table and figures go to --json and replace the
section of --markdown between the lines `<!-- model-quality:start -->` and
`<!-- model-quality:end -->` (appended at its end, markers included, when they are absent).
--only measures some datasets and keeps what an earlier invocation measured for the others.

Missing the goal is a result, not an error. A dataset whose init or run fails (or whose run leaves
no evaluation) is recorded with its exit code and the last lines of its console output; the
script goes on with the next and exits 1 at the end.

Standalone: it imports nothing from the project or from bench/ but bench/quality_data.py.
"""

from __future__ import annotations

import argparse
import csv
import datetime
import json
import os
import platform
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

PROJECT_ROOT = Path(__file__).resolve().parent.parent
BENCH_DIR = PROJECT_ROOT / "bench"
sys.path.insert(0, str(BENCH_DIR))

import generate_data  # noqa: E402  (bench/ is on sys.path from here on)
import quality_data  # noqa: E402

DATASETS = ("customers", "sensors", "breast_cancer", "digits", "diabetes", "penguin")
DESCRIPTIONS = {
    "customers": "synthetic customer churn (bench/quality_data.py write_customers)",
    "sensors": "synthetic solar sensor output (bench/quality_data.py write_sensor_readings)",
    "breast_cancer": "scikit-learn's breast cancer (Wisconsin diagnostic)",
    "digits": "scikit-learn's 8x8 handwritten digits",
    "diabetes": "scikit-learn's diabetes progression",
    "penguin": "profiles/penguin's labeled spans (TFX's processed Palmer penguins)",
}
SYNTHETIC_ROWS = {"customers": 5000, "sensors": 4000}
PENGUIN_PROFILE = PROJECT_ROOT / "profiles" / "penguin"

DEFAULT_JSON = BENCH_DIR / "model_quality.json"
DEFAULT_MARKDOWN = PROJECT_ROOT / "BENCHMARKS.md"
START_MARKER = "<!-- model-quality:start -->"
END_MARKER = "<!-- model-quality:end -->"
HEADING = "## Model quality against a linear baseline"

MAX_ACCURACY_SHORTFALL = 0.01  # AUC, accuracy: the model at most this far below the linear one
MAX_RMSE_EXCESS = 0.02  # RMSE: the model's at most this fraction above the linear one's
TAIL_LINES = 25
RESULTS_VERSION = 1


def now() -> str:
    return datetime.datetime.now().astimezone().isoformat(timespec="seconds")


def _git(*args: str) -> str | None:
    try:
        done = subprocess.run(
            ["git", *args], cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=30
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout.strip() if done.returncode == 0 else None


def git_commit() -> str | None:
    """The short commit, with `+changes` when tracked files differ from it."""
    commit = _git("rev-parse", "--short", "HEAD")
    if not commit:
        return None
    return commit + ("+changes" if _git("status", "--porcelain", "--untracked-files=no") else "")


# --- the datasets' CSVs --------------------------------------------------------------------


def _span_number(folder: Path) -> tuple[int, str]:
    digits = re.findall(r"\d+", folder.name)
    return (int(digits[-1]) if digits else -1, folder.name)


def write_penguin(path: Path) -> str:
    """The penguin profile's labeled CSVs (every span, in span order) as one CSV; its label."""
    profile = yaml.safe_load((PENGUIN_PROFILE / "profile.yaml").read_text())
    label = profile["label"]["column"]
    labeled = PENGUIN_PROFILE / profile.get("data_dir", "data") / "labeled"
    files = [
        f
        for span in sorted((p for p in labeled.iterdir() if p.is_dir()), key=_span_number)
        for f in sorted(span.glob("*.csv"))
    ]
    if not files:
        raise FileNotFoundError(f"no CSV under {labeled}/*/")
    header, rows = generate_data.read_rows(files)  # one header for all, checked
    with path.open("w", newline="", encoding="utf-8") as out:
        writer = csv.writer(out)
        writer.writerow(header)
        writer.writerows(row for row in rows if row)
    return label


def write_dataset(name: str, path: Path, rows_scale: float) -> str:
    """Writes dataset `name`'s CSV to `path`; returns its label column."""
    if name == "customers":
        quality_data.write_customers(path, rows=round(SYNTHETIC_ROWS[name] * rows_scale))
        return "Churned"
    if name == "sensors":
        quality_data.write_sensor_readings(path, rows=round(SYNTHETIC_ROWS[name] * rows_scale))
        return "Output kW"
    if name == "penguin":
        return write_penguin(path)
    return quality_data.write_sklearn(name, path)


def csv_shape(path: Path) -> tuple[int, int]:
    """Data rows (with or without a label) and columns (the label's included) of a CSV."""
    with path.open(newline="", encoding="utf-8") as f:
        reader = csv.reader(f)
        columns = len(next(reader))
        rows = sum(1 for row in reader if row)
    return rows, columns


# --- running the project -------------------------------------------------------------------


def run_step(command: list[str], log_path: Path, timeout: float, work_dir: Path) -> dict:
    """Runs `command` from the project folder, console to `log_path`; its exit code, wall
    seconds and, when it failed, the console's last lines. Ended (its process group, SIGTERM
    then SIGKILL) after `timeout` seconds. The command is recorded with `python` for this
    Python and `WORK` for `work_dir`."""
    started = time.monotonic()
    timed_out = False
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            command, cwd=PROJECT_ROOT, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        try:
            exit_code = process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            timed_out = True
            _end_group(process)
            exit_code = process.wait()
    seconds = time.monotonic() - started
    step = {
        "command": [_shown(part, work_dir) for part in command],
        "exit_code": exit_code,
        "seconds": round(seconds, 1),
        "timed_out": timed_out,
        "tail": None,
    }
    if exit_code != 0 or timed_out:
        step["tail"] = tail(log_path)
    return step


def _end_group(process: subprocess.Popen) -> None:
    for sig, wait in ((signal.SIGTERM, 15), (signal.SIGKILL, None)):
        try:
            os.killpg(process.pid, sig)
        except ProcessLookupError:
            return
        try:
            process.wait(timeout=wait)
            return
        except subprocess.TimeoutExpired:
            continue


def _shown(part: str, work_dir: Path) -> str:
    """A command's part as the report shows it: this Python as `python`, the work folder (a
    temporary one, unless --keep) as `WORK`."""
    if part == sys.executable:
        return "python"
    return part.replace(str(work_dir), "WORK")


def tail(log_path: Path, lines: int = TAIL_LINES) -> list[str]:
    try:
        text = log_path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return []
    return [line.rstrip() for line in text.splitlines()[-lines:]]


def profile_task(profile_dir: Path) -> str | None:
    try:
        profile = yaml.safe_load((profile_dir / "profile.yaml").read_text())
        return profile["label"]["task"]
    except (OSError, KeyError, TypeError, yaml.YAMLError):
        return None


def latest_evaluation(out_dir: Path) -> Path | None:
    """The Evaluator's evaluation folder with the highest execution id in `out_dir`."""
    found = [
        p
        for pattern in ("*/Evaluator/evaluation/*", "*/*/Evaluator/evaluation/*")
        for p in out_dir.glob(pattern)
        if p.is_dir() and p.name.isdigit()
    ]
    return max(found, key=lambda p: int(p.name)) if found else None


def read_json(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return None


# --- the comparison ------------------------------------------------------------------------


def compare(metric: str | None, model: float | None, linear: float | None) -> dict:
    """How the model stands against the linear baseline: `difference` with positive meaning the
    model is better (AUC and accuracy: points; RMSE: a fraction of the linear RMSE) and whether
    it is within the goal."""
    if metric is None or model is None or linear is None:
        return {"difference": None, "within_goal": None}
    if metric == "rmse":
        if linear <= 0:
            return {"difference": None, "within_goal": model <= linear}
        difference = (linear - model) / linear
        return {"difference": difference, "within_goal": difference >= -MAX_RMSE_EXCESS - 1e-12}
    difference = model - linear
    return {
        "difference": difference,
        "within_goal": difference >= -MAX_ACCURACY_SHORTFALL - 1e-12,
    }


def measure(name: str, work_dir: Path, rows_scale: float, timeout: float) -> dict:
    """One dataset: its CSV, init, run and the Evaluator's figures."""
    folder = work_dir / name
    folder.mkdir(parents=True, exist_ok=True)
    csv_path = folder / f"{name}.csv"
    profile_dir = folder / "profile"
    out_dir = folder / "outputs"
    result: dict = {
        "dataset": name,
        "description": DESCRIPTIONS[name],
        "measured_at": now(),
        "commit": git_commit(),
        "rows_scale": rows_scale if name in SYNTHETIC_ROWS else None,
        "failed": False,
        "notes": [],
    }

    print("  writing the CSV ...", flush=True)
    label = write_dataset(name, csv_path, rows_scale)
    rows, columns = csv_shape(csv_path)
    result.update(label=label, rows=rows, columns=columns)
    print(f"  {rows:,} rows, {columns} columns (label {label!r})", flush=True)

    python = sys.executable
    init_command = [python, "run_local.py", "init", "--csv", str(csv_path), "--label", label]
    init_command += ["--out", str(profile_dir)]
    print("  run_local.py init ...", flush=True)
    result["init"] = run_step(init_command, folder / "init.log", timeout, work_dir)
    print(
        f"  init: exit {result['init']['exit_code']} in {result['init']['seconds']:.1f} s",
        flush=True,
    )
    result["task"] = profile_task(profile_dir)
    if result["init"]["exit_code"] != 0:
        result["failed"] = True
        result["notes"].append(f"init failed (exit {result['init']['exit_code']})")
        return result

    run_command = [python, "run_local.py", "--profile", str(profile_dir), "--output-dir"]
    run_command += [str(out_dir)]
    print(f"  run_local.py --profile ... ({result['task']}) ...", flush=True)
    result["run"] = run_step(run_command, folder / "run.log", timeout, work_dir)
    run = result["run"]
    cap = " (stopped at the cap)" if run["timed_out"] else ""
    print(f"  run: exit {run['exit_code']}{cap} in {run['seconds']:.1f} s", flush=True)
    if run["exit_code"] != 0:
        result["failed"] = True
        result["notes"].append(f"run failed (exit {run['exit_code']}){cap}")

    evaluation = latest_evaluation(out_dir)
    result["evaluation_dir"] = str(evaluation.relative_to(work_dir)) if evaluation else None
    if evaluation is None:
        result["failed"] = True
        result["notes"].append("no Evaluator output under the run's output directory")
        return result
    trivial = read_json(evaluation / "trivial_baseline.json")
    linear = read_json(evaluation / "linear_baseline.json")
    result["trivial_baseline"] = trivial
    result["linear_baseline"] = linear
    if linear is None:
        result["notes"].append(
            f"no linear_baseline.json in the Evaluator's output ({result['evaluation_dir']})"
        )
    if trivial is None:
        result["notes"].append("no trivial_baseline.json in the Evaluator's output")
    source = linear or trivial or {}
    result["metric"] = source.get("metric")
    result["model_value"] = source.get("candidate_value")
    result["linear_value"] = linear.get("linear_value") if linear else None
    result["linear_model"] = linear.get("linear_model") if linear else None
    for key in ("train_rows", "eval_rows"):
        result[key] = linear.get(key) if linear else None
    result.update(compare(result["metric"], result["model_value"], result["linear_value"]))
    return result


# --- the report ----------------------------------------------------------------------------


def _number(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:.4f}" if abs(value) < 100 else f"{value:,.2f}"


def _difference(entry: dict) -> str:
    difference = entry.get("difference")
    if difference is None:
        return "-"
    if entry.get("metric") == "rmse":
        side = "lower" if difference >= 0 else "higher"
        return (
            f"RMSE {abs(difference) * 100:.1f}% {side} ({'better' if difference >= 0 else 'worse'})"
        )
    return f"{difference:+.4f} ({'better' if difference >= 0 else 'worse'})"


def _linear(entry: dict) -> str:
    if entry.get("linear_baseline"):
        return _number(entry.get("linear_value"))
    return "missing" if entry.get("evaluation_dir") else "-"


def _within(entry: dict) -> str:
    if entry.get("failed") and entry.get("within_goal") is None:
        return "**FAILED**"
    within = entry.get("within_goal")
    if within is None:
        return "not measured"
    return "**yes**" if within else "**NO**"


def _seconds(step: dict | None) -> str:
    if not step:
        return "-"
    text = f"{step['seconds']:.1f} s"
    if step.get("timed_out"):
        text += " (stopped at the cap)"
    return text


def _exit(step: dict | None) -> str:
    return "-" if not step else str(step["exit_code"])


def _table(header: list[str], rows: list[list]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return lines + [""]


def render_section(results: dict) -> str:
    entries = [results["datasets"][n] for n in DATASETS if n in results["datasets"]]
    within = [e for e in entries if e.get("within_goal") is True]
    missed = [e for e in entries if e.get("within_goal") is False]
    when = results["finished_at"] or results["started_at"]
    lines = [
        START_MARKER,
        HEADING,
        "",
        f"Generated by `python bench/model_quality.py` ({when}, "
        f"commit {results.get('commit') or '-'}, {results['machine']['cores']} cores "
        "(os.cpu_count)); do not edit by hand. Each dataset's CSV goes through "
        "`run_local.py init` with its choices accepted, then a full `run_local.py --profile` run; "
        "the figures are the Evaluator's, on the run's eval split.",
        "",
        f"Goal: the model at most {MAX_ACCURACY_SHORTFALL} below the linear baseline in AUC or "
        f"accuracy, or its RMSE at most {MAX_RMSE_EXCESS:.0%} above the linear baseline's. "
        f"**{len(within)} within the goal, {len(missed)} not, "
        f"{len(entries) - len(within) - len(missed)} not measured.**",
        "",
    ]
    rows = []
    for e in entries:
        rows.append(
            [
                e["dataset"],
                f"{e['rows']:,}" if e.get("rows") is not None else "-",
                e.get("columns", "-"),
                e.get("task") or "-",
                e.get("metric") or "-",
                _number(e.get("model_value")),
                _linear(e),
                _difference(e),
                _within(e),
            ]
        )
    header = ["Dataset", "Rows", "Columns", "Task", "Metric", "Model", "Linear baseline"]
    lines += _table(header + ["Difference", "Within goal?"], rows)
    lines += [
        "Rows: the CSV's data rows (init leaves out rows without a label); columns: the CSV's, "
        "label included. Difference: AUC or accuracy points, or RMSE as a share of the linear "
        "baseline's; positive is better for the model.",
        "",
    ]
    times = [
        [
            e["dataset"],
            e.get("description", ""),
            _seconds(e.get("init")),
            _seconds(e.get("run")),
            f"{_exit(e.get('init'))} / {_exit(e.get('run'))}",
            e.get("measured_at", "-"),
            e.get("commit") or "-",
        ]
        for e in entries
    ]
    lines += _table(
        ["Dataset", "Data", "init", "run", "Exit (init / run)", "Measured", "Commit"], times
    )
    models = [e for e in entries if e.get("linear_model")]
    if models:
        lines += ["Linear baselines, as the Evaluator describes them:", ""]
        for e in models:
            split = ""
            if e.get("train_rows") is not None and e.get("eval_rows") is not None:
                split = f" ({e['train_rows']:,} training rows, {e['eval_rows']:,} eval rows)"
            lines.append(f"- {e['dataset']}: {e['linear_model']}{split}")
        lines.append("")
    noted = [e for e in entries if e.get("notes")]
    if noted:
        lines += ["Notes:", ""]
        for e in noted:
            lines.append(f"- {e['dataset']}: {'; '.join(e['notes'])}.")
        lines.append("")
    for e in entries:
        for step_name in ("init", "run"):
            step = e.get(step_name)
            if step and step.get("tail"):
                lines += [
                    f"{e['dataset']}, `{step_name}` (exit {step['exit_code']}), last lines:",
                    "",
                    "```",
                    *step["tail"],
                    "```",
                    "",
                ]
    lines.append(END_MARKER)
    return "\n".join(lines) + "\n"


def write_markdown(path: Path, section: str) -> None:
    """Replaces the section between the markers in `path`, or appends it."""
    text = path.read_text(encoding="utf-8") if path.exists() else ""
    start, end = text.find(START_MARKER), text.find(END_MARKER)
    if start != -1 and end > start:
        end = text.find("\n", end)
        end = len(text) if end == -1 else end + 1
        text = text[:start] + section + text[end:]
    else:
        text = text.rstrip("\n") + ("\n\n" if text.strip() else "") + section
    path.write_text(text, encoding="utf-8")


# --- the command line ----------------------------------------------------------------------


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--only",
        default=None,
        metavar="NAMES",
        help=f"comma-separated datasets to measure, of: {', '.join(DATASETS)} (default: all)",
    )
    parser.add_argument(
        "--rows-scale",
        type=float,
        default=1.0,
        metavar="F",
        help="multiplies the synthetic datasets' rows (customers 5,000, sensors 4,000)",
    )
    parser.add_argument(
        "--keep",
        type=Path,
        default=None,
        metavar="DIR",
        help="work in DIR/<dataset> and keep the CSVs, profiles, outputs and logs there",
    )
    parser.add_argument(
        "--timeout-minutes", type=float, default=40.0, help="cap per command (default: 40)"
    )
    parser.add_argument(
        "--json", type=Path, default=DEFAULT_JSON, help="results JSON (default: %(default)s)"
    )
    parser.add_argument(
        "--markdown",
        type=Path,
        default=DEFAULT_MARKDOWN,
        help="the Markdown file whose model-quality section is replaced (default: %(default)s)",
    )
    args = parser.parse_args(argv)
    if args.only:
        names = [n.strip() for n in args.only.split(",") if n.strip()]
        unknown = [n for n in names if n not in DATASETS]
        if unknown:
            parser.error(f"unknown dataset(s) {', '.join(unknown)}; of: {', '.join(DATASETS)}")
        args.datasets = [n for n in DATASETS if n in names]
    else:
        args.datasets = list(DATASETS)
    if args.rows_scale <= 0:
        parser.error("--rows-scale must be positive")
    if args.keep:
        args.keep = args.keep.resolve()
        busy = [
            n for n in args.datasets if (args.keep / n).exists() and any((args.keep / n).iterdir())
        ]
        if busy:
            parser.error(
                f"--keep {args.keep}: {', '.join(busy)} already there; give an empty folder"
            )
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    results = {
        "version": RESULTS_VERSION,
        "started_at": now(),
        "finished_at": None,
        "commit": git_commit(),
        "machine": {
            "cores": os.cpu_count(),
            "platform": platform.platform(),
            "python": platform.python_version(),
        },
        "goal": {
            "max_accuracy_shortfall": MAX_ACCURACY_SHORTFALL,
            "max_rmse_excess": MAX_RMSE_EXCESS,
        },
        "measured": args.datasets,
        "datasets": {},
    }
    earlier = read_json(args.json) if args.only else None
    if earlier and earlier.get("version") == RESULTS_VERSION:
        results["datasets"] = {
            n: e for n, e in earlier.get("datasets", {}).items() if n not in args.datasets
        }

    work_dir = args.keep or Path(tempfile.mkdtemp(prefix="model-quality-"))
    work_dir.mkdir(parents=True, exist_ok=True)
    print(f"Work folder: {work_dir}{'' if args.keep else ' (removed at the end)'}", flush=True)
    failed = []
    try:
        for i, name in enumerate(args.datasets, 1):
            print(f"[{i}/{len(args.datasets)}] {name}: {DESCRIPTIONS[name]}", flush=True)
            try:
                entry = measure(name, work_dir, args.rows_scale, args.timeout_minutes * 60)
            except Exception as error:  # a dataset's failure must not stop the rest
                entry = {
                    "dataset": name,
                    "description": DESCRIPTIONS[name],
                    "measured_at": now(),
                    "commit": results["commit"],
                    "failed": True,
                    "notes": [f"the benchmark itself failed: {type(error).__name__}: {error}"],
                }
            results["datasets"][name] = entry
            if entry["failed"]:
                failed.append(name)
            print(f"  -> {_summary(entry)}", flush=True)
            if not args.keep:
                shutil.rmtree(work_dir / name, ignore_errors=True)
            results["finished_at"] = now()
            save(results, args)  # after each dataset, so that a crash keeps what was measured
    finally:
        if not args.keep:
            shutil.rmtree(work_dir, ignore_errors=True)

    print(f"Wrote {args.json} and the model-quality section of {args.markdown}.")
    if failed:
        print(f"Failed: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


def _summary(entry: dict) -> str:
    parts = []
    if entry.get("metric"):
        parts.append(f"{entry['metric']} {_number(entry.get('model_value'))}")
        if entry.get("linear_baseline"):
            parts.append(f"linear {_number(entry.get('linear_value'))}")
            parts.append(f"difference {_difference(entry)}")
            parts.append(f"within goal: {_within(entry).strip('*')}")
        else:
            parts.append("linear baseline missing")
    parts += entry.get("notes", [])
    return "; ".join(parts) or "no figures"


def save(results: dict, args: argparse.Namespace) -> None:
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(results, indent=2) + "\n")
    write_markdown(args.markdown, render_section(results))


if __name__ == "__main__":
    sys.exit(main())

"""profile.yaml's text, with a comment or a `why:` note on each decision, and the check that the
written profile loads as written.
"""

from __future__ import annotations

import json
import shlex
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from components import profile as profiles
from profiling.report import (
    CATEGORICAL_DRIFT,
    DATA_DIR,
    DATA_FILE,
    IMBALANCED_SHARE,
    MARGIN_OVER_TRIVIAL,
    MAX_SLICE_VALUES,
    SCHEMA_FILE,
    SPAN_FOLDER,
    TRAIN_SHARE,
    InitReport,
)
from profiling.text import comment

OOV_BUCKETS = 10
MAX_REGRESSION = 0.01


def _yaml(value: str) -> str:
    """`value` as a YAML scalar that reads back as the same string in any context."""
    dumped = yaml.safe_dump([value], default_flow_style=True, allow_unicode=True, width=10**9)
    text = dumped.strip()[1:-1]
    if "\n" in text or text.startswith("'"):
        return json.dumps(value, ensure_ascii=False)  # a JSON string is a YAML double-quoted one
    return text


def _flow(items: dict[str, Any]) -> str:
    def value(v: Any) -> str:
        if isinstance(v, str):
            return _yaml(v)
        if isinstance(v, list):
            return "[" + ", ".join(value(item) for item in v) + "]"
        if isinstance(v, bool):
            return str(v).lower()
        return str(v)

    return "{" + ", ".join(f"{key}: {value(v)}" for key, v in items.items()) + "}"


def _setting(text: str, comment: str, indent: str = "") -> str:
    """`text` with a trailing comment, aligned as in the taxi profile."""
    return f"{indent}{text:<{28 - len(indent)}}  # {comment}"


def profile_text(report: InitReport, labeled_split: pd.DataFrame) -> str:
    """profile.yaml, with a comment on each decision."""
    task = report.task
    labeled = f"{DATA_DIR}/labeled/{SPAN_FOLDER}/{DATA_FILE}"
    unlabeled = f"{DATA_DIR}/unlabeled/{SPAN_FOLDER}/{DATA_FILE}"
    out = comment(
        f"Made by `python run_local.py init` from {report.csv_path.name} ({report.rows_read} "
        "rows). Every setting is a guess from the data, with its reason in a comment or a `why:` "
        "note: review them and schema.pbtxt, then run",
    )
    out += [
        f"#   python run_local.py --profile {shlex.quote(str(report.out_dir))}",
        f"name: {report.name}",
        "description: "
        + _yaml(
            f"Made by init from {report.csv_path.name} ({report.rows_read} rows); predicts "
            f"{report.label} ({task})."
        ),
        *comment(
            f"{labeled}: {report.labeled_rows} rows; {unlabeled}: the batch to score, "
            f"{report.unlabeled_rows} rows held out without the label."
        ),
        f"data_dir: {DATA_DIR}",
        _setting(f"schema: {SCHEMA_FILE}", "TFDV's schema of the labeled rows, curated"),
        "",
        "label:",
        f"  column: {_yaml(report.label)}",
        _setting(f"task: {task}", report.task_why, indent="  "),
    ]
    if report.rows_without_label:
        out.append(f"  # {report.rows_without_label} row(s) of the CSV have no label: left out.")
    if report.classes:
        classes = "[" + ", ".join(_quoted(c) for c in report.classes) + "]"
        if task == "binary":
            negative, positive = report.classes
            out += comment(
                f"The second class, {_quoted(positive)}, is the positive one (binary metrics, "
                f"P(positive)); swap the two to predict {_quoted(negative)}.",
                indent="  ",
            )
            out.append(f"  classes: {classes}")
        else:
            out.append(_setting(f"classes: {classes}", "in id order", indent="  "))
    out += ["", "features:"]
    for column in report.columns:
        settings: dict[str, Any] = {"kind": column.kind}
        if column.max is not None:
            settings["max"] = column.max
        if column.top_k is not None:
            settings["top_k"] = column.top_k
            settings["oov_buckets"] = OOV_BUCKETS
        if column.max_tokens is not None:
            settings["max_tokens"] = column.max_tokens
        if column.format is not None:
            settings["format"] = column.format
            settings["parts"] = column.parts
        settings["why"] = column.why
        out.append(f"  {_yaml(column.name)}: {_flow(settings)}")
    out.append("")
    if report.slices:
        out.append(
            _setting(
                f"slices: [{_yaml(report.slices[0])}]",
                f"the first categorical feature with at most {MAX_SLICE_VALUES} values",
            )
        )
    else:
        out.append(
            _setting("slices: []", f"no categorical feature with at most {MAX_SLICE_VALUES} values")
        )
    out += [
        "",
        *comment(
            "Drift (a new span against the previous one) and skew (the batch to score against "
            f"the training data): {CATEGORICAL_DRIFT} L-infinity distance for each categorical "
            "column" + (" and the label." if report.label in report.drift else ".") + " Measured "
            "on the taxi data, categorical columns stay under 0.06 L-infinity distance between "
            "random halves. Numeric columns get no threshold: approximate JSD of heavy-tailed "
            "numerics swings up to 0.7 between random halves, so the schema's ranges guard them "
            "(add those you know to schema.pbtxt)."
        ),
        "data_checks:",
    ]
    if report.drift:
        out.append("  drift:")
        out += [f"    {_yaml(name)}: {value}" for name, value in report.drift.items()]
    else:
        out.append("  drift: {}")
    out += [
        "  # skew: the drift thresholds without the label (the batch to score has none)",
        "",
        *comment(
            "A network with a linear part (wide and deep), sized for "
            f"{report.labeled_rows:,} labeled rows: narrower for small data, wider for many "
            "inputs."
        ),
        "model: " + _flow(report.model),
        *comment(
            f"Budgets for {report.labeled_rows:,} labeled rows: batches of "
            f"{report.training['batch_size']}, about "
            f"{_passes(report)} passes over the train split, checked "
            "on the eval split with early stopping (the best check's weights are kept)"
            + (
                "; balanced class weights, as the rarest class has under "
                f"{IMBALANCED_SHARE:.0%} of an even share of the rows."
                if report.training.get("class_weights") == "balanced"
                else "."
            )
        ),
        "training: " + _flow(report.training),
        "",
        "blessing:",
        _setting(f"margin_over_trivial: {MARGIN_OVER_TRIVIAL}", _margin_comment(task), "  "),
        f"  # {_floor_example(task, report, labeled_split)}",
        _setting(f"max_regression: {MAX_REGRESSION}", _regression_comment(task), "  "),
    ]
    return "\n".join(out) + "\n"


def _passes(report: InitReport) -> int:
    train_rows = report.labeled_rows * TRAIN_SHARE
    return max(
        1, round(report.training["train_steps"] * report.training["batch_size"] / train_rows)
    )


def _quoted(text: str) -> str:
    return json.dumps(text, ensure_ascii=False)


def _margin_comment(task: str) -> str:
    return {
        "binary": f"AUC at least 0.5 + {MARGIN_OVER_TRIVIAL}",
        "multiclass": f"accuracy at least the majority class's + {MARGIN_OVER_TRIVIAL}",
        "regression": f"RMSE at most {1 - MARGIN_OVER_TRIVIAL:.0%} of predicting the training mean",
    }[task]


def _regression_comment(task: str) -> str:
    against = "against the latest blessed model"
    return {
        "binary": f"AUC may drop by at most {MAX_REGRESSION} {against}",
        "multiclass": f"accuracy may drop by at most {MAX_REGRESSION} {against}",
        "regression": f"RMSE may grow by at most {MAX_REGRESSION:.0%} {against}",
    }[task]


def _floor_example(task: str, report: InitReport, labeled_split: pd.DataFrame) -> str:
    """A commented absolute threshold: none by default, as nothing says what is good enough."""
    if task == "binary":
        return "at_least: {auc: 0.70, accuracy: 0.70}   # an absolute floor, once you know one"
    if task == "multiclass":
        return "at_least: {accuracy: 0.80}   # an absolute floor, once you know one"
    values = labeled_split[report.label].map(lambda v: float(v.encode("utf-8")))
    spread = float(values.std()) if len(values) > 1 else 0.0
    return (
        f"at_most: {{rmse: {spread:.4g}}}   # an absolute ceiling, once you know one (here: the "
        "label's standard deviation, the RMSE of predicting its mean)"
    )


def assert_profile_loads(folder: Path, report: InitReport) -> None:
    """The written profile must load as written: a failure is init's bug, not the user's."""
    try:
        loaded = profiles.load(folder)
    except profiles.ProfileError as e:
        raise AssertionError(f"init wrote a profile that does not load: {e}") from e
    names = [c.name for c in report.columns]
    if list(loaded.features) != names or loaded.label.column != report.label:
        raise AssertionError("init's profile.yaml does not read back the column names it wrote")
    if loaded.label.classes != report.classes or loaded.task != report.task:
        raise AssertionError("init's profile.yaml does not read back the label it wrote")

"""`init`: a ready-to-run profile folder (profile.yaml, a curated schema and span-1 data) from any
tabular CSV and the name of its label column. This module is the flow from the CSV to the folder
(each step is a module of this package) and holds the settings only the flow decides.

Every decision is a guess from the data, written down with its reason (a comment or a `why:` note
in profile.yaml, a header in schema.pbtxt, and the returned report), so a person can review it
before the first run. The folder is built beside `out_dir` and renamed into place at the end: bad
input leaves nothing behind.
"""

from __future__ import annotations

import math
import re
from pathlib import Path

from components import profile as profiles
from components.profile import FeatureKind
from profiling.csv_input import check_label_column, check_out_dir, read_csv
from profiling.folder import build_folder
from profiling.kinds import choose_kinds, choose_slices, other_date_format
from profiling.report import (
    CATEGORICAL_DRIFT,
    IMBALANCED_SHARE,
    SMALL_DATA_ROWS,
    TRAIN_SHARE,
    InitError,
    InitReport,
)
from profiling.split import floats_read_as_floats, split_rows
from profiling.task import choose_task
from profiling.value_types import ValueType, column_type

TASK_CHOICES = ("auto", *profiles.TASKS)
MIN_LABELED_ROWS = 20  # fewer cannot be split into train, eval and a batch to score
# Training budgets follow the data (training_budgets): batches by row count, steps for about
# EPOCHS passes over the training split within STEP_BOUNDS, early stopping keeps the best check.
EVAL_BATCH_ROWS = 256  # components/model.EVAL_BATCH_SIZE
STEP_BOUNDS = (300, 4000)
MAX_EVAL_STEPS = 20
FALLBACK_NAME = "dataset"


def init_profile(
    csv_path: Path, label: str, out_dir: Path, task: str = "auto", seed: int = 42
) -> InitReport:
    """Writes a profile folder for `csv_path` at `out_dir`; raises InitError for bad input."""
    csv_path, out_dir = Path(csv_path), Path(out_dir)
    if task not in TASK_CHOICES:
        raise InitError(f"--task {task!r} is not one of {', '.join(TASK_CHOICES)}")
    check_out_dir(out_dir)
    frame = read_csv(csv_path)
    check_label_column(frame, label, csv_path)

    labeled = frame[frame[label].notna()].reset_index(drop=True)
    rows_without_label = len(frame) - len(labeled)
    if len(labeled) < MIN_LABELED_ROWS:
        raise InitError(
            f"{csv_path}: only {len(labeled)} of its {len(frame)} rows have a value in the label "
            f"column {label!r}; init needs at least {MIN_LABELED_ROWS} labeled rows to train, "
            "evaluate and hold out a batch to score. Add rows."
        )
    types = {column: column_type(labeled[column]) for column in labeled.columns}
    chosen = choose_task(labeled[label], types[label], task, label, csv_path)

    held, split_notes = split_rows(labeled, label, chosen.classes, types, seed)
    labeled_split = labeled[~held].reset_index(drop=True)
    unlabeled_split = labeled[held].drop(columns=[label]).reset_index(drop=True)
    labeled_split, unlabeled_split = (
        floats_read_as_floats(split, types) for split in (labeled_split, unlabeled_split)
    )

    columns = choose_kinds(labeled_split, label, types)
    if not any(c.kind != FeatureKind.IGNORED.value for c in columns):
        reasons = "; ".join(f"{c.name!r}: {c.why}" for c in columns)
        raise InitError(
            f"{csv_path}: no column other than the label {label!r} is usable as a model input "
            f"({reasons}). Add feature columns to the CSV."
        )
    slices = choose_slices(columns)
    drift = {
        c.name: CATEGORICAL_DRIFT
        for c in columns
        if c.kind
        in (
            FeatureKind.VOCABULARY.value,
            FeatureKind.INTEGER_CATEGORY.value,
            FeatureKind.BOOLEAN.value,
        )
    }
    if chosen.classes and chosen.label_type in (ValueType.INT, ValueType.TEXT):
        drift[label] = CATEGORICAL_DRIFT  # counted per class (categorical in the schema)
    small_data = len(labeled_split) < SMALL_DATA_ROWS
    rarest = labeled_split[label].value_counts(normalize=True).min() if chosen.classes else None
    training = training_budgets(len(labeled_split), rarest, len(chosen.classes or []))
    model = model_size(len(labeled_split), columns)
    name = profile_name(out_dir)
    positive = chosen.classes[1] if chosen.task == "binary" and chosen.classes else None

    report = InitReport(
        csv_path=csv_path,
        out_dir=out_dir,
        name=name,
        label=label,
        task=chosen.task,
        task_why=chosen.why,
        classes=chosen.classes,
        positive_class=positive,
        rows_read=len(frame),
        rows_without_label=rows_without_label,
        labeled_rows=len(labeled_split),
        unlabeled_rows=len(unlabeled_split),
        columns=columns,
        slices=slices,
        drift=drift,
        training=training,
        model=model,
        date_notes=date_notes(labeled_split, columns),
        small_data=small_data,
    )
    build_folder(report, labeled_split, unlabeled_split, chosen, types, split_notes)
    return report


def date_notes(labeled_split, columns) -> list[str]:
    """A note for each column of dates written in one format other than ISO."""
    notes = []
    for column in columns:
        if column.kind in (FeatureKind.DATETIME.value, FeatureKind.NUMERIC.value):
            continue
        written = other_date_format(labeled_split[column.name].dropna())
        if written:
            notes.append(
                f"{column.name!r} looks like dates written as {written}, read as {column.kind}: "
                "rewrite them as ISO dates (2024-03-14) and run init again to have them read "
                "as dates (day of week, month, age)"
            )
    return notes


def training_budgets(rows: int, rarest_class_share: float | None, classes: int = 2) -> dict:
    """Budgets that follow the labeled row count: smaller batches for small data, training
    steps for about `epochs` passes over the train split (more passes for less data, as early
    stopping keeps the best check's weights), eval steps that cover the eval split, and balanced
    class weights when the rarest class has under IMBALANCED_SHARE of an even share of the
    rows."""
    batch_size = 32 if rows < 2_000 else 64 if rows < 20_000 else 128
    epochs = 300 if rows < 2_000 else 100 if rows < 5_000 else 20 if rows < 50_000 else 3
    steps_per_epoch = math.ceil(rows * TRAIN_SHARE / batch_size)
    low, high = STEP_BOUNDS
    train_steps = int(min(high, max(low, steps_per_epoch * epochs)))
    eval_rows = rows * (1 - TRAIN_SHARE)
    even_share = 1 / max(2, classes)
    budgets = {
        "tuner_trials": 2,
        "tuner_train_steps": max(100, train_steps // 4),
        "train_steps": train_steps,
        "eval_steps": int(min(MAX_EVAL_STEPS, max(1, math.ceil(eval_rows / EVAL_BATCH_ROWS)))),
        "batch_size": batch_size,
        "early_stopping": True,
    }
    if rarest_class_share is not None and rarest_class_share < IMBALANCED_SHARE * even_share:
        budgets["class_weights"] = "balanced"
    return budgets


def model_size(rows: int, columns: list) -> dict:
    """The network's size from the data's: narrower for small data (fewer weights to fit from
    few rows), wider for many inputs."""
    inputs = sum(1 for c in columns if c.kind != FeatureKind.IGNORED.value)
    units = 32 if rows < 2_000 else 128 if inputs > 30 and rows >= 20_000 else 64
    return {
        "hidden_layers": 2,
        "hidden_units": units,
        "embedding_dim": 4 if rows < 2_000 else 8,
        "learning_rate": 0.003,
        "linear_part": True,
    }


def profile_name(out_dir: Path) -> str:
    """The profile (and Kubeflow pipeline) name from the folder's: lower-case, dashes."""
    name = re.sub(r"[^a-z0-9]+", "-", out_dir.resolve().name.lower()).strip("-")
    name = name[:63].strip("-")
    return name if re.fullmatch(profiles.PIPELINE_NAME_PATTERN, name) else FALLBACK_NAME

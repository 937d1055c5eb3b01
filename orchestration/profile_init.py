"""`init`: a ready-to-run profile folder (profile.yaml, a curated schema and span-1 data) from any
tabular CSV and the name of its label column.

Every decision is a guess from the data, written down with its reason (a comment or a `why:` note
in profile.yaml, a header in schema.pbtxt, and the returned report), so a person can review it
before the first run. The folder is built beside `out_dir` and renamed into place at the end: bad
input leaves nothing behind.

Types follow TFX's CSV reader (tfx_bsl's type inference, which CsvExampleGen uses): a column is
INT if every value parses as a 64-bit integer, else FLOAT if every value parses as a float, else
text. The split files are written so that each infers the same type as the whole column, because
the labeled and the unlabeled ExampleGen infer types separately and the model parses the batch to
score with the types of the curated schema.
"""

from __future__ import annotations

import csv
import difflib
import enum
import json
import math
import os
import re
import shlex
import shutil
import tempfile
import textwrap
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml

from components import profile as profiles
from components.profile import FeatureKind

TASK_CHOICES = ("auto", *profiles.TASKS)
DATA_DIR = "data"
SCHEMA_FILE = "schema.pbtxt"
SPAN_FOLDER = "span-1"
DATA_FILE = "data.csv"

MIN_LABELED_ROWS = 20  # fewer cannot be split into train, eval and a batch to score
HOLDOUT_FRACTION = 0.1  # of the labeled rows, held out (without the label) as the batch to score
MAX_HOLDOUT_ROWS = 2000
MAX_AUTO_INTEGER_CLASSES = 20  # more distinct whole numbers than this: auto picks regression
MAX_CLASSES = 100
MOSTLY_EMPTY = 0.95  # a column missing in more than this share of rows is ignored
INTEGER_CATEGORY_MAX_DISTINCT = 32
INTEGER_CATEGORY_MAX_VALUE = 100
VOCABULARY_MAX_TOP_K = 1000
OOV_BUCKETS = 10
MAX_SLICE_VALUES = 12  # more values: per-slice metrics rest on too few examples each
CATEGORICAL_DRIFT = 0.1
# The measurement behind it: categorical columns of two random 1,250-row halves of the taxi data
# stay under 0.06 L-infinity distance. Sampling noise scales as 1/sqrt(rows), so smaller samples
# swing further by chance.
MEASURED_NOISE, MEASURED_ROWS = 0.06, 1250
SMALL_DATA_ROWS = 5000
SMALL_DATA_BUDGETS = {
    "tuner_trials": 2,
    "tuner_train_steps": 100,
    "train_steps": 500,
    "eval_steps": 5,
    "batch_size": 32,
}
DEFAULT_BUDGETS = {  # the taxi profile's
    "tuner_trials": 2,
    "tuner_train_steps": 150,
    "train_steps": 800,
    "eval_steps": 20,
    "batch_size": 128,
}
MARGIN_OVER_TRIVIAL = 0.05
MAX_REGRESSION = 0.01
FALLBACK_NAME = "dataset"
COMMENT_WIDTH = 98
# How much of the file to look at for binary content (NUL bytes never occur in CSV text).
SNIFF_BYTES = 64 * 1024
_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1


class InitError(ValueError):
    """Input `init` cannot use; the message names the file or column and what to do."""


class ValueType(enum.IntEnum):
    """A CSV value's type as TFX's CSV reader infers it; a column takes its widest value's."""

    EMPTY = 0
    INT = 1
    FLOAT = 2
    TEXT = 3


SCHEMA_TYPE = {ValueType.INT: "INT", ValueType.FLOAT: "FLOAT", ValueType.TEXT: "BYTES"}


@dataclass(frozen=True)
class ColumnChoice:
    """What init made of one column: its kind, the reason, and the figures behind it."""

    name: str
    kind: str
    why: str
    value_type: str
    distinct: int
    missing: int
    max: int | None = None
    top_k: int | None = None


@dataclass
class InitReport:
    """What init decided, for the command line to print."""

    csv_path: Path
    out_dir: Path
    name: str
    label: str
    task: str
    task_why: str
    classes: list[str] | None
    positive_class: str | None
    rows_read: int
    rows_without_label: int
    labeled_rows: int
    unlabeled_rows: int
    columns: list[ColumnChoice]
    slices: list[str]
    drift: dict[str, float]
    training: dict[str, int]
    small_data: bool
    review: list[str] = field(default_factory=list)  # filled in once the schema is made

    @property
    def labeled_file(self) -> Path:
        return self.out_dir / DATA_DIR / "labeled" / SPAN_FOLDER / DATA_FILE

    @property
    def unlabeled_file(self) -> Path:
        return self.out_dir / DATA_DIR / "unlabeled" / SPAN_FOLDER / DATA_FILE


@dataclass(frozen=True)
class _Task:
    task: str
    why: str
    classes: list[str] | None  # canonical class texts in id order
    label_type: ValueType


# ---- entry point ---------------------------------------------------------------------------------
def init_profile(
    csv_path: Path, label: str, out_dir: Path, task: str = "auto", seed: int = 42
) -> InitReport:
    """Writes a profile folder for `csv_path` at `out_dir`; raises InitError for bad input."""
    csv_path, out_dir = Path(csv_path), Path(out_dir)
    if task not in TASK_CHOICES:
        raise InitError(f"--task {task!r} is not one of {', '.join(TASK_CHOICES)}")
    _check_out_dir(out_dir)
    frame = read_csv(csv_path)
    _check_label_column(frame, label, csv_path)

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
        _floats_read_as_floats(split, types) for split in (labeled_split, unlabeled_split)
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
        if c.kind in (FeatureKind.VOCABULARY.value, FeatureKind.INTEGER_CATEGORY.value)
    }
    if chosen.classes and chosen.label_type in (ValueType.INT, ValueType.TEXT):
        drift[label] = CATEGORICAL_DRIFT  # counted per class (categorical in the schema)
    small_data = len(labeled_split) < SMALL_DATA_ROWS
    training = dict(SMALL_DATA_BUDGETS if small_data else DEFAULT_BUDGETS)
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
        small_data=small_data,
    )
    _build_folder(report, labeled_split, unlabeled_split, chosen, types, split_notes)
    return report


# ---- reading the CSV -----------------------------------------------------------------------------
def read_csv(csv_path: Path) -> pd.DataFrame:
    """Every cell as text (missing: NaN), header names verbatim; InitError if it is not a CSV."""
    if not csv_path.exists():
        raise InitError(f"--csv {csv_path}: no such file")
    if not csv_path.is_file():
        raise InitError(f"--csv {csv_path} is not a file; give the CSV file itself")
    if csv_path.stat().st_size == 0:
        raise InitError(f"{csv_path} is empty (0 bytes): a CSV needs a header row and data rows")
    with csv_path.open("rb") as f:
        start = f.read(SNIFF_BYTES)
    if not start.strip() and csv_path.stat().st_size <= SNIFF_BYTES:
        raise InitError(f"{csv_path} is blank: a CSV needs a header row and data rows")
    if b"\x00" in start:
        kind = " (it looks like a zip archive or an Excel workbook)" if start[:2] == b"PK" else ""
        raise InitError(
            f"{csv_path} is not a CSV text file: it holds binary data{kind}. Export the table as "
            "CSV (comma-separated, UTF-8) and give that file."
        )
    header = _header(csv_path)
    try:
        # All cells as text: types are decided the way TFX's CSV reader decides them (see
        # column_type), not by pandas, and values are written back exactly as they were.
        frame = pd.read_csv(csv_path, dtype=str, encoding="utf-8-sig", skip_blank_lines=True)
    except UnicodeDecodeError as e:
        raise InitError(
            f"{csv_path}, {_first_non_utf8(csv_path)}: bytes that are not UTF-8 text; save the "
            "file as UTF-8 CSV"
        ) from e
    except pd.errors.EmptyDataError as e:
        raise InitError(f"{csv_path} has no header row: it is blank") from e
    except pd.errors.ParserError as e:
        raise InitError(f"{csv_path} cannot be read as CSV: {_first_line(str(e))}") from e
    if len(frame.columns) < 2:
        raise InitError(
            f"{csv_path} has only one column ({(header or list(frame.columns))[0]!r}): "
            f"init needs comma-separated columns, a label and at least one feature"
            f"{_separator_hint(header)}"
        )
    if frame.empty:
        raise InitError(
            f"{csv_path} has a header row but no data rows; give a CSV with rows to learn from"
        )
    return frame


def _header(csv_path: Path) -> list[str]:
    """The header's names as written, checked for what TFX's CSV reader cannot take."""
    with csv_path.open("rb") as f:
        first_line = f.readline()
    try:
        # The first line only: a header name cannot span lines (checked below).
        header = next(csv.reader([first_line.decode("utf-8-sig")]), [])
    except UnicodeDecodeError as e:
        raise InitError(
            f"{csv_path}, line 1, column {e.start + 1}: bytes that are not UTF-8 text; save the "
            "file as UTF-8 CSV"
        ) from e
    except csv.Error as e:
        raise InitError(f"{csv_path} cannot be read as CSV: {e}") from e
    for position, name in enumerate(header, start=1):
        if not name.strip():
            raise InitError(
                f"{csv_path}: column {position} of the header has no name; name every column "
                "(or remove the unnamed one, such as an index a spreadsheet added)"
            )
        if any(c in name for c in ',"\r\n'):
            # TFX's CsvExampleGen splits the header line at every comma and does not unquote it.
            raise InitError(
                f"{csv_path}: the column name {name!r} holds a comma, quote or line break, which "
                "TFX's CSV reader cannot take in a header; rename the column"
            )
        if name != name.strip():
            raise InitError(
                f"{csv_path}: the column name {name!r} starts or ends with a space; remove the "
                "space(s) in the header (TFX's CSV reader drops them at the ends of the header "
                "line, and they are easy to miss in the profile)"
            )
    repeated = sorted({name for name in header if header.count(name) > 1})
    if repeated:
        raise InitError(
            f"{csv_path}: the header repeats the column name(s) {', '.join(map(repr, repeated))};"
            " give every column its own name"
        )
    return header


def _first_non_utf8(csv_path: Path) -> str:
    """Where the first bytes that are not UTF-8 are: 'line N, column M (bytes)'."""
    with csv_path.open("rb") as f:
        for number, line in enumerate(f, start=1):
            try:
                line.decode("utf-8")
            except UnicodeDecodeError as e:
                return f"line {number}, column {e.start + 1} ({line[e.start : e.start + 4]!r})"
    return "somewhere"


def _first_line(text: str) -> str:
    return text.strip().splitlines()[0] if text.strip() else text


def _separator_hint(header: list[str]) -> str:
    for separator, name in ((";", "semicolons"), ("\t", "tabs"), ("|", "pipes")):
        if header and separator in header[0]:
            return f" (its header looks separated by {name}: save it with commas)"
    return ""


def _check_label_column(frame: pd.DataFrame, label: str, csv_path: Path) -> None:
    if label not in frame.columns:
        columns = list(frame.columns)
        lower = {c.lower(): c for c in columns}
        close = [lower[label.lower()]] if label.lower() in lower else []
        close = close or difflib.get_close_matches(label, columns, n=1, cutoff=0.6)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        shown = ", ".join(map(repr, columns[:30])) + (" ..." if len(columns) > 30 else "")
        raise InitError(
            f"--label {label!r} is not a column of {csv_path}.{hint} Its columns: {shown}"
        )
    values = frame[label].dropna()
    if values.empty:
        raise InitError(
            f"{csv_path}: the label column {label!r} is empty in every row; give the column "
            "that holds what to predict"
        )
    if values.nunique() == 1:
        raise InitError(
            f"{csv_path}: the label column {label!r} has only one value ({values.iloc[0]!r}) in "
            f"its {len(values)} labeled rows: there is nothing to learn. Give a label with at "
            "least two values."
        )


def _check_out_dir(out_dir: Path) -> None:
    if out_dir.exists() and not out_dir.is_dir():
        raise InitError(f"--out {out_dir} is a file; give a folder for the new profile")
    if out_dir.is_dir() and any(out_dir.iterdir()):
        raise InitError(
            f"--out {out_dir} already exists and is not empty; give a new folder (init never "
            "overwrites a profile)"
        )


# ---- types ---------------------------------------------------------------------------------------
def value_type(text: str) -> ValueType:
    """The type TFX's CSV reader gives one cell (tfx_bsl csv_decoder._InferValueType, 1.16)."""
    if not text:
        return ValueType.EMPTY
    raw = text.encode("utf-8")  # tfx_bsl parses the cell's bytes
    try:
        return ValueType.INT if _INT64_MIN <= int(raw) <= _INT64_MAX else ValueType.TEXT
    except ValueError:
        try:
            float(raw)
        except ValueError:
            return ValueType.TEXT
        return ValueType.FLOAT


def _value_types(values: pd.Series) -> pd.Series:
    """Each cell's ValueType (missing cells EMPTY), computed once per distinct value."""
    types = {v: value_type(v) for v in values.dropna().unique()}
    return values.map(types).fillna(ValueType.EMPTY).astype(int)


def column_type(values: pd.Series) -> ValueType:
    """A column's type as TFX's CSV reader infers it: the widest of its values' types."""
    present = values.dropna().unique()
    return max((value_type(v) for v in present), default=ValueType.EMPTY)


def _as_number(text: str, kind: ValueType) -> float | int:
    return int(text.encode("utf-8")) if kind == ValueType.INT else float(text.encode("utf-8"))


# ---- the task ------------------------------------------------------------------------------------
def choose_task(
    values: pd.Series, label_type: ValueType, requested: str, label: str, csv_path: Path
) -> _Task:
    """The task (auto: from the label's type and distinct values) and the classes in id order."""
    column = f"the label column {label!r}"
    if label_type == ValueType.TEXT:
        distinct: list[Any] = sorted(values.unique())
        kind_text = "text"
    else:
        distinct = sorted({_as_number(v, label_type) for v in values.unique()})
        kind_text = "whole numbers" if label_type == ValueType.INT else "decimal numbers"
    count = len(distinct)
    if count < 2:  # "1" and "01" are one number
        raise InitError(
            f"{csv_path}: {column} has only one value ({distinct[0]}): there is nothing to learn. "
            "Give a label with at least two values."
        )
    integral = label_type == ValueType.INT or (
        label_type == ValueType.FLOAT and all(math.isfinite(v) and v == int(v) for v in distinct)
    )
    if requested == "auto":
        task, why = _auto_task(label_type, count, integral, column, csv_path)
    else:
        task = requested
        why = f"--task {task}; the label is {kind_text} with {count} distinct values"
        _check_requested_task(task, label_type, distinct, integral, column)
    if task == "regression":
        return _Task(task, why, None, label_type)
    # As Transform compares them: text as it is, numbers as integer text (components/preprocessing).
    classes = [str(v) if label_type == ValueType.TEXT else str(int(v)) for v in distinct]
    return _Task(task, why, classes, label_type)


def _auto_task(
    label_type: ValueType, count: int, integral: bool, column: str, csv_path: Path
) -> tuple[str, str]:
    if label_type == ValueType.TEXT:
        if count > MAX_CLASSES:
            raise InitError(
                f"{csv_path}: {column} is text with {count} distinct values; a classifier takes "
                f"at most {MAX_CLASSES} classes. Is it the right column?"
            )
        return (
            "binary" if count == 2 else "multiclass"
        ), f"auto: text with {count} distinct values"
    if label_type == ValueType.INT and count == 2:
        return "binary", "auto: whole numbers with 2 distinct values"
    if label_type == ValueType.INT and count <= MAX_AUTO_INTEGER_CLASSES:
        return "multiclass", (
            f"auto: whole numbers with {count} distinct values (at most {MAX_AUTO_INTEGER_CLASSES})"
        )
    if label_type == ValueType.INT:
        return "regression", (
            f"auto: whole numbers with {count} distinct values (more than "
            f"{MAX_AUTO_INTEGER_CLASSES})"
        )
    why = "auto: decimal numbers"
    if integral and count <= MAX_AUTO_INTEGER_CLASSES:
        why += (
            f" (only {count} distinct values: if they are classes, run init again with "
            f"--task {'binary' if count == 2 else 'multiclass'})"
        )
    return "regression", why


def _check_requested_task(
    task: str, label_type: ValueType, distinct: list[Any], integral: bool, column: str
) -> None:
    count = len(distinct)
    if task == "regression" and label_type == ValueType.TEXT:
        raise InitError(
            f"--task regression needs a numeric label, but {column} holds text (such as "
            f"{distinct[0]!r}); use --task auto, binary or multiclass"
        )
    if task != "regression" and not integral and label_type != ValueType.TEXT:
        example = next(v for v in distinct if not (math.isfinite(v) and v == int(v)))
        raise InitError(
            f"--task {task} needs classes, but {column} holds decimal numbers (such as "
            f"{example!r}); class labels must be whole numbers or text. Use --task regression"
        )
    if task == "binary" and count != 2:
        raise InitError(
            f"--task binary needs a label with exactly 2 values, but {column} has {count} "
            f"({_some(distinct)}); use --task multiclass (or auto)"
        )
    if task == "multiclass" and count > MAX_CLASSES:
        raise InitError(
            f"--task multiclass takes at most {MAX_CLASSES} classes, but {column} has {count} "
            "distinct values; use --task regression for a number, or choose another label"
        )


def _some(values: list[Any], shown: int = 10) -> str:
    text = ", ".join(repr(v) if isinstance(v, str) else str(v) for v in values[:shown])
    return text + (", ..." if len(values) > shown else "")


# ---- the split -----------------------------------------------------------------------------------
def holdout_size(rows: int) -> int:
    """How many labeled rows are held out as the batch to score."""
    return max(1, min(MAX_HOLDOUT_ROWS, int(rows * HOLDOUT_FRACTION)))


def split_rows(
    labeled: pd.DataFrame,
    label: str,
    classes: list[str] | None,
    types: dict[str, ValueType],
    seed: int,
) -> tuple[np.ndarray, list[str]]:
    """Which rows are held out (a boolean mask), deterministic in `seed`, and notes for review.

    Every class keeps a labeled row. Each split must read every column as the same type (see the
    module doc): the labeled split needs a value of the column's type (the curated schema is
    inferred from it), and the held-out split one too wherever it has values. Text columns that
    also hold numbers are the case where that needs a row swapped between the splits.
    """
    rows = len(labeled)
    order = np.random.default_rng(seed).permutation(rows)
    position = np.empty(rows, dtype=int)
    position[order] = np.arange(rows)  # rows are tried in shuffled order, so still seeded
    class_of = _class_keys(labeled[label], types[label]).to_numpy() if classes else None

    held = np.zeros(rows, dtype=bool)
    wanted = holdout_size(rows)
    if class_of is None:
        held[order[:wanted]] = True
    else:  # the first rows in shuffled order, skipping a class's last labeled row
        left = pd.Series(class_of).value_counts().to_dict()
        taken = 0
        for row in order:
            if taken == wanted:
                break
            if left[class_of[row]] > 1:
                held[row], taken = True, taken + 1
                left[class_of[row]] -= 1

    # Per column: rows whose value has the column's type, and rows with any value.
    needs: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    for column, kind in types.items():
        if column == label or kind == ValueType.EMPTY:
            continue
        value_types = _value_types(labeled[column]).to_numpy()
        present = value_types != ValueType.EMPTY
        # A FLOAT split whose values all look like integers is written as floats instead.
        needs[column] = (
            value_types == ValueType.TEXT if kind == ValueType.TEXT else present,
            present,
        )

    def fits(column: str, mask: np.ndarray) -> bool:
        typed, present = needs[column]
        return bool((typed & ~mask).any()) and (not (present & mask).any() or (typed & mask).any())

    def classes_kept(mask: np.ndarray) -> bool:
        return class_of is None or set(class_of[~mask]) == set(class_of)

    def in_order(mask: np.ndarray, limit: int = 50) -> list[int]:
        candidates = np.flatnonzero(mask)
        return [int(r) for r in candidates[np.argsort(position[candidates])][:limit]]

    for column in needs:
        if fits(column, held):
            continue
        typed, _ = needs[column]
        # Into the labeled split if it lacks a typed value, else into the held-out split.
        donors = in_order(typed & (held if not (typed & ~held).any() else ~held))
        fitting = [c for c in needs if fits(c, held)]
        swapped = False
        for donor in donors[:5]:
            for partner in in_order(held != held[donor]):
                trial = held.copy()
                trial[donor], trial[partner] = not held[donor], not held[partner]
                if fits(column, trial) and classes_kept(trial):
                    if all(fits(c, trial) for c in fitting):
                        held, swapped = trial, True
                        break
            if swapped:
                break

    notes = []
    for column, (typed, present) in needs.items():
        if types[column] != ValueType.TEXT:
            continue
        numbers = present & ~typed
        if not numbers.any():
            continue
        examples = _some(sorted(labeled[column][typed].unique()), 3)
        if not fits(column, held):
            notes.append(
                f"{column!r} is text only because of {int(typed.sum())} value(s) such as "
                f"{examples}: the batch to score has none of them, so it reads the column as "
                "numbers and BulkInferrer cannot parse it. If those values mean 'missing', empty "
                "them in the CSV and run init again"
            )
        elif typed.sum() <= max(3, 0.01 * rows):
            notes.append(
                f"{column!r} holds numbers except {int(typed.sum())} value(s) such as "
                f"{examples}, so it is text (a vocabulary); if those mean 'missing', empty them "
                "in the CSV and run init again to use it as a number"
            )
    return held, notes


def _class_keys(values: pd.Series, label_type: ValueType) -> pd.Series:
    """Each row's class as the profile writes it (numbers as integer text)."""
    if label_type == ValueType.TEXT:
        return values
    return values.map(lambda v: str(int(_as_number(v, label_type))))


def _floats_read_as_floats(split: pd.DataFrame, types: dict[str, ValueType]) -> pd.DataFrame:
    """A FLOAT column whose values in this split all look like integers would be read as INT
    here and as FLOAT elsewhere; writing those values as `N.0` keeps one type."""
    split = split.copy()
    for column in split.columns:
        if types[column] != ValueType.FLOAT:
            continue
        value_types = _value_types(split[column])
        if (value_types == ValueType.INT).any() and not (value_types == ValueType.FLOAT).any():
            ints = value_types == ValueType.INT
            split.loc[ints, column] = split.loc[ints, column] + ".0"
    return split


# ---- kinds, slices -------------------------------------------------------------------------------
def choose_kinds(
    split: pd.DataFrame, label: str, types: dict[str, ValueType]
) -> list[ColumnChoice]:
    """Each column's kind (label aside) in CSV order, guessed from the labeled split."""
    rows = len(split)
    taken = {profiles.transformed_name(label): label}
    choices = []
    for column in split.columns:
        if column == label:
            continue
        values = split[column]
        kind_of_values = types[column]
        present = values.dropna()
        missing = rows - len(present)
        if kind_of_values in (ValueType.INT, ValueType.FLOAT):
            numbers = sorted({_as_number(v, kind_of_values) for v in present.unique()})
        else:
            numbers = []
        distinct = len(numbers) if numbers else present.nunique()
        common = {
            "name": column,
            "value_type": SCHEMA_TYPE.get(kind_of_values, "empty"),
            "distinct": distinct,
            "missing": missing,
        }
        kind, why, extra = _kind(kind_of_values, rows, missing, distinct, present, numbers)
        if kind != FeatureKind.IGNORED:
            model_input = profiles.transformed_name(column)
            if model_input in taken:
                kind, extra = FeatureKind.IGNORED, {}
                why = (
                    f"{taken[model_input]!r} has the same model input name ({model_input}); "
                    "rename one of the two columns in the CSV to use both"
                )
            else:
                taken[model_input] = column
        choices.append(ColumnChoice(kind=kind.value, why=why, **common, **extra))
    return choices


def _kind(
    value_type_: ValueType,
    rows: int,
    missing: int,
    distinct: int,
    present: pd.Series,
    numbers: list[float | int],
) -> tuple[FeatureKind, str, dict[str, int]]:
    if missing > MOSTLY_EMPTY * rows:
        share = (
            "no labeled row has a value"
            if missing == rows
            else (f"{missing} of {rows} labeled rows have no value")
        )
        return FeatureKind.IGNORED, f"almost always empty: {share}", {}
    if distinct <= 1:
        nothing = f" (or no value, in {missing} rows)" if missing else ""
        return (
            FeatureKind.IGNORED,
            f"constant: every labeled row has {present.iloc[0]!r}{nothing}",
            {},
        )
    if value_type_ in (ValueType.INT, ValueType.TEXT) and distinct == rows:
        return FeatureKind.IGNORED, "an identifier: every row differs", {}
    if value_type_ == ValueType.FLOAT:
        return (
            FeatureKind.NUMERIC,
            f"decimal numbers from {_number(numbers[0])} to {_number(numbers[-1])}: z-scored",
            {},
        )
    if value_type_ == ValueType.INT:
        low, high = numbers[0], numbers[-1]
        if (
            distinct <= INTEGER_CATEGORY_MAX_DISTINCT
            and low >= 0
            and high <= INTEGER_CATEGORY_MAX_VALUE
        ):
            return (
                FeatureKind.INTEGER_CATEGORY,
                f"whole numbers from {low} to {high}, {distinct} distinct: one category each",
                {"max": int(high)},
            )
        return (
            FeatureKind.NUMERIC,
            f"whole numbers from {low} to {high}, {distinct} distinct: z-scored",
            {},
        )
    top_k = min(VOCABULARY_MAX_TOP_K, distinct)
    kept = "all of them" if top_k == distinct else f"the {top_k} most frequent"
    return (
        FeatureKind.VOCABULARY,
        f"text with {distinct} distinct values: a vocabulary of {kept}",
        {"top_k": top_k},
    )


def _number(value: float | int) -> str:
    return f"{value:.6g}" if isinstance(value, float) else str(value)


def choose_slices(columns: list[ColumnChoice]) -> list[str]:
    """The first categorical feature with few values: the Evaluator's metrics per value."""
    for column in columns:
        if (
            column.kind in (FeatureKind.INTEGER_CATEGORY.value, FeatureKind.VOCABULARY.value)
            and column.distinct <= MAX_SLICE_VALUES
        ):
            return [column.name]
    return []


def profile_name(out_dir: Path) -> str:
    """The profile (and Kubeflow pipeline) name from the folder's: lower-case, dashes."""
    name = re.sub(r"[^a-z0-9]+", "-", out_dir.resolve().name.lower()).strip("-")
    name = name[:63].strip("-")
    return name if re.fullmatch(profiles.PIPELINE_NAME_PATTERN, name) else FALLBACK_NAME


# ---- building the folder -------------------------------------------------------------------------
def _build_folder(
    report: InitReport,
    labeled_split: pd.DataFrame,
    unlabeled_split: pd.DataFrame,
    chosen: _Task,
    types: dict[str, ValueType],
    split_notes: list[str],
) -> None:
    """Writes everything into a hidden sibling folder, checks it, then renames it into place."""
    out_dir = report.out_dir
    created_parents = _make_parents(out_dir.parent)
    staging = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.init-", dir=out_dir.parent))
    try:
        labeled_file = staging / report.labeled_file.relative_to(out_dir)
        unlabeled_file = staging / report.unlabeled_file.relative_to(out_dir)
        _write_csv(labeled_split, labeled_file)
        _write_csv(unlabeled_split, unlabeled_file)
        statistics = example_statistics(labeled_file)
        schema, string_domains = curated_schema(statistics, report, chosen, types)
        (staging / SCHEMA_FILE).write_text(_schema_text(schema, report))
        report.review = _review(report, schema, string_domains, split_notes)
        (staging / profiles.PROFILE_FILE_NAME).write_text(profile_text(report, labeled_split))
        _assert_profile_loads(staging, report)
        if out_dir.is_dir():
            _check_out_dir(out_dir)  # still empty? another process may have written meanwhile
        try:
            os.rename(staging, out_dir)  # replaces an empty folder; never a non-empty one
        except OSError as e:
            raise InitError(f"cannot create --out {out_dir}: {e.strerror}") from e
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        for parent in reversed(created_parents):
            try:
                parent.rmdir()
            except OSError:
                break
        raise


def _make_parents(folder: Path) -> list[Path]:
    """Creates `folder` and its missing parents; returns those it created, outermost first."""
    missing = []
    current = folder.absolute()
    while not current.exists():
        missing.append(current)
        current = current.parent
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise InitError(f"cannot create the folder {folder} for --out: {e.strerror}") from e
    return list(reversed(missing))


def _write_csv(frame: pd.DataFrame, path: Path) -> None:
    """The header verbatim, values as read, missing values as empty cells."""
    path.parent.mkdir(parents=True)
    with path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f, lineterminator="\n")
        writer.writerow(frame.columns)
        writer.writerows(frame.fillna("").itertuples(index=False, name=None))


def example_statistics(labeled_file: Path) -> Any:
    """TFDV statistics of `labeled_file` read as the pipeline reads it: TFX's CSV-to-tf.Example
    transform, as in SpanCsvExampleGen, then statistics of those examples, as in StatisticsGen.

    Not tfdv.generate_statistics_from_csv: it counts an empty cell as a missing feature, where
    CsvExampleGen writes the feature with no value (so a schema from it would refuse every empty
    cell: "fewer values than expected"), and it cannot read a quoted value that spans lines.
    """
    # Beam and TFDV import TensorFlow (seconds): loaded only when a schema is made.
    import apache_beam as beam
    import tensorflow_data_validation as tfdv

    from components import tfx_private

    with tempfile.TemporaryDirectory(prefix="init-examples-") as scratch:
        reader_settings = {"input_base": str(labeled_file.parent), "_beam_pipeline_args": []}
        with beam.Pipeline() as pipeline:  # the DirectRunner
            _ = (
                pipeline
                | "ReadCsv" >> tfx_private.CsvToExample(reader_settings, labeled_file.name)
                | "Serialize" >> beam.Map(lambda example: example.SerializeToString())
                | "Write"
                >> beam.io.WriteToTFRecord(f"{scratch}/examples", file_name_suffix=".tfrecord")
            )
        return tfdv.generate_statistics_from_tfrecord(f"{scratch}/examples*")


def curated_schema(
    statistics: Any, report: InitReport, chosen: _Task, types: dict[str, ValueType]
) -> tuple[Any, list[str]]:
    """TFDV's schema of the labeled split, curated for this pipeline (see _schema_text), and
    the feature columns left with a closed list of values."""
    import tensorflow_data_validation as tfdv
    from tensorflow_metadata.proto.v0 import schema_pb2

    # No shapes: a column may be empty in some row, and Transform fills a default for it.
    schema = tfdv.infer_schema(statistics, infer_feature_shape=False)
    choices = {c.name: c for c in report.columns}
    domains = {d.name: d for d in schema.string_domain}
    string_domains = []
    for feature in schema.feature:
        expected = SCHEMA_TYPE.get(types[feature.name])
        typed = schema_pb2.FeatureType.Name(feature.type)
        if expected and typed != expected:
            raise AssertionError(f"TFDV typed {feature.name!r} {typed}, init expected {expected}")
        choice = choices.get(feature.name)
        if choice is not None and choice.kind == FeatureKind.IGNORED.value:
            if feature.HasField("domain"):
                # Not used by the model: a new value there should not stop a run.
                schema.string_domain.remove(domains[feature.domain])
                feature.ClearField("domain")
            if choice.missing > MOSTLY_EMPTY * report.labeled_rows:
                # A span may have no value at all; CSV ingestion then drops the column.
                feature.presence.min_fraction = 0.0
                feature.presence.min_count = 0
        elif choice is not None and choice.kind == FeatureKind.INTEGER_CATEGORY.value:
            # Counted per value: statistics show each value, drift is an L-infinity distance.
            feature.int_domain.is_categorical = True
        elif choice is not None and (feature.HasField("domain") or feature.HasField("bool_domain")):
            string_domains.append(feature.name)
        if feature.name == report.label:
            feature.not_in_environment.append("SERVING")
            if chosen.classes and chosen.label_type == ValueType.INT:
                # The classes, counted per class; another value stops the run at the data gate.
                ids = [int(c) for c in chosen.classes]
                feature.int_domain.min = min(ids)
                feature.int_domain.max = max(ids)
                feature.int_domain.is_categorical = True
            elif chosen.classes and chosen.label_type == ValueType.TEXT and not feature.domain:
                schema.string_domain.add(name=feature.name, value=chosen.classes)
                feature.domain = feature.name
    schema.default_environment.extend(["TRAINING", "SERVING"])
    anomalies = tfdv.validate_statistics(statistics, schema, environment="TRAINING")
    if anomalies.anomaly_info:
        raise AssertionError(
            "init's curated schema refuses the data it was made from: "
            + "; ".join(f"{k}: {v.description}" for k, v in anomalies.anomaly_info.items())
        )
    return schema, string_domains


def _comment(*paragraphs: str, indent: str = "") -> list[str]:
    """`paragraphs` as wrapped `#` comment lines; a paragraph starting "- " is a list item."""
    lines = []
    for paragraph in paragraphs:
        if not paragraph:
            lines.append(f"{indent}#")
            continue
        item = paragraph.startswith("- ")
        lines += textwrap.wrap(
            paragraph,
            width=COMMENT_WIDTH,
            initial_indent=f"{indent}# ",
            subsequent_indent=f"{indent}#   " if item else f"{indent}# ",
            break_long_words=False,
            break_on_hyphens=False,
        )
    return lines


def _schema_text(schema: Any, report: InitReport) -> str:
    """schema.pbtxt: the house header (see schema/schema.pbtxt), then the text proto."""
    from google.protobuf import text_format

    header = [
        "# proto-file: tensorflow_metadata/proto/v0/schema.proto",
        "# proto-message: Schema",
        *_comment(
            "",
            f"The curated schema of {report.csv_path.name}, made by `init`: inferred by TFDV from "
            f"the {report.labeled_rows} labeled rows as CsvExampleGen reads them, then curated as "
            "below. ExampleValidator checks every span against it and Transform reads it: review "
            "it like code. `python run_local.py schema diff|accept` proposes changes from new "
            "data.",
            "- presence 1.0: CsvExampleGen writes every column in every row (an empty cell as a "
            "feature with no value);",
            "- value_count min 1: the column had a value in every labeled row, so a span with an "
            "empty cell there is refused; without it the column may be empty (Transform fills a "
            "default);",
            "- string_domain: the values a text column may take; a new value is refused at the "
            "data gate (remove the list, and the feature's `domain:` line, to accept any value);",
            "- no ranges for numbers: add int_domain / float_domain min and max where you know "
            "them; they are the numeric columns' guard, as those have no drift threshold;",
            "- is_categorical: an integer counted per value (statistics, L-infinity drift);",
            "- the columns the profile ignores keep their type and no value list;",
            f"- {report.label!r} is the label: required for TRAINING, absent for SERVING (the "
            "batch to score).",
        ),
    ]
    return "\n".join(header) + "\n" + text_format.MessageToString(schema)


def _yaml(value: str) -> str:
    """`value` as a YAML scalar that reads back as the same string in any context."""
    dumped = yaml.safe_dump([value], default_flow_style=True, allow_unicode=True, width=10**9)
    text = dumped.strip()[1:-1]
    if "\n" in text or text.startswith("'"):
        return json.dumps(value, ensure_ascii=False)  # a JSON string is a YAML double-quoted one
    return text


def _flow(items: dict[str, Any]) -> str:
    parts = [f"{key}: {_yaml(v) if isinstance(v, str) else v}" for key, v in items.items()]
    return "{" + ", ".join(parts) + "}"


def _setting(text: str, comment: str, indent: str = "") -> str:
    """`text` with a trailing comment, aligned as in the taxi profile."""
    return f"{indent}{text:<{28 - len(indent)}}  # {comment}"


def profile_text(report: InitReport, labeled_split: pd.DataFrame) -> str:
    """profile.yaml, with a comment on each decision."""
    task = report.task
    labeled = f"{DATA_DIR}/labeled/{SPAN_FOLDER}/{DATA_FILE}"
    unlabeled = f"{DATA_DIR}/unlabeled/{SPAN_FOLDER}/{DATA_FILE}"
    out = _comment(
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
        *_comment(
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
            out += _comment(
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
        *_comment(
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
        "model: {hidden_layers: 2, hidden_units: 64, embedding_dim: 8, learning_rate: 0.003}",
        *(
            _comment(
                f"Fewer than {SMALL_DATA_ROWS:,} labeled rows: small batches and short training."
            )
            if report.small_data
            else _comment("The taxi profile's budgets.")
        ),
        "training: " + _flow(report.training),
        "",
        "blessing:",
        _setting(f"margin_over_trivial: {MARGIN_OVER_TRIVIAL}", _margin_comment(task), "  "),
        f"  # {_floor_example(task, report, labeled_split)}",
        _setting(f"max_regression: {MAX_REGRESSION}", _regression_comment(task), "  "),
    ]
    return "\n".join(out) + "\n"


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


def _assert_profile_loads(folder: Path, report: InitReport) -> None:
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


def _review(
    report: InitReport, schema: Any, string_domains: list[str], split_notes: list[str]
) -> list[str]:
    """What a person should look at before the first run."""
    never_empty = [
        f.name
        for f in schema.feature
        if f.value_count.min >= 1 and f.name != report.label and not _ignored(report, f.name)
    ]
    items = [
        "schema.pbtxt: the types, presence and value lists TFDV saw in the labeled rows are now "
        "the contract every new span must meet; it sets no ranges for numbers: add the "
        "min/max you know",
    ]
    if string_domains:
        items.append(
            f"closed value lists (a new value stops the run at the data gate): "
            f"{', '.join(map(repr, string_domains))}"
        )
    if never_empty:
        items.append(
            f"never empty in the labeled rows, so required (value_count min 1): "
            f"{', '.join(map(repr, never_empty[:12]))}{' ...' if len(never_empty) > 12 else ''}"
        )
    ignored = [c for c in report.columns if c.kind == FeatureKind.IGNORED.value]
    if ignored:
        items.append(
            "ignored columns (give one a kind to use it): "
            + "; ".join(f"{c.name!r} ({c.why})" for c in ignored)
        )
    if report.positive_class is not None:
        items.append(
            f"the positive class is {report.positive_class!r} (the second in label.classes); "
            "swap the two to predict the other"
        )
    items.append(
        f"thresholds: drift {CATEGORICAL_DRIFT} on categorical columns, none on numeric ones; "
        f"blessing: {MARGIN_OVER_TRIVIAL} over the trivial predictor and no absolute floor yet "
        "(blessing.at_least / at_most)"
    )
    if report.drift:
        items += _noise_notes(report)
    if report.rows_without_label:
        items.append(f"{report.rows_without_label} row(s) without a label were left out")
    return items + split_notes


def sampling_noise(rows_a: int, rows_b: int) -> float:
    """The L-infinity distance two samples of these sizes may show by chance, scaled from the
    taxi measurement (MEASURED_NOISE between two MEASURED_ROWS-row halves)."""
    return MEASURED_NOISE * math.sqrt((1 / rows_a + 1 / rows_b) * MEASURED_ROWS / 2)


def _noise_notes(report: InitReport) -> list[str]:
    notes = []
    span_noise = sampling_noise(report.labeled_rows, report.labeled_rows)
    if span_noise > 0.8 * CATEGORICAL_DRIFT:
        notes.append(
            f"the drift thresholds ({CATEGORICAL_DRIFT}) were measured on {MEASURED_ROWS:,}-row "
            f"samples; between two spans of {report.labeled_rows} rows, chance alone gives "
            f"L-infinity distances up to about {span_noise:.2f}, so raise them if a new span is "
            "refused for drift on a column whose values look right"
        )
    batch_noise = sampling_noise(report.unlabeled_rows, report.labeled_rows)
    if batch_noise > 0.8 * CATEGORICAL_DRIFT:
        notes.append(
            f"the batch to score has {report.unlabeled_rows} rows: its skew distances reach "
            f"about {batch_noise:.2f} by chance, so expect skew findings (reported, not gated) "
            "or set data_checks.skew higher"
        )
    return notes


def _ignored(report: InitReport, name: str) -> bool:
    return any(c.name == name and c.kind == FeatureKind.IGNORED.value for c in report.columns)

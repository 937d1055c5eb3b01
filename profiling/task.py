"""The task `init` trains for, from the label column: binary, multiclass or regression (auto: from
the label's type and distinct values, or checked against --task), and the classes in id order.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from profiling.report import InitError
from profiling.text import some
from profiling.value_types import ValueType, as_number

MAX_AUTO_INTEGER_CLASSES = 20  # more distinct whole numbers than this: auto picks regression
MAX_CLASSES = 100


@dataclass(frozen=True)
class Task:
    """The task init chose and why; the classes, if any, and the label's type."""

    task: str
    why: str
    classes: list[str] | None  # canonical class texts in id order
    label_type: ValueType


def choose_task(
    values: pd.Series, label_type: ValueType, requested: str, label: str, csv_path: Path
) -> Task:
    """The task (auto: from the label's type and distinct values) and the classes in id order."""
    column = f"the label column {label!r}"
    if label_type == ValueType.TEXT:
        distinct: list[Any] = sorted(values.unique())
        kind_text = "text"
    else:
        distinct = sorted({as_number(v, label_type) for v in values.unique()})
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
        return Task(task, why, None, label_type)
    # As Transform compares them: text as it is, numbers as integer text (components/preprocessing).
    classes = [str(v) if label_type == ValueType.TEXT else str(int(v)) for v in distinct]
    return Task(task, why, classes, label_type)


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
            f"({some(distinct)}); use --task multiclass (or auto)"
        )
    if task == "multiclass" and count > MAX_CLASSES:
        raise InitError(
            f"--task multiclass takes at most {MAX_CLASSES} classes, but {column} has {count} "
            "distinct values; use --task regression for a number, or choose another label"
        )

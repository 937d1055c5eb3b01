"""The split of the labeled rows: which are held out, without the label, as the batch to score.

The split files are written so that each infers the same type as the whole column, because the
labeled and the unlabeled ExampleGen infer types separately and the model parses the batch to
score with the types of the curated schema.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from profiling.text import some
from profiling.value_types import ValueType, as_number, value_type

HOLDOUT_FRACTION = 0.1  # of the labeled rows, held out (without the label) as the batch to score
MAX_HOLDOUT_ROWS = 2000


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
        examples = some(sorted(labeled[column][typed].unique()), 3)
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
    return values.map(lambda v: str(int(as_number(v, label_type))))


def _value_types(values: pd.Series) -> pd.Series:
    """Each cell's ValueType (missing cells EMPTY), computed once per distinct value."""
    types = {v: value_type(v) for v in values.dropna().unique()}
    return values.map(types).fillna(ValueType.EMPTY).astype(int)


def floats_read_as_floats(split: pd.DataFrame, types: dict[str, ValueType]) -> pd.DataFrame:
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

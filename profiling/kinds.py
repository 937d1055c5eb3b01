"""Each column's kind (ignored, numeric, integer category or vocabulary) with its reason, guessed
from the labeled rows, and the slices for the Evaluator.
"""

from __future__ import annotations

import pandas as pd

from components import profile as profiles
from components.profile import FeatureKind
from profiling.report import MAX_SLICE_VALUES, MOSTLY_EMPTY, ColumnChoice
from profiling.value_types import SCHEMA_TYPE, ValueType, as_number

INTEGER_CATEGORY_MAX_DISTINCT = 32
INTEGER_CATEGORY_MAX_VALUE = 100
VOCABULARY_MAX_TOP_K = 1000


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
            numbers = sorted({as_number(v, kind_of_values) for v in present.unique()})
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

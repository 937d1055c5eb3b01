"""Each column's kind (ignored, numeric, integer category, vocabulary, boolean, datetime or text)
with its reason, guessed from the labeled rows, and the slices for the Evaluator.
"""

from __future__ import annotations

import re
from collections import Counter

import numpy as np
import pandas as pd

from components import profile as profiles
from components.profile import FeatureKind
from profiling.report import MAX_SLICE_VALUES, MOSTLY_EMPTY, ColumnChoice, InitError
from profiling.value_types import SCHEMA_TYPE, ValueType, as_number

INTEGER_CATEGORY_MAX_DISTINCT = 32
INTEGER_CATEGORY_MAX_VALUE = 100
VOCABULARY_MAX_TOP_K = 1000
# A vocabulary with more distinct values than this keeps only the values seen in at least
# RARE_VALUE_ROWS labeled rows: a value seen once or twice teaches nothing and overfits; the
# rest share the out-of-vocabulary ids.
HIGH_CARDINALITY = 50
RARE_VALUE_ROWS = 3

# Dates: ISO 8601 (what Transform reads, components/preprocessing.ISO_DATETIME) and the other
# ways people write dates, to tell a column of dates in another format, or in mixed formats.
ISO_DATETIME = re.compile(
    r"\d{4}-\d{2}-\d{2}([T ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}(:?\d{2})?)?)?"
)
OTHER_DATE_FORMATS = {
    "03/14/2024 or 14/03/2024": re.compile(r"\d{1,2}/\d{1,2}/\d{2,4}( \d{1,2}:\d{2}(:\d{2})?)?"),
    "14.03.2024": re.compile(r"\d{1,2}\.\d{1,2}\.\d{4}( \d{1,2}:\d{2}(:\d{2})?)?"),
    "03-14-2024": re.compile(r"\d{1,2}-\d{1,2}-\d{4}"),
    "2024/03/14": re.compile(r"\d{4}/\d{1,2}/\d{1,2}( \d{1,2}:\d{2}(:\d{2})?)?"),
    "Mar 14, 2024": re.compile(r"[A-Za-z]{3,9}\.? \d{1,2},? \d{4}"),
    "14 Mar 2024": re.compile(r"\d{1,2} [A-Za-z]{3,9}\.? \d{4}"),
}
# Share of a column's values that must look like dates (in any format) for it to be read as
# dates, or refused as dates in mixed formats.
DATE_LIKE_SHARE = 0.9
# Whole numbers in a column named like a time, in these ranges, are seconds or milliseconds
# since 1970 (from 1973 to 2103).
TIME_NAME = re.compile(r"(time|timestamp|epoch|date|(^|[^a-z])(ts|at)$|created|updated)", re.I)
EPOCH_RANGES = {"epoch_seconds": (1e8, 4.2e9), "epoch_milliseconds": (1e11, 4.2e12)}

# Free text: most values have spaces, several words on average, and the values mostly differ.
TEXT_SPACED_SHARE = 0.5
TEXT_MIN_WORDS = 3.0
TEXT_MIN_DISTINCT_SHARE = 0.3
TEXT_MIN_ROWS = 30  # fewer labeled rows with text: too few to learn words from
TEXT_MIN_WORD_ROWS = 2  # a word kept must be in at least this many labeled rows
TEXT_MIN_WORDS_KEPT = 5
TEXT_MAX_WORDS_KEPT = 10_000
TEXT_MAX_TOKENS = (8, 256)  # bounds of the words read per value (its 95th percentile)
_NOT_A_WORD = re.compile(r"[^\w']+|_")  # as components/preprocessing._NOT_A_WORD splits


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
        kind, why, extra = _kind(column, kind_of_values, rows, missing, distinct, present, numbers)
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
    column: str,
    value_type_: ValueType,
    rows: int,
    missing: int,
    distinct: int,
    present: pd.Series,
    numbers: list[float | int],
) -> tuple[FeatureKind, str, dict]:
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
    boolean = _boolean(present, distinct)
    if boolean:
        return FeatureKind.BOOLEAN, boolean, {}
    dated = _datetime(column, value_type_, present, numbers)
    if dated:
        return dated
    if value_type_ == ValueType.TEXT and _looks_like_text(present):
        return _text(present, rows)
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
    if distinct <= HIGH_CARDINALITY:
        return (
            FeatureKind.VOCABULARY,
            f"text with {distinct} distinct values: a vocabulary of all of them",
            {"top_k": distinct},
        )
    counts = present.value_counts()
    frequent = int((counts >= RARE_VALUE_ROWS).sum())
    top_k = min(VOCABULARY_MAX_TOP_K, frequent)
    if top_k < 2:
        return (
            FeatureKind.IGNORED,
            f"text with {distinct} distinct values, none but {top_k} in {RARE_VALUE_ROWS} or "
            "more labeled rows: nothing to learn from (a free-form code or name?)",
            {},
        )
    covered = counts.iloc[:top_k].sum() / len(present)
    return (
        FeatureKind.VOCABULARY,
        f"text with {distinct} distinct values: a vocabulary of the {top_k} seen in at least "
        f"{RARE_VALUE_ROWS} labeled rows ({covered:.0%} of the values); the rest share the "
        "out-of-vocabulary ids",
        {"top_k": top_k},
    )


def _boolean(present: pd.Series, distinct: int) -> str | None:
    """Why the column is a boolean, or None: two values, one true and one false spelling."""
    if distinct != 2:
        return None
    values = {str(v).strip().lower() for v in present.unique()}
    if len(values) != 2:
        return None
    trues, falses = values & set(profiles.TRUE_VALUES), values & set(profiles.FALSE_VALUES)
    if len(trues) != 1 or len(falses) != 1:
        return None
    shown = sorted(present.unique(), key=lambda v: str(v).strip().lower() in falses)
    return f"yes/no values ({shown[0]!r} and {shown[1]!r}): true 1, false 0, empty 2"


def _datetime(
    column: str, value_type_: ValueType, present: pd.Series, numbers: list[float | int]
) -> tuple[FeatureKind, str, dict] | None:
    """(kind, why, settings) of a column of dates or times; None when it is not one; InitError
    for dates in mixed formats."""
    if value_type_ == ValueType.INT and TIME_NAME.search(column) and numbers:
        for format_, (low, high) in EPOCH_RANGES.items():
            if low <= numbers[0] and numbers[-1] <= high:
                unit = format_.removeprefix("epoch_")
                parts = ["day_of_week", "month", "hour", "age"]
                return (
                    FeatureKind.DATETIME,
                    f"whole numbers in a column named like a time, {unit} since 1970 from "
                    f"{_epoch_text(numbers[0], format_)} to {_epoch_text(numbers[-1], format_)}: "
                    f"{_parts_text(parts)}",
                    {"format": format_, "parts": parts},
                )
        return None
    if value_type_ != ValueType.TEXT:
        return None
    values = present.astype(str).str.strip()
    formats = values.map(_date_format)
    dated = formats.notna()
    if dated.mean() < DATE_LIKE_SHARE:
        return None
    seen = formats[dated].value_counts()
    if len(seen) > 1 or not dated.all():
        examples = [
            f"{count} like {values[formats == name].iloc[0]!r}" for name, count in seen.items()
        ]
        others = int((~dated).sum())
        if others:
            examples.append(f"{others} that are not dates, like {values[~dated].iloc[0]!r}")
        raise InitError(
            f"column {column!r} holds dates in mixed formats ({'; '.join(examples)}): write "
            "every value as an ISO date (2024-03-14) or date-time (2024-03-14 09:30:00) and run "
            "init again, or remove the column"
        )
    if seen.index[0] != "iso":
        return None  # one other format: a review note says how to have it read as dates
    hours = {v[11:13] for v in values if len(v) >= 13}
    parts = ["day_of_week", "month", *(["hour"] if len(hours) > 1 else []), "age"]
    span = f"from {values.min()[:10]} to {values.max()[:10]}"
    written = "date-times" if hours else "dates"
    return (
        FeatureKind.DATETIME,
        f"ISO {written} {span}: {_parts_text(parts)}",
        {"format": "iso", "parts": parts},
    )


def _date_format(value: str) -> str | None:
    if ISO_DATETIME.fullmatch(value):
        return "iso"
    for name, pattern in OTHER_DATE_FORMATS.items():
        if pattern.fullmatch(value):
            return name
    return None


def other_date_format(present: pd.Series) -> str | None:
    """The one non-ISO date format every value is written in, if any (for a review note)."""
    values = present.astype(str).str.strip().map(_date_format)
    if len(values) and values.notna().all() and values.nunique() == 1 and values.iloc[0] != "iso":
        return str(values.iloc[0])
    return None


def _epoch_text(value: float | int, format_: str) -> str:
    seconds = value / 1000 if format_ == "epoch_milliseconds" else value
    return str(pd.Timestamp(int(seconds), unit="s").date())


def _parts_text(parts: list[str]) -> str:
    cyclical = [p.replace("_", " ") for p in parts if p != "age"]
    text = f"{', '.join(cyclical)} as points on a circle"
    return text + (" and its age in days, z-scored" if "age" in parts else "")


def _words(text: str) -> list[str]:
    return [w for w in _NOT_A_WORD.split(text.lower()) if w]


def _looks_like_text(present: pd.Series) -> bool:
    """Free text: most values have spaces and several words, and the values mostly differ."""
    if present.empty:
        return False
    values = present.astype(str)
    spaced = values.str.strip().str.contains(r"\s").mean()
    words = values.map(lambda v: len(_words(v))).mean()
    distinct_share = present.nunique() / len(present)
    return (
        spaced >= TEXT_SPACED_SHARE
        and words >= TEXT_MIN_WORDS
        and distinct_share >= TEXT_MIN_DISTINCT_SHARE
    )


def _text(present: pd.Series, rows: int) -> tuple[FeatureKind, str, dict]:
    """A text column's settings: the words in at least TEXT_MIN_WORD_ROWS rows, and the
    words read per value; ignored, with the reason, when there is too little to learn from."""
    if len(present) < TEXT_MIN_ROWS:
        return (
            FeatureKind.IGNORED,
            f"free text in only {len(present)} of {rows} labeled rows: too few to learn words "
            f"from (at least {TEXT_MIN_ROWS})",
            {},
        )
    tokenized = present.astype(str).map(_words)
    rows_with = Counter(word for words in tokenized for word in set(words))
    kept = sum(1 for count in rows_with.values() if count >= TEXT_MIN_WORD_ROWS)
    if kept < TEXT_MIN_WORDS_KEPT:
        return (
            FeatureKind.IGNORED,
            f"free text whose words seldom repeat: {kept} of {len(rows_with)} words are in "
            f"{TEXT_MIN_WORD_ROWS} or more labeled rows, too few to learn from",
            {},
        )
    top_k = min(TEXT_MAX_WORDS_KEPT, kept)
    lengths = tokenized.map(len).to_numpy()
    low, high = TEXT_MAX_TOKENS
    max_tokens = int(min(high, max(low, np.percentile(lengths, 95))))
    return (
        FeatureKind.TEXT,
        f"free text in {len(present)} of {rows} labeled rows, {lengths.mean():.1f} words on "
        f"average: a vocabulary of the {top_k} words in {TEXT_MIN_WORD_ROWS} or more rows (of "
        f"{len(rows_with)}), the first {max_tokens} words of each value, embedded and averaged",
        {"top_k": top_k, "max_tokens": max_tokens},
    )


def _number(value: float | int) -> str:
    return f"{value:.6g}" if isinstance(value, float) else str(value)


def choose_slices(columns: list[ColumnChoice]) -> list[str]:
    """The first categorical feature with few values: the Evaluator's metrics per value."""
    for column in columns:
        if (
            column.kind
            in (
                FeatureKind.INTEGER_CATEGORY.value,
                FeatureKind.VOCABULARY.value,
                FeatureKind.BOOLEAN.value,
            )
            and column.distinct <= MAX_SLICE_VALUES
        ):
            return [column.name]
    return []

"""Value types as TFX's CSV reader infers them (tfx_bsl's type inference, which CsvExampleGen
uses): a column is INT if every value parses as a 64-bit integer, else FLOAT if every value
parses as a float, else text.
"""

from __future__ import annotations

import enum

import pandas as pd

_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1


class ValueType(enum.IntEnum):
    """A CSV value's type as TFX's CSV reader infers it; a column takes its widest value's."""

    EMPTY = 0
    INT = 1
    FLOAT = 2
    TEXT = 3


SCHEMA_TYPE = {ValueType.INT: "INT", ValueType.FLOAT: "FLOAT", ValueType.TEXT: "BYTES"}


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


def column_type(values: pd.Series) -> ValueType:
    """A column's type as TFX's CSV reader infers it: the widest of its values' types."""
    present = values.dropna().unique()
    return max((value_type(v) for v in present), default=ValueType.EMPTY)


def as_number(text: str, kind: ValueType) -> float | int:
    return int(text.encode("utf-8")) if kind == ValueType.INT else float(text.encode("utf-8"))

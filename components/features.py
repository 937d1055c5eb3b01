"""The one place that names every raw feature of the taxi data, its kind, and the label.

Transform, Tuner, Trainer and Evaluator all read these names; nothing else hard-codes a column.
"""

from __future__ import annotations

# Raw label column and how the binary training label is derived from it.
LABEL_KEY = "tips"
FARE_KEY = "fare"
BIG_TIP_FRACTION = 0.2  # label is 1 when tips > BIG_TIP_FRACTION * fare

# Numeric features, standardised to z-scores.
DENSE_FLOAT_FEATURE_KEYS: tuple[str, ...] = ("trip_miles", "fare", "trip_seconds")

# Coordinates, cut into quantile buckets.
BUCKET_FEATURE_KEYS: tuple[str, ...] = (
    "pickup_latitude",
    "pickup_longitude",
    "dropoff_latitude",
    "dropoff_longitude",
)
FEATURE_BUCKET_COUNT = 10

# Small integer categories with a known range: value -> id directly (0..max inclusive).
CATEGORICAL_INT_FEATURE_MAX: dict[str, int] = {
    "trip_start_hour": 23,
    "trip_start_day": 7,
    "trip_start_month": 12,
}

# Categories with an open set of values: a vocabulary computed by tf.Transform.
VOCAB_FEATURE_KEYS: tuple[str, ...] = (
    "payment_type",
    "company",
    "pickup_community_area",
    "dropoff_community_area",
    "dropoff_census_tract",
)
VOCAB_SIZE = 1000
OOV_SIZE = 10

# Columns whose raw values are strings (the others are numbers).
STRING_FEATURE_KEYS: tuple[str, ...] = ("payment_type", "company")

# Present in the data but not used by the model: almost always empty, or an id.
UNUSED_FEATURE_KEYS: tuple[str, ...] = ("pickup_census_tract", "trip_start_timestamp")

# Feature to slice evaluation metrics by.
SLICE_FEATURE_KEYS: tuple[str, ...] = ("trip_start_hour",)

# Default values used when a value is missing (tf.Transform sees an empty list).
MISSING_STRING = ""
MISSING_NUMBER = 0


def transformed_name(key: str) -> str:
    """Name of the Transform output derived from raw feature `key`."""
    return f"{key}_xf"


def vocab_size_with_oov() -> int:
    """Number of ids a vocabulary feature can take (vocabulary plus OOV buckets)."""
    return VOCAB_SIZE + OOV_SIZE


def categorical_int_cardinality(key: str) -> int:
    """Number of ids of a small integer category: 0..max, plus one for out-of-range values."""
    return CATEGORICAL_INT_FEATURE_MAX[key] + 2


MODEL_FEATURE_KEYS: tuple[str, ...] = (
    DENSE_FLOAT_FEATURE_KEYS
    + BUCKET_FEATURE_KEYS
    + tuple(CATEGORICAL_INT_FEATURE_MAX)
    + VOCAB_FEATURE_KEYS
)
RAW_COLUMNS: tuple[str, ...] = MODEL_FEATURE_KEYS + UNUSED_FEATURE_KEYS + (LABEL_KEY,)
TRANSFORMED_LABEL_KEY = transformed_name(LABEL_KEY)

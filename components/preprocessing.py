"""tf.Transform preprocessing, as the dataset profile says: z-scores, quantile buckets, integer
categories, vocabularies, booleans, dates and times, free text, and the label as the task needs it.

Transform calls `preprocessing_fn(inputs, custom_config)`; `custom_config['profile']` is the
profile's label and features (components/profile.py), so one function serves every profile.
"""

from __future__ import annotations

from typing import Any

import tensorflow as tf
import tensorflow_transform as tft

from components import profile as profiles
from components.profile import FeatureKind, Profile

# Values for rows where a column is empty (tf.Transform sees an empty list there).
MISSING_STRING = ""
MISSING_NUMBER = 0
# An ISO 8601 date, optionally with a time (RE2 syntax, as tf.strings.regex_full_match reads it).
ISO_DATETIME = r"\d{4}-\d{2}-\d{2}([T ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}(:?\d{2})?)?)?"
# The period of each cyclical datetime part.
_PERIODS = {"day_of_week": 7.0, "month": 12.0, "hour": 24.0}
# Characters that separate words in free text: anything but letters, digits and apostrophes.
_NOT_A_WORD = r"[^\pL\pN']+"


def _fill_in_missing(value: tf.Tensor | tf.SparseTensor, default) -> tf.Tensor:
    """Densifies a feature that may be missing in some rows to shape [batch], using `default`."""
    if not isinstance(value, tf.sparse.SparseTensor):
        return tf.reshape(value, [-1])
    dense = tf.sparse.to_dense(
        tf.SparseTensor(value.indices, value.values, [value.dense_shape[0], 1]),
        default_value=tf.constant(default, dtype=value.dtype),
    )
    return tf.squeeze(dense, axis=1)


def _missing_default(value: tf.Tensor | tf.SparseTensor):
    return MISSING_STRING if value.dtype == tf.string else MISSING_NUMBER


def _as_text(value: tf.Tensor) -> tf.Tensor:
    """Strings as they are; integer-like codes (which CSV parsing may give as floats) as text."""
    if value.dtype == tf.string:
        return value
    if value.dtype.is_floating:
        value = tf.cast(value, tf.int64)
    return tf.strings.as_string(value)


def label_ids(value: tf.Tensor, class_names: list[str]) -> tf.Tensor:
    """Class ids in the profile's order; a value not among the classes maps to -1 (the curated
    schema's label domain stops such data at the gate before it gets here)."""
    table = tf.lookup.StaticHashTable(
        tf.lookup.KeyValueTensorInitializer(
            tf.constant(class_names), tf.range(len(class_names), dtype=tf.int64)
        ),
        default_value=-1,
    )
    return table.lookup(_as_text(value))


def transform_label(inputs: dict, profile: Profile) -> tf.Tensor:
    """The training label: a class id (binary, multiclass) or a float (regression)."""
    label = profile.label
    raw = inputs[label.column]
    if label.positive_when is not None:
        rule = label.positive_when
        value = tf.cast(_fill_in_missing(raw, 0), tf.float32)
        bound = tf.constant(rule.greater_than, tf.float32)
        if rule.times_column:
            other = tf.cast(_fill_in_missing(inputs[rule.times_column], 0), tf.float32)
            bound = tf.multiply(other, bound)
        return tf.cast(tf.greater(value, bound), tf.int64)
    if label.task == "regression":
        return tf.cast(_fill_in_missing(raw, 0), tf.float32)
    return label_ids(_fill_in_missing(raw, _missing_default(raw)), label.class_names)


def preprocessing_fn(inputs: dict, custom_config: dict[str, Any] | None = None) -> dict:
    """Maps raw columns to model inputs as the profile says; missing values get a default."""
    profile = profiles.from_config((custom_config or {})["profile"])
    outputs = {}
    for key in profile.of_kind(FeatureKind.NUMERIC):
        value = tf.cast(_fill_in_missing(inputs[key], MISSING_NUMBER), tf.float32)
        outputs[profiles.transformed_name(key)] = tft.scale_to_z_score(value)

    for key in profile.of_kind(FeatureKind.BUCKETIZED):
        value = tf.cast(_fill_in_missing(inputs[key], MISSING_NUMBER), tf.float32)
        outputs[profiles.transformed_name(key)] = tft.bucketize(
            value, profile.features[key].buckets
        )

    for key in profile.of_kind(FeatureKind.INTEGER_CATEGORY):
        max_value = profile.features[key].max
        value = tf.cast(_fill_in_missing(inputs[key], MISSING_NUMBER), tf.int64)
        in_range = tf.logical_and(value >= 0, value <= max_value)
        # Out-of-range values share the last id instead of failing at serving time.
        outputs[profiles.transformed_name(key)] = tf.where(
            in_range, value, tf.constant(max_value + 1, tf.int64)
        )

    for key in profile.of_kind(FeatureKind.VOCABULARY):
        feature = profile.features[key]
        value = _as_text(_fill_in_missing(inputs[key], _missing_default(inputs[key])))
        outputs[profiles.transformed_name(key)] = tft.compute_and_apply_vocabulary(
            value,
            top_k=feature.top_k,
            num_oov_buckets=feature.oov_buckets,
            vocab_filename=profiles.transformed_name(key).removesuffix("_xf"),
        )

    for key in profile.of_kind(FeatureKind.BOOLEAN):
        outputs[profiles.transformed_name(key)] = boolean_ids(inputs[key])

    for key in profile.of_kind(FeatureKind.DATETIME):
        feature = profile.features[key]
        outputs.update(datetime_parts(inputs[key], key, feature.format, feature.parts))

    for key in profile.of_kind(FeatureKind.TEXT):
        feature = profile.features[key]
        outputs[profiles.transformed_name(key)] = token_ids(
            inputs[key],
            top_k=feature.top_k,
            oov_buckets=feature.oov_buckets,
            max_tokens=feature.max_tokens,
            vocab_filename=profiles.transformed_name(key).removesuffix("_xf") + "_words",
        )

    if profile.label.column in inputs:
        outputs[profile.transformed_label] = transform_label(inputs, profile)
    return outputs


def _present(value: tf.Tensor | tf.SparseTensor) -> tf.Tensor:
    """Which rows have a value, shape [batch]."""
    if not isinstance(value, tf.sparse.SparseTensor):
        return tf.ones([tf.shape(value)[0]], tf.bool)
    rows = tf.reshape(value.dense_shape[0], [1])
    counts = tf.math.bincount(
        tf.cast(value.indices[:, 0], tf.int32), minlength=tf.cast(rows[0], tf.int32)
    )
    return tf.greater(counts[: tf.cast(rows[0], tf.int32)], 0)


def boolean_ids(value: tf.Tensor | tf.SparseTensor) -> tf.Tensor:
    """0 for false, 1 for true (any of profile.BOOLEAN_SPELLINGS, in any case), 2 for no value
    or another value."""
    filled = _fill_in_missing(value, _missing_default(value))
    text = tf.strings.lower(tf.strings.strip(_as_text(filled)))
    keys = list(profiles.FALSE_VALUES) + list(profiles.TRUE_VALUES)
    ids = [0] * len(profiles.FALSE_VALUES) + [1] * len(profiles.TRUE_VALUES)
    table = tf.lookup.StaticHashTable(
        tf.lookup.KeyValueTensorInitializer(tf.constant(keys), tf.constant(ids, tf.int64)),
        default_value=2,
    )
    return table.lookup(text)


def days_from_civil(year: tf.Tensor, month: tf.Tensor, day: tf.Tensor) -> tf.Tensor:
    """Days since 1970-01-01 of a proleptic Gregorian date (int64 tensors), by Howard Hinnant's
    days_from_civil algorithm."""
    year = year - tf.cast(month <= 2, tf.int64)
    era = tf.math.floordiv(year, 400)
    year_of_era = year - era * 400
    shifted_month = tf.where(month > 2, month - 3, month + 9)
    day_of_year = (153 * shifted_month + 2) // 5 + day - 1
    day_of_era = year_of_era * 365 + year_of_era // 4 - year_of_era // 100 + day_of_year
    return era * 146097 + day_of_era - 719468


def month_from_days(days: tf.Tensor) -> tf.Tensor:
    """The month (1 to 12) of a day counted from 1970-01-01 (Hinnant's civil_from_days)."""
    z = days + 719468
    era = tf.math.floordiv(z, 146097)
    day_of_era = z - era * 146097
    year_of_era = (
        day_of_era - day_of_era // 1460 + day_of_era // 36524 - day_of_era // 146096
    ) // 365
    day_of_year = day_of_era - (365 * year_of_era + year_of_era // 4 - year_of_era // 100)
    shifted_month = (5 * day_of_year + 2) // 153
    return tf.where(shifted_month < 10, shifted_month + 3, shifted_month - 9)


def parse_datetime(value: tf.Tensor | tf.SparseTensor, format_: str):
    """(valid [batch] bool, days since 1970 int64, month 1-12, hour 0-23) of each row; rows
    without a value, or with one the format does not read, are not valid (their figures are
    those of 1970-01-01 00:00)."""
    present = _present(value)
    if format_ == "iso":
        text = tf.strings.strip(_fill_in_missing(value, MISSING_STRING))
        valid = tf.logical_and(present, tf.strings.regex_full_match(text, ISO_DATETIME))
        text = tf.where(valid, text, tf.fill(tf.shape(text), "1970-01-01 00"))

        def number(start, length):
            return tf.strings.to_number(tf.strings.substr(text, start, length), tf.int64)

        year, month, day = number(0, 4), number(5, 2), number(8, 2)
        hour = _hour(text)
        valid = tf.logical_and(valid, (month >= 1) & (month <= 12) & (day >= 1) & (day <= 31))
        days = tf.where(valid, days_from_civil(year, month, day), 0)
        month = tf.where(valid, month, 1)
        hour = tf.where(valid, hour, 0)
        return valid, days, month, hour
    seconds = tf.cast(_fill_in_missing(value, MISSING_NUMBER), tf.int64)
    if format_ == "epoch_milliseconds":
        seconds = tf.math.floordiv(seconds, 1000)
    days = tf.math.floordiv(seconds, 86400)
    hour = tf.math.floordiv(seconds - days * 86400, 3600)
    return present, days, month_from_days(days), hour


def _hour(text: tf.Tensor) -> tf.Tensor:
    """The hour of ISO date-times (characters 12 and 13); 0 for a date alone."""
    padded = tf.strings.join([text, "T00"])  # a date alone reads its padding's hour
    return tf.strings.to_number(tf.strings.substr(padded, 11, 2), tf.int64)


def datetime_parts(
    value: tf.Tensor | tf.SparseTensor, column: str, format_: str, parts: list[str]
) -> dict[str, tf.Tensor]:
    """The profile's parts of a datetime column (profiles.DATETIME_PARTS), by output name. A
    row without a (readable) date gets 0 for each: the circle's centre, and the mean age."""
    valid, days, month, hour = parse_datetime(value, format_)
    weight = tf.cast(valid, tf.float32)
    cyclical = {
        # 1970-01-01 was a Thursday: Monday is 0.
        "day_of_week": tf.math.floormod(days + 3, 7),
        "month": month - 1,
        "hour": hour,
    }
    outputs = {}
    names = iter(profiles.datetime_part_names(column, parts))
    for part in parts:
        if part == "age":
            outputs[next(names)] = _z_score_where(tf.cast(days, tf.float32), valid)
            continue
        angle = tf.cast(cyclical[part], tf.float32) * (2 * 3.141592653589793 / _PERIODS[part])
        outputs[next(names)] = tf.sin(angle) * weight
        outputs[next(names)] = tf.cos(angle) * weight
    return outputs


def _z_score_where(value: tf.Tensor, valid: tf.Tensor) -> tf.Tensor:
    """z-scores over the valid rows (their mean and deviation in the whole dataset); 0 for the
    others."""
    rows = tf.where(valid)
    sparse = tf.SparseTensor(
        tf.concat([rows, tf.zeros_like(rows)], axis=1),
        tf.boolean_mask(value, valid),
        tf.stack([tf.shape(value, out_type=tf.int64)[0], tf.constant(1, tf.int64)]),
    )
    scaled = tft.scale_to_z_score(sparse)
    return tf.squeeze(tf.sparse.to_dense(scaled, default_value=0.0), axis=1)


def words(value: tf.Tensor | tf.SparseTensor) -> tf.RaggedTensor:
    """Each row's words: lower-cased, split at anything but letters, digits and apostrophes."""
    text = tf.strings.lower(_fill_in_missing(value, MISSING_STRING), encoding="utf-8")
    text = tf.strings.regex_replace(text, _NOT_A_WORD, " ")
    return tf.strings.split(tf.strings.strip(text))


def token_ids(
    value: tf.Tensor | tf.SparseTensor,
    *,
    top_k: int,
    oov_buckets: int,
    max_tokens: int,
    vocab_filename: str,
) -> tf.Tensor:
    """The first `max_tokens` words of each row as ids: 1 + the word's id in a vocabulary of the
    `top_k` most frequent words (the rest share `oov_buckets` ids); 0 pads a row's end."""
    tokens = words(value)
    ids = tft.compute_and_apply_vocabulary(
        tokens.to_sparse(),
        top_k=top_k,
        num_oov_buckets=oov_buckets,
        vocab_filename=vocab_filename,
    )
    ids = tf.RaggedTensor.from_sparse(ids) + 1
    return ids[:, :max_tokens].to_tensor(default_value=0, shape=[None, max_tokens])

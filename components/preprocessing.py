"""tf.Transform preprocessing, as the dataset profile says: z-scores, quantile buckets, integer
categories, vocabularies, and the label as the task needs it.

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

    if profile.label.column in inputs:
        outputs[profile.transformed_label] = transform_label(inputs, profile)
    return outputs

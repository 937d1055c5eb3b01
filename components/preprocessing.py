"""tf.Transform preprocessing: z-scores, quantile buckets, vocabularies, and the binary label."""

from __future__ import annotations

import tensorflow as tf
import tensorflow_transform as tft

from components import features


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
    return features.MISSING_STRING if value.dtype == tf.string else features.MISSING_NUMBER


def preprocessing_fn(inputs: dict) -> dict:
    """Maps raw taxi features to model inputs; rows with missing values get a default."""
    outputs = {}
    for key in features.DENSE_FLOAT_FEATURE_KEYS:
        value = tf.cast(_fill_in_missing(inputs[key], features.MISSING_NUMBER), tf.float32)
        outputs[features.transformed_name(key)] = tft.scale_to_z_score(value)

    for key in features.BUCKET_FEATURE_KEYS:
        value = tf.cast(_fill_in_missing(inputs[key], features.MISSING_NUMBER), tf.float32)
        outputs[features.transformed_name(key)] = tft.bucketize(
            value, features.FEATURE_BUCKET_COUNT
        )

    for key, max_value in features.CATEGORICAL_INT_FEATURE_MAX.items():
        value = tf.cast(_fill_in_missing(inputs[key], features.MISSING_NUMBER), tf.int64)
        in_range = tf.logical_and(value >= 0, value <= max_value)
        # Out-of-range values share the last id instead of failing at serving time.
        outputs[features.transformed_name(key)] = tf.where(
            in_range, value, tf.constant(max_value + 1, tf.int64)
        )

    for key in features.VOCAB_FEATURE_KEYS:
        value = _fill_in_missing(inputs[key], _missing_default(inputs[key]))
        if value.dtype != tf.string:
            # Integer-like codes (community areas, census tracts) arrive as floats or ints.
            value = tf.strings.as_string(tf.cast(value, tf.int64))
        outputs[features.transformed_name(key)] = tft.compute_and_apply_vocabulary(
            value,
            top_k=features.VOCAB_SIZE,
            num_oov_buckets=features.OOV_SIZE,
            vocab_filename=key,
        )

    if features.LABEL_KEY in inputs:
        fare = tf.cast(_fill_in_missing(inputs[features.FARE_KEY], 0), tf.float32)
        tips = tf.cast(_fill_in_missing(inputs[features.LABEL_KEY], 0), tf.float32)
        outputs[features.TRANSFORMED_LABEL_KEY] = tf.cast(
            tf.greater(tips, tf.multiply(fare, features.BIG_TIP_FRACTION)), tf.int64
        )
    return outputs

"""The Keras model, its hyperparameter search space, and the Trainer's `run_fn`.

Keras path: Keras 3 (TF 2.16's default) exported with `keras.export.ExportArchive`. The archive
carries two `tf.function` endpoints over serialized `tf.Example`s, both with the tf.Transform graph
inside: `serving_default` (parse, transform, model) for Pusher, BulkInferrer, InfraValidator and TF
Serving, and `transform_features` (parse, transform), which TFMA's Evaluator calls to derive the
label. A plain Keras 3 `model.export()` breaks BulkInferrer (see ../shared/STACK.md).
"""

from __future__ import annotations

from typing import Any

import keras
import keras_tuner
import numpy as np
import tensorflow as tf
import tensorflow_transform as tft
from google.protobuf import text_format
from tensorflow.core.protobuf import saved_model_pb2
from tensorflow_metadata.proto.v0 import schema_pb2
from tfx import v1 as tfx
from tfx_bsl.public import tfxio

from components import profile as profiles
from components import tfx_private
from components.profile import Profile
from serving import warmup

SERVING_SIGNATURE = "serving_default"
TRANSFORM_SIGNATURE = "transform_features"
# TF Serving's Classify and Regress APIs (gRPC and REST) need signatures of their own kind,
# with an input named "inputs" and outputs "classes"/"scores", or "outputs".
CLASSIFY_SIGNATURE = "classification"
REGRESS_SIGNATURE = "regression"
# serving_default's output: class probabilities (binary: P(positive class), shape [n, 1]) or,
# for regression, the predicted value.
PREDICTION_KEYS = {
    "binary": "probabilities",
    "multiclass": "probabilities",
    "regression": "predictions",
}
# The raw-feature schema the model parses, inside the SavedModel for the model server to type
# JSON feature values by (TF Serving ignores assets.extra/ but for warm-up requests).
SCHEMA_ASSET = "assets.extra/schema.pbtxt"
# Eval rows in the warm-up requests (serving/warmup.py): one request of one row and one of this
# many, per serving signature, the largest batch the server makes by default.
WARMUP_ROWS = 64
EVAL_BATCH_SIZE = 256
# Examples shuffled together when batching for training (TFXIO's default buffer).
SHUFFLE_BUFFER = 10_000
# Raw examples read and transformed at a time: each call of the Transform graph has a fixed cost,
# so it runs on bigger batches than training does (a fifth less CPU for it on 100,000 rows).
TRANSFORM_BATCH_SIZE = 1024
DEFAULT_SEED = 42
# The learning rate at the last training step, as a share of the first (cosine decay).
FINAL_LEARNING_RATE_SHARE = 0.1
# How much faster the linear part of the model learns than the network (see build_keras_model).
LINEAR_PART_SPEEDUP = 10.0
# Regression: batches of training labels read to set the output's scale and offset.
LABEL_SCALE_BATCHES = 50


def serving_signatures(task: str) -> list[str]:
    """The signatures a model of `task` exports for TF Serving (InfraValidator queries each)."""
    return {
        "binary": [SERVING_SIGNATURE, CLASSIFY_SIGNATURE, REGRESS_SIGNATURE],
        "multiclass": [SERVING_SIGNATURE, CLASSIFY_SIGNATURE],
        "regression": [SERVING_SIGNATURE, REGRESS_SIGNATURE],
    }[task]


def search_space(model_size: dict[str, Any] | None = None) -> keras_tuner.HyperParameters:
    """The hyperparameters the Tuner searches, around the profile's model size; their defaults
    (the profile's values) are what Trainer uses untuned."""
    size = profiles.ModelSize.model_validate(model_size or {})
    hp = keras_tuner.HyperParameters()
    rate = size.learning_rate
    rates = sorted({rate, round(rate / 3, 10), round(rate / 10, 10)}, reverse=True)
    hp.Choice("learning_rate", rates, default=size.learning_rate)
    hp.Int(
        "num_hidden_layers",
        min_value=max(1, size.hidden_layers - 1),
        max_value=size.hidden_layers + 1,
        default=size.hidden_layers,
    )
    units = sorted({max(1, size.hidden_units // 2), size.hidden_units, size.hidden_units * 2})
    hp.Choice("hidden_units", units, default=size.hidden_units)
    dims = sorted({max(1, size.embedding_dim // 2), size.embedding_dim})
    hp.Choice("embedding_dim", dims, default=size.embedding_dim)
    return hp


def _embedding(size: int, outputs: int, embedding_dim: int, name: str) -> keras.layers.Embedding:
    """One table for a categorical input's two uses: its first `outputs` columns are the linear
    part's weights for each id (starting at zero), the rest its embedding in the network
    (Keras's default start). One variable instead of two: half the optimizer's work per input."""

    def start(shape, dtype=None):
        weights = keras.initializers.RandomUniform(-0.05, 0.05)(shape, dtype=dtype)
        return keras.ops.concatenate(
            [keras.ops.zeros((shape[0], outputs), dtype=dtype), weights[:, outputs:]], axis=1
        )

    return keras.layers.Embedding(
        size, outputs + embedding_dim, embeddings_initializer=start, name=f"{name}_embedding"
    )


@keras.saving.register_keras_serializable(package="components.model")
class WordMean(keras.layers.Layer):
    """The mean of a row's word embeddings, leaving out the padding (id 0); zeros for a row
    without words (Keras's masked average divides by zero there)."""

    def call(self, embedded, ids):
        present = keras.ops.cast(keras.ops.greater(ids, 0), embedded.dtype)
        total = keras.ops.sum(embedded * keras.ops.expand_dims(present, -1), axis=1)
        count = keras.ops.maximum(keras.ops.sum(present, axis=1, keepdims=True), 1.0)
        return total / count


def _head(task: str, class_count: int, label_scale: tuple[float, float]):
    """The output layer (over the logits), loss and metrics for the task."""
    if task == "binary":
        return (
            keras.layers.Activation("sigmoid", name="positive_probability"),
            keras.losses.BinaryCrossentropy(),
            [keras.metrics.BinaryAccuracy(name="binary_accuracy"), keras.metrics.AUC(name="auc")],
        )
    if task == "multiclass":
        return (
            keras.layers.Activation("softmax", name="class_probabilities"),
            keras.losses.SparseCategoricalCrossentropy(),
            [keras.metrics.SparseCategoricalAccuracy(name="sparse_categorical_accuracy")],
        )
    mean, std = label_scale
    # The network predicts the label in standard units; this layer maps back to the label's.
    return (
        keras.layers.Rescaling(scale=std, offset=mean, name="prediction"),
        keras.losses.MeanSquaredError(),
        [keras.metrics.RootMeanSquaredError(name="root_mean_squared_error")],
    )


def build_keras_model(
    hparams: keras_tuner.HyperParameters,
    profile: Profile,
    label_scale: tuple[float, float] = (0.0, 1.0),
    train_steps: int | None = None,
) -> keras.Model:
    """A deep network over z-scored numerics, embedded categoricals and averaged word
    embeddings, with the task's head. With `model.linear_part` (the default), a linear model of
    the same inputs (a weight per numeric, per category id and per word) is added to the
    network's output before the head's activation: wide and deep, so that what a linear model
    finds is found at once, and the network learns what it misses.

    Given `train_steps`, the learning rate falls along a cosine to FINAL_LEARNING_RATE_SHARE of
    itself by the last step: the last steps move the weights little, so that a step more or
    less gives nearly the same model (the Tuner's short trials keep a constant rate)."""
    inputs: dict[str, keras.KerasTensor] = {}
    deep_parts, linear_parts = [], []
    embedding_dim = hparams.get("embedding_dim")
    outputs = 1 if profile.task != "multiclass" else len(profile.label.class_names)
    numerics = []
    for model_input in profile.model_inputs():
        name = model_input.name
        if model_input.kind == "numeric":
            inputs[name] = keras.Input(shape=(), name=name, dtype="float32")
            numerics.append(keras.ops.expand_dims(inputs[name], -1))
        elif model_input.kind == "categorical":
            inputs[name] = keras.Input(shape=(), name=name, dtype="int64")
            embedded = _embedding(model_input.size, outputs, embedding_dim, name)(inputs[name])
            linear_parts.append(embedded[..., :outputs])
            deep_parts.append(embedded[..., outputs:])
        else:  # tokens: the average of the row's word embeddings (0 pads, and is left out)
            inputs[name] = keras.Input(shape=(model_input.length,), name=name, dtype="int64")
            embedded = _embedding(model_input.size, outputs, embedding_dim, name)(inputs[name])
            mean = WordMean(name=f"{name}_mean")(embedded, inputs[name])
            linear_parts.append(mean[..., :outputs])
            deep_parts.append(mean[..., outputs:])
    if numerics:
        numeric = (
            keras.layers.Concatenate(name="numeric_features")(numerics)
            if len(numerics) > 1
            else numerics[0]
        )
        deep_parts.insert(0, numeric)
        linear_parts.insert(
            0,
            keras.layers.Dense(outputs, kernel_initializer="zeros", name="numeric_weights")(
                numeric
            ),
        )

    x = (
        keras.layers.Concatenate(name="all_features")(deep_parts)
        if len(deep_parts) > 1
        else deep_parts[0]
    )
    for i in range(hparams.get("num_hidden_layers")):
        x = keras.layers.Dense(hparams.get("hidden_units"), activation="relu", name=f"hidden_{i}")(
            x
        )
    if profile.model.linear_part:
        # Both parts start at zero (the linear part's weights too, as linear models do): the
        # network adds what the linear part misses (on little data, early stopping keeps the
        # check where that still helped).
        logits = keras.layers.Dense(outputs, kernel_initializer="zeros", name="deep_output")(x)
    else:
        logits = keras.layers.Dense(outputs, name="deep_output")(x)
    if profile.model.linear_part:
        linear = (
            keras.layers.Add(name="linear_output")(linear_parts)
            if len(linear_parts) > 1
            else linear_parts[0]
        )
        # Adam moves each weight by about the learning rate per step: scaling the linear
        # part's output makes it learn LINEAR_PART_SPEEDUP times faster than the network, as
        # wide-and-deep models give their linear part a higher learning rate.
        linear = keras.layers.Rescaling(LINEAR_PART_SPEEDUP, name="linear_speedup")(linear)
        logits = keras.layers.Add(name="wide_and_deep")([logits, linear])
    output_layer, loss, metrics = _head(profile.task, len(profile.label.class_names), label_scale)
    output = output_layer(logits)

    model = keras.Model(inputs=inputs, outputs=output)
    learning_rate = hparams.get("learning_rate")
    if train_steps:
        learning_rate = keras.optimizers.schedules.CosineDecay(
            learning_rate, decay_steps=train_steps, alpha=FINAL_LEARNING_RATE_SHARE
        )
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate=learning_rate),
        loss=loss,
        metrics=metrics,
    )
    return model


def input_dataset(
    file_pattern: list[str],
    data_accessor: tfx.components.DataAccessor,
    tf_transform_output: tft.TFTransformOutput,
    label_key: str,
    batch_size: int,
    shuffle_seed: int | None,
) -> tf.data.Dataset:
    """Endless batches of (transformed features, label) from raw examples, shuffled with
    `shuffle_seed` (None: in file order, as validation needs no shuffling).

    Transform does not write transformed examples (see pipeline/definition.py): the batches are
    read from ExampleGen's raw examples and put through the same Transform graph that the
    exported model serves with. Each example is transformed once: the transformed rows are kept
    in memory (about a hundred bytes a row) and re-shuffled every pass, so the many passes a
    training run makes over a small dataset do not pay for the Transform graph again.
    """
    transform_layer = tf_transform_output.transform_features_layer()

    # Traced without AutoGraph: converting tf.Transform's Keras layer costs seconds per process.
    @tf.function(autograph=False)
    def transform(raw_features):
        transformed = transform_layer(raw_features)
        label = transformed.pop(label_key)
        return transformed, label

    raw = data_accessor.tf_dataset_factory(
        file_pattern,
        tfxio.TensorFlowDatasetOptions(
            batch_size=TRANSFORM_BATCH_SIZE, shuffle=False, num_epochs=1
        ),
        tf_transform_output.raw_metadata.schema,
    )
    rows = raw.map(transform, num_parallel_calls=tf.data.AUTOTUNE).cache().unbatch()
    if shuffle_seed is not None:
        rows = rows.shuffle(SHUFFLE_BUFFER, seed=shuffle_seed)
    return rows.batch(batch_size).repeat().prefetch(tf.data.AUTOTUNE)


def label_scale(dataset: tf.data.Dataset) -> tuple[float, float]:
    """Mean and standard deviation of a regression label, from the first training batches."""
    labels = np.concatenate(
        [np.asarray(y, dtype="float64").reshape(-1) for _, y in dataset.take(LABEL_SCALE_BATCHES)]
    )
    return float(labels.mean()), float(labels.std()) or 1.0


def hyperparameters_from(
    fn_args_hyperparameters: dict[str, Any] | None, model_size: dict[str, Any] | None = None
) -> keras_tuner.HyperParameters:
    """The Tuner's best hyperparameters when given, else the search space's defaults."""
    if fn_args_hyperparameters:
        return keras_tuner.HyperParameters.from_config(fn_args_hyperparameters)
    return search_space(model_size)


def export_serving_model(
    model: keras.Model,
    tf_transform_output: tft.TFTransformOutput,
    export_dir: str,
    profile: Profile,
    warmup_examples: list[bytes] = (),
) -> None:
    """Writes a SavedModel whose signatures take serialized tf.Examples of raw features, with
    the serving schema and, from `warmup_examples` (labels dropped), TF Serving's warm-up
    requests in assets.extra/."""
    transform_layer = tf_transform_output.transform_features_layer()
    raw_feature_spec = tf_transform_output.raw_feature_spec()
    serving_feature_spec = {k: v for k, v in raw_feature_spec.items() if k != profile.label.column}
    model_input_names = set(model.input.keys())
    prediction_key = PREDICTION_KEYS[profile.task]
    class_names = profile.label.class_names

    # The endpoints have no tensor-dependent Python control flow: they are traced without
    # AutoGraph, which would otherwise convert tf.Transform's Keras layer (seconds per process).
    examples_spec = [tf.TensorSpec([None], tf.string, name="examples")]
    inputs_spec = [tf.TensorSpec([None], tf.string, name="inputs")]

    archive = keras.export.ExportArchive()
    archive.track(model)
    # ExportArchive saves only Keras variables and Keras lookup layers; tf.Transform's vocabulary
    # tables live in the transform layer's loaded graph and must hang off the saved object too.
    tfx_private.attach_to_export_archive(
        archive, "transform_resources", _transform_resources(transform_layer)
    )

    @tf.function(input_signature=examples_spec, autograph=False)
    def serve_examples(serialized_examples):
        raw = tf.io.parse_example(serialized_examples, serving_feature_spec)
        transformed = transform_layer(raw)
        model_inputs = {k: v for k, v in transformed.items() if k in model_input_names}
        return {prediction_key: model(model_inputs, training=False)}

    @tf.function(input_signature=examples_spec, autograph=False)
    def transform_examples(serialized_examples):
        raw = tf.io.parse_example(serialized_examples, raw_feature_spec)
        return transform_layer(raw)

    @tf.function(input_signature=inputs_spec, autograph=False)
    def classify_examples(serialized_examples):
        probabilities = serve_examples(serialized_examples)[prediction_key]
        if profile.task == "binary":
            probabilities = tf.concat([1.0 - probabilities, probabilities], axis=1)
        rows = tf.shape(probabilities)[0]
        return {
            "classes": tf.tile(tf.constant([class_names]), [rows, 1]),
            "scores": probabilities,
        }

    @tf.function(input_signature=inputs_spec, autograph=False)
    def regress_examples(serialized_examples):
        return {"outputs": serve_examples(serialized_examples)[prediction_key]}

    endpoints = {
        SERVING_SIGNATURE: serve_examples,
        CLASSIFY_SIGNATURE: classify_examples,
        REGRESS_SIGNATURE: regress_examples,
    }
    for name in serving_signatures(profile.task):
        archive.add_endpoint(name, endpoints[name])
    archive.add_endpoint(TRANSFORM_SIGNATURE, transform_examples)
    archive.write_out(export_dir)
    _set_signature_methods(
        export_dir,
        {
            name: method
            for name, method in (
                (CLASSIFY_SIGNATURE, "tensorflow/serving/classify"),
                (REGRESS_SIGNATURE, "tensorflow/serving/regress"),
            )
            if name in serving_signatures(profile.task)
        },
    )
    serving_schema = schema_pb2.Schema()
    serving_schema.CopyFrom(tf_transform_output.raw_metadata.schema)
    kept = [f for f in serving_schema.feature if f.name in serving_feature_spec]
    del serving_schema.feature[:]
    serving_schema.feature.extend(kept)
    tf.io.gfile.makedirs(f"{export_dir}/assets.extra")
    with tf.io.gfile.GFile(f"{export_dir}/{SCHEMA_ASSET}", "w") as f:
        f.write(text_format.MessageToString(serving_schema))
    if warmup_examples:
        methods = {
            SERVING_SIGNATURE: (warmup.PREDICT_METHOD, "examples"),
            CLASSIFY_SIGNATURE: (warmup.CLASSIFY_METHOD, "inputs"),
            REGRESS_SIGNATURE: (warmup.REGRESS_METHOD, "inputs"),
        }
        warmup.write(
            export_dir,
            {name: methods[name] for name in serving_signatures(profile.task)},
            [_without_feature(e, profile.label.column) for e in warmup_examples],
        )


def _without_feature(serialized: bytes, name: str) -> bytes:
    example = tf.train.Example.FromString(serialized)
    if name in example.features.feature:
        del example.features.feature[name]
    # Map entries sorted by feature name: without `deterministic`, protobuf's map order changes
    # from run to run, and so would the warm-up file's bytes.
    return example.SerializeToString(deterministic=True)


def first_examples(file_patterns: list[str], count: int) -> list[bytes]:
    """The first serialized examples of a split (TFX's gzipped TFRecord files)."""
    files = sorted(f for pattern in file_patterns for f in tf.io.gfile.glob(pattern))
    if not files:
        return []
    compression = "GZIP" if files[0].endswith(".gz") else ""
    dataset = tf.data.TFRecordDataset(files, compression_type=compression).take(count)
    return list(dataset.as_numpy_iterator())


def _transform_resources(transform_layer: Any) -> list:
    """The lookup tables and vocabulary files inside tf.Transform's Keras layer.

    Saving the layer itself would carry them too, but it is a legacy tf_keras model, and saving
    one traces its call again through AutoGraph: three quarters of the export's time.
    """
    kinds = (tf.saved_model.experimental.TrackableResource, tf.saved_model.Asset, tf.Variable)
    return [
        t for t in tf.train.TrackableView(transform_layer).descendants() if isinstance(t, kinds)
    ]


def _set_signature_methods(export_dir: str, methods: dict[str, str]) -> None:
    """Gives signatures TF Serving's method names. Keras's ExportArchive writes every endpoint
    as a predict signature; TF Serving's Classify and Regress refuse those."""
    path = f"{export_dir}/saved_model.pb"
    saved_model = saved_model_pb2.SavedModel()
    with tf.io.gfile.GFile(path, "rb") as f:
        saved_model.ParseFromString(f.read())
    for meta_graph in saved_model.meta_graphs:
        for name, method in methods.items():
            meta_graph.signature_def[name].method_name = method
    with tf.io.gfile.GFile(path, "wb") as f:
        f.write(saved_model.SerializeToString())


def training_inputs(fn_args: tfx.components.FnArgs) -> tuple[Profile, int]:
    """The profile part and seed the pipeline put in the component's custom_config; seeds
    Python, NumPy, TensorFlow and Keras with that seed and, unless the run was started with
    --no-deterministic, turns on TensorFlow's op determinism: the same data, code and settings
    then train bit-identical weights (`reproduce` checks it)."""
    custom_config = fn_args.custom_config or {}
    seed = int(custom_config.get("seed", DEFAULT_SEED))
    if custom_config.get("deterministic", True):
        # Deterministic kernels (or an error for an op that has none) and tf.data in order.
        tf.config.experimental.enable_op_determinism()
    keras.utils.set_random_seed(seed)
    return profiles.from_config(custom_config["profile"]), seed


def datasets(
    fn_args: tfx.components.FnArgs,
    tf_transform_output: tft.TFTransformOutput,
    profile: Profile,
    seed: int,
) -> tuple[tf.data.Dataset, tf.data.Dataset]:
    """Training and validation batches of transformed examples."""
    label_key = profile.transformed_label
    train = input_dataset(
        fn_args.train_files,
        fn_args.data_accessor,
        tf_transform_output,
        label_key,
        profile.training.batch_size,
        shuffle_seed=seed,
    )
    evaluation = input_dataset(
        fn_args.eval_files,
        fn_args.data_accessor,
        tf_transform_output,
        label_key,
        EVAL_BATCH_SIZE,
        shuffle_seed=None,
    )
    return train, evaluation


# Early stopping checks the eval split at most every this many steps: shorter stretches compare
# noise (a training of fewer than twice this many steps is not stopped early).
MIN_STEPS_PER_CHECK = 100
# The metric early stopping and the Tuner watch on the eval split, per task: (Keras's name,
# better when).
VALIDATION_METRIC = {
    "binary": ("val_auc", "max"),
    "multiclass": ("val_sparse_categorical_accuracy", "max"),
    "regression": ("val_root_mean_squared_error", "min"),
}


def fit(
    model: keras.Model,
    profile: Profile,
    train: tf.data.Dataset,
    evaluation: tf.data.Dataset,
    train_steps: int,
    eval_steps: int,
) -> keras.callbacks.History:
    """Trains for `train_steps` steps as the profile's budgets say: with early stopping, in
    `training.checks` stretches, each checked on `eval_steps` eval batches, keeping the best
    check's weights; with balanced class weights when the profile asks for them."""
    budgets = profile.training
    class_weight = class_weights(profile, train)
    checks = min(budgets.checks, train_steps // MIN_STEPS_PER_CHECK)
    common = {
        "validation_data": evaluation,
        "validation_steps": eval_steps,
        "class_weight": class_weight,
        "verbose": 2,
    }
    if not budgets.early_stopping or checks < 2:
        # Without early stopping, or too short a training to compare checks (a check every
        # MIN_STEPS_PER_CHECK steps at least): every step, and the last weights.
        return model.fit(train, epochs=1, steps_per_epoch=train_steps, **common)
    monitor, mode = VALIDATION_METRIC[profile.task]
    return model.fit(
        train,
        epochs=checks,
        steps_per_epoch=max(1, train_steps // checks),
        **common,
        callbacks=[
            keras.callbacks.EarlyStopping(
                monitor=monitor,
                mode=mode,
                patience=budgets.patience,
                restore_best_weights=True,
                verbose=1,
            )
        ],
    )


# Training batches read to count the classes for balanced class weights.
CLASS_COUNT_BATCHES = 200


def class_weights(profile: Profile, train: tf.data.Dataset) -> dict[int, float] | None:
    """The loss's class weights the profile asks for (`training.class_weights`), or None."""
    if profile.training.class_weights != "balanced" or profile.task == "regression":
        return None
    return balanced_class_weights(train, len(profile.label.class_names))


def balanced_class_weights(train: tf.data.Dataset, class_count: int) -> dict[int, float]:
    """total / (classes x count) per class, counted on the first training batches (a class
    not seen there weighs as much as the rarest seen)."""
    counts = np.zeros(class_count)
    for _, labels in train.take(CLASS_COUNT_BATCHES):
        ids = np.asarray(labels).reshape(-1).astype(int)
        counts += np.bincount(ids[(ids >= 0) & (ids < class_count)], minlength=class_count)
    seen = counts[counts > 0]
    counts[counts == 0] = seen.min() if len(seen) else 1
    weights = counts.sum() / (class_count * counts)
    return {i: float(w) for i, w in enumerate(weights)}


def run_fn(fn_args: tfx.components.FnArgs) -> None:
    """TFX Trainer entry point: train with the given (or default) hyperparameters and export."""
    profile, seed = training_inputs(fn_args)
    tf_transform_output = tft.TFTransformOutput(fn_args.transform_output)
    hparams = hyperparameters_from(fn_args.hyperparameters, profile.model.model_dump())
    train, evaluation = datasets(fn_args, tf_transform_output, profile, seed)
    scale = label_scale(train) if profile.task == "regression" else (0.0, 1.0)
    model = build_keras_model(hparams, profile, scale, train_steps=fn_args.train_steps)
    fit(model, profile, train, evaluation, fn_args.train_steps, fn_args.eval_steps)
    export_serving_model(
        model,
        tf_transform_output,
        fn_args.serving_model_dir,
        profile,
        warmup_examples=first_examples(fn_args.eval_files, WARMUP_ROWS),
    )

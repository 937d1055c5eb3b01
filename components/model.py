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
import tensorflow as tf
import tensorflow_transform as tft
from google.protobuf import text_format
from tensorflow.core.protobuf import saved_model_pb2
from tensorflow_metadata.proto.v0 import schema_pb2
from tfx import v1 as tfx
from tfx_bsl.public import tfxio

from components import features, tfx_private

SERVING_SIGNATURE = "serving_default"
TRANSFORM_SIGNATURE = "transform_features"
# TF Serving's Classify and Regress APIs (gRPC and REST) need signatures of their own kind,
# with an input named "inputs" and outputs "classes"/"scores", or "outputs".
CLASSIFY_SIGNATURE = "classification"
REGRESS_SIGNATURE = "regression"
CLASS_NAMES = ("0", "1")  # not a big tip, a big tip
PREDICTION_KEY = "probabilities"
# The raw-feature schema the model parses, inside the SavedModel for the model server to type
# JSON feature values by (TF Serving ignores assets.extra/ but for warm-up requests).
SCHEMA_ASSET = "assets.extra/schema.pbtxt"
TRAIN_BATCH_SIZE = 128
EVAL_BATCH_SIZE = 256
DEFAULT_SEED = 42


def search_space() -> keras_tuner.HyperParameters:
    """The hyperparameters the Tuner searches; their defaults are what Trainer uses untuned."""
    hp = keras_tuner.HyperParameters()
    hp.Choice("learning_rate", [3e-3, 1e-3, 3e-4], default=3e-3)
    hp.Int("num_hidden_layers", min_value=1, max_value=3, default=2)
    hp.Choice("hidden_units", [32, 64, 128], default=64)
    hp.Choice("embedding_dim", [4, 8], default=8)
    return hp


def _categorical_inputs() -> dict[str, int]:
    """Transformed categorical feature name -> number of distinct ids."""
    cardinality = {}
    for key in features.BUCKET_FEATURE_KEYS:
        cardinality[features.transformed_name(key)] = features.FEATURE_BUCKET_COUNT + 1
    for key in features.CATEGORICAL_INT_FEATURE_MAX:
        cardinality[features.transformed_name(key)] = features.categorical_int_cardinality(key)
    for key in features.VOCAB_FEATURE_KEYS:
        cardinality[features.transformed_name(key)] = features.vocab_size_with_oov()
    return cardinality


def build_keras_model(hparams: keras_tuner.HyperParameters) -> keras.Model:
    """A deep network over z-scored numerics and embedded categoricals; outputs P(big tip)."""
    inputs: dict[str, keras.KerasTensor] = {}
    parts = []
    for key in features.DENSE_FLOAT_FEATURE_KEYS:
        name = features.transformed_name(key)
        inputs[name] = keras.Input(shape=(), name=name, dtype="float32")
        parts.append(keras.ops.expand_dims(inputs[name], -1))
    embedding_dim = hparams.get("embedding_dim")
    for name, cardinality in _categorical_inputs().items():
        inputs[name] = keras.Input(shape=(), name=name, dtype="int64")
        embedded = keras.layers.Embedding(cardinality, embedding_dim, name=f"{name}_embedding")(
            inputs[name]
        )
        parts.append(embedded)

    x = keras.layers.Concatenate(name="all_features")(parts)
    for i in range(hparams.get("num_hidden_layers")):
        x = keras.layers.Dense(hparams.get("hidden_units"), activation="relu", name=f"hidden_{i}")(
            x
        )
    output = keras.layers.Dense(1, activation="sigmoid", name="big_tip_probability")(x)

    model = keras.Model(inputs=inputs, outputs=output)
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate=hparams.get("learning_rate")),
        loss=keras.losses.BinaryCrossentropy(),
        metrics=[
            keras.metrics.BinaryAccuracy(name="binary_accuracy"),
            keras.metrics.AUC(name="auc"),
        ],
    )
    return model


def input_dataset(
    file_pattern: list[str],
    data_accessor: tfx.components.DataAccessor,
    tf_transform_output: tft.TFTransformOutput,
    batch_size: int,
    seed: int,
) -> tf.data.Dataset:
    """Endless, shuffled batches of (transformed features, label) from transformed examples."""
    return data_accessor.tf_dataset_factory(
        file_pattern,
        tfxio.TensorFlowDatasetOptions(
            batch_size=batch_size,
            label_key=features.TRANSFORMED_LABEL_KEY,
            shuffle_seed=seed,
        ),
        tf_transform_output.transformed_metadata.schema,
    ).repeat()


def hyperparameters_from(
    fn_args_hyperparameters: dict[str, Any] | None,
) -> keras_tuner.HyperParameters:
    """The Tuner's best hyperparameters when given, else the search space's defaults."""
    if fn_args_hyperparameters:
        return keras_tuner.HyperParameters.from_config(fn_args_hyperparameters)
    return search_space()


def export_serving_model(
    model: keras.Model, tf_transform_output: tft.TFTransformOutput, export_dir: str
) -> None:
    """Writes a SavedModel whose signatures take serialized tf.Examples of raw features."""
    transform_layer = tf_transform_output.transform_features_layer()
    raw_feature_spec = tf_transform_output.raw_feature_spec()
    serving_feature_spec = {k: v for k, v in raw_feature_spec.items() if k != features.LABEL_KEY}
    model_input_names = set(model.input.keys())

    archive = keras.export.ExportArchive()
    archive.track(model)
    archive.track(transform_layer)
    # ExportArchive saves only Keras variables and Keras lookup layers; tf.Transform's vocabulary
    # tables live in the transform layer's loaded graph and must hang off the saved object too.
    tfx_private.attach_to_export_archive(archive, "transform_layer", transform_layer)

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="examples")])
    def serve_examples(serialized_examples):
        raw = tf.io.parse_example(serialized_examples, serving_feature_spec)
        transformed = transform_layer(raw)
        model_inputs = {k: v for k, v in transformed.items() if k in model_input_names}
        return {PREDICTION_KEY: model(model_inputs, training=False)}

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="examples")])
    def transform_examples(serialized_examples):
        raw = tf.io.parse_example(serialized_examples, raw_feature_spec)
        return transform_layer(raw)

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="inputs")])
    def classify_examples(serialized_examples):
        big_tip = serve_examples(serialized_examples)[PREDICTION_KEY]
        rows = tf.shape(big_tip)[0]
        return {
            "classes": tf.tile(tf.constant([CLASS_NAMES]), [rows, 1]),
            "scores": tf.concat([1.0 - big_tip, big_tip], axis=1),
        }

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="inputs")])
    def regress_examples(serialized_examples):
        return {"outputs": serve_examples(serialized_examples)[PREDICTION_KEY]}

    archive.add_endpoint(SERVING_SIGNATURE, serve_examples)
    archive.add_endpoint(TRANSFORM_SIGNATURE, transform_examples)
    archive.add_endpoint(CLASSIFY_SIGNATURE, classify_examples)
    archive.add_endpoint(REGRESS_SIGNATURE, regress_examples)
    archive.write_out(export_dir)
    _set_signature_methods(
        export_dir,
        {
            CLASSIFY_SIGNATURE: "tensorflow/serving/classify",
            REGRESS_SIGNATURE: "tensorflow/serving/regress",
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


def run_fn(fn_args: tfx.components.FnArgs) -> None:
    """TFX Trainer entry point: train with the given (or default) hyperparameters and export."""
    seed = (
        int(fn_args.custom_config.get("seed", DEFAULT_SEED))
        if fn_args.custom_config
        else DEFAULT_SEED
    )
    keras.utils.set_random_seed(seed)
    tf_transform_output = tft.TFTransformOutput(fn_args.transform_output)
    hparams = hyperparameters_from(fn_args.hyperparameters)

    train = input_dataset(
        fn_args.train_files, fn_args.data_accessor, tf_transform_output, TRAIN_BATCH_SIZE, seed
    )
    evaluation = input_dataset(
        fn_args.eval_files, fn_args.data_accessor, tf_transform_output, EVAL_BATCH_SIZE, seed
    )
    model = build_keras_model(hparams)
    model.fit(
        train,
        epochs=1,
        steps_per_epoch=fn_args.train_steps,
        validation_data=evaluation,
        validation_steps=fn_args.eval_steps,
        verbose=2,
    )
    export_serving_model(model, tf_transform_output, fn_args.serving_model_dir)

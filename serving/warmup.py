"""Warm-up requests, as TensorFlow Serving keeps them: `assets.extra/tf_serving_warmup_requests`
in a version's folder, a TFRecord file of `PredictionLog`s that the server replays before it
marks the version AVAILABLE.

A model's first call costs far more than the next ones (here 145 ms for one row, then 1.5 ms:
TensorFlow optimizes and places the graph on first use, and again for a new batch size). Without
warm-up the first requests after every load, on every worker, pay it.

`write` is called by the Trainer's export with a few of the eval split's examples (one request
of one row and one of many, for each serving signature); `replay` by the model server while
loading. TF Serving reads at most 1,000 records; so do we.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping

import numpy as np
import tensorflow as tf
from tensorflow_serving.apis import (
    classification_pb2,
    model_pb2,
    predict_pb2,
    prediction_log_pb2,
    regression_pb2,
)

WARMUP_ASSET = os.path.join("assets.extra", "tf_serving_warmup_requests")
MAX_RECORDS = 1000  # TF Serving's limit
PREDICT_METHOD = "tensorflow/serving/predict"
CLASSIFY_METHOD = "tensorflow/serving/classify"
REGRESS_METHOD = "tensorflow/serving/regress"


class WarmupError(Exception):
    """A warm-up record the version cannot answer: its load fails, as in TF Serving."""


def _requests(
    signature: str, method: str, input_name: str, examples: list[bytes]
) -> prediction_log_pb2.PredictionLog:
    spec = model_pb2.ModelSpec(signature_name=signature)
    if method == PREDICT_METHOD:
        request = predict_pb2.PredictRequest(model_spec=spec)
        request.inputs[input_name].CopyFrom(tf.make_tensor_proto(examples, dtype=tf.string))
        return prediction_log_pb2.PredictionLog(
            predict_log=prediction_log_pb2.PredictLog(request=request)
        )
    parsed = [tf.train.Example.FromString(e) for e in examples]
    if method == CLASSIFY_METHOD:
        request = classification_pb2.ClassificationRequest(model_spec=spec)
        request.input.example_list.examples.extend(parsed)
        return prediction_log_pb2.PredictionLog(
            classify_log=prediction_log_pb2.ClassifyLog(request=request)
        )
    request = regression_pb2.RegressionRequest(model_spec=spec)
    request.input.example_list.examples.extend(parsed)
    return prediction_log_pb2.PredictionLog(
        regress_log=prediction_log_pb2.RegressLog(request=request)
    )


def write(
    export_dir: str,
    signatures: Mapping[str, tuple[str, str]],
    examples: list[bytes],
    batch_sizes: Iterable[int] = (1, 64),
) -> str:
    """Writes warm-up requests for each signature (name -> (method, its one input's name)) of
    serialized examples, one request per batch size; returns the file's path."""
    path = os.path.join(export_dir, WARMUP_ASSET)
    tf.io.gfile.makedirs(os.path.dirname(path))
    sizes = sorted({min(size, len(examples)) for size in batch_sizes if size > 0})
    with tf.io.TFRecordWriter(path) as writer:
        for name, (method, input_name) in signatures.items():
            for size in sizes:
                record = _requests(name, method, input_name, examples[:size])
                writer.write(record.SerializeToString(deterministic=True))
    return path


def _inputs(log: prediction_log_pb2.PredictionLog) -> tuple[str, dict[str, np.ndarray]]:
    kind = log.WhichOneof("log_type")
    if kind == "predict_log":
        request = log.predict_log.request
        return request.model_spec.signature_name, {
            k: tf.make_ndarray(v) for k, v in request.inputs.items()
        }
    if kind in ("classify_log", "regress_log"):
        request = getattr(log, kind).request
        examples = request.input.example_list.examples
        serialized = np.array([e.SerializeToString() for e in examples], dtype=object)
        return request.model_spec.signature_name, {"inputs": serialized}
    raise WarmupError(
        f"a {kind or 'empty'} record; this server replays predict, classify and regress"
    )


def replay(version_path: str, signatures) -> int:
    """Calls the version's signatures (a SavedModel's `signatures` map) with the warm-up records
    in its folder, if it has any; returns how many were replayed."""
    path = os.path.join(version_path, WARMUP_ASSET)
    if not tf.io.gfile.exists(path):
        return 0
    replayed = 0
    for record in tf.data.TFRecordDataset(path).take(MAX_RECORDS).as_numpy_iterator():
        log = prediction_log_pb2.PredictionLog.FromString(record)
        name, inputs = _inputs(log)
        name = name or "serving_default"
        if name not in signatures:
            raise WarmupError(f"record {replayed + 1} asks for signature {name!r}, which it lacks")
        function = signatures[name]
        expected = function.structured_input_signature[1]
        try:
            function(**{k: tf.convert_to_tensor(v, expected[k].dtype) for k, v in inputs.items()})
        except (tf.errors.OpError, ValueError, TypeError, KeyError) as e:
            raise WarmupError(f"record {replayed + 1} (signature {name!r}) failed: {e}") from None
        replayed += 1
    return replayed

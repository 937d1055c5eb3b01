"""Running a served version's signature: finding the version and signature a request names,
checking its inputs, and calling the model through the batcher.

The gRPC services and the REST API both call this, in the same process: a REST request costs
no gRPC hop and no conversion of its arrays to TensorProtos and back.
"""

from __future__ import annotations

import logging
from concurrent import futures

import grpc
import numpy as np
import tensorflow as tf
from tensorflow.core.protobuf import meta_graph_pb2

from serving.batching import Batcher, BatchingOptions, Outputs, QueueFull
from serving.repository import ModelRepository, NotServed, ServedVersion

DEFAULT_SIGNATURE = "serving_default"
CLASSIFY_METHOD = "tensorflow/serving/classify"
REGRESS_METHOD = "tensorflow/serving/regress"
log = logging.getLogger("serving")


class ServingError(Exception):
    """A request TF Serving would refuse: its gRPC status code and message."""

    def __init__(self, code: grpc.StatusCode, message: str):
        super().__init__(message)
        self.code = code
        self.message = message


class Inference:
    """The repository's versions, run through one batcher."""

    def __init__(self, repository: ModelRepository, batching: BatchingOptions):
        self.repository = repository
        self.batcher = Batcher(batching)

    def stop(self) -> None:
        self.batcher.stop()

    def served(self, model: str, version: int | None, label: str | None = None) -> ServedVersion:
        """The AVAILABLE version a request names (the latest when it names none)."""
        if model != self.repository.name:
            raise ServingError(
                grpc.StatusCode.NOT_FOUND, f"Servable not found for request: Latest({model})"
            )
        if label is not None:
            raise ServingError(
                grpc.StatusCode.INVALID_ARGUMENT,
                "Version labels are not configured on this server; ask for a version number.",
            )
        try:
            return self.repository.get(version)
        except NotServed as e:
            code = grpc.StatusCode.UNAVAILABLE if e.unavailable else grpc.StatusCode.NOT_FOUND
            raise ServingError(code, str(e)) from None

    @staticmethod
    def signature(
        served: ServedVersion, name: str, method: str | None = None
    ) -> tuple[str, meta_graph_pb2.SignatureDef]:
        """The signature a request names (serving_default when it names none), of the kind a
        Classify or Regress request needs."""
        name = name or DEFAULT_SIGNATURE
        signature_def = served.signature_defs.get(name)
        if signature_def is None or name not in served.saved_model.signatures:
            raise ServingError(
                grpc.StatusCode.INVALID_ARGUMENT,
                f'Serving signature name: "{name}" not found in signature def; this version has '
                f"{sorted(served.signature_defs)}",
            )
        if method and signature_def.method_name != method:
            kind = "classification" if method == CLASSIFY_METHOD else "regression"
            raise ServingError(
                grpc.StatusCode.INVALID_ARGUMENT,
                f"Expected {kind} signature method_name to be {method}. Was: "
                f"{signature_def.method_name} (signature {name!r}; ask for a {kind} signature "
                f"with signature_name, or use :predict)",
            )
        return name, signature_def

    def _call_of(self, served: ServedVersion, name: str, inputs: dict[str, np.ndarray]):
        """The batcher's key and runner for the signature's call, once the inputs are checked."""
        function = served.signature(name)
        expected = function.structured_input_signature[1]
        missing, unknown = set(expected) - set(inputs), set(inputs) - set(expected)
        if missing or unknown:
            raise ServingError(
                grpc.StatusCode.INVALID_ARGUMENT,
                f"Request inputs do not match signature {name!r}: missing {sorted(missing)}, "
                f"unknown {sorted(unknown)}",
            )
        key = (served.version, id(served.saved_model), name)
        return key, lambda batch: _call(function, expected, batch)

    def submit(
        self, served: ServedVersion, name: str, inputs: dict[str, np.ndarray]
    ) -> futures.Future:
        """Queues the signature's call; the future gives its outputs as arrays, or a
        ServingError (inputs that do not fit are INVALID_ARGUMENT, as in TF Serving)."""
        key, runner = self._call_of(served, name, inputs)
        try:
            return self.batcher.submit(key, runner, inputs)
        except QueueFull as e:
            raise ServingError(grpc.StatusCode.UNAVAILABLE, f"{e}; retry later") from None

    def run_if_idle(
        self, served: ServedVersion, name: str, inputs: dict[str, np.ndarray]
    ) -> Outputs | None:
        """The outputs, computed at once, when the batcher has nothing else to do; else None."""
        _, runner = self._call_of(served, name, inputs)
        return self.batcher.run_if_idle(runner, inputs)

    def run(self, served: ServedVersion, name: str, inputs: dict[str, np.ndarray]) -> Outputs:
        """`submit`, waited for."""
        return self.submit(served, name, inputs).result()


def _call(function, expected: dict, inputs: dict[str, np.ndarray]) -> Outputs:
    try:
        converted = {k: tf.convert_to_tensor(v, dtype=expected[k].dtype) for k, v in inputs.items()}
        outputs = function(**converted)
    except (tf.errors.InvalidArgumentError, ValueError, TypeError) as e:
        message = e.message if isinstance(e, tf.errors.OpError) else str(e)
        raise ServingError(
            grpc.StatusCode.INVALID_ARGUMENT, f"{type(e).__name__}: {message}"
        ) from None
    except tf.errors.OpError as e:
        raise ServingError(grpc.StatusCode.INTERNAL, f"{type(e).__name__}: {e.message}") from None
    return {k: v.numpy() for k, v in outputs.items()}

"""Running a served version's signature: finding the version and signature a request names,
checking its inputs, and calling the model through the batcher.

The gRPC services and the REST API both call this, in the same process: a REST request costs
no gRPC hop and no conversion of its arrays to TensorProtos and back.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from concurrent import futures

import grpc
import numpy as np
import tensorflow as tf
from tensorflow.core.protobuf import meta_graph_pb2

from serving.batching import Batcher, BatchingOptions, Outputs, QueueFull
from serving.repository import ModelRepository, NotServed, ServedVersion
from serving.routing import LABEL_PATTERN, Router

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


@dataclasses.dataclass(frozen=True)
class Route:
    """The version a request runs on; with a release under way, whether the release counts its
    answer (it named no version or label, and was split) and the version its shadow copy runs
    on."""

    served: ServedVersion
    counted: bool = False
    shadow: ServedVersion | None = None


class Inference:
    """The repository's versions, run through one batcher; routed by a release's routing file
    when the repository follows one."""

    def __init__(self, repository: ModelRepository, batching: BatchingOptions):
        self.repository = repository
        self.router: Router | None = repository.router
        self.batcher = Batcher(batching)

    def stop(self) -> None:
        self.batcher.stop()

    def served(self, model: str, version: int | None, label: str | None = None) -> ServedVersion:
        """The AVAILABLE version a request names (the latest, or the release's split, when it
        names none)."""
        return self.route(model, version, label).served

    def route(self, model: str, version: int | None, label: str | None = None) -> Route:
        """Where a request goes: the version or label it names, else (with a release under
        way) the version the split gives it, and its shadow."""
        if model != self.repository.name:
            raise ServingError(
                grpc.StatusCode.NOT_FOUND, f"Servable not found for request: Latest({model})"
            )
        if label is not None:
            version = self._labelled(label)
        elif version is None and self.router is not None:
            return self._split()
        try:
            return Route(self.repository.get(version))
        except NotServed as e:
            if label is not None:  # the release just named it: this process is loading it
                raise ServingError(
                    grpc.StatusCode.UNAVAILABLE,
                    f"Version {version} (label {label}) is still loading; retry shortly",
                ) from None
            code = grpc.StatusCode.UNAVAILABLE if e.unavailable else grpc.StatusCode.NOT_FOUND
            raise ServingError(code, str(e)) from None

    def _labelled(self, label: str) -> int:
        if not LABEL_PATTERN.fullmatch(label):
            raise ServingError(
                grpc.StatusCode.INVALID_ARGUMENT,
                f"Invalid version label {label!r}: a label is letters, digits and underscores",
            )
        if self.router is None:
            raise ServingError(
                grpc.StatusCode.INVALID_ARGUMENT,
                "Version labels are not configured on this server (serve runs a release only "
                "with an ML Metadata store); ask for a version number.",
            )
        version = self.router.label_version(label)
        if version is None:
            labels = self.router.table.labels()
            raise ServingError(
                grpc.StatusCode.NOT_FOUND,
                f"Unrecognized servable version label: {label} (this server's labels: "
                + (", ".join(f"{k} = version {v}" for k, v in labels.items()) or "none")
                + ")",
            )
        return version

    def _split(self) -> Route:
        available = self.repository.available()
        version, shadow = self.router.split(set(available))
        if version is None:
            table = self.router.table
            raise ServingError(
                grpc.StatusCode.UNAVAILABLE,
                f"No version of model {self.repository.name} is released yet"
                + (
                    f": version {table.stable} is still loading"
                    if table.stable is not None
                    else " (a version awaiting approval is not served: `models approve VERSION`)"
                ),
            )
        counted = self.router.table.release_id is not None
        return Route(available[version], counted, available.get(shadow) if shadow else None)

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
        self,
        served: ServedVersion,
        name: str,
        inputs: dict[str, np.ndarray],
        route: Route | None = None,
    ) -> futures.Future:
        """Queues the signature's call; the future gives its outputs as arrays, or a
        ServingError (inputs that do not fit are INVALID_ARGUMENT, as in TF Serving). A
        request the release split is counted, and copied to its shadow."""
        key, runner = self._call_of(served, name, inputs)
        started = time.monotonic()
        try:
            future = self.batcher.submit(key, runner, inputs)
        except QueueFull as e:
            raise ServingError(grpc.StatusCode.UNAVAILABLE, f"{e}; retry later") from None
        if route is not None and route.counted:
            future.add_done_callback(lambda f: self._count(served, inputs, f, started))
            self._shadow(route, name, inputs)
        return future

    def run_if_idle(
        self,
        served: ServedVersion,
        name: str,
        inputs: dict[str, np.ndarray],
        route: Route | None = None,
    ) -> Outputs | None:
        """The outputs, computed at once, when the batcher has nothing else to do; else None."""
        _, runner = self._call_of(served, name, inputs)
        started = time.monotonic()
        try:
            outputs = self.batcher.run_if_idle(runner, inputs)
        except ServingError as e:
            if route is not None and route.counted:
                self._record(served, inputs, started, None, e)
            raise
        if outputs is not None and route is not None and route.counted:
            self._record(served, inputs, started, outputs, None)
            self._shadow(route, name, inputs)
        return outputs

    def run(
        self,
        served: ServedVersion,
        name: str,
        inputs: dict[str, np.ndarray],
        route: Route | None = None,
    ) -> Outputs:
        """`submit`, waited for."""
        return self.submit(served, name, inputs, route).result()

    # -- a release's counts and shadow copies ---------------------------------------------------

    def _count(self, served, inputs, future: futures.Future, started: float, shadow=False) -> None:
        if future.cancelled():  # past its deadline before it ran: not the version's doing
            return
        error = future.exception()
        self._record(served, inputs, started, None if error else future.result(), error, shadow)

    def _record(self, served, inputs, started, outputs, error, shadow: bool = False) -> None:
        # A request's own bad input is the client's fault, not the version's; anything else
        # that fails (the model's call, an internal error) counts against the version, and so
        # does a shadow copy the candidate refuses where the stable version answered.
        client_error = isinstance(error, ServingError) and error.code in _CLIENT_ERRORS
        if client_error and not shadow:
            return
        first = np.asarray(next(iter(inputs.values()))) if inputs else np.zeros(1)
        self.router.record(
            served.version,
            (time.monotonic() - started) * 1000,
            rows=int(first.shape[0]) if first.ndim else 1,
            error=error is not None,
            outputs=outputs,
            shadow=shadow,
        )

    def _shadow(self, route: Route, name: str, inputs: dict[str, np.ndarray]) -> None:
        """Runs a copy of the request on the shadow version; its answer is only counted."""
        shadow = route.shadow
        if shadow is None:
            return
        started = time.monotonic()
        try:
            key, runner = self._call_of(shadow, name, inputs)
            future = self.batcher.submit(key, runner, inputs)
        except QueueFull:
            return  # the server is overloaded: the client's request comes first
        except ServingError as e:  # the candidate cannot run what the stable version can
            self._record(shadow, inputs, started, None, e, shadow=True)
            return
        future.add_done_callback(lambda f: self._count(shadow, inputs, f, started, shadow=True))


_CLIENT_ERRORS = (grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.NOT_FOUND)


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

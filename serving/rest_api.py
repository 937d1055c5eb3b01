"""TensorFlow Serving's REST API, served by tornado, beside the gRPC services.

    GET  /v1/models/NAME[/versions/V]             the status of each version
    GET  /v1/models/NAME[/versions/V]/metadata    the signatures
    POST /v1/models/NAME[/versions/V]:predict     {"instances": [...]} or {"inputs": ...}
    POST /v1/models/NAME[/versions/V]:classify    {"examples": [...], "context": {...}}
    POST /v1/models/NAME[/versions/V]:regress     the same
    POST /v1/models/NAME/feedback                 labels for logged requests (monitoring)

Wherever `/versions/V` goes, `/labels/LABEL` may go instead: a release's `stable` and `canary`
versions (serving/routing.py), as TF Serving's version labels.

The request and answer shapes are TF Serving's (https://www.tensorflow.org/tfx/serving/api_rest),
errors too: `{"error": "..."}` with TF Serving's HTTP code for the gRPC status. One addition: a
signature that takes serialized tf.Examples (ours: `examples`) also takes rows of raw feature
values, typed by the model's schema (serving/tf_examples.py), besides TF Serving's base64 form.

Why tornado: it is already in the lock (no new dependency), it is a production HTTP/1.1 server
that has run Jupyter and many services for a decade, it reads bodies as streams so an oversized
body is refused from its Content-Length before it is read, and it runs on asyncio, so requests
wait for an inference slot without holding a thread. Inference runs in a bounded thread pool
(TensorFlow releases the GIL while it computes); requests beyond the in-flight limit get 429, and
each request has a deadline (504). The alternatives (uvicorn with Starlette or FastAPI) would
add three dependencies for the same guarantees.

The backend is either this process's gRPC services (`InProcessBackend`) or a running
`tensorflow_model_server`'s gRPC port (`GrpcBackend`): the REST answers are the same.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextvars
import dataclasses
import json
import logging
import threading
import time
from collections.abc import Callable
from concurrent import futures
from typing import Any

import grpc
import numpy as np
import orjson
import tensorflow as tf
import tornado.httpserver
import tornado.web
from google.protobuf import json_format
from tensorflow.core.protobuf import meta_graph_pb2
from tensorflow_serving.apis import (
    classification_pb2,
    get_model_metadata_pb2,
    get_model_status_pb2,
    model_service_pb2_grpc,
    predict_pb2,
    prediction_service_pb2_grpc,
    regression_pb2,
)

from serving import tf_examples
from serving.grpc_services import DirectContext, ModelService, PredictionService, ServingError
from serving.inference import DEFAULT_SIGNATURE, Inference, Route
from serving.repository import ServedVersion, read_serving_features
from serving.request_log import RequestDetails, RequestLogger, request_id_from
from serving.routing import KEY_HEADER, REQUEST_KEY

log = logging.getLogger("serving")
Code = grpc.StatusCode

# TF Serving's mapping of gRPC status codes to HTTP codes (model_servers/http_rest_api_util).
HTTP_STATUS = {
    Code.INVALID_ARGUMENT: 400,
    Code.FAILED_PRECONDITION: 400,
    Code.OUT_OF_RANGE: 400,
    Code.UNAUTHENTICATED: 401,
    Code.PERMISSION_DENIED: 403,
    Code.NOT_FOUND: 404,
    Code.ALREADY_EXISTS: 409,
    Code.ABORTED: 409,
    Code.RESOURCE_EXHAUSTED: 429,
    Code.CANCELLED: 499,
    Code.UNIMPLEMENTED: 501,
    Code.UNAVAILABLE: 503,
    Code.DEADLINE_EXCEEDED: 504,
}


def bad_request(message: str) -> ServingError:
    return ServingError(Code.INVALID_ARGUMENT, message)


@dataclasses.dataclass(frozen=True)
class Limits:
    """What one server takes on at once, and for how long."""

    max_concurrent: int = 4  # inferences running at once (threads)
    max_in_flight: int = 128  # requests accepted at once, running or waiting; more get 429
    request_timeout: float = 30.0  # seconds from a request's arrival to its answer; then 504
    max_body_bytes: int = 16 * 1024 * 1024  # larger request bodies get 413


# -- backends ----------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Signature:
    """What the REST layer needs to build a request: the version it will run and its
    signature, and the schema that types raw feature values (None if the model has none)."""

    version: int
    name: str
    signature_def: meta_graph_pb2.SignatureDef
    # Rows of raw features as tf.Examples, typed by the model's schema; None: it has none.
    example_writer: tf_examples.ExampleWriter | None
    served: ServedVersion | None = None  # the loaded version itself, for an in-process backend
    route: Route | None = None  # how an in-process backend routed the request (a release's)


class InProcessBackend:
    """This process's repository, run through its batcher: no gRPC hop, no TensorProtos."""

    runs_in_process = True

    def __init__(self, inference: Inference):
        self.inference = inference
        self._models = ModelService(inference.repository, inference)
        self._predictions = PredictionService(inference)
        self._context = DirectContext()

    def status(self, request):
        return self._models.GetModelStatus(request, self._context)

    def metadata(self, request):
        return self._predictions.GetModelMetadata(request, self._context)

    def classify(self, request):
        return self._predictions.Classify(request, self._context)

    def regress(self, request):
        return self._predictions.Regress(request, self._context)

    def signature(
        self, model: str, version: int | None, signature_name: str, label: str | None = None
    ) -> Signature:
        route = self.inference.route(model, version, label)
        served = route.served
        name, signature_def = self.inference.signature(served, signature_name)
        return Signature(served.version, name, signature_def, served.example_writer, served, route)

    def run_if_idle(self, signature: Signature, inputs: dict[str, np.ndarray]):
        """The outputs, computed in this thread, when the batcher is idle; else None."""
        return self.inference.run_if_idle(signature.served, signature.name, inputs, signature.route)

    def submit(self, signature: Signature, inputs: dict[str, np.ndarray]):
        """Queues the call on the version the signature was read from (which finishes the
        request even if a newer version replaces it meanwhile); a future of the outputs."""
        return self.inference.submit(signature.served, signature.name, inputs, signature.route)


class GrpcBackend:
    """A TF Serving gRPC endpoint (a real `tensorflow_model_server`), with the schema read from
    the version's folder under the model base path. Its calls block: they run in the REST API's
    threads."""

    runs_in_process = False

    def __init__(self, target: str, model_base_path: str, timeout: float):
        self._channel = grpc.insecure_channel(target)
        self._models = model_service_pb2_grpc.ModelServiceStub(self._channel)
        self._predictions = prediction_service_pb2_grpc.PredictionServiceStub(self._channel)
        self._base_path = model_base_path
        self._timeout = timeout
        self._writers: dict[int, tf_examples.ExampleWriter | None] = {}  # by version
        self._lock = threading.Lock()

    def _call(self, method, request):
        try:
            return method(request, timeout=self._timeout)
        except grpc.RpcError as e:
            raise ServingError(e.code(), e.details()) from None

    def status(self, request):
        return self._call(self._models.GetModelStatus, request)

    def metadata(self, request):
        return self._call(self._predictions.GetModelMetadata, request)

    def predict(self, request):
        return self._call(self._predictions.Predict, request)

    def classify(self, request):
        return self._call(self._predictions.Classify, request)

    def regress(self, request):
        return self._call(self._predictions.Regress, request)

    def signature(
        self, model: str, version: int | None, signature_name: str, label: str | None = None
    ) -> Signature:
        response = self.metadata(_metadata_request(model, version, label))
        signature_map = get_model_metadata_pb2.SignatureDefMap()
        response.metadata["signature_def"].Unpack(signature_map)
        served_version = response.model_spec.version.value
        with self._lock:
            if served_version not in self._writers:
                path = f"{self._base_path.rstrip('/')}/{served_version}"
                features = read_serving_features(path)
                writer = tf_examples.ExampleWriter(features) if features is not None else None
                self._writers[served_version] = writer
            writer = self._writers[served_version]
        name = signature_name or DEFAULT_SIGNATURE
        if name not in signature_map.signature_def:
            raise bad_request(
                f'Serving signature name: "{name}" not found in signature def; version '
                f"{served_version} has {sorted(signature_map.signature_def)}"
            )
        return Signature(served_version, name, signature_map.signature_def[name], writer)

    def close(self) -> None:
        self._channel.close()


def _model_spec(
    message, model: str, version: int | None, signature_name: str = "", label: str | None = None
):
    message.model_spec.name = model
    if version is not None:
        message.model_spec.version.value = version
    elif label is not None:
        message.model_spec.version_label = label
    message.model_spec.signature_name = signature_name
    return message


def _metadata_request(model: str, version: int | None, label: str | None = None):
    request = get_model_metadata_pb2.GetModelMetadataRequest(metadata_field=["signature_def"])
    return _model_spec(request, model, version, label=label)


# -- JSON to requests --------------------------------------------------------------------------


def _decode_b64(value, where: str):
    """TF Serving's {"b64": "..."} objects, anywhere in a value, as bytes."""
    if isinstance(value, dict):
        if set(value) == {"b64"} and isinstance(value["b64"], str):
            try:
                return base64.b64decode(value["b64"], validate=True)
            except (binascii.Error, ValueError):  # ValueError: not ASCII
                raise bad_request(f"{where}: 'b64' is not valid base64") from None
        raise bad_request(f"{where}: expected a value, got an object with keys {sorted(value)}")
    if isinstance(value, list):
        return [_decode_b64(v, f"{where}[{i}]") for i, v in enumerate(value)]
    return value


def _as_array(value, tensor_info, where: str) -> np.ndarray:
    dtype = tf.dtypes.as_dtype(tensor_info.dtype)
    try:
        if dtype == tf.string:
            array = np.array(value, dtype=object)
            if any(not isinstance(v, (bytes, str)) for v in array.flat):
                raise TypeError("not a string")
            return array
        return np.array(value, dtype=dtype.as_numpy_dtype)
    except (TypeError, ValueError) as e:
        raise bad_request(
            f"{where}: cannot be read as a {dtype.name} tensor ({e}); the signature's input "
            "takes that type"
        ) from None


def _takes_examples(signature: Signature) -> str | None:
    """The name of the signature's one input when it takes serialized tf.Examples."""
    inputs = signature.signature_def.inputs
    if len(inputs) == 1:
        ((name, info),) = inputs.items()
        if info.dtype == tf.string.as_datatype_enum:
            return name
    return None


def _example_writer(signature: Signature) -> tf_examples.ExampleWriter:
    if signature.example_writer is None:
        raise bad_request(
            f"version {signature.version} of this model carries no schema "
            "(assets.extra/schema.pbtxt), so feature values cannot be typed: send serialized "
            'tf.Examples as {"b64": "..."} instead'
        )
    return signature.example_writer


def _serialized(features, writer: tf_examples.ExampleWriter, where: str) -> bytes:
    try:
        return writer.serialize(features, where)
    except tf_examples.RequestError as e:
        raise bad_request(str(e)) from None


def _row_inputs(instances, signature: Signature) -> dict[str, np.ndarray]:
    """TF Serving's row format ("instances"), plus rows of raw feature values."""
    if not isinstance(instances, list) or not instances:
        raise bad_request('"instances" must be a non-empty list, one entry per row')
    examples_input = _takes_examples(signature)
    inputs = signature.signature_def.inputs
    if examples_input:
        rows, writer = [], None
        for i, row in enumerate(instances):
            where = f"instances[{i}]"
            if isinstance(row, dict) and row.keys() == {examples_input}:
                rows.append(_decode_b64(row[examples_input], f"{where}.{examples_input}"))
            elif isinstance(row, dict) and row.keys() != {"b64"}:
                writer = writer or _example_writer(signature)
                rows.append(_serialized(row, writer, where))
            else:
                rows.append(_decode_b64(row, where))
        return {examples_input: _as_array(rows, inputs[examples_input], "instances")}
    if len(inputs) == 1:
        ((name, info),) = inputs.items()
        values = [r[name] if isinstance(r, dict) and set(r) == {name} else r for r in instances]
        return {name: _as_array(_decode_b64(values, "instances"), info, "instances")}
    columns: dict[str, list] = {name: [] for name in inputs}
    for i, row in enumerate(instances):
        if not isinstance(row, dict):
            raise bad_request(
                f"instances[{i}]: expected an object with the inputs {sorted(inputs)}"
            )
        missing, unknown = set(inputs) - set(row), set(row) - set(inputs)
        if missing or unknown:
            raise bad_request(
                f"instances[{i}]: missing inputs {sorted(missing)}, unknown {sorted(unknown)}"
            )
        for name in inputs:
            columns[name].append(_decode_b64(row[name], f"instances[{i}].{name}"))
    return {name: _as_array(v, inputs[name], f"inputs {name!r}") for name, v in columns.items()}


def _columnar_inputs(given, signature: Signature) -> dict[str, np.ndarray]:
    """TF Serving's columnar format ("inputs"), plus columns of raw feature values."""
    inputs = signature.signature_def.inputs
    examples_input = _takes_examples(signature)
    if examples_input and isinstance(given, dict) and set(given) != {examples_input}:
        if set(given) == {"b64"}:
            return {
                examples_input: _as_array(
                    [_decode_b64(given, "inputs")], inputs[examples_input], "inputs"
                )
            }
        lengths = {len(v) for v in given.values() if isinstance(v, list)}
        if len(lengths) != 1 or not all(isinstance(v, list) for v in given.values()):
            raise bad_request(
                '"inputs": feature columns must all be lists of the same length, one value per row'
            )
        writer = _example_writer(signature)
        rows = [
            _serialized({k: v[i] for k, v in given.items()}, writer, f"inputs row {i}")
            for i in range(lengths.pop())
        ]
        return {examples_input: _as_array(rows, inputs[examples_input], "inputs")}
    if len(inputs) == 1 and not (isinstance(given, dict) and set(given) == set(inputs)):
        ((name, info),) = inputs.items()
        return {name: _as_array(_decode_b64(given, "inputs"), info, "inputs")}
    if not isinstance(given, dict) or set(given) != set(inputs):
        got = sorted(given) if isinstance(given, dict) else type(given).__name__
        raise bad_request(f'"inputs" must be an object with the inputs {sorted(inputs)}; got {got}')
    return {
        name: _as_array(_decode_b64(given[name], f"inputs.{name}"), inputs[name], f"inputs.{name}")
        for name in inputs
    }


def _json_value(body: bytes):
    """The request body's JSON. orjson reads it (several times faster than the standard
    library on rows of features); what it refuses is read again by the standard library, which
    also takes NaN and Infinity as TF Serving does, and says where the JSON is malformed."""
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError:
        return _body_json_strictly(body)


def _body_object(body: bytes) -> dict:
    """The request body's JSON object."""
    parsed = _json_value(body)
    if not isinstance(parsed, dict):
        raise bad_request(f"The request body must be a JSON object, got {type(parsed).__name__}")
    return parsed


def _body_json_strictly(body: bytes):
    try:
        return json.loads(body)
    except json.JSONDecodeError as e:
        raise bad_request(
            f"Malformed JSON in the request body: {e.msg} at line {e.lineno} column {e.colno}"
        ) from None
    except UnicodeDecodeError:
        raise bad_request("Malformed JSON in the request body: it is not UTF-8 text") from None
    except RecursionError:
        raise bad_request(
            "The request body nests JSON arrays or objects too deeply for this server; a "
            "tensor has at most a few dimensions: flatten the values"
        ) from None


def _signature_name(body: dict) -> str:
    name = body.get("signature_name", "")
    if not isinstance(name, str):
        raise bad_request('"signature_name" must be a string')
    return name


def _refuse_unknown_keys(body: dict, allowed: set[str]) -> None:
    unknown = sorted(set(body) - allowed)
    if unknown:
        raise bad_request(f"Unknown key {unknown[0]!r} in the request; it takes {sorted(allowed)}")


# -- answers to JSON ---------------------------------------------------------------------------


def _jsonable(array: np.ndarray):
    if array.dtype == object:
        return np.vectorize(_text_or_b64, otypes=[object])(array).tolist()
    return array.tolist()


def _text_or_b64(value: bytes):
    try:
        return value.decode("utf-8")
    except UnicodeDecodeError:
        return {"b64": base64.b64encode(value).decode()}


def _outputs_json(outputs: dict[str, np.ndarray], row_format: bool) -> dict:
    arrays = dict(sorted(outputs.items()))
    if not row_format:
        values = {k: _jsonable(a) for k, a in arrays.items()}
        return {"outputs": next(iter(values.values())) if len(values) == 1 else values}
    if len(arrays) == 1:
        return {"predictions": _jsonable(next(iter(arrays.values())))}
    rows = {a.shape[0] if a.ndim else 0 for a in arrays.values()}
    if len(rows) != 1:
        raise ServingError(
            Code.INVALID_ARGUMENT,
            "The outputs have different batch sizes, which the row format cannot show: ask "
            'with "inputs" (columnar) instead',
        )
    columns = {k: _jsonable(a) for k, a in arrays.items()}
    return {"predictions": [{k: v[i] for k, v in columns.items()} for i in range(rows.pop())]}


def _status_json(response: get_model_status_pb2.GetModelStatusResponse) -> dict:
    return {
        "model_version_status": [
            {
                "version": str(s.version),
                "state": get_model_status_pb2.ModelVersionStatus.State.Name(s.state),
                "status": {
                    "error_code": "OK" if s.status.error_code == 0 else "UNKNOWN",
                    "error_message": s.status.error_message,
                },
            }
            for s in response.model_version_status
        ]
    }


def _metadata_json(response: get_model_metadata_pb2.GetModelMetadataResponse) -> dict:
    signature_map = get_model_metadata_pb2.SignatureDefMap()
    response.metadata["signature_def"].Unpack(signature_map)
    return {
        "model_spec": json_format.MessageToDict(
            response.model_spec,
            preserving_proto_field_name=True,
            including_default_value_fields=True,
        ),
        "metadata": {
            "signature_def": json_format.MessageToDict(
                signature_map, preserving_proto_field_name=True
            )
        },
    }


# -- the API -----------------------------------------------------------------------------------


class RestApi:
    """Answers REST requests from a backend, within the limits."""

    def __init__(self, backend, limits: Limits, request_log: RequestLogger | None = None):
        self.backend = backend
        self.limits = limits
        self.request_log = request_log
        self.in_flight = 0
        self.connections = 0  # open HTTP connections
        self._pool = futures.ThreadPoolExecutor(
            max_workers=limits.max_concurrent, thread_name_prefix="inference"
        )

    def _admit(self) -> None:
        if self.in_flight >= self.limits.max_in_flight:
            raise ServingError(
                Code.RESOURCE_EXHAUSTED,
                f"The server is busy: {self.in_flight} requests in flight, the most it takes "
                "(serve --max-in-flight); retry later",
            )

    async def _by_deadline(self, future: futures.Future, started: float) -> Any:
        """The future's result, or DEADLINE_EXCEEDED (and the future cancelled: a request still
        waiting for a batch leaves it) once the request has had its time."""
        remaining = self.limits.request_timeout - (time.monotonic() - started)
        try:
            return await asyncio.wait_for(asyncio.wrap_future(future), max(remaining, 0.001))
        except asyncio.TimeoutError:
            raise ServingError(
                Code.DEADLINE_EXCEEDED,
                f"The request did not finish within {self.limits.request_timeout:g} s "
                "(serve --request-timeout)",
            ) from None

    async def run(self, work: Callable[[], Any], started: float) -> Any:
        """Runs `work` in a thread, within the in-flight limit and the deadline."""
        self._admit()
        self.in_flight += 1
        try:
            context = contextvars.copy_context()  # the request's routing key, in the thread
            return await self._by_deadline(self._pool.submit(context.run, work), started)
        finally:
            self.in_flight -= 1

    def shutdown(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)

    def status(self, model: str, version: int | None, label: str | None = None) -> dict:
        request = _model_spec(
            get_model_status_pb2.GetModelStatusRequest(), model, version, label=label
        )
        return _status_json(self.backend.status(request))

    def metadata(self, model: str, version: int | None, label: str | None = None) -> dict:
        return _metadata_json(self.backend.metadata(_metadata_request(model, version, label)))

    def _log(self, arrival: Arrival, log_type: str, request, response) -> None:
        if self.request_log is not None:
            self.request_log.log_message(arrival.details(), log_type, request, response)

    async def predict(
        self, model: str, version: int | None, body: bytes, arrival: Arrival, label=None
    ) -> dict:
        """:predict. In process, the request is read on the event loop (in a thread when the
        body is large) and waits for the model in the batcher, holding no thread; with a
        TF Serving backend it runs in a thread, since its gRPC call blocks."""
        started = arrival.started
        if not self.backend.runs_in_process:
            return await self.run(
                lambda: self._predict_by_grpc(model, version, body, arrival, label), started
            )
        self._admit()
        self.in_flight += 1
        try:
            if len(body) > _READ_IN_A_THREAD_BYTES:
                read = self._pool.submit(
                    contextvars.copy_context().run,
                    self._predict_inputs,
                    model,
                    version,
                    body,
                    label,
                )
                signature, inputs, row_format = await self._by_deadline(read, started)
            else:
                signature, inputs, row_format = self._predict_inputs(model, version, body, label)
            outputs = None
            if self.in_flight == 1 and self.connections <= 1:
                # A lone client: the model at once, on this thread. Handing the request to a
                # batch thread and back would add a third to its latency, and no other request
                # can share its batch. (With more connections, the others' requests may be
                # waiting to be read: the event loop must stay free to read them.)
                outputs = self.backend.run_if_idle(signature, inputs)
            if outputs is None:
                outputs = await self._by_deadline(self.backend.submit(signature, inputs), started)
            if self.request_log is not None:
                self.request_log.log_predict(
                    arrival.details(), signature.version, signature.name, inputs, outputs
                )
            return _outputs_json(outputs, row_format)
        finally:
            self.in_flight -= 1

    def _predict_inputs(self, model: str, version: int | None, body: bytes, label=None):
        given = _body_object(body)
        _refuse_unknown_keys(given, {"signature_name", "instances", "inputs"})
        if ("instances" in given) == ("inputs" in given):
            raise bad_request(
                'The request must have either "instances" (row format) or "inputs" (columnar '
                "format)" + (", not both" if "inputs" in given else "")
            )
        signature = self.backend.signature(model, version, _signature_name(given), label)
        row_format = "instances" in given
        if row_format:
            inputs = _row_inputs(given["instances"], signature)
        else:
            inputs = _columnar_inputs(given["inputs"], signature)
        return signature, inputs, row_format

    def _predict_by_grpc(
        self, model: str, version: int | None, body: bytes, arrival, label=None
    ) -> dict:
        signature, inputs, row_format = self._predict_inputs(model, version, body, label)
        # The version asked for, else whichever is the latest when the request runs: pinning the
        # one seen above could miss it if a newer one replaced it in between.
        request = _model_spec(predict_pb2.PredictRequest(), model, version, signature.name, label)
        for name, array in inputs.items():
            request.inputs[name].CopyFrom(tf.make_tensor_proto(array))
        response = self.backend.predict(request)
        self._log(arrival, "predict_log", request, response)
        return _outputs_json(
            {k: tf.make_ndarray(v) for k, v in response.outputs.items()}, row_format
        )

    def _examples_request(self, request, model, version, body: bytes, label=None):
        given = _body_object(body)
        _refuse_unknown_keys(given, {"signature_name", "examples", "context"})
        examples, context = given.get("examples"), given.get("context")
        if not isinstance(examples, list) or not examples:
            raise bad_request('"examples" must be a non-empty list of objects of feature values')
        if context is not None and not isinstance(context, dict):
            raise bad_request('"context" must be an object of feature values')
        signature = self.backend.signature(model, version, _signature_name(given), label)
        writer = _example_writer(signature)
        # The request names what this one named: routed again by the same routing key, it runs
        # on the version whose schema typed its examples.
        _model_spec(request, model, version, signature.name, label)
        for i, example in enumerate(examples):
            where = f"examples[{i}]"
            try:
                merged = tf_examples.merged_with_context(context, example, where)
                serialized = writer.serialize(merged, where)
            except tf_examples.RequestError as e:
                raise bad_request(str(e)) from None
            request.input.example_list.examples.add().ParseFromString(serialized)
        return request

    def classify(
        self, model: str, version: int | None, body: bytes, arrival: Arrival, label=None
    ) -> dict:
        request = self._examples_request(
            classification_pb2.ClassificationRequest(), model, version, body, label
        )
        response = self.backend.classify(request)
        self._log(arrival, "classify_log", request, response)
        result = response.result
        return {
            "result": [[[c.label, c.score] for c in row.classes] for row in result.classifications]
        }

    def regress(
        self, model: str, version: int | None, body: bytes, arrival: Arrival, label=None
    ) -> dict:
        request = self._examples_request(
            regression_pb2.RegressionRequest(), model, version, body, label
        )
        response = self.backend.regress(request)
        self._log(arrival, "regress_log", request, response)
        return {"result": [r.value for r in response.result.regressions]}

    def feedback(self, model: str, body: bytes) -> dict:
        """POST /v1/models/NAME/feedback: ground truth for logged requests, one object
        {"request_id", "label"[, "row"]} or a list of them, kept beside the request log for
        `monitor` to join ("row": which row of a request of several, 0 by default)."""
        if self.request_log is None:
            raise ServingError(
                Code.FAILED_PRECONDITION,
                "This server logs no requests (serve --request-log-dir): feedback has nothing "
                "to be joined to",
            )
        self.backend.signature(model, None, DEFAULT_SIGNATURE)  # NOT_FOUND for another model
        given = _json_value(body)
        entries = given if isinstance(given, list) else [given]
        if not entries:
            raise bad_request("The feedback list is empty")
        labels = [
            _feedback_entry(entry, f"[{i}]" if isinstance(given, list) else "")
            for i, entry in enumerate(entries)
        ]
        if not self.request_log.log_feedback(labels):
            raise ServingError(
                Code.UNAVAILABLE,
                "The request log's queue is full: the feedback was not recorded; retry later",
            )
        return {"recorded": len(labels)}


def _feedback_entry(entry, where: str) -> dict:
    prefix = f"feedback{where}: " if where else ""
    if not isinstance(entry, dict):
        raise bad_request(f'{prefix}must be an object {{"request_id": ..., "label": ...}}')
    _refuse_unknown_keys(entry, {"request_id", "label", "row"})
    request_id, label, row = entry.get("request_id"), entry.get("label"), entry.get("row", 0)
    if not isinstance(request_id, str) or request_id_from(request_id) != request_id:
        raise bad_request(
            f'{prefix}"request_id" must be the X-Request-Id the answer carried (printable '
            "ASCII, at most 128 characters)"
        )
    if isinstance(label, (dict, list)) or label is None:
        raise bad_request(
            f'{prefix}"label" must be the label column\'s value (a number or a string), got '
            f"{json.dumps(label)}"
        )
    if isinstance(row, bool) or not isinstance(row, int) or row < 0:
        raise bad_request(f'{prefix}"row" must be the row\'s index in its request (0 or more)')
    return {"request_id": request_id, "label": label, "row": row}


@dataclasses.dataclass(frozen=True)
class Arrival:
    """When a request arrived, and its id (the client's X-Request-Id, or a new one)."""

    request_id: str
    epoch: float  # time.time()
    started: float  # time.monotonic(), for deadlines and latency
    routing_key: str = ""  # the client's X-Routing-Key, else the request id

    def details(self) -> RequestDetails:
        return RequestDetails(
            self.request_id,
            int(self.epoch * 1_000_000),
            (time.monotonic() - self.started) * 1000,
        )


class _JsonHandler(tornado.web.RequestHandler):
    def initialize(self, api: RestApi):
        self.api = api
        self.started = time.monotonic()
        request_id = request_id_from(self.request.headers.get("X-Request-Id"))
        key = self.request.headers.get(KEY_HEADER)
        self.arrival = Arrival(request_id, time.time(), self.started, key or request_id)
        self.set_header("X-Request-Id", self.arrival.request_id)

    def set_default_headers(self):
        self.set_header("Content-Type", "application/json")
        if hasattr(self, "arrival"):  # headers cleared for an error answer: the id stays
            self.set_header("X-Request-Id", self.arrival.request_id)

    def answer(self, status: int, content: dict) -> None:
        self.set_status(status)
        self.finish(json.dumps(content))

    def write_error(self, status_code: int, **kwargs) -> None:
        reason = self._reason
        exc_info = kwargs.get("exc_info")
        if exc_info and not isinstance(exc_info[1], tornado.web.HTTPError):
            log.error("Unexpected error answering %s", self.request.uri, exc_info=exc_info)
            reason = f"Internal error: {type(exc_info[1]).__name__}: {exc_info[1]}"
        self.finish(json.dumps({"error": reason}))

    def prepare(self):
        # Every request is routed by its key (a release's split), also in threads it runs in.
        REQUEST_KEY.set(self.arrival.routing_key)
        version = self.path_args[1] if len(self.path_args) > 1 else None
        if version is not None and int(version) > _INT64_MAX:
            self.answer(
                400,
                {
                    "error": f"Version {version} is out of range: a version is a 64-bit integer "
                    f"(at most {_INT64_MAX})"
                },
            )

    async def call(self, method, *args) -> None:
        """Answers with what `method` returns, run in a thread."""
        await self.respond(self.api.run(lambda: method(*args), self.started))

    async def respond(self, answer) -> None:
        try:
            content = await answer
        except ServingError as e:
            self.answer(HTTP_STATUS.get(e.code, 500), {"error": e.message})
            return
        self.answer(200, content)


def _version(text: str | None) -> int | None:
    return int(text) if text is not None else None


_INT64_MAX = 2**63 - 1
# Bodies larger than this are read (JSON and tf.Examples) in a thread, so that one large request
# does not hold up the event loop, and the others, for its whole reading.
_READ_IN_A_THREAD_BYTES = 256 * 1024


class StatusHandler(_JsonHandler):
    async def get(self, model: str, version: str | None, label: str | None):
        await self.call(self.api.status, model, _version(version), label)


class MetadataHandler(_JsonHandler):
    async def get(self, model: str, version: str | None, label: str | None):
        await self.call(self.api.metadata, model, _version(version), label)


@tornado.web.stream_request_body
class InferenceHandler(_JsonHandler):
    """POST :predict / :classify / :regress, with the body read as a stream, so that an
    oversized one is refused by its declared length, or as soon as it passes the limit."""

    def prepare(self):
        self._chunks: list[bytes] = []
        self._size = 0
        super().prepare()
        if self._finished:
            return
        declared = self.request.headers.get("Content-Length")
        if declared and declared.isdigit() and int(declared) > _drained_up_to(self.api.limits):
            # Far too large to read: refused now, and the connection closed. A smaller excess
            # is read and dropped first (data_received), then refused by post(): closing a
            # connection with the client's body still unread would reset it, and the client
            # might never see the 413.
            self._too_large(int(declared))

    def _too_large(self, size: int) -> None:
        if size > _drained_up_to(self.api.limits):
            self.set_header("Connection", "close")
        self.answer(
            413,
            {
                "error": f"The request body is {size} bytes or more, over the limit of "
                f"{self.api.limits.max_body_bytes} bytes (serve --max-body-mb): send fewer rows "
                "per request"
            },
        )

    def data_received(self, chunk: bytes) -> None:
        self._size += len(chunk)
        if self._size <= self.api.limits.max_body_bytes:
            self._chunks.append(chunk)
        else:
            self._chunks.clear()

    async def post(self, model: str, version: str | None, label: str | None, verb: str):
        if self._size > self.api.limits.max_body_bytes:
            self._too_large(self._size)
            return
        if time.monotonic() - self.started > self.api.limits.request_timeout:
            # The body itself took longer to arrive than the request may take.
            self.answer(
                504,
                {
                    "error": f"The request body took longer than {self.api.limits.request_timeout:g}"
                    " s to arrive (serve --request-timeout)"
                },
            )
            return
        body = b"".join(self._chunks)
        if verb == "predict":
            answer = self.api.predict(model, _version(version), body, self.arrival, label)
            await self.respond(answer)
            return
        method = {"classify": self.api.classify, "regress": self.api.regress}[verb]
        await self.call(method, model, _version(version), body, self.arrival, label)


class FeedbackHandler(_JsonHandler):
    async def post(self, model: str):
        await self.call(self.api.feedback, model, self.request.body)


class NotFoundHandler(_JsonHandler):
    def prepare(self):
        self.answer(
            404,
            {
                "error": f"Malformed request: {self.request.method} {self.request.path}; the API "
                "takes GET /v1/models/NAME[/versions/V|/labels/L][/metadata] and POST "
                "/v1/models/NAME[/versions/V|/labels/L]:predict|:classify|:regress"
            },
        )


_MODEL = r"/v1/models/([^/:]+)(?:/versions/(\d+)|/labels/([^/:]+))?"


def application(api: RestApi) -> tornado.web.Application:
    handlers = [
        (_MODEL + r"/?", StatusHandler, {"api": api}),
        (_MODEL + r"/metadata", MetadataHandler, {"api": api}),
        (_MODEL + r":(predict|classify|regress)", InferenceHandler, {"api": api}),
        (r"/v1/models/([^/:]+)/feedback", FeedbackHandler, {"api": api}),
    ]
    return tornado.web.Application(
        handlers, default_handler_class=NotFoundHandler, default_handler_args={"api": api}
    )


class _CountingHTTPServer(tornado.httpserver.HTTPServer):
    """Tornado's HTTP server, telling the API how many connections are open."""

    def initialize(self, api: RestApi, *args, **kwargs) -> None:
        super().initialize(*args, **kwargs)
        self.api = api

    def handle_stream(self, stream, address) -> None:
        self.api.connections += 1
        super().handle_stream(stream, address)

    def on_close(self, server_conn) -> None:
        self.api.connections -= 1
        super().on_close(server_conn)


def _drained_up_to(limits: Limits) -> int:
    """The largest body the server reads to the end, to refuse it (413) on a connection that
    stays open. Larger ones are refused unread and their connection closed."""
    return 2 * limits.max_body_bytes


# A client gets this long to send its request body (at least as long as --request-timeout): a
# body that is slow to arrive, as under load, is answered 504 once read, not cut off unanswered.
_BODY_TIMEOUT_SECONDS = 60.0


def http_server(api: RestApi) -> tornado.httpserver.HTTPServer:
    """The HTTP server: bodies beyond what the handler drains are cut off by tornado itself,
    slow bodies after a minute, idle connections after a minute."""
    return _CountingHTTPServer(
        api,
        application(api),
        max_body_size=_drained_up_to(api.limits),
        body_timeout=max(_BODY_TIMEOUT_SECONDS, api.limits.request_timeout),
        idle_connection_timeout=60,
    )

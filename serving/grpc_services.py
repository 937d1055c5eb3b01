"""TensorFlow Serving's gRPC services (ModelService, PredictionService) over a ModelRepository.

The answers and error codes follow TF Serving's: NOT_FOUND for a model or version it does not
serve, UNAVAILABLE while loading, INVALID_ARGUMENT for inputs that do not fit the signature or a
signature of the wrong kind (Classify needs a `tensorflow/serving/classify` signature, Regress a
`tensorflow/serving/regress` one, both with the input `inputs`, as TF Serving requires).

Both run the model through serving/inference.py, as the REST API does.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import time
from collections.abc import Callable

import grpc
import numpy as np
import tensorflow as tf
from tensorflow_serving.apis import (
    classification_pb2,
    get_model_metadata_pb2,
    get_model_status_pb2,
    model_service_pb2_grpc,
    predict_pb2,
    prediction_service_pb2_grpc,
    regression_pb2,
)

from serving.batching import Outputs
from serving.inference import (
    CLASSIFY_METHOD,
    DEFAULT_SIGNATURE,
    REGRESS_METHOD,
    Inference,
    Route,
    ServingError,
)
from serving.repository import ModelRepository, NotServed, ServedVersion, State
from serving.request_log import RequestDetails, RequestLogger, request_id_from
from serving.routing import REQUEST_KEY, ROUTING_KEY_METADATA

REQUEST_ID_KEY = "x-request-id"  # gRPC metadata, as the REST header X-Request-Id
CLASSIFY_INPUTS = "inputs"  # TF Serving's fixed input and output names for these signatures
CLASSIFY_CLASSES, CLASSIFY_SCORES, REGRESS_OUTPUTS = "classes", "scores", "outputs"


class DirectContext:
    """The part of grpc.ServicerContext the services use, for calls made in this process."""

    def abort(self, code: grpc.StatusCode, details: str):
        raise ServingError(code, details)


def _aborting_on_errors(method):
    """A servicer method whose ServingErrors end the call with their status, as TF Serving's."""

    @functools.wraps(method)
    def call(self, request, context):
        try:
            return method(self, request, context)
        except ServingError as e:
            context.abort(e.code, e.message)

    return call


class ModelService(model_service_pb2_grpc.ModelServiceServicer):
    def __init__(self, repository: ModelRepository, inference: Inference | None = None):
        self._repository = repository
        self._inference = inference  # resolves version labels

    def GetModelStatus(self, request, context):  # noqa: N802 - gRPC method name
        spec = request.model_spec
        if spec.name != self._repository.name:
            context.abort(
                grpc.StatusCode.NOT_FOUND, f"Could not find any versions of model {spec.name}"
            )
        version = spec.version.value if spec.HasField("version") else None
        if spec.WhichOneof("version_choice") == "version_label":
            if self._inference is None:
                context.abort(grpc.StatusCode.INVALID_ARGUMENT, "Version labels are not served")
            version = self._inference.served(spec.name, None, spec.version_label).version
        try:
            served = self._repository.statuses(version)
        except NotServed as e:
            context.abort(grpc.StatusCode.NOT_FOUND, str(e))
        response = get_model_status_pb2.GetModelStatusResponse()
        for v in served:
            status = response.model_version_status.add(version=v.version, state=v.state)
            if v.error:
                status.status.error_code = 2  # UNKNOWN, as TF Serving reports a failed load
                status.status.error_message = v.error
        return response


def _route(inference: Inference, model_spec) -> Route:
    label = (
        model_spec.version_label
        if model_spec.WhichOneof("version_choice") == "version_label"
        else None
    )
    version = model_spec.version.value if model_spec.HasField("version") else None
    return inference.route(model_spec.name, version, label)


def _serialized_examples(request_input) -> np.ndarray:
    kind = request_input.WhichOneof("kind")
    if kind == "example_list":
        examples = list(request_input.example_list.examples)
    elif kind == "example_list_with_context":
        context_features = request_input.example_list_with_context.context
        examples = []
        for example in request_input.example_list_with_context.examples:
            merged = tf.train.Example()
            merged.CopyFrom(context_features)
            merged.MergeFrom(example)
            examples.append(merged)
    else:
        examples = []
    return np.array([e.SerializeToString() for e in examples], dtype=object)


def _response_spec(request_spec, served: ServedVersion, signature_name: str):
    spec = type(request_spec)()
    spec.name = request_spec.name
    spec.version.value = served.version
    spec.signature_name = signature_name
    return spec


@dataclasses.dataclass(frozen=True)
class _Call:
    """A request read: the version and signature to run, its inputs, and how to answer with
    the outputs."""

    served: ServedVersion
    signature: str
    inputs: dict[str, np.ndarray]
    respond: Callable[[Outputs], object]
    route: Route | None = None


class PredictionService(prediction_service_pb2_grpc.PredictionServiceServicer):
    """TF Serving's PredictionService, blocking: each call waits for the batcher in its thread.
    The gRPC server uses `AsyncPredictionService`, the same calls awaited."""

    def __init__(self, inference: Inference):
        self.inference = inference

    def _run(self, call: _Call):
        return call.respond(
            self.inference.run(call.served, call.signature, call.inputs, call.route)
        )

    @_aborting_on_errors
    def Predict(self, request, context):  # noqa: N802 - gRPC method name
        return self._run(self.predict_call(request))

    @_aborting_on_errors
    def Classify(self, request, context):  # noqa: N802
        return self._run(self.classify_call(request))

    @_aborting_on_errors
    def Regress(self, request, context):  # noqa: N802
        return self._run(self.regress_call(request))

    def predict_call(self, request) -> _Call:
        route = _route(self.inference, request.model_spec)
        served = route.served
        name, _ = self.inference.signature(served, request.model_spec.signature_name)
        inputs = {k: tf.make_ndarray(v) for k, v in request.inputs.items()}

        def respond(outputs: Outputs):
            unknown = set(request.output_filter) - set(outputs)
            if unknown:
                raise ServingError(
                    grpc.StatusCode.INVALID_ARGUMENT,
                    f"output_filter names outputs the signature does not have: {sorted(unknown)}",
                )
            response = predict_pb2.PredictResponse(
                model_spec=_response_spec(request.model_spec, served, name)
            )
            for key in set(request.output_filter) or set(outputs):
                response.outputs[key].CopyFrom(tf.make_tensor_proto(outputs[key]))
            return response

        return _Call(served, name, inputs, respond, route)

    def _examples_call(self, request, method: str, respond) -> _Call:
        route = _route(self.inference, request.model_spec)
        served = route.served
        name, signature_def = self.inference.signature(
            served, request.model_spec.signature_name, method
        )
        if list(signature_def.inputs) != [CLASSIFY_INPUTS]:
            raise ServingError(
                grpc.StatusCode.INVALID_ARGUMENT,
                f"Signature {name!r} must take exactly one input named {CLASSIFY_INPUTS!r}",
            )
        examples = _serialized_examples(request.input)
        if examples.size == 0:
            raise ServingError(
                grpc.StatusCode.INVALID_ARGUMENT, "Input is empty: no examples given"
            )
        spec = _response_spec(request.model_spec, served, name)
        return _Call(
            served, name, {CLASSIFY_INPUTS: examples}, lambda out: respond(out, spec), route
        )

    def classify_call(self, request) -> _Call:
        def respond(outputs: Outputs, spec):
            result = classification_pb2.ClassificationResult()
            for labels_and_scores in classifications(outputs):
                row = result.classifications.add()
                for label, score in labels_and_scores:
                    c = row.classes.add()
                    if label is not None:
                        c.label = label
                    if score is not None:
                        c.score = score
            return classification_pb2.ClassificationResponse(result=result, model_spec=spec)

        return self._examples_call(request, CLASSIFY_METHOD, respond)

    def regress_call(self, request) -> _Call:
        def respond(outputs: Outputs, spec):
            result = regression_pb2.RegressionResult(
                regressions=[regression_pb2.Regression(value=v) for v in regressions(outputs)]
            )
            return regression_pb2.RegressionResponse(result=result, model_spec=spec)

        return self._examples_call(request, REGRESS_METHOD, respond)

    @_aborting_on_errors
    def GetModelMetadata(self, request, context):  # noqa: N802
        if list(request.metadata_field) != ["signature_def"]:
            raise ServingError(
                grpc.StatusCode.INVALID_ARGUMENT,
                "GetModelMetadataRequest must ask for metadata_field ['signature_def'], the "
                f"one field served; got {list(request.metadata_field)}",
            )
        served = _route(self.inference, request.model_spec).served
        response = get_model_metadata_pb2.GetModelMetadataResponse(
            model_spec=_response_spec(request.model_spec, served, "")
        )
        signature_map = get_model_metadata_pb2.SignatureDefMap()
        for name, signature_def in served.signature_defs.items():
            signature_map.signature_def[name].CopyFrom(signature_def)
        response.metadata["signature_def"].Pack(signature_map)
        return response


def classifications(outputs: Outputs) -> list[list[tuple[str | None, float | None]]]:
    """A classification signature's outputs as rows of (label, score), as TF Serving's
    ClassificationResult holds them."""
    scores, classes = outputs.get(CLASSIFY_SCORES), outputs.get(CLASSIFY_CLASSES)
    if scores is None and classes is None:
        raise ServingError(
            grpc.StatusCode.INVALID_ARGUMENT,
            "Classification signature has neither 'scores' nor 'classes' outputs",
        )
    rows, width = (scores if scores is not None else classes).shape[:2]
    return [
        [
            (
                classes[i][j].decode() if classes is not None else None,
                float(scores[i][j]) if scores is not None else None,
            )
            for j in range(width)
        ]
        for i in range(rows)
    ]


def regressions(outputs: Outputs) -> list[float]:
    """A regression signature's outputs, one value per example."""
    if REGRESS_OUTPUTS not in outputs:
        raise ServingError(
            grpc.StatusCode.INVALID_ARGUMENT, "Regression signature has no 'outputs' output"
        )
    return [float(v) for v in np.reshape(outputs[REGRESS_OUTPUTS], [-1])]


class AsyncModelService(model_service_pb2_grpc.ModelServiceServicer):
    """ModelService for grpc.aio: its answers come from the repository at once."""

    def __init__(self, repository: ModelRepository, inference: Inference | None = None):
        self._service = ModelService(repository, inference)

    async def GetModelStatus(self, request, context):  # noqa: N802
        try:
            return self._service.GetModelStatus(request, DirectContext())
        except ServingError as e:
            await context.abort(e.code, e.message)


class AsyncPredictionService(prediction_service_pb2_grpc.PredictionServiceServicer):
    """PredictionService for grpc.aio, on the server's event loop: a request waiting for the
    batcher holds no thread."""

    def __init__(self, inference: Inference, request_log: RequestLogger | None = None):
        self._service = PredictionService(inference)
        self._inference = inference
        self._request_log = request_log

    async def _run(self, make_call, log_type: str, request, context):
        epoch, started = time.time(), time.monotonic()
        metadata = dict(context.invocation_metadata())
        given = metadata.get(REQUEST_ID_KEY)
        request_id = request_id_from(given if isinstance(given, str) else None)
        await context.send_initial_metadata(((REQUEST_ID_KEY, request_id),))
        key = metadata.get(ROUTING_KEY_METADATA)
        token = REQUEST_KEY.set(key if isinstance(key, str) and key else request_id)
        try:
            call = make_call(request)
            future = self._inference.submit(call.served, call.signature, call.inputs, call.route)
            response = call.respond(await asyncio.wrap_future(future))
        except ServingError as e:
            await context.abort(e.code, e.message)
        finally:
            REQUEST_KEY.reset(token)
        if self._request_log is not None:
            latency_ms = (time.monotonic() - started) * 1000
            details = RequestDetails(request_id, int(epoch * 1_000_000), latency_ms)
            self._request_log.log_message(details, log_type, request, response)
        return response

    async def Predict(self, request, context):  # noqa: N802
        return await self._run(self._service.predict_call, "predict_log", request, context)

    async def Classify(self, request, context):  # noqa: N802
        return await self._run(self._service.classify_call, "classify_log", request, context)

    async def Regress(self, request, context):  # noqa: N802
        return await self._run(self._service.regress_call, "regress_log", request, context)

    async def GetModelMetadata(self, request, context):  # noqa: N802
        try:
            return self._service.GetModelMetadata(request, DirectContext())
        except ServingError as e:
            await context.abort(e.code, e.message)


def add_services(
    server: grpc.aio.Server, inference: Inference, request_log: RequestLogger | None = None
) -> None:
    """TF Serving's two services, on a grpc.aio server."""
    model_service_pb2_grpc.add_ModelServiceServicer_to_server(
        AsyncModelService(inference.repository, inference), server
    )
    prediction_service_pb2_grpc.add_PredictionServiceServicer_to_server(
        AsyncPredictionService(inference, request_log), server
    )


__all__ = [
    "DEFAULT_SIGNATURE",
    "State",
    "ServingError",
    "DirectContext",
    "ModelService",
    "PredictionService",
]

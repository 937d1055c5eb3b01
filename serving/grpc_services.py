"""TensorFlow Serving's gRPC services (ModelService, PredictionService) over a ModelRepository.

The answers and error codes follow TF Serving's: NOT_FOUND for a model or version it does not
serve, UNAVAILABLE while loading, INVALID_ARGUMENT for inputs that do not fit the signature or a
signature of the wrong kind (Classify needs a `tensorflow/serving/classify` signature, Regress a
`tensorflow/serving/regress` one, both with the input `inputs`, as TF Serving requires).

The REST API calls the same methods in-process, through `DirectContext`.
"""

from __future__ import annotations

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

from serving.repository import ModelRepository, NotServed, ServedVersion, State

DEFAULT_SIGNATURE = "serving_default"
PREDICT_METHOD = "tensorflow/serving/predict"
CLASSIFY_METHOD = "tensorflow/serving/classify"
REGRESS_METHOD = "tensorflow/serving/regress"
CLASSIFY_INPUTS = "inputs"  # TF Serving's fixed input and output names for these signatures
CLASSIFY_CLASSES, CLASSIFY_SCORES, REGRESS_OUTPUTS = "classes", "scores", "outputs"


class ServingError(Exception):
    """A request TF Serving would refuse: its gRPC status code and message."""

    def __init__(self, code: grpc.StatusCode, message: str):
        super().__init__(message)
        self.code = code
        self.message = message


class DirectContext:
    """The part of grpc.ServicerContext the services use, for calls made in this process."""

    def abort(self, code: grpc.StatusCode, details: str):
        raise ServingError(code, details)


class ModelService(model_service_pb2_grpc.ModelServiceServicer):
    def __init__(self, repository: ModelRepository):
        self._repository = repository

    def GetModelStatus(self, request, context):  # noqa: N802 - gRPC method name
        spec = request.model_spec
        if spec.name != self._repository.name:
            context.abort(
                grpc.StatusCode.NOT_FOUND, f"Could not find any versions of model {spec.name}"
            )
        version = spec.version.value if spec.HasField("version") else None
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


def _served(repository: ModelRepository, model_spec, context) -> ServedVersion:
    if model_spec.name != repository.name:
        context.abort(
            grpc.StatusCode.NOT_FOUND,
            f"Servable not found for request: Latest({model_spec.name})",
        )
    if model_spec.WhichOneof("version_choice") == "version_label":
        context.abort(
            grpc.StatusCode.INVALID_ARGUMENT,
            "Version labels are not configured on this server; ask for a version number.",
        )
    try:
        asked = model_spec.version.value if model_spec.HasField("version") else None
        return repository.get(asked)
    except NotServed as e:
        code = grpc.StatusCode.UNAVAILABLE if e.unavailable else grpc.StatusCode.NOT_FOUND
        context.abort(code, str(e))


def _signature_def(served: ServedVersion, name: str, context, method: str | None = None):
    name = name or DEFAULT_SIGNATURE
    signature_def = served.signature_defs.get(name)
    if signature_def is None or name not in served.saved_model.signatures:
        context.abort(
            grpc.StatusCode.INVALID_ARGUMENT,
            f'Serving signature name: "{name}" not found in signature def; this version has '
            f"{sorted(served.signature_defs)}",
        )
    if method and signature_def.method_name != method:
        kind = "classification" if method == CLASSIFY_METHOD else "regression"
        context.abort(
            grpc.StatusCode.INVALID_ARGUMENT,
            f"Expected {kind} signature method_name to be {method}. Was: "
            f"{signature_def.method_name} (signature {name!r}; ask for a {kind} signature "
            f"with signature_name, or use :predict)",
        )
    return name, signature_def


def _run(served: ServedVersion, name: str, inputs: dict[str, np.ndarray], context):
    """Runs a signature; inputs that do not fit are INVALID_ARGUMENT, as in TF Serving."""
    function = served.signature(name)
    expected = function.structured_input_signature[1]
    missing, unknown = set(expected) - set(inputs), set(inputs) - set(expected)
    if missing or unknown:
        context.abort(
            grpc.StatusCode.INVALID_ARGUMENT,
            f"Request inputs do not match signature {name!r}: missing {sorted(missing)}, "
            f"unknown {sorted(unknown)}",
        )
    try:
        converted = {k: tf.convert_to_tensor(v, dtype=expected[k].dtype) for k, v in inputs.items()}
        return function(**converted)
    except (tf.errors.InvalidArgumentError, ValueError, TypeError) as e:
        message = e.message if isinstance(e, tf.errors.OpError) else str(e)
        context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"{type(e).__name__}: {message}")
    except tf.errors.OpError as e:
        context.abort(grpc.StatusCode.INTERNAL, f"{type(e).__name__}: {e.message}")


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


class PredictionService(prediction_service_pb2_grpc.PredictionServiceServicer):
    def __init__(self, repository: ModelRepository):
        self._repository = repository

    def Predict(self, request, context):  # noqa: N802 - gRPC method name
        served = _served(self._repository, request.model_spec, context)
        name, _ = _signature_def(served, request.model_spec.signature_name, context)
        inputs = {k: tf.make_ndarray(v) for k, v in request.inputs.items()}
        outputs = _run(served, name, inputs, context)
        unknown = set(request.output_filter) - set(outputs)
        if unknown:
            context.abort(
                grpc.StatusCode.INVALID_ARGUMENT,
                f"output_filter names outputs the signature does not have: {sorted(unknown)}",
            )
        response = predict_pb2.PredictResponse(
            model_spec=_response_spec(request.model_spec, served, name)
        )
        for key in set(request.output_filter) or set(outputs):
            response.outputs[key].CopyFrom(tf.make_tensor_proto(outputs[key].numpy()))
        return response

    def _run_on_examples(self, request, context, method: str):
        served = _served(self._repository, request.model_spec, context)
        name, signature_def = _signature_def(
            served, request.model_spec.signature_name, context, method
        )
        if list(signature_def.inputs) != [CLASSIFY_INPUTS]:
            context.abort(
                grpc.StatusCode.INVALID_ARGUMENT,
                f"Signature {name!r} must take exactly one input named {CLASSIFY_INPUTS!r}",
            )
        examples = _serialized_examples(request.input)
        if examples.size == 0:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, "Input is empty: no examples given")
        outputs = _run(served, name, {CLASSIFY_INPUTS: examples}, context)
        return served, name, outputs

    def Classify(self, request, context):  # noqa: N802
        served, name, outputs = self._run_on_examples(request, context, CLASSIFY_METHOD)
        scores, classes = outputs.get(CLASSIFY_SCORES), outputs.get(CLASSIFY_CLASSES)
        if scores is None and classes is None:
            context.abort(
                grpc.StatusCode.INVALID_ARGUMENT,
                "Classification signature has neither 'scores' nor 'classes' outputs",
            )
        rows, width = (scores if scores is not None else classes).shape[:2]
        result = classification_pb2.ClassificationResult()
        for i in range(rows):
            row = result.classifications.add()
            for j in range(width):
                c = row.classes.add()
                if classes is not None:
                    c.label = classes[i][j].numpy().decode()
                if scores is not None:
                    c.score = float(scores[i][j])
        return classification_pb2.ClassificationResponse(
            result=result, model_spec=_response_spec(request.model_spec, served, name)
        )

    def Regress(self, request, context):  # noqa: N802
        served, name, outputs = self._run_on_examples(request, context, REGRESS_METHOD)
        if REGRESS_OUTPUTS not in outputs:
            context.abort(
                grpc.StatusCode.INVALID_ARGUMENT, "Regression signature has no 'outputs' output"
            )
        values = tf.reshape(outputs[REGRESS_OUTPUTS], [-1]).numpy()
        result = regression_pb2.RegressionResult(
            regressions=[regression_pb2.Regression(value=float(v)) for v in values]
        )
        return regression_pb2.RegressionResponse(
            result=result, model_spec=_response_spec(request.model_spec, served, name)
        )

    def GetModelMetadata(self, request, context):  # noqa: N802
        if list(request.metadata_field) != ["signature_def"]:
            context.abort(
                grpc.StatusCode.INVALID_ARGUMENT,
                "GetModelMetadataRequest must ask for metadata_field ['signature_def'], the "
                f"one field served; got {list(request.metadata_field)}",
            )
        served = _served(self._repository, request.model_spec, context)
        response = get_model_metadata_pb2.GetModelMetadataResponse(
            model_spec=_response_spec(request.model_spec, served, "")
        )
        signature_map = get_model_metadata_pb2.SignatureDefMap()
        for name, signature_def in served.signature_defs.items():
            signature_map.signature_def[name].CopyFrom(signature_def)
        response.metadata["signature_def"].Pack(signature_map)
        return response


def add_services(server: grpc.Server, repository: ModelRepository) -> None:
    model_service_pb2_grpc.add_ModelServiceServicer_to_server(ModelService(repository), server)
    prediction_service_pb2_grpc.add_PredictionServiceServicer_to_server(
        PredictionService(repository), server
    )


__all__ = ["State", "ServingError", "DirectContext", "ModelService", "PredictionService"]

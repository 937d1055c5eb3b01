"""A model server speaking TensorFlow Serving's gRPC API, for machines without TF Serving.

    python -m components.infra_validator.model_server --port=PORT --model_name=NAME \
        --model_base_path=BASE [--host=127.0.0.1]

Like `tensorflow_model_server`, it serves the highest numeric version under `model_base_path`
(TF Serving's layout: BASE/<version>/saved_model.pb), loading it in this fresh process with nothing
but TensorFlow, and answers ModelService.GetModelStatus and PredictionService Predict, Classify,
Regress and GetModelMetadata. It listens on loopback only by default. Load errors are reported the
way TF Serving reports them: the version's state is END with the error in its status.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading
from concurrent import futures

import grpc
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

State = get_model_status_pb2.ModelVersionStatus.State
DEFAULT_SIGNATURE = "serving_default"
log = logging.getLogger("model_server")


def latest_version_dir(model_base_path: str) -> tuple[int, str]:
    """The highest numeric version folder under the base path, as TF Serving picks it."""
    versions = [int(d) for d in tf.io.gfile.listdir(model_base_path) if d.strip("/").isdigit()]
    if not versions:
        raise FileNotFoundError(f"no numeric version folder under {model_base_path}")
    version = max(versions)
    return version, os.path.join(model_base_path, str(version))


class LoadedModel:
    """One model version, loaded in the background; its state follows TF Serving's lifecycle."""

    def __init__(self, name: str, model_base_path: str):
        self.name = name
        self.model_base_path = model_base_path
        self.version = 0
        self.state = State.START
        self.error: str | None = None
        self.saved_model = None
        self._lock = threading.Lock()

    def load(self) -> None:
        with self._lock:
            self.state = State.LOADING
        try:
            version, path = latest_version_dir(self.model_base_path)
            self.version = version
            saved_model = tf.saved_model.load(path, tags=[tf.saved_model.SERVING])
            if not saved_model.signatures:
                raise ValueError(f"the SavedModel at {path} has no serving signatures")
        except Exception as e:  # noqa: BLE001 - any load failure makes the version END
            log.exception("Loading model %s failed", self.name)
            with self._lock:
                self.error = f"{type(e).__name__}: {e}"
                self.state = State.END
            return
        with self._lock:
            self.saved_model = saved_model
            self.state = State.AVAILABLE
        log.info("Model %s version %d is AVAILABLE", self.name, self.version)

    def signature(self, model_spec, context) -> tf.types.experimental.ConcreteFunction:
        """The requested signature, or the RPC is aborted with TF Serving's status codes."""
        if model_spec.name != self.name:
            context.abort(
                grpc.StatusCode.NOT_FOUND,
                f"Servable not found for request: Latest({model_spec.name})",
            )
        if model_spec.HasField("version") and model_spec.version.value != self.version:
            context.abort(
                grpc.StatusCode.NOT_FOUND,
                f"Servable not found for request: Specific({model_spec.name}, {model_spec.version.value})",
            )
        if self.state != State.AVAILABLE:
            context.abort(
                grpc.StatusCode.UNAVAILABLE,
                f"Model {self.name} is not available: {self.error or 'still loading'}",
            )
        name = model_spec.signature_name or DEFAULT_SIGNATURE
        if name not in self.saved_model.signatures:
            context.abort(
                grpc.StatusCode.INVALID_ARGUMENT,
                f'Serving signature name: "{name}" not found in signature def',
            )
        return self.saved_model.signatures[name]


def _call(signature, inputs: dict[str, tf.Tensor], context) -> dict[str, tf.Tensor]:
    """Runs a signature; bad inputs become INVALID_ARGUMENT like in TF Serving."""
    expected = signature.structured_input_signature[1]
    missing = set(expected) - set(inputs)
    unknown = set(inputs) - set(expected)
    if missing or unknown:
        context.abort(
            grpc.StatusCode.INVALID_ARGUMENT,
            f"Request inputs do not match the signature: missing {sorted(missing)}, unknown {sorted(unknown)}",
        )
    try:
        converted = {k: tf.convert_to_tensor(v, dtype=expected[k].dtype) for k, v in inputs.items()}
        return signature(**converted)
    except (tf.errors.InvalidArgumentError, ValueError, TypeError) as e:
        context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"{type(e).__name__}: {e}")
    except tf.errors.OpError as e:
        context.abort(grpc.StatusCode.INTERNAL, f"{type(e).__name__}: {e.message}")


def _serialized_examples(request_input) -> tf.Tensor:
    kind = request_input.WhichOneof("kind")
    if kind == "example_list":
        examples = request_input.example_list.examples
    elif kind == "example_list_with_context":
        ctx = request_input.example_list_with_context.context
        examples = []
        for example in request_input.example_list_with_context.examples:
            merged = tf.train.Example()
            merged.CopyFrom(ctx)
            merged.MergeFrom(example)
            examples.append(merged)
    else:
        examples = []
    return tf.constant([e.SerializeToString() for e in examples], dtype=tf.string)


def _single_input_name(signature, context) -> str:
    names = list(signature.structured_input_signature[1])
    if len(names) != 1:
        context.abort(
            grpc.StatusCode.INVALID_ARGUMENT,
            f"Expected one input tensor of serialized examples, the signature has {names}",
        )
    return names[0]


class ModelService(model_service_pb2_grpc.ModelServiceServicer):
    def __init__(self, model: LoadedModel):
        self._model = model

    def GetModelStatus(self, request, context):  # noqa: N802 - gRPC method name
        if request.model_spec.name != self._model.name:
            context.abort(
                grpc.StatusCode.NOT_FOUND,
                f"Could not find any versions of model {request.model_spec.name}",
            )
        status = get_model_status_pb2.ModelVersionStatus(
            version=self._model.version, state=self._model.state
        )
        if self._model.error:
            status.status.error_code = 2  # UNKNOWN
            status.status.error_message = self._model.error
        return get_model_status_pb2.GetModelStatusResponse(model_version_status=[status])


class PredictionService(prediction_service_pb2_grpc.PredictionServiceServicer):
    def __init__(self, model: LoadedModel):
        self._model = model

    def _model_spec(self, request_spec, signature_name: str | None = None):
        """The request's model spec, completed with the served version and signature name."""
        spec = type(request_spec)()
        spec.CopyFrom(request_spec)
        spec.version.value = self._model.version
        spec.signature_name = (
            signature_name
            if signature_name is not None
            else request_spec.signature_name or DEFAULT_SIGNATURE
        )
        return spec

    def Predict(self, request, context):  # noqa: N802
        signature = self._model.signature(request.model_spec, context)
        inputs = {k: tf.make_ndarray(v) for k, v in request.inputs.items()}
        outputs = _call(signature, inputs, context)
        wanted = set(request.output_filter) or set(outputs)
        response = predict_pb2.PredictResponse(model_spec=self._model_spec(request.model_spec))
        for key in wanted & set(outputs):
            response.outputs[key].CopyFrom(tf.make_tensor_proto(outputs[key].numpy()))
        return response

    def _call_on_examples(self, request, context) -> dict[str, tf.Tensor]:
        """Classify and Regress: the signature's one input gets the request's serialized examples."""
        signature = self._model.signature(request.model_spec, context)
        examples = _serialized_examples(request.input)
        return _call(signature, {_single_input_name(signature, context): examples}, context)

    def Classify(self, request, context):  # noqa: N802
        outputs = self._call_on_examples(request, context)
        scores, classes = outputs.get("scores"), outputs.get("classes")
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
            result=result, model_spec=self._model_spec(request.model_spec)
        )

    def Regress(self, request, context):  # noqa: N802
        outputs = self._call_on_examples(request, context)
        if "outputs" not in outputs:
            context.abort(
                grpc.StatusCode.INVALID_ARGUMENT, "Regression signature has no 'outputs' output"
            )
        values = tf.reshape(outputs["outputs"], [-1]).numpy()
        result = regression_pb2.RegressionResult(
            regressions=[regression_pb2.Regression(value=float(v)) for v in values]
        )
        return regression_pb2.RegressionResponse(
            result=result,
            model_spec=self._model_spec(request.model_spec),
        )

    def GetModelMetadata(self, request, context):  # noqa: N802
        self._model.signature(request.model_spec, context)
        response = get_model_metadata_pb2.GetModelMetadataResponse(
            model_spec=self._model_spec(request.model_spec, "")
        )
        signature_map = get_model_metadata_pb2.SignatureDefMap()
        for name, fn in self._model.saved_model.signatures.items():
            signature_def = signature_map.signature_def[name]
            signature_def.method_name = "tensorflow/serving/predict"
            for key, spec in fn.structured_input_signature[1].items():
                signature_def.inputs[key].name = key
                signature_def.inputs[key].dtype = spec.dtype.as_datatype_enum
        response.metadata["signature_def"].Pack(signature_map)
        return response


def serve(host: str, port: int, model_name: str, model_base_path: str) -> None:
    model = LoadedModel(model_name, model_base_path)
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    model_service_pb2_grpc.add_ModelServiceServicer_to_server(ModelService(model), server)
    prediction_service_pb2_grpc.add_PredictionServiceServicer_to_server(
        PredictionService(model), server
    )
    if server.add_insecure_port(f"{host}:{port}") == 0:
        raise SystemExit(f"model_server: cannot listen on {host}:{port}")
    server.start()
    log.info("Listening on %s:%d for model %s at %s", host, port, model_name, model_base_path)
    stopped = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stopped.set())
    threading.Thread(target=model.load, daemon=True).start()
    stopped.wait()
    server.stop(grace=1).wait()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, required=True, help="gRPC port")
    parser.add_argument(
        "--host", default="127.0.0.1", help="address to listen on (default: loopback)"
    )
    parser.add_argument("--model_name", required=True)
    parser.add_argument(
        "--model_base_path", required=True, help="folder holding numeric version folders"
    )
    args = parser.parse_args(argv)
    logging.basicConfig(
        stream=sys.stderr, level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s"
    )
    serve(args.host, args.port, args.model_name, args.model_base_path)


if __name__ == "__main__":
    main()

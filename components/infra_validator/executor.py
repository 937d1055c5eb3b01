"""InfraValidator executor: TFX's own executor, with the model server run as a local process.

Reused from TFX unchanged: reading the specs, the SIGTERM handler, copying the model into TF
Serving's layout, the request builder, the retry loop, the TF Serving gRPC client and the
InfraBlessing artifact Pusher reads. Changed: the runner (a local child process instead of Docker
or a Kubernetes pod), per-request timeouts, and the reason for the verdict, recorded on the
blessing as the custom property `reason` and in the execution's log.
"""

from __future__ import annotations

import os
import time
from typing import Any

import grpc
from absl import logging
from tensorflow_serving.apis import (
    classification_pb2,
    get_model_status_pb2,
    model_pb2,
    predict_pb2,
    regression_pb2,
)
from tfx import types
from tfx.components.infra_validator import error_types, request_builder, serving_bins
from tfx.utils import io_utils

from components import tfx_private
from components.infra_validator.runner import LocalProcessRunner, find_model_server_binary

MODEL_SERVER_BINARY_KEY = "model_server_binary"
REQUEST_TIMEOUT_KEY = "request_timeout_seconds"
DEFAULT_REQUEST_TIMEOUT_SECONDS = 30.0
BLESSED_KEY = "blessed"
REASON_KEY = "reason"
SERVER_KEY = "model_server"
BLESSED_FILE = "INFRA_BLESSED"
NOT_BLESSED_FILE = "INFRA_NOT_BLESSED"


class TimedTensorFlowServingClient(tfx_private.TensorFlowServingClientBase):
    """TFX's TF Serving client, with a deadline on every RPC it makes."""

    def __init__(self, endpoint: str, model_name: str, request_timeout_seconds: float):
        super().__init__(endpoint=endpoint, model_name=model_name)
        self._timeout = request_timeout_seconds

    def get_model_status(self) -> get_model_status_pb2.GetModelStatusResponse:
        request = get_model_status_pb2.GetModelStatusRequest(
            model_spec=model_pb2.ModelSpec(name=self.model_name)
        )
        return self.model_service.GetModelStatus(request, timeout=self._timeout)

    def send_request(self, request) -> None:
        if isinstance(request, classification_pb2.ClassificationRequest):
            self.prediction_service.Classify(request, timeout=self._timeout)
        elif isinstance(request, regression_pb2.RegressionRequest):
            self.prediction_service.Regress(request, timeout=self._timeout)
        elif isinstance(request, predict_pb2.PredictRequest):
            self.prediction_service.Predict(request, timeout=self._timeout)
        else:
            raise NotImplementedError(f"Unsupported request type {type(request).__name__}")


class Executor(tfx_private.InfraValidatorExecutorBase):
    """Runs LOAD_ONLY or LOAD_AND_QUERY validation against a local model server process."""

    def Do(
        self,
        input_dict: dict[str, list[types.Artifact]],
        output_dict: dict[str, list[types.Artifact]],
        exec_properties: dict[str, Any],
    ) -> None:  # noqa: N802
        self._binary = find_model_server_binary(
            exec_properties.get(MODEL_SERVER_BINARY_KEY) or None
        )
        self._request_timeout = float(
            exec_properties.get(REQUEST_TIMEOUT_KEY) or DEFAULT_REQUEST_TIMEOUT_SECONDS
        )
        self._failures: list[str] = []
        self._requests_sent = 0
        super().Do(input_dict, output_dict, exec_properties)

    def validate(self, model, examples, blessing, serving_spec, validation_spec, request_spec):
        started = time.monotonic()
        server = self._binary or "project model server (python, TensorFlow)"
        blessing.set_string_custom_property(SERVER_KEY, server)
        binaries = serving_bins.parse_serving_binaries(serving_spec)
        if not binaries:
            raise ValueError(
                "ServingSpec.tensorflow_serving needs at least one tag (e.g. 'latest')."
            )

        requests = []
        if examples and request_spec:
            try:
                requests = request_builder.build_requests(
                    model_name=serving_spec.model_name,
                    model=model,
                    examples=examples,
                    request_spec=request_spec,
                )
            except Exception as e:  # noqa: BLE001 - a model whose signatures cannot be queried
                logging.exception("Building requests for the model's signatures failed.")
                self._mark(
                    blessing,
                    False,
                    f"cannot build requests for the model's serving signatures: {e}",
                )
                return

        model_path = self.prepare_model_path(model, serving_spec)
        passed = all(
            self.validate_with_retry(
                model_path=model_path,
                serving_binary=b,
                serving_spec=serving_spec,
                validation_spec=validation_spec,
                requests=requests,
            )
            for b in binaries
        )
        seconds = time.monotonic() - started
        if passed:
            mode = f"answered {len(requests)} requests" if requests else "loaded (LOAD_ONLY)"
            self._mark(
                blessing, True, f"the model loaded in {server} and {mode} in {seconds:.1f} s"
            )
            if requests and request_spec.make_warmup:
                self.create_warmup_model(blessing, model_path, requests)
        else:
            tries = validation_spec.num_tries
            self._mark(
                blessing, False, f"failed {tries} of {tries} attempts; last: {self._failures[-1]}"
            )

    def _mark(self, blessing: types.Artifact, blessed: bool, reason: str) -> None:
        logging.info(
            "InfraValidator verdict: %s: %s", "blessed" if blessed else "NOT blessed", reason
        )
        io_utils.write_string_file(
            os.path.join(blessing.uri, BLESSED_FILE if blessed else NOT_BLESSED_FILE), ""
        )
        blessing.set_int_custom_property(BLESSED_KEY, int(blessed))
        blessing.set_string_custom_property(REASON_KEY, reason)

    def validate_once(self, model_path, serving_binary, serving_spec, validation_spec, requests):
        deadline = time.time() + validation_spec.max_loading_time_seconds
        runner = LocalProcessRunner(
            model_base_path=os.path.dirname(model_path),
            model_name=serving_spec.model_name,
            binary=self._binary,
        )
        try:
            logging.info("Starting %r.", runner)
            runner.Start()
            runner.WaitUntilRunning(deadline)
            client = TimedTensorFlowServingClient(
                runner.GetEndpoint(), serving_spec.model_name, self._request_timeout
            )
            try:
                _wait_until_model_loaded(runner, client, deadline)
            except error_types.ValidationFailed as e:
                raise error_types.ValidationFailed(
                    f"the model did not load: {_load_error(client) or e}"
                ) from e
            except error_types.DeadlineExceeded as e:
                raise error_types.DeadlineExceeded(
                    f"the model was not AVAILABLE within {validation_spec.max_loading_time_seconds} s"
                ) from e
            if requests:
                client.SendRequests(requests)
        except error_types.GracefulShutdown:
            raise
        except Exception as e:
            self._failures.append(_describe(e))
            logging.exception("Infra validation attempt failed: %s", self._failures[-1])
            logging.error("Model server log:\n%s", runner.GetLogs())
            raise
        finally:
            logging.info("Stopping %r.", runner)
            runner.Stop()


def _wait_until_model_loaded(runner: LocalProcessRunner, client, deadline: float) -> None:
    """TFX's WaitUntilModelLoaded a second at a time, checking between them that the server is
    still running: one that died (its port taken by another process between picking and binding,
    say, while something else answers on it) fails this attempt at once, not at the deadline, and
    the next attempt starts a server on another port."""
    while True:
        runner.raise_if_exited()
        try:
            client.WaitUntilModelLoaded(min(deadline, time.time() + 1.0), polling_interval_sec=0.5)
            return
        except error_types.DeadlineExceeded:
            if time.time() >= deadline:
                raise


def _load_error(client: TimedTensorFlowServingClient) -> str | None:
    try:
        response = client.get_model_status()
    except Exception:  # noqa: BLE001
        return None
    messages = [
        s.status.error_message for s in response.model_version_status if s.status.error_message
    ]
    return "; ".join(messages) or None


def _describe(error: BaseException) -> str:
    """A one-line reason; a gRPC error (also when TFX's client wrapped it) gives the server's own
    message."""
    cause: BaseException | None = error
    while cause is not None:
        if isinstance(cause, grpc.RpcError) and hasattr(cause, "code"):
            return f"a query failed with {cause.code().name}: {cause.details()}"[:500]
        cause = cause.__cause__
    return f"{type(error).__name__}: {error}".splitlines()[0][:500]

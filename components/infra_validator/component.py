"""The InfraValidator component: TFX's InfraValidator interface, a local-process model server.

It has TFX's InfraValidator inputs (`model`, `examples`), output (`blessing`, an InfraBlessing that
Pusher reads unchanged) and parameters (`serving_spec`, `validation_spec`, `request_spec`), plus two
optional ones: `model_server_binary` (a `tensorflow_model_server` to use instead of the project's
server) and `request_timeout_seconds`. It is not a subclass of TFX's class, so
`KubeflowV2DagRunner` compiles it (it refuses any `isinstance(node, InfraValidator)`), and inside a
Kubeflow pod it starts the model server as a child process exactly as it does locally.
"""

from __future__ import annotations

from tfx import types
from tfx.dsl.components.base import base_component, executor_spec
from tfx.proto import infra_validator_pb2
from tfx.types import standard_artifacts, standard_component_specs
from tfx.types.component_spec import ExecutionParameter

from components.infra_validator import executor


class LocalInfraValidatorSpec(standard_component_specs.InfraValidatorSpec):
    """TFX's InfraValidatorSpec plus the local model server's settings."""

    PARAMETERS = {
        **standard_component_specs.InfraValidatorSpec.PARAMETERS,
        executor.MODEL_SERVER_BINARY_KEY: ExecutionParameter(type=str, optional=True),
        executor.REQUEST_TIMEOUT_KEY: ExecutionParameter(type=float, optional=True),
    }


class InfraValidator(base_component.BaseComponent):
    """Loads the candidate model in a real model server process and queries it before a push."""

    SPEC_CLASS = LocalInfraValidatorSpec
    EXECUTOR_SPEC = executor_spec.ExecutorClassSpec(executor.Executor)

    def __init__(
        self,
        model: types.BaseChannel,
        serving_spec: infra_validator_pb2.ServingSpec,
        examples: types.BaseChannel | None = None,
        request_spec: infra_validator_pb2.RequestSpec | None = None,
        validation_spec: infra_validator_pb2.ValidationSpec | None = None,
        model_server_binary: str | None = None,
        request_timeout_seconds: float | None = None,
    ):
        """Same arguments as `tfx.components.InfraValidator`, plus the two above."""
        spec = LocalInfraValidatorSpec(
            model=model,
            examples=examples,
            blessing=types.Channel(type=standard_artifacts.InfraBlessing),
            serving_spec=serving_spec,
            validation_spec=validation_spec,
            request_spec=request_spec,
            model_server_binary=model_server_binary,
            request_timeout_seconds=request_timeout_seconds,
        )
        super().__init__(spec=spec)

"""TFX's DistributionValidator, with its config readable inside a Kubeflow task.

Under LocalDagRunner the `config` execution property reaches the executor as a
DistributionValidatorConfig proto; through Kubeflow's V2 container entrypoint it arrives as the
proto's JSON string, which TFX 1.16's executor then fails on (`'str' object has no attribute
'default_slice_config'`). This executor parses the string first; everything else is TFX's.
"""

from __future__ import annotations

from tfx.components.distribution_validator import component as tfx_component
from tfx.components.distribution_validator import executor as tfx_executor
from tfx.dsl.components.base import executor_spec
from tfx.proto import distribution_validator_pb2
from tfx.types import standard_component_specs
from tfx.utils import proto_utils

_CONFIG_KEY = standard_component_specs.DISTRIBUTION_VALIDATOR_CONFIG_KEY


class Executor(tfx_executor.Executor):
    def Do(self, input_dict, output_dict, exec_properties):
        config = exec_properties.get(_CONFIG_KEY)
        if isinstance(config, str):
            exec_properties = {
                **exec_properties,
                _CONFIG_KEY: proto_utils.json_to_proto(
                    config, distribution_validator_pb2.DistributionValidatorConfig()
                ),
            }
        return super().Do(input_dict, output_dict, exec_properties)


class DistributionValidator(tfx_component.DistributionValidator):
    EXECUTOR_SPEC = executor_spec.ExecutorClassSpec(Executor)

"""TFX's DistributionValidator, with its config stored as a JSON string.

TFX 1.16's spec declares `config` a proto parameter (`use_proto=True`), and for such a parameter
TFX records in ML Metadata, beside the value, the JSON of the proto's whole descriptor as the
custom property `__schema__config__` (67 KB here). ML Metadata's PostgreSQL schema indexes string
properties with a btree, which takes at most 2,704 bytes a row, so the run failed there ("index row
size 7728 exceeds btree version 4 maximum 2704", google/ml-metadata#194). As a JSON string
(`use_proto=False`, as most TFX components take their configs) the value alone is stored (about
2 KB). Through Kubeflow's V2 container entrypoint the config arrived as that string already, which
TFX's executor fails on (`'str' object has no attribute 'default_slice_config'`); this executor
parses the string first. Everything else is TFX's.
"""

from __future__ import annotations

from collections.abc import Sequence

from tfx import types
from tfx.components.distribution_validator import component as tfx_component
from tfx.components.distribution_validator import executor as tfx_executor
from tfx.dsl.components.base import base_component, executor_spec
from tfx.proto import distribution_validator_pb2
from tfx.types import standard_artifacts, standard_component_specs
from tfx.types.component_spec import ExecutionParameter
from tfx.utils import json_utils, proto_utils

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


class DistributionValidatorSpec(standard_component_specs.DistributionValidatorSpec):
    PARAMETERS = {
        **standard_component_specs.DistributionValidatorSpec.PARAMETERS,
        _CONFIG_KEY: ExecutionParameter(
            type=distribution_validator_pb2.DistributionValidatorConfig
        ),
    }


class DistributionValidator(tfx_component.DistributionValidator):
    SPEC_CLASS = DistributionValidatorSpec
    EXECUTOR_SPEC = executor_spec.ExecutorClassSpec(Executor)

    def __init__(
        self,
        statistics: types.BaseChannel,
        baseline_statistics: types.BaseChannel,
        config: distribution_validator_pb2.DistributionValidatorConfig,
        include_split_pairs: Sequence[tuple[str, str]] | None = None,
    ):
        keys = standard_component_specs
        spec = DistributionValidatorSpec(
            **{
                keys.STATISTICS_KEY: statistics,
                keys.BASELINE_STATISTICS_KEY: baseline_statistics,
                _CONFIG_KEY: config,
                keys.INCLUDE_SPLIT_PAIRS_KEY: json_utils.dumps(include_split_pairs),
                keys.ANOMALIES_KEY: types.Channel(type=standard_artifacts.ExampleAnomalies),
            }
        )
        base_component.BaseComponent.__init__(self, spec=spec)

"""DataGate: nothing that trains, evaluates, validates or pushes runs for data that failed a check.

ExampleValidator (against the curated schema) and DistributionValidator (drift between the new
span and the previous one) only write their findings; this component reads both and fails the run
when either found a problem, listing each one and what to do. Transform depends on it, and every
step that trains, evaluates, validates, pushes or scores depends on Transform.
"""

from __future__ import annotations

import dataclasses
import json

from tfx import types
from tfx.dsl.components.base import base_component, executor_spec
from tfx.types import standard_artifacts
from tfx.types.component_spec import ChannelParameter, ComponentSpec, ExecutionParameter

from components.data_gate import executor, training_checks


class DataGateSpec(ComponentSpec):
    PARAMETERS = {
        executor.TRAINING_CHECKS_KEY: ExecutionParameter(type=str, optional=True),
    }
    INPUTS = {
        executor.EXAMPLES_KEY: ChannelParameter(type=standard_artifacts.Examples),
        executor.ANOMALIES_KEY: ChannelParameter(type=standard_artifacts.ExampleAnomalies),
        executor.DRIFT_ANOMALIES_KEY: ChannelParameter(type=standard_artifacts.ExampleAnomalies),
        executor.STATISTICS_KEY: ChannelParameter(
            type=standard_artifacts.ExampleStatistics, optional=True
        ),
    }
    OUTPUTS = {}


class DataGate(base_component.BaseComponent):
    SPEC_CLASS = DataGateSpec
    EXECUTOR_SPEC = executor_spec.ExecutorClassSpec(executor.Executor)

    def __init__(
        self,
        examples: types.BaseChannel,
        anomalies: types.BaseChannel,
        drift_anomalies: types.BaseChannel,
        statistics: types.BaseChannel | None = None,
        training_checks: training_checks.Settings | None = None,
    ):
        super().__init__(
            spec=DataGateSpec(
                examples=examples,
                anomalies=anomalies,
                drift_anomalies=drift_anomalies,
                statistics=statistics,
                training_checks=json.dumps(dataclasses.asdict(training_checks), sort_keys=True)
                if training_checks
                else None,
            )
        )

"""StatisticsGen: TFX's component, run by this folder's executor (small inputs without Beam)."""

from __future__ import annotations

from tfx import v1 as tfx
from tfx.dsl.components.base import executor_spec

from components.statistics_gen import executor


def statistics_gen_component(**inputs) -> tfx.components.StatisticsGen:
    """TFX's StatisticsGen on `inputs` (its own arguments), with executor.Executor: the same
    component, spec, outputs and node id, so that everything reading its statistics is unchanged."""
    component = tfx.components.StatisticsGen(**inputs)
    component.executor_spec = executor_spec.BeamExecutorSpec(executor.Executor)
    return component

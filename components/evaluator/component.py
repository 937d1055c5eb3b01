"""The Evaluator: TFX's Evaluator (TFMA, thresholds, no regression against the latest blessed
model) plus the trivial-predictor check (trivial_baseline.py) and the linear baseline
(linear_baseline.py).

It takes TFX's Evaluator inputs and parameters, plus the labeled `statistics` and a
`trivial_baseline` parameter; it writes the same `evaluation` and `blessing` outputs, so Pusher,
BulkInferrer and the blessed-model resolver read them unchanged. It is a component of its own
(not a subclass of TFX's class) so that Kubeflow compiles it like any custom component.
"""

from __future__ import annotations

import dataclasses
import json

import tensorflow_model_analysis as tfma
from tfx import types
from tfx.dsl.components.base import base_beam_component, executor_spec
from tfx.types import standard_artifacts, standard_component_specs
from tfx.types.component_spec import ChannelParameter, ExecutionParameter

from components.evaluator import executor
from components.evaluator.linear_baseline import Settings as LinearBaseline
from components.evaluator.trivial_baseline import Settings


class EvaluatorWithTrivialBaselineSpec(standard_component_specs.EvaluatorSpec):
    """TFX's EvaluatorSpec plus the statistics and settings of the trivial-predictor check."""

    PARAMETERS = {
        **standard_component_specs.EvaluatorSpec.PARAMETERS,
        executor.TRIVIAL_BASELINE_KEY: ExecutionParameter(type=str, optional=True),
        executor.LINEAR_BASELINE_KEY: ExecutionParameter(type=str, optional=True),
    }
    INPUTS = {
        **standard_component_specs.EvaluatorSpec.INPUTS,
        executor.STATISTICS_KEY: ChannelParameter(
            type=standard_artifacts.ExampleStatistics, optional=True
        ),
        executor.TRANSFORM_GRAPH_KEY: ChannelParameter(
            type=standard_artifacts.TransformGraph, optional=True
        ),
    }


class Evaluator(base_beam_component.BaseBeamComponent):
    """Evaluates the candidate with TFMA and blesses it only if it also beats the trivial
    predictor by the profile's margin."""

    SPEC_CLASS = EvaluatorWithTrivialBaselineSpec
    EXECUTOR_SPEC = executor_spec.BeamExecutorSpec(executor.Executor)

    def __init__(
        self,
        examples: types.BaseChannel,
        model: types.BaseChannel,
        eval_config: tfma.EvalConfig,
        example_splits: list[str],
        statistics: types.BaseChannel,
        trivial_baseline: Settings,
        baseline_model: types.BaseChannel | None = None,
        transform_graph: types.BaseChannel | None = None,
        linear_baseline: LinearBaseline | None = None,
    ):
        spec = EvaluatorWithTrivialBaselineSpec(
            examples=examples,
            model=model,
            baseline_model=baseline_model,
            statistics=statistics,
            eval_config=eval_config,
            example_splits=json.dumps(example_splits),
            trivial_baseline=json.dumps(dataclasses.asdict(trivial_baseline), sort_keys=True),
            transform_graph=transform_graph,
            linear_baseline=json.dumps(dataclasses.asdict(linear_baseline), sort_keys=True)
            if linear_baseline
            else None,
            evaluation=types.Channel(type=standard_artifacts.ModelEvaluation),
            blessing=types.Channel(type=standard_artifacts.ModelBlessing),
        )
        super().__init__(spec=spec)

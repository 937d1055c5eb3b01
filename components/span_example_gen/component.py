"""SpanCsvExampleGen: CSV ingestion by span, with a training window of the latest N spans.

A FileBasedExampleGen (so Kubeflow's compiler gives it TFX's span-resolving driver task) with two
more parameters: `span_pattern` (e.g. `span-{SPAN}/*.csv`, relative to `input_base`) and
`training_spans` (N). Outputs one Examples artifact with role-named splits (see `spans`).
"""

from __future__ import annotations

from tfx.components.example_gen.component import FileBasedExampleGen
from tfx.dsl.components.base import executor_spec
from tfx.proto import example_gen_pb2
from tfx.types import channel, standard_artifacts, standard_component_specs
from tfx.types.component_spec import ExecutionParameter

from components import tfx_private
from components.span_example_gen import driver, executor


class SpanCsvExampleGenSpec(standard_component_specs.FileBasedExampleGenSpec):
    PARAMETERS = {
        **standard_component_specs.FileBasedExampleGenSpec.PARAMETERS,
        executor.SPAN_PATTERN_KEY: ExecutionParameter(type=str),
        executor.TRAINING_SPANS_KEY: ExecutionParameter(type=int),
    }


class SpanCsvExampleGen(FileBasedExampleGen):
    SPEC_CLASS = SpanCsvExampleGenSpec
    EXECUTOR_SPEC = executor_spec.BeamExecutorSpec(executor.Executor)
    DRIVER_CLASS = driver.SpanWindowDriver

    def __init__(
        self,
        input_base: str,
        span_pattern: str,
        training_spans: int,
        split_config: example_gen_pb2.SplitConfig,
    ):
        if training_spans < 1:
            raise ValueError(f"training_spans must be at least 1, got {training_spans}")
        spec = SpanCsvExampleGenSpec(
            input_base=input_base,
            # TFX's driver resolves the latest span from this pattern.
            input_config=example_gen_pb2.Input(
                splits=[example_gen_pb2.Input.Split(name="span", pattern=span_pattern)]
            ),
            output_config=example_gen_pb2.Output(split_config=split_config),
            output_data_format=example_gen_pb2.FORMAT_TF_EXAMPLE,
            output_file_format=example_gen_pb2.FORMAT_TFRECORDS_GZIP,
            span_pattern=span_pattern,
            training_spans=training_spans,
            examples=channel.Channel(type=standard_artifacts.Examples),
        )
        tfx_private.init_example_gen_with_spec(self, spec)

"""SpanCsvExampleGen's executor: TFX's CSV ExampleGen, reading a window of spans.

TFX's driver resolves the latest span from the span pattern (locally and in a Kubeflow driver
task alike). This executor then reads the spans of the run's `SpanPlan` (latest, previous, and the
older spans of the training window), checks every file first (`csv_checks`), parses each span
into the tf.Examples TFX's CSV-to-tf.Example transform makes (byte for byte, with `fast_csv`'s
vectorized conversion, or TFX's own transform for files it does not read; column types are
inferred per span, as TFX does per split, so one bad span cannot change how the others are read),
and hash-splits each span's rows into train and eval with TFX's own partition function. Output
splits are named by role (`latest_train`, `previous_eval`, ...); see `spans`. The splits are
written as `csv_example_gen`'s executor writes them: streamed, without TFX's reshuffle.
"""

from __future__ import annotations

import os
from typing import Any

import apache_beam as beam
import tensorflow as tf
from tfx.components.example_gen import utils as example_gen_utils
from tfx.proto import example_gen_pb2
from tfx.types import standard_component_specs
from tfx.utils import proto_utils

from components import data_files, tfx_private
from components.csv_example_gen import executor as csv_example_gen
from components.span_example_gen import csv_checks, spans

SPAN_PATTERN_KEY = "span_pattern"
TRAINING_SPANS_KEY = "training_spans"
_HASH_SPLIT_CONFIG_KEY = "_hash_split_output_config"


def _span_files(input_base: str, span_pattern: str, span: int) -> list[str]:
    return sorted(
        tf.io.gfile.glob(os.path.join(input_base, spans.pattern_for_span(span_pattern, span)))
    )


def check_span_folders(input_base: str, span_pattern: str, plan: spans.SpanPlan) -> None:
    """An empty span folder is an error, not a span to skip silently.

    TFX resolves the latest span among the folders that hold files, so a new batch folder that is
    still empty would make the run quietly retrain on the previous batch.
    """
    empty = [
        folder
        for number, folder in sorted(spans.span_folders(input_base, span_pattern).items())
        if (number > plan.latest or number in plan.all_spans())
        and not _span_files(input_base, span_pattern, number)
    ]
    if empty:
        raise csv_checks.InvalidInputData(
            "Span folder(s) with no file matching the span pattern "
            f"'{span_pattern}': {', '.join(empty)}. Add the span's CSV file(s) or remove the "
            "empty folder; nothing was ingested."
        )


class Executor(csv_example_gen.Executor):
    """Reads the span window and writes role-named train/eval splits."""

    def GenerateExamplesByBeam(
        self, pipeline: beam.Pipeline, exec_properties: dict[str, Any]
    ) -> dict[str, beam.pvalue.PCollection]:
        span_pattern = exec_properties[SPAN_PATTERN_KEY]
        training_spans = exec_properties[TRAINING_SPANS_KEY]
        plan, files_by_span = self._plan, self._files_by_span  # set and checked by Do()
        output_config = example_gen_pb2.Output()
        proto_utils.json_to_proto(exec_properties[_HASH_SPLIT_CONFIG_KEY], output_config)
        split_config = output_config.split_config
        buckets = []
        for split in split_config.splits:
            buckets.append((buckets[-1] if buckets else 0) + split.hash_buckets)
        hash_split_names = [split.name for split in split_config.splits]
        if tuple(hash_split_names) != spans.HASH_SPLITS:
            raise ValueError(
                f"output_config must split into {spans.HASH_SPLITS}, got {hash_split_names}"
            )

        tfx_private.beam_args_for_csv_reader(self, exec_properties)

        result = {}
        for role in spans.roles_for(training_spans):
            parts: dict[str, list[beam.pvalue.PCollection]] = {s: [] for s in hash_split_names}
            for span in spans.plan_spans_with_files(plan, role, files_by_span):
                examples = self._read_span(pipeline, exec_properties, span_pattern, span)
                partitions = examples | f"SplitSpan[{span}]" >> beam.Partition(
                    tfx_private.hash_partition_fn,
                    len(buckets),
                    buckets,
                    split_config,
                )
                for name, partition in zip(hash_split_names, partitions, strict=True):
                    parts[name].append(partition)
            for name in hash_split_names:
                output_split = spans.split_name(role, name)
                if parts[name]:
                    result[output_split] = parts[name] | f"Merge[{output_split}]" >> beam.Flatten()
                else:  # no such span yet (the first span has no previous one): an empty split
                    result[output_split] = pipeline | f"Empty[{output_split}]" >> beam.Create(
                        [], reshuffle=False
                    ).with_output_types(bytes)
        return result

    def _read_span(
        self, pipeline: beam.Pipeline, exec_properties: dict[str, Any], span_pattern: str, span: int
    ) -> beam.pvalue.PCollection:
        """The span's rows as tf.Examples: TFX's conversion, byte for byte (`ReadCsvFiles`).

        Each example is hashed by its deterministic serialization, as TFX's partition function
        does, so every row lands in the split TFX would put it in.
        """
        pattern = spans.pattern_for_span(span_pattern, span)
        return pipeline | f"ReadSpan[{span}]" >> csv_example_gen.ReadCsvFiles(
            self._files_by_span[span], exec_properties, pattern
        )

    def files_to_read(self, split_files: list[str]) -> list[str]:
        """The files of every span of the window, not only the latest span's."""
        return [path for files in self._files_by_span.values() for path in files]

    def Do(self, input_dict, output_dict, exec_properties) -> None:
        training_spans = exec_properties[TRAINING_SPANS_KEY]
        input_base = exec_properties[standard_component_specs.INPUT_BASE_KEY]
        span_pattern = exec_properties[SPAN_PATTERN_KEY]
        # Which files of which spans this run reads, found and checked once, before any Beam work.
        self._plan = spans.SpanPlan.make(
            exec_properties[example_gen_utils.SPAN_PROPERTY_NAME], training_spans
        )
        check_span_folders(input_base, span_pattern, self._plan)
        self._files_by_span = {
            span: _span_files(input_base, span_pattern, span) for span in self._plan.all_spans()
        }
        csv_checks.check_span_files([f for files in self._files_by_span.values() for f in files])

        # TFX's Do names (and creates) the output splits from output_config: give it the role
        # splits, and keep the configured train/eval hash split for GenerateExamplesByBeam.
        exec_properties = dict(exec_properties)
        exec_properties[_HASH_SPLIT_CONFIG_KEY] = exec_properties[
            standard_component_specs.OUTPUT_CONFIG_KEY
        ]
        exec_properties[standard_component_specs.OUTPUT_CONFIG_KEY] = proto_utils.proto_to_json(
            example_gen_pb2.Output(
                split_config=example_gen_pb2.SplitConfig(
                    splits=[
                        example_gen_pb2.SplitConfig.Split(name=name, hash_buckets=1)
                        for name in spans.output_split_names(training_spans)
                    ]
                )
            )
        )
        super().Do(input_dict, output_dict, exec_properties)
        for examples in output_dict[standard_component_specs.EXAMPLES_KEY]:
            data_files.record(examples, self._files_by_span)
            for role in spans.roles_for(training_spans):
                read = spans.plan_spans_with_files(self._plan, role, self._files_by_span)
                examples.set_string_custom_property(
                    spans.spans_property(role), ",".join(str(s) for s in read)
                )

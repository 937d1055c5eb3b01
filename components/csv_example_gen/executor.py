"""CsvExampleGen's executor with the vectorized CSV conversion and the splits written as read.

Two differences from TFX 1.16's CsvExampleGen executor, neither in what the splits hold:
- Each input split whose files `fast_csv` reads exactly is converted by it (the same examples,
  byte for byte); a split with any other file takes TFX's own `_CsvToExample`.
- The splits are written without TFX's `Reshuffle` before `WriteToTFRecord`
  (`write_split.WriteSplit`). On the DirectRunner a reshuffle is a group-by-key whose whole input
  the runner process holds until the last row is read: every example of every split at once
  (15.4 GiB for 10 million rows). Written as they are converted, the examples stream through the
  workers, a block of rows at a time, in the order of the files.
Other output formats (Parquet files, payloads other than tf.Example) take TFX's `Do` unchanged.
"""

from __future__ import annotations

import os
from typing import Any

import apache_beam as beam
import tensorflow as tf
from absl import logging
from tfx.components.example_gen import utils as example_gen_utils
from tfx.components.example_gen import write_split
from tfx.components.example_gen.csv_example_gen import executor as csv_executor
from tfx.components.util import examples_utils
from tfx.proto import example_gen_pb2
from tfx.types import artifact_utils, standard_component_specs
from tfx.utils import proto_utils

from components import data_files, tfx_private
from components.span_example_gen import fast_csv
from components.span_example_gen.csv_checks import InvalidInputData

EXAMPLES_KEY = standard_component_specs.EXAMPLES_KEY


@beam.ptransform_fn
def ReadCsvFiles(  # noqa: N802 (Beam's naming of transforms)
    pipeline: beam.Pipeline, files: list[str], exec_properties: dict[str, Any], pattern: str
) -> beam.pvalue.PCollection:
    """The rows of `files` (all the files `pattern` matches under the input base) as tf.Examples:
    `fast_csv`'s serialized examples when it reads every file exactly, else TFX's own transform's.

    `exec_properties` must hold the Beam options TFX's transform reads
    (`tfx_private.beam_args_for_csv_reader`).
    """
    problems = {path: fast_csv.fast_path_problem(path) for path in files}
    if files and not any(problems.values()):
        return pipeline | fast_csv.CsvToSerializedExamples(files)
    if files:
        logging.info(
            "%s is read with TFX's CSV conversion (%s)",
            pattern,
            "; ".join(f"{path}: {problem}" for path, problem in problems.items() if problem),
        )
    # No file at all: TFX's transform raises its own error naming the pattern.
    return pipeline | tfx_private.CsvToExample(exec_properties, pattern)


@beam.ptransform_fn
def _CsvToExamples(  # noqa: N802 (Beam's naming of transforms)
    pipeline: beam.Pipeline, exec_properties: dict[str, Any], split_pattern: str
) -> beam.pvalue.PCollection:
    """The transform TFX's GenerateExamplesByBeam applies to each input split's pattern."""
    input_base = exec_properties[standard_component_specs.INPUT_BASE_KEY]
    files = sorted(tf.io.gfile.glob(os.path.join(input_base, split_pattern)))
    return pipeline | ReadCsvFiles(files, exec_properties, split_pattern)


def _writes_tfrecords_of_examples(exec_properties: dict[str, Any]) -> bool:
    payload = exec_properties.get(standard_component_specs.OUTPUT_DATA_FORMAT_KEY)
    file_format = exec_properties.get(standard_component_specs.OUTPUT_FILE_FORMAT_KEY)
    return payload in (None, example_gen_pb2.FORMAT_TF_EXAMPLE) and file_format in (
        None,
        example_gen_pb2.FILE_FORMAT_UNSPECIFIED,
        example_gen_pb2.FORMAT_TFRECORDS_GZIP,
    )


class InputChangedWhileRead(InvalidInputData):
    """An input file was changed or deleted while ExampleGen read it."""


def file_states(paths: list[str]) -> dict[str, tuple | None]:
    """Size, modification time and inode of each local file (None: not there); object-store
    files (gs://, s3://), immutable once written, are not checked."""
    states = {}
    for path in paths:
        if "://" in path:
            continue
        try:
            stat = os.stat(path)
            states[path] = (stat.st_size, stat.st_mtime_ns, stat.st_ino)
        except FileNotFoundError:
            states[path] = None
    return states


def check_unchanged(before: dict[str, tuple | None]) -> None:
    """Raises InputChangedWhileRead, naming each file, if any file of `before` changed since."""
    changed = []
    for path, state in before.items():
        now = file_states([path])[path]
        if now == state:
            continue
        if now is None:
            changed.append(f"{path} was deleted")
        else:
            changed.append(f"{path} was changed ({state[0]:,} bytes before, {now[0]:,} now)")
    if changed:
        raise InputChangedWhileRead(
            f"{'; '.join(changed)} while ExampleGen read it, so what was read mixes two versions "
            "and nothing was kept. Run again once the file is complete (write a new span's files "
            "in a folder of their own and move it into place when they are whole)."
        )


class Executor(csv_executor.Executor):
    """TFX's CsvExampleGen executor: `fast_csv`'s conversion, splits written as they are read."""

    def files_to_read(self, split_files: list[str]) -> list[str]:
        """Every input file the run reads (the files of the input splits' patterns)."""
        return split_files

    def GetInputSourceToExamplePTransform(self) -> beam.PTransform:  # noqa: N802 (TFX's name)
        return _CsvToExamples

    def Do(
        self,
        input_dict: dict[str, list[Any]],
        output_dict: dict[str, list[Any]],
        exec_properties: dict[str, Any],
    ) -> None:
        if not _writes_tfrecords_of_examples(exec_properties):
            super().Do(input_dict, output_dict, exec_properties)
            return
        self._log_startup(input_dict, output_dict, exec_properties)
        input_config = example_gen_pb2.Input()
        proto_utils.json_to_proto(
            exec_properties[standard_component_specs.INPUT_CONFIG_KEY], input_config
        )
        output_config = example_gen_pb2.Output()
        proto_utils.json_to_proto(
            exec_properties[standard_component_specs.OUTPUT_CONFIG_KEY], output_config
        )
        artifact_utils.get_single_instance(
            output_dict[EXAMPLES_KEY]
        ).split_names = artifact_utils.encode_split_names(
            example_gen_utils.generate_output_split_names(input_config, output_config)
        )
        input_base = exec_properties[standard_component_specs.INPUT_BASE_KEY]
        files = [
            path
            for split in input_config.splits
            for path in sorted(tf.io.gfile.glob(os.path.join(input_base, split.pattern)))
        ]
        # A file written or deleted while it is read gives examples from neither version.
        read_files = file_states(self.files_to_read(files))
        logging.info("Reading %d input file(s): %s", len(read_files), ", ".join(read_files))
        try:
            with self._make_beam_pipeline() as pipeline:
                for split_name, examples in self.GenerateExamplesByBeam(
                    pipeline, exec_properties
                ).items():
                    split_uri = artifact_utils.get_split_uri(output_dict[EXAMPLES_KEY], split_name)
                    _ = (
                        examples
                        | f"Serialize[{split_name}]" >> beam.ParDo(write_split.MaybeSerialize())
                        | f"Write[{split_name}]"
                        >> beam.io.WriteToTFRecord(
                            os.path.join(split_uri, write_split.DEFAULT_FILE_NAME),
                            file_name_suffix=".gz",
                        )
                    )
        finally:  # also the cause of a failed read, when a file changed under the reader
            check_unchanged(read_files)
        # The artifact properties TFX's Do sets, when the component names the formats.
        payload_format = exec_properties.get(standard_component_specs.OUTPUT_DATA_FORMAT_KEY)
        file_format = exec_properties.get(standard_component_specs.OUTPUT_FILE_FORMAT_KEY)
        span = exec_properties.get(example_gen_utils.SPAN_PROPERTY_NAME)
        for examples_artifact in output_dict[EXAMPLES_KEY]:
            data_files.record(examples_artifact, {span: files})
            if payload_format:
                examples_utils.set_payload_format(examples_artifact, payload_format)
            if file_format:
                examples_utils.set_file_format(
                    examples_artifact, write_split.to_file_format_str(file_format)
                )

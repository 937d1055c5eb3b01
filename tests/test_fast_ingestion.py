"""SpanCsvExampleGen's vectorized CSV conversion makes TFX's tf.Examples, byte for byte.

TFX's own conversion (`_CsvToExample` on Beam's DirectRunner) is the reference: every example's
deterministic serialization, the bytes TFX's `_PartitionFn` hashes to choose its split, must be
the same, so splits, statistics and the model do not change with the faster path.
"""

from __future__ import annotations

import collections
import glob
import os
from pathlib import Path

import apache_beam as beam
import pytest
import tensorflow as tf
from apache_beam.options.pipeline_options import PipelineOptions
from tfx.components.example_gen import utils as example_gen_utils
from tfx.components.example_gen.csv_example_gen import executor as tfx_csv_executor
from tfx.dsl.components.base import base_beam_executor
from tfx.proto import example_gen_pb2
from tfx.types import standard_artifacts, standard_component_specs
from tfx.utils import proto_utils

from components import tfx_private
from components.csv_example_gen import executor as csv_example_gen
from components.span_example_gen import executor as span_executor
from components.span_example_gen import fast_csv
from orchestration import beam_mode
from tests.conftest import write_sample_data

IN_MEMORY = list(beam_mode.direct_runner_args(beam_mode.IN_MEMORY))

# Cells TFX types and converts in ways a naive parser would not: signs, spaces, underscores,
# exponents, nan/inf, integers past int64 (a string column), floats past float32, non-ASCII
# digits (not an int for `int(bytes)`), a column with no value at all, blank lines, CRLF.
AWKWARD_CSV = (
    "i,f,odd_i,odd_f,big,s,none,mixed\r\n"
    "1,1.5,+5,nan,9223372036854775807,Cash,,3\r\n"
    "-0,-0.0, 7,1e5,-9223372036854775808, ,,\r\n"
    "\r\n"
    "007,.5,1_000,-Infinity,9223372036854775808,caf\u00e9,,2.5\r\n"
    ",5.,,3.4028235677973366e38,,\u0665,,1\r\n"
    "42,,8,+2.5,1,x y,,\r\n"
)


def _read_records(prefix: str) -> collections.Counter:
    records = collections.Counter()
    for path in glob.glob(prefix + "*"):
        for record in tf.data.TFRecordDataset(path).as_numpy_iterator():
            records[record] += 1
    return records


def _tfx_examples(folder: Path, out: Path) -> collections.Counter:
    """TFX's conversion of the folder's CSV files, deterministic serializations."""
    prefix = str(out / "tfx")
    with beam.Pipeline(options=PipelineOptions(IN_MEMORY)) as pipeline:
        _ = (
            pipeline
            | tfx_private.CsvToExample({"input_base": str(folder)}, "*.csv")
            | beam.Map(lambda e: e.SerializeToString(deterministic=True)).with_output_types(bytes)
            | beam.io.WriteToTFRecord(prefix)
        )
    return _read_records(prefix)


def _fast_examples(files: list[str], out: Path, range_bytes: int) -> collections.Counter:
    prefix = str(out / "fast")
    with beam.Pipeline(options=PipelineOptions(IN_MEMORY)) as pipeline:
        _ = (
            pipeline
            | fast_csv.CsvToSerializedExamples(files, range_bytes=range_bytes)
            | beam.io.WriteToTFRecord(prefix)
        )
    return _read_records(prefix)


@pytest.mark.parametrize("span", ["labeled/span-1", "labeled/span-2", "unlabeled/span-1"])
def test_sample_data_converts_to_tfx_examples_byte_for_byte(tmp_path, span):
    data = write_sample_data(tmp_path / "data")
    files = sorted(glob.glob(str(data / span / "*.csv")))
    assert [fast_csv.fast_path_problem(f) for f in files] == [None] * len(files)
    expected = _tfx_examples(data / span, tmp_path)
    assert sum(expected.values()) > 100
    # Small byte ranges too: rows split across several Beam elements, types merged.
    for range_bytes in (fast_csv.RANGE_BYTES, 20_000):
        out = tmp_path / f"fast-{range_bytes}"
        out.mkdir()
        assert _fast_examples(files, out, range_bytes) == expected


def test_awkward_cells_convert_to_tfx_examples_byte_for_byte(tmp_path):
    folder = tmp_path / "span"
    folder.mkdir()
    (folder / "a.csv").write_bytes(AWKWARD_CSV.encode())
    # A second file of the span: types are inferred over both, as TFX does per split.
    (folder / "b.csv").write_bytes(b"i,f,odd_i,odd_f,big,s,none,mixed\n3,2,4,1,2,3,,x\n")
    files = sorted(str(p) for p in folder.glob("*.csv"))
    assert [fast_csv.fast_path_problem(f) for f in files] == [None, None]
    expected = _tfx_examples(folder, tmp_path)
    assert sum(expected.values()) == 6
    assert _fast_examples(files, tmp_path, 40) == expected


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        (b'a,b\n1,"x,y"\n', "quoted fields"),
        (b"a,b\r1,2\r", "carriage returns outside CRLF line endings"),
        (b"a,b\n1,\x00\n", "NUL bytes"),
        (b"\na,b\n1,2\n", "the first line is blank"),
    ],
)
def test_files_the_fast_path_cannot_read_exactly_go_to_tfx(tmp_path, content, problem):
    path = tmp_path / "x.csv"
    path.write_bytes(content)
    assert fast_csv.fast_path_problem(str(path)) == problem


def _written_splits(out: Path) -> dict[str, collections.Counter]:
    """Split folder -> the deterministic serializations of the examples written there."""
    splits = {}
    for folder in sorted(out.glob("Split-*")):
        counter = collections.Counter()
        for path in folder.glob("*.gz"):
            for record in tf.data.TFRecordDataset(str(path), compression_type="GZIP"):
                example = tf.train.Example.FromString(record.numpy())
                counter[example.SerializeToString(deterministic=True)] += 1
        splits[folder.name] = counter
    return splits


def _run_executor(data: Path, out: Path) -> dict[str, collections.Counter]:
    examples = standard_artifacts.Examples()
    examples.uri = str(out)
    pattern = "span-{SPAN}/*.csv"
    split_config = example_gen_pb2.SplitConfig(
        splits=[
            example_gen_pb2.SplitConfig.Split(name="train", hash_buckets=3),
            example_gen_pb2.SplitConfig.Split(name="eval", hash_buckets=1),
        ]
    )
    exec_properties = {
        standard_component_specs.INPUT_BASE_KEY: str(data / "labeled"),
        standard_component_specs.INPUT_CONFIG_KEY: proto_utils.proto_to_json(
            example_gen_pb2.Input(splits=[example_gen_pb2.Input.Split(name="s", pattern=pattern)])
        ),
        standard_component_specs.OUTPUT_CONFIG_KEY: proto_utils.proto_to_json(
            example_gen_pb2.Output(split_config=split_config)
        ),
        standard_component_specs.OUTPUT_DATA_FORMAT_KEY: example_gen_pb2.FORMAT_TF_EXAMPLE,
        standard_component_specs.OUTPUT_FILE_FORMAT_KEY: example_gen_pb2.FORMAT_TFRECORDS_GZIP,
        example_gen_utils.SPAN_PROPERTY_NAME: 2,
        example_gen_utils.VERSION_PROPERTY_NAME: None,
        span_executor.SPAN_PATTERN_KEY: pattern,
        span_executor.TRAINING_SPANS_KEY: 2,
    }
    context = base_beam_executor.BaseBeamExecutor.Context(
        beam_pipeline_args=IN_MEMORY, tmp_dir=str(out) + "-tmp"
    )
    span_executor.Executor(context).Do({}, {"examples": [examples]}, exec_properties)
    return _written_splits(out)


def test_executor_splits_are_the_ones_tfx_conversion_gives(tmp_path, monkeypatch):
    data = write_sample_data(tmp_path / "data")
    fast = _run_executor(data, tmp_path / "fast")
    monkeypatch.setattr(fast_csv, "fast_path_problem", lambda _: "TFX's path, for the test")
    tfx = _run_executor(data, tmp_path / "tfx")
    assert sorted(fast) == [
        "Split-latest_eval",
        "Split-latest_train",
        "Split-previous_eval",
        "Split-previous_train",
    ]
    assert all(sum(counter.values()) > 100 for counter in fast.values())
    assert fast == tfx
    assert os.path.isdir(tmp_path / "fast")


def _run_csv_example_gen(executor_class, input_base: Path, out: Path):
    """A CsvExampleGen executor as the pipeline's UnlabeledExampleGen is configured: one input
    split, one output split. Returns the written splits and the Examples artifact."""
    examples = standard_artifacts.Examples()
    examples.uri = str(out)
    exec_properties = {
        standard_component_specs.INPUT_BASE_KEY: str(input_base),
        standard_component_specs.INPUT_CONFIG_KEY: proto_utils.proto_to_json(
            example_gen_pb2.Input(
                splits=[example_gen_pb2.Input.Split(name="unlabeled", pattern="span-1/*.csv")]
            )
        ),
        standard_component_specs.OUTPUT_CONFIG_KEY: proto_utils.proto_to_json(
            example_gen_pb2.Output(
                split_config=example_gen_pb2.SplitConfig(
                    splits=[example_gen_pb2.SplitConfig.Split(name="unlabeled", hash_buckets=1)]
                )
            )
        ),
        standard_component_specs.OUTPUT_DATA_FORMAT_KEY: example_gen_pb2.FORMAT_TF_EXAMPLE,
        standard_component_specs.OUTPUT_FILE_FORMAT_KEY: example_gen_pb2.FORMAT_TFRECORDS_GZIP,
    }
    context = base_beam_executor.BaseBeamExecutor.Context(
        beam_pipeline_args=IN_MEMORY, tmp_dir=str(out) + "-tmp"
    )
    executor_class(context).Do({}, {"examples": [examples]}, exec_properties)
    return _written_splits(out), examples


@pytest.mark.parametrize("quoted", [False, True], ids=["fast path", "quoted file: TFX's path"])
def test_csv_example_gen_writes_what_tfxs_executor_writes(tmp_path, quoted):
    data = write_sample_data(tmp_path / "data")
    if quoted:  # a quoted cell: the file is read by TFX's own conversion
        path = data / "unlabeled" / "span-1" / "taxi.csv"
        path.write_text(path.read_text().replace(",Cash,", ',"Cash",', 1))
        assert fast_csv.fast_path_problem(str(path)) == "quoted fields"
    ours, ours_artifact = _run_csv_example_gen(
        csv_example_gen.Executor, data / "unlabeled", tmp_path / "ours"
    )
    tfx, tfx_artifact = _run_csv_example_gen(
        tfx_csv_executor.Executor, data / "unlabeled", tmp_path / "tfx"
    )
    assert list(ours) == ["Split-unlabeled"]
    assert sum(ours["Split-unlabeled"].values()) > 100
    assert ours == tfx
    assert ours_artifact.split_names == tfx_artifact.split_names == '["unlabeled"]'
    for name in (
        example_gen_utils.PAYLOAD_FORMAT_PROPERTY_NAME,
        example_gen_utils.FILE_FORMAT_PROPERTY_NAME,
    ):
        assert ours_artifact.get_string_custom_property(name)
        assert ours_artifact.get_string_custom_property(
            name
        ) == tfx_artifact.get_string_custom_property(name)

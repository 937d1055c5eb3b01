"""StatisticsGen's in-memory path writes what TFX's Beam executor writes.

Both executors run on the same examples: the artifact's properties and every split's statistics
must match, exactly but for the means and standard deviations, whose sums add up in another
order (compared to 1e-12, relative). Inputs the in-memory path does not handle go to TFX.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_data_validation as tfdv
from tfx.components.statistics_gen import executor as tfx_executor
from tfx.types import standard_artifacts, standard_component_specs

from components.statistics_gen import executor as in_memory_executor

SPLITS = ("train", "eval")
ROWS = {"train": 600, "eval": 150}


def _example(rng: np.random.Generator, i: int) -> bytes:
    feature = {
        "fare": tf.train.Feature(float_list=tf.train.FloatList(value=[rng.gamma(2.0, 6.0)])),
        "trip_seconds": tf.train.Feature(
            int64_list=tf.train.Int64List(value=[int(rng.integers(60, 4000))])
        ),
        "company": tf.train.Feature(
            bytes_list=tf.train.BytesList(value=[rng.choice([b"Flash Cab", b"Taxi Affiliation"])])
        ),
    }
    if i % 7:  # some rows lack the column, as CSV rows with an empty cell do
        feature["tips"] = tf.train.Feature(float_list=tf.train.FloatList(value=[rng.random()]))
    if i >= 100:  # whole batches lack this one when read 40 rows at a time
        feature["extras"] = tf.train.Feature(int64_list=tf.train.Int64List(value=[i % 3]))
    return tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString()


@pytest.fixture(scope="module")
def examples(tmp_path_factory) -> standard_artifacts.Examples:
    root = tmp_path_factory.mktemp("examples")
    rng = np.random.default_rng(5)
    for split in SPLITS:
        folder = root / f"Split-{split}"
        folder.mkdir()
        options = tf.io.TFRecordOptions(compression_type="GZIP")
        with tf.io.TFRecordWriter(str(folder / "data_tfrecord-00000-of-00001.gz"), options) as f:
            for i in range(ROWS[split]):
                f.write(_example(rng, i))
    artifact = standard_artifacts.Examples()
    artifact.uri = str(root)
    artifact.split_names = json.dumps(list(SPLITS))
    artifact.span = 3
    return artifact


def _run(executor_class, examples, out: Path, exec_properties=None):
    statistics = standard_artifacts.ExampleStatistics()
    statistics.uri = str(out)
    executor_class().Do(
        {standard_component_specs.EXAMPLES_KEY: [examples]},
        {standard_component_specs.STATISTICS_KEY: [statistics]},
        {standard_component_specs.EXCLUDE_SPLITS_KEY: "[]", **(exec_properties or {})},
    )
    return statistics


def _without_sums(stats, features: list[str]):
    """The statistics with each numeric feature's mean and std_dev checked apart and cleared."""
    stats = copy.deepcopy(stats)
    dataset = stats.datasets[0]
    ordered = sorted(dataset.features, key=lambda f: f.path.step[0])  # the order may differ
    del dataset.features[:]
    dataset.features.extend(ordered)
    sums = {}
    for feature in dataset.features:
        if feature.HasField("num_stats"):
            sums[feature.path.step[0]] = (feature.num_stats.mean, feature.num_stats.std_dev)
            feature.num_stats.ClearField("mean")
            feature.num_stats.ClearField("std_dev")
    features.extend(sums)
    return stats, sums


@pytest.mark.parametrize("read_batch_rows", [in_memory_executor.READ_BATCH_ROWS, 40])
def test_in_memory_statistics_match_tfxs_beam_executor(
    examples, tmp_path, monkeypatch, read_batch_rows
):
    monkeypatch.setattr(in_memory_executor, "READ_BATCH_ROWS", read_batch_rows)
    reads = []
    split_statistics = in_memory_executor._split_statistics
    monkeypatch.setattr(
        in_memory_executor,
        "_split_statistics",
        lambda *args: reads.append(args) or split_statistics(*args),
    )
    ours = _run(in_memory_executor.Executor, examples, tmp_path / "ours")
    assert len(reads) == len(SPLITS)  # the in-memory path ran
    tfxs = _run(tfx_executor.Executor, examples, tmp_path / "tfx")

    assert ours.split_names == tfxs.split_names and ours.span == tfxs.span == 3
    for name in (tfx_executor.SAMPLE_RATE_BY_SPLIT_PROPERTY_NAME,):
        assert ours.get_json_value_custom_property(name) == tfxs.get_json_value_custom_property(
            name
        )
    for split in SPLITS:
        path = f"Split-{split}/{tfx_executor.DEFAULT_FILE_NAME}"
        features: list[str] = []
        ours_stats, ours_sums = _without_sums(
            tfdv.load_stats_binary(str(ours.uri + "/" + path)), features
        )
        tfx_stats, tfx_sums = _without_sums(tfdv.load_stats_binary(str(tfxs.uri + "/" + path)), [])
        assert ours_stats.datasets[0].num_examples == ROWS[split]
        assert ours_stats == tfx_stats, split
        assert set(ours_sums) == {"fare", "trip_seconds", "tips", "extras"}
        for feature, (mean, std_dev) in ours_sums.items():
            assert mean == pytest.approx(tfx_sums[feature][0], rel=1e-12)
            assert std_dev == pytest.approx(tfx_sums[feature][1], rel=1e-12)


def test_the_in_memory_path_is_for_small_inputs_with_default_options(examples, monkeypatch):
    assert in_memory_executor.in_memory_applies(examples, {"exclude_splits": "[]"})
    for options in (
        {"exclude_splits": '["eval"]'},
        {"sample_rate_by_split": '{"train": 0.5}'},
        {"stats_options_json": tfdv.StatsOptions(num_top_values=3).to_json()},
        {"sharded_stats_output": True},
    ):
        assert not in_memory_executor.in_memory_applies(examples, options), options
    assert not in_memory_executor.in_memory_applies(
        examples, {}, ["--runner=DataflowRunner", "--project=p"]
    )
    assert in_memory_executor.in_memory_applies(examples, {}, ["--runner=DirectRunner"])
    size = in_memory_executor.examples_bytes(examples)
    assert size > 0
    monkeypatch.setattr(in_memory_executor, "IN_MEMORY_MAX_BYTES", size - 1)
    assert not in_memory_executor.in_memory_applies(examples, {})


def test_a_large_input_goes_to_tfxs_beam_executor(examples, tmp_path, monkeypatch):
    monkeypatch.setattr(in_memory_executor, "IN_MEMORY_MAX_BYTES", 0)
    calls = []
    monkeypatch.setattr(
        in_memory_executor,
        "_split_statistics",
        lambda *args: calls.append(args),  # must not be reached
    )
    statistics = _run(in_memory_executor.Executor, examples, tmp_path / "beam")
    assert calls == []
    stats = tfdv.load_stats_binary(f"{statistics.uri}/Split-train/{tfx_executor.DEFAULT_FILE_NAME}")
    assert stats.datasets[0].num_examples == ROWS["train"]


def test_a_column_typed_differently_in_two_batches_goes_to_beam(tmp_path, monkeypatch):
    folder = tmp_path / "Split-train"
    folder.mkdir()
    options = tf.io.TFRecordOptions(compression_type="GZIP")
    with tf.io.TFRecordWriter(str(folder / "data_tfrecord-00000-of-00001.gz"), options) as f:
        for i in range(80):  # integers in the first 40 rows, floats in the next 40
            value = (
                tf.train.Feature(int64_list=tf.train.Int64List(value=[i]))
                if i < 40
                else tf.train.Feature(float_list=tf.train.FloatList(value=[i / 2]))
            )
            example = tf.train.Example(features=tf.train.Features(feature={"x": value}))
            f.write(example.SerializeToString())
    examples = standard_artifacts.Examples()
    examples.uri = str(tmp_path)
    examples.split_names = json.dumps(["train"])
    monkeypatch.setattr(in_memory_executor, "READ_BATCH_ROWS", 40)
    assert in_memory_executor._split_statistics(examples, "train", tfdv.StatsOptions()) is None

"""What a run records and how differences and artifacts are compared, without running the pipeline
(test_reproduce.py replays real runs)."""

from __future__ import annotations

import copy
import hashlib
import json
from pathlib import Path

import pytest
import tensorflow as tf
import yaml

from components import data_files
from components.span_example_gen import spans
from metadata import run_comparison
from orchestration import reproduce
from pipeline import run_environment
from pipeline.config import PipelineConfig
from tests.conftest import PROJECT_ROOT, TAXI_PROFILE_DIR
from tests.fixtures.models import save_predict_model


@pytest.fixture(scope="module")
def taxi_record():
    config = PipelineConfig.from_profile(TAXI_PROFILE_DIR, train_steps=123)
    return config, run_environment.capture(config)


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# ---- the record ----------------------------------------------------------------------------------
def test_a_record_holds_code_lock_versions_profile_settings_and_seeds(taxi_record):
    config, record = taxi_record
    assert record["lock"]["sha256"] == _sha256(PROJECT_ROOT / "requirements.lock")
    assert record["versions"]["tensorflow"] == tf.__version__
    assert record["versions"]["tfx"] == "1.16.0"
    files = record["source_files"]
    assert files["components/model.py"] == _sha256(PROJECT_ROOT / "components" / "model.py")
    assert files["schema/schema.pbtxt"] == _sha256(PROJECT_ROOT / "schema" / "schema.pbtxt")
    # Data, tests, documentation and the profile file itself (recorded parsed) are not source.
    assert not any(
        name.startswith(("tests/", "data/", "bench/")) or name.endswith((".md", ".csv"))
        for name in files
    )
    assert "profiles/taxi/profile.yaml" not in files
    assert record["profile"]["content"] == yaml.safe_load(
        (TAXI_PROFILE_DIR / "profile.yaml").read_text()
    )
    assert record["settings"]["train_steps"] == 123
    assert record["profile_overrides"] == ["train_steps"]
    assert record["seeds"] == {"seed": 42, "deterministic": True, "python_hash_seed": 0}
    assert "output_dir" not in record["settings"] and "metadata" not in record["settings"]
    json.loads(run_environment.to_json(record))  # stored as JSON


def test_a_replay_takes_the_recorded_settings_and_the_profile_as_it_is(taxi_record, tmp_path):
    config, record = taxi_record
    replay = reproduce.replay_config(record, tmp_path)
    assert replay.output_dir == tmp_path
    assert replay.metadata_location.path == tmp_path / "metadata.db"
    assert replay.train_steps == 123  # given on the command line, so recorded and kept
    assert replay.data_dir == config.data_dir and isinstance(replay.data_dir, Path)
    assert dict(replay.drift_thresholds) == dict(config.drift_thresholds)
    assert replay.extra_beam_args == () and replay.deterministic
    assert run_environment.settings_of(replay) == run_environment.settings_of(config)


def test_differences_name_each_file_key_version_and_setting(taxi_record):
    _, record = taxi_record
    now = copy.deepcopy(record)
    now["source_files"]["components/model.py"] = "0" * 64
    now["source_files"]["components/new_module.py"] = "1" * 64
    del now["source_files"]["components/tuning.py"]
    now["lock"]["sha256"] = "2" * 64
    now["versions"]["tensorflow"] = "2.17.0"
    now["profile"]["content"]["training"]["train_steps"] = 801
    now["profile"]["content"]["blessing"]["at_least"]["recall"] = 0.5
    now["settings"]["seed"] = 7
    now["git"]["commit"] = "f" * 40
    now["platform"]["machine"] = "aarch64"
    found = {(d.kind, d.subject): d for d in run_environment.differences(record, now)}
    texts = sorted(d.text() for d in found.values() if not d.informational)
    assert texts == sorted(
        [
            f"source file components/model.py changed (sha256 "
            f"{record['source_files']['components/model.py'][:12]} -> 000000000000)",
            "source file components/new_module.py is new",
            "source file components/tuning.py is gone",
            f"lock requirements.lock: recorded {record['lock']['sha256']!r}, now {'2' * 64!r}",
            "library tensorflow: recorded '2.16.2', now '2.17.0'",
            "profile training.train_steps: recorded 800, now 801",
            "profile blessing.at_least.recall: recorded absent, now 0.5",
            "settings seed: recorded 42, now 7",
        ]
    )
    # A new commit and another machine are shown, not refused.
    assert found[("git", "commit")].informational
    assert found[("platform", "machine")].informational
    assert run_environment.differences(record, copy.deepcopy(record)) == []


def test_without_git_a_record_says_so(monkeypatch, taxi_record):
    config, _ = taxi_record
    monkeypatch.setattr(run_environment, "_git", lambda *args: None)
    record = run_environment.capture(config)
    assert record["git"] == {
        "commit": None,
        "uncommitted_changes": None,
        "note": "not a git checkout",
    }
    # The files are still listed, walking the project's folder.
    assert record["source_files"]["components/model.py"] == _sha256(
        PROJECT_ROOT / "components" / "model.py"
    )


# ---- data ------------------------------------------------------------------------------------------
def test_the_files_a_run_reads_are_the_latest_span_and_its_window(tmp_path):
    for span, rows in ((1, "a\n1\n"), (2, "a\n2\n"), (3, "a\n3\n"), (4, None)):
        folder = tmp_path / f"span-{span}"
        folder.mkdir()
        if rows:
            (folder / "part.csv").write_text(rows)
    (tmp_path / "span-3" / "more.csv").write_text("a\n4\n")
    found = spans.files_a_run_reads(str(tmp_path), "span-{SPAN}/*.csv", training_spans=2)
    assert found == {
        2: [str(tmp_path / "span-2" / "part.csv")],
        3: [str(tmp_path / "span-3" / "more.csv"), str(tmp_path / "span-3" / "part.csv")],
    }
    assert list(spans.files_a_run_reads(str(tmp_path), "span-{SPAN}/*.csv")) == [3]
    assert spans.files_a_run_reads(str(tmp_path / "nothing"), "span-{SPAN}/*.csv") == {}


def test_a_data_file_record_is_its_hash_and_size(tmp_path):
    path = tmp_path / "rows.csv"
    path.write_bytes(b"a,b\n1,2\n" * 100_000)
    assert data_files.file_record(str(path), 3) == {
        "span": 3,
        "path": str(path),
        "sha256": _sha256(path),
        "bytes": path.stat().st_size,
    }
    assert data_files.parse(None) == [] and data_files.parse("[]") == []


# ---- artifacts compared ---------------------------------------------------------------------------
def _write_split(uri: Path, split: str, records: list[bytes]) -> None:
    folder = uri / f"Split-{split}"
    folder.mkdir(parents=True)
    with tf.io.TFRecordWriter(str(folder / "data.gz"), options="GZIP") as writer:
        for record in records:
            writer.write(record)


def test_examples_are_compared_by_file_then_explained_by_example(tmp_path):
    a, b, c, d = (tmp_path / name for name in "abcd")
    _write_split(a, "train", [b"x", b"y", b"z"])
    _write_split(b, "train", [b"x", b"y", b"z"])
    _write_split(c, "train", [b"z", b"y", b"x"])
    _write_split(d, "train", [b"x", b"y", b"w", b"v"])
    assert run_comparison.compare_files(str(a), str(b)) == []
    reordered = run_comparison.compare_files(str(a), str(c))
    assert reordered and reordered[0].startswith("file Split-train/data.gz differs")
    assert run_comparison._explain_examples(str(a), str(c)) == [
        "train: the same examples in another order"
    ]
    assert run_comparison._explain_examples(str(a), str(d)) == [
        "train: 3 vs 4 examples; 1 only in run A, 2 only in run B"
    ]
    (b / "extra.txt").write_text("more")
    assert run_comparison.compare_files(str(a), str(b)) == ["file extra.txt only in run B"]


def test_weights_are_compared_variable_by_variable(tmp_path):
    one = save_predict_model(tmp_path / "one", scale=2.0)
    same = save_predict_model(tmp_path / "same", scale=2.0)
    other = save_predict_model(tmp_path / "other", scale=2.5)
    assert run_comparison.compare_weights(str(one), str(same)) == []
    [line] = run_comparison.compare_weights(str(one), str(other))
    assert line.startswith("weights ") and "1 of 1 values differ, by at most 0.5" in line


def _save_constant_model(path: Path, value: float) -> Path:
    class Model(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec([None], tf.float32)])
        def scale(self, x):
            return x * tf.constant(value, name="mean")

    model = Model()
    tf.saved_model.save(model, str(path), signatures={"serving_default": model.scale})
    return path


def test_a_graphs_constants_are_compared_by_value_not_by_function_names(tmp_path):
    one = _save_constant_model(tmp_path / "one", 317.05603)
    # Saved after other functions were traced: TF numbers its functions differently.
    for _ in range(3):
        tf.function(lambda x: x + 1).get_concrete_function(tf.TensorSpec([], tf.float32))
    same = _save_constant_model(tmp_path / "same", 317.05603)
    other = _save_constant_model(tmp_path / "other", 317.0561)
    assert run_comparison.compare_graph_constants(str(one), str(same)) == []
    [line] = run_comparison.compare_graph_constants(str(one), str(other))
    assert "mean" in line and "317.05" in line


def _write_shards(folder: Path, family: str, shards: list[list[bytes]]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for number, records in enumerate(shards):
        name = f"{family}-{number:05d}-of-{len(shards):05d}.tfrecord"
        with tf.io.TFRecordWriter(str(folder / name)) as writer:
            for record in records:
                writer.write(record)


def test_sharded_results_are_compared_as_sets_of_records(tmp_path):
    # Several Beam workers put a record in another shard, in another order, from run to run.
    _write_shards(tmp_path / "a", "metrics", [[b"slice 1", b"slice 2"], [b"slice 3"]])
    _write_shards(tmp_path / "b", "metrics", [[b"slice 3", b"slice 1"], [b"slice 2"]])
    _write_shards(tmp_path / "c", "metrics", [[b"slice 1", b"slice 2"], [b"slice 4"]])
    assert run_comparison.compare_record_sets(str(tmp_path / "a"), str(tmp_path / "b")) == {}
    assert run_comparison.compare_record_sets(str(tmp_path / "a"), str(tmp_path / "c")) == {
        "metrics": "metrics: 3 vs 3 records; 1 only in run A, 1 only in run B"
    }


def test_a_record_is_stored_in_parts_a_postgresql_index_takes(taxi_record):
    from ml_metadata.proto import metadata_store_pb2

    from metadata import runs

    _, record = taxi_record
    text = run_environment.to_json(record)
    properties = runs.environment_properties(text)
    # ML Metadata on PostgreSQL refused the record whole: an index row holds at most 8191 bytes.
    assert len(text) > 8191
    assert all(len(value.encode()) <= 2000 for value in properties.values())
    context = metadata_store_pb2.Context()
    for name, value in properties.items():
        context.custom_properties[name].string_value = value
    assert runs.recorded_environment(context) == record
    assert runs.recorded_environment(metadata_store_pb2.Context()) is None

"""The whole chain on a small real sample, then asked what happened: ML Metadata, the pushed
model in a fresh process, BulkInferrer's output, and the cache on a re-run."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import tensorflow as tf
from ml_metadata.proto import metadata_store_pb2
from tensorflow_metadata.proto.v0 import anomalies_pb2
from tensorflow_serving.apis import prediction_log_pb2

from metadata.artifact_readers import count_prediction_logs, evaluation
from metadata.runs import run_contexts, run_executions
from metadata.store import StoreIndex, custom_property, output_artifacts
from tests.conftest import PIPELINE_NAME, SAMPLE_SPANS, SAMPLE_UNLABELED_ROWS, node_status
from tests.test_pipeline import EXPECTED_NODES

# The session's taxi runs (tests/conftest.py e2e_runs); a worker runs the group whole.
pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("taxi-sample")]
# With nothing changed, every component is cached: the resolver only looks the baseline up.
CACHED_ON_RERUN = EXPECTED_NODES - {"LatestBlessedModelResolver"}


def _runs(output_dir: Path):
    index = StoreIndex.open(output_dir / "metadata.db")
    return index, run_contexts(index.store, PIPELINE_NAME)


def _first_run_executions(output_dir: Path):
    index, runs = _runs(output_dir)
    return index, run_executions(index, runs[-1].id)  # the first, cold run


def _execution_outputs(index, executions, node_id):
    node = next(e for e in executions if e.node_id == node_id)
    return output_artifacts(index.store, node.execution.id)


def test_first_run_succeeds_and_prints_progress_and_summary(e2e_runs):
    first = e2e_runs["first"]
    assert first.returncode == 0, first.stdout + first.stderr
    out = first.stdout
    status = node_status(out)
    assert set(status) == EXPECTED_NODES
    for node_id, text in status.items():
        expected = "resolved" if node_id == "LatestBlessedModelResolver" else "executed"
        assert text.startswith(expected), (node_id, text)
    assert "BLESSED by Evaluator" in out and "NOT BLESSED" not in out
    assert "Serving:    BLESSED by InfraValidator: the model loaded in" in out
    assert "Pushed:     version" in out
    assert "Data:       span 2 ingested; training on span(s) 1,2" in out
    assert "schema: no anomaly; no drift past thresholds vs span 1" in out
    assert "Skew:       batch to score (unlabeled span 1) vs training data:" in out
    assert f"Inference:  {SAMPLE_UNLABELED_ROWS} predictions" in out
    # The thousands of TF/Beam/absl lines went to the log file, not the terminal.
    assert len(out.splitlines()) < 2 * len(EXPECTED_NODES) + 25
    assert "tensorflow" not in first.stderr.lower() and "absl" not in out
    log_files = list((e2e_runs["output_dir"] / "logs").glob("run-*.log"))
    assert log_files and sum(len(f.read_text().splitlines()) for f in log_files) > 500


def test_no_model_server_process_is_left_running(e2e_runs):
    import psutil

    servers = [
        p.pid
        for p in psutil.process_iter(["cmdline"])
        if "serving.model_server" in " ".join(p.info["cmdline"] or [])
        and str(e2e_runs["output_dir"]) in " ".join(p.info["cmdline"] or [])
    ]
    assert not servers


def test_one_complete_execution_per_component(e2e_runs):
    index, runs = _runs(e2e_runs["output_dir"])
    assert len(runs) == 2
    executions = run_executions(index, runs[-1].id)  # the first, cold run
    assert sorted(e.node_id for e in executions) == sorted(EXPECTED_NODES)
    assert all(
        e.execution.last_known_state == metadata_store_pb2.Execution.COMPLETE for e in executions
    ), [(e.node_id, e.state) for e in executions]


def test_no_anomalies_and_no_drift_on_clean_data(e2e_runs):
    index, executions = _first_run_executions(e2e_runs["output_dir"])
    anomalies_dir = Path(
        _execution_outputs(index, executions, "ExampleValidator")["anomalies"][0].uri
    )
    drift_dir = Path(_execution_outputs(index, executions, "DriftValidator")["anomalies"][0].uri)
    split_files = sorted(anomalies_dir.glob("Split-*/SchemaDiff.pb"))
    assert {f.parent.name for f in split_files} == {
        "Split-latest_train",
        "Split-latest_eval",
        "Split-previous_train",
        "Split-previous_eval",
    }
    drift_files = sorted(drift_dir.glob("SplitPair-*/SchemaDiff.pb"))
    assert [f.parent.name for f in drift_files] == ["SplitPair-latest_train_previous_train"]
    for f in split_files + drift_files:
        anomalies = anomalies_pb2.Anomalies.FromString(f.read_bytes())
        assert not anomalies.anomaly_info, f"{f}: {dict(anomalies.anomaly_info)}"
        assert not anomalies.dataset_anomaly_info.reason
    # The drift check really compared the configured features, with their measurements.
    drift = anomalies_pb2.Anomalies.FromString(drift_files[0].read_bytes())
    compared = {".".join(info.path.step) for info in drift.drift_skew_info}
    assert {"payment_type", "trip_start_hour", "tips"} <= compared


def test_training_window_covers_both_spans(e2e_runs):
    """Both shipped spans were read, split by role, and evaluated together."""
    index, executions = _first_run_executions(e2e_runs["output_dir"])
    examples = _execution_outputs(index, executions, "CsvExampleGen")["examples"][0]
    assert custom_property(examples, "span") == 2
    assert custom_property(examples, "spans_latest") == "2"
    assert custom_property(examples, "spans_previous") == "1"
    labeled_rows = sum(n for path, n in SAMPLE_SPANS.items() if path.startswith("labeled"))
    evaluation_artifact = _execution_outputs(index, executions, "Evaluator")["evaluation"][0]
    example_count = evaluation(evaluation_artifact.uri)["overall"]["example_count"]
    # The eval share of the hash split (1 of 4 buckets) over both spans, not over one.
    assert 0.2 * labeled_rows < example_count < 0.3 * labeled_rows


def test_model_is_blessed_and_pushed_in_tf_serving_layout(e2e_runs):
    index, executions = _first_run_executions(e2e_runs["output_dir"])
    blessing = _execution_outputs(index, executions, "Evaluator")["blessing"][0]
    assert custom_property(blessing, "blessed") == 1
    infra_blessing = _execution_outputs(index, executions, "InfraValidator")["blessing"][0]
    assert custom_property(infra_blessing, "blessed") == 1
    assert "answered 30 requests" in custom_property(infra_blessing, "reason")  # 10 per signature
    pushed = _execution_outputs(index, executions, "Pusher")["pushed_model"][0]
    assert custom_property(pushed, "pushed") == 1
    version = str(custom_property(pushed, "pushed_version"))
    version_dir = e2e_runs["output_dir"] / "serving_model" / PIPELINE_NAME / version
    assert version.isdigit() and (version_dir / "saved_model.pb").is_file()
    assert (version_dir / "variables").is_dir()


SCORE_IN_FRESH_PROCESS = r"""
import csv, json, sys
import tensorflow as tf
model_dir, csv_path, schema_types = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
loaded = tf.saved_model.load(model_dir)
with open(csv_path, newline="") as f:
    row = next(csv.DictReader(f))
feature = {}
for name, value in row.items():
    if value == "":
        values = []
    kind = schema_types[name]
    if kind == "BYTES":
        feature[name] = tf.train.Feature(bytes_list=tf.train.BytesList(value=[value.encode()] if value else []))
    elif kind == "FLOAT":
        feature[name] = tf.train.Feature(float_list=tf.train.FloatList(value=[float(value)] if value else []))
    else:
        feature[name] = tf.train.Feature(int64_list=tf.train.Int64List(value=[int(float(value))] if value else []))
example = tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString()
outputs = loaded.signatures["serving_default"](examples=tf.constant([example]))
print(json.dumps({"example": example.hex(), **{k: v.numpy().tolist() for k, v in outputs.items()}}))
"""


def test_pushed_model_scores_a_tf_example_in_a_fresh_process(e2e_runs, sample_data_dir):
    from google.protobuf import text_format
    from tensorflow_metadata.proto.v0 import schema_pb2

    from tests.conftest import PROJECT_ROOT

    schema = text_format.Parse(
        (PROJECT_ROOT / "schema/schema.pbtxt").read_text(), schema_pb2.Schema()
    )
    types = {f.name: schema_pb2.FeatureType.Name(f.type) for f in schema.feature}
    version_dir = max((e2e_runs["output_dir"] / "serving_model" / PIPELINE_NAME).iterdir())
    result = subprocess.run(
        [
            sys.executable,
            "-c",
            SCORE_IN_FRESH_PROCESS,
            str(version_dir),
            str(sample_data_dir / "unlabeled" / "span-1" / "taxi.csv"),
            json.dumps(types),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    scores = json.loads(result.stdout.strip().splitlines()[-1])
    scored = _feature_values(bytes.fromhex(scores["example"]))
    # The same row, as the run's BulkInferrer scored it with the same model: the same answer.
    index, executions = _first_run_executions(e2e_runs["output_dir"])
    uri = _execution_outputs(index, executions, "BulkInferrer")["inference_result"][0].uri
    by_bulk_inferrer = [
        tf.make_ndarray(log.predict_log.response.outputs["probabilities"])[position].tolist()
        for log in _prediction_logs(uri)
        for position, serialized in enumerate(log.predict_log.request.inputs["examples"].string_val)
        if _feature_values(serialized) == scored
    ]
    assert len(by_bulk_inferrer) == 1, "the row is in the scored batch once"
    assert scores["probabilities"][0] == pytest.approx(by_bulk_inferrer[0], abs=1e-6)


def _feature_values(serialized: bytes) -> dict[str, list]:
    """A tf.Example's values by feature; an empty feature is [] whatever its kind (TFX's CSV
    conversion leaves the kind of an all-empty column unset)."""
    values = {}
    for name, feature in tf.train.Example.FromString(serialized).features.feature.items():
        kind = feature.WhichOneof("kind")
        values[name] = list(getattr(feature, kind).value) if kind else []
    return values


def _prediction_logs(uri: str) -> list[prediction_log_pb2.PredictionLog]:
    return [
        prediction_log_pb2.PredictionLog.FromString(record.numpy())
        for path in tf.io.gfile.glob(f"{uri}/prediction_logs-*")
        for record in tf.data.TFRecordDataset(path, compression_type="GZIP")
    ]


def test_bulk_inferrer_wrote_one_prediction_per_unlabeled_row(e2e_runs):
    index, executions = _first_run_executions(e2e_runs["output_dir"])
    outputs = _execution_outputs(index, executions, "BulkInferrer")
    uri = Path(outputs["inference_result"][0].uri)
    assert count_prediction_logs(str(uri)) == SAMPLE_UNLABELED_ROWS
    first_file = next(uri.glob("prediction_logs-*"))
    record = next(iter(tf.data.TFRecordDataset(str(first_file), compression_type="GZIP")))
    from tensorflow_serving.apis import prediction_log_pb2

    log = prediction_log_pb2.PredictionLog.FromString(record.numpy())
    assert "probabilities" in log.predict_log.response.outputs


def test_rerun_with_nothing_changed_reuses_the_cache(e2e_runs):
    second = e2e_runs["second"]
    assert second is not None and second.returncode == 0, second and second.stdout + second.stderr
    index, runs = _runs(e2e_runs["output_dir"])
    executions = {e.node_id: e for e in run_executions(index, runs[0].id)}
    cached = {
        n
        for n, e in executions.items()
        if e.execution.last_known_state == metadata_store_pb2.Execution.CACHED
    }
    assert cached == CACHED_ON_RERUN, {n: e.state for n, e in executions.items()}
    assert "(pushed by an earlier run; nothing changed)" in second.stdout
    status = node_status(second.stdout)
    for node_id in CACHED_ON_RERUN:
        assert status[node_id].startswith("cached"), (node_id, status[node_id])
    assert status["LatestBlessedModelResolver"].startswith("resolved")
    # The summary is about this run: its own id, not the first run's.
    assert f"Run {runs[0].name} finished" in second.stdout

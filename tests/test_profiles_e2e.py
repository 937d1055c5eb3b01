"""Other datasets through the whole chain with no code edited: the shipped penguin profile
(multiclass), and a CSV the project has never seen taken from `init` to a pushed model."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf
from tensorflow_serving.apis import prediction_log_pb2

from metadata.runs import run_contexts, run_executions
from metadata.store import StoreIndex, custom_property, output_artifacts
from tests.conftest import PROJECT_ROOT, node_status, run_cli
from tests.test_pipeline import EXPECTED_NODES

pytestmark = pytest.mark.e2e
# The session's runs these tests read (tests/conftest.py); a worker runs each group whole.
PENGUIN = pytest.mark.xdist_group("penguin")
HOUSE_PRICES = pytest.mark.xdist_group("house-prices")
PENGUIN_UNLABELED_ROWS = 10


def _executions(output_dir: Path, pipeline_name: str, run_position: int = -1):
    index = StoreIndex.open(output_dir / "metadata.db")
    runs = run_contexts(index.store, pipeline_name)
    return index, run_executions(index, runs[run_position].id)


def _outputs(index, executions, node_id):
    node = next(e for e in executions if e.node_id == node_id)
    return output_artifacts(index.store, node.execution.id)


def _prediction_logs(uri: str) -> list[prediction_log_pb2.PredictionLog]:
    files = tf.io.gfile.glob(f"{uri}/prediction_logs-*")
    return [
        prediction_log_pb2.PredictionLog.FromString(record.numpy())
        for f in files
        for record in tf.data.TFRecordDataset(f, compression_type="GZIP")
    ]


@PENGUIN
def test_penguin_runs_the_whole_chain_to_a_pushed_model(penguin_runs):
    first = penguin_runs["first"]
    assert first.returncode == 0, first.stdout + first.stderr
    status = node_status(first.stdout)
    assert set(status) == EXPECTED_NODES
    assert all(
        text.startswith("resolved" if node == "LatestBlessedModelResolver" else "executed")
        for node, text in status.items()
    ), status
    assert "BLESSED by Evaluator" in first.stdout and "NOT BLESSED" not in first.stdout
    assert "answered 20 requests" in first.stdout  # Predict and Classify, 10 examples each
    assert f"Inference:  {PENGUIN_UNLABELED_ROWS} predictions" in first.stdout
    assert "span 1 ingested" in first.stdout
    pushed = sorted((penguin_runs["output_dir"] / "serving_model" / "penguin").iterdir())
    assert pushed and (pushed[0] / "saved_model.pb").exists()


@PENGUIN
def test_penguin_model_beats_the_majority_class_and_scores_three_classes(penguin_runs):
    index, executions = _executions(penguin_runs["output_dir"], "penguin")
    outputs = _outputs(index, executions, "Evaluator")
    assert custom_property(outputs["blessing"][0], "blessed") == 1
    assert custom_property(outputs["blessing"][0], "beats_trivial_predictor") == 1
    trivial = json.loads((Path(outputs["evaluation"][0].uri) / "trivial_baseline.json").read_text())
    assert trivial["metric"] == "accuracy" and trivial["passed"]
    # Adelie (0) is the most common species: 146 of 334 rows.
    assert trivial["trivial_predictor"] == "always class '0'"
    assert 0.3 < trivial["trivial_value"] < 0.6
    assert trivial["candidate_value"] >= max(0.8, trivial["required"])

    logs = _prediction_logs(_outputs(index, executions, "BulkInferrer")["inference_result"][0].uri)
    assert len(logs) == PENGUIN_UNLABELED_ROWS
    for log in logs:
        probabilities = tf.make_ndarray(log.predict_log.response.outputs["probabilities"])
        assert probabilities.shape == (1, 3)
        np.testing.assert_allclose(probabilities.sum(), 1.0, rtol=1e-5)


@PENGUIN
def test_penguin_pushed_model_classifies_with_the_profiles_class_names(penguin_runs):
    pushed = sorted((penguin_runs["output_dir"] / "serving_model" / "penguin").iterdir())[0]
    loaded = tf.saved_model.load(str(pushed))
    assert set(loaded.signatures) == {"serving_default", "classification", "transform_features"}
    example = tf.train.Example()
    for name, value in {
        "culmen_length_mm": 0.25,
        "culmen_depth_mm": 0.67,
        "flipper_length_mm": 0.15,
        "body_mass_g": 0.29,
    }.items():
        example.features.feature[name].float_list.value.append(value)
    result = loaded.signatures["classification"](inputs=tf.constant([example.SerializeToString()]))
    assert [c.decode() for c in result["classes"].numpy()[0]] == ["0", "1", "2"]
    scores = result["scores"].numpy()[0]
    assert scores.argmax() == 0  # the first row of the labeled data: an Adelie


@PENGUIN
def test_penguin_rerun_is_cached_and_a_blessing_change_re_evaluates_only(penguin_runs):
    second = penguin_runs["second"]
    assert second is not None and second.returncode == 0, second and second.stdout
    status = node_status(second.stdout)
    assert all(
        text.startswith("cached")
        for node, text in status.items()
        if node != "LatestBlessedModelResolver"
    ), status

    changed = penguin_runs["blessing_changed"]
    assert changed is not None and changed.returncode == 0, changed and changed.stdout
    status = node_status(changed.stdout)
    for node in ("CsvExampleGen", "Transform", "Tuner", "Trainer", "InfraValidator"):
        assert status[node].startswith("cached"), (node, status[node])
    assert status["Evaluator"].startswith("executed"), status["Evaluator"]
    # Re-blessed under the new thresholds, the same model is pushed again as a new version.
    assert status["Pusher"].startswith("executed")
    assert len(list((penguin_runs["output_dir"] / "serving_model" / "penguin").iterdir())) == 2


def test_kubeflow_compiles_a_profile_under_its_own_name(tmp_path):
    import yaml

    result = run_cli(
        "--orchestrator=kubeflow",
        f"--profile={PROJECT_ROOT / 'profiles' / 'penguin'}",
        f"--output-dir={tmp_path}",
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    spec = yaml.safe_load((tmp_path / "kubeflow" / "penguin.yaml").read_text())
    assert spec["pipelineInfo"]["name"] == "penguin"
    text = json.dumps(spec)
    # The profile's parts travel inside the spec: a task in the cluster needs no profile file.
    assert "species" in text and "/pipeline/profiles/penguin/data" in text


@HOUSE_PRICES
def test_a_new_csv_goes_from_init_to_a_blessed_pushed_model_and_predictions(house_prices_runs):
    init, profile_dir = house_prices_runs["init"], house_prices_runs["profile_dir"]
    assert init.returncode == 0, init.stdout + init.stderr
    assert "regression" in init.stdout and "python run_local.py --profile" in init.stdout
    assert re.search(r"Listed On\s+datetime: ISO dates from 2024-01-", init.stdout)
    assert re.search(r"Agent Remarks\s+text: free text in \d+ of \d+ labeled rows", init.stdout)
    assert re.search(r"Has Garden\?\s+boolean: yes/no values", init.stdout)
    profile_text = (profile_dir / "profile.yaml").read_text()
    assert "name: house-prices" in profile_text

    output_dir = house_prices_runs["output_dir"]
    run = house_prices_runs["blessed"]
    assert run.returncode == 0, run.stdout + run.stderr
    out = run.stdout
    assert "(regression, label 'Sale Price (kEUR)'" in out
    assert "Model:      BLESSED by Evaluator" in out and "RMSE" in out
    assert "vs trivial predictor (always the training mean" in out
    assert "NOT met" not in out
    pushed = list((output_dir / "serving_model" / "house-prices").iterdir())
    assert len(pushed) == 1
    held_out = (
        sum(1 for _ in (profile_dir / "data" / "unlabeled" / "span-1" / "data.csv").open()) - 1
    )
    assert f"Inference:  {held_out} predictions" in out

    index, executions = _executions(output_dir, "house-prices")
    trivial = json.loads(
        (
            Path(_outputs(index, executions, "Evaluator")["evaluation"][0].uri)
            / "trivial_baseline.json"
        ).read_text()
    )
    # The price swings by hundreds of kEUR; the model's error must be a fraction of that.
    assert trivial["candidate_value"] < 0.5 * trivial["trivial_value"]
    # A ridge regression on the same transformed features, scored on the same eval rows: the
    # price is linear in them, so it does well too, and the model is measured against it.
    linear = json.loads(
        (
            Path(_outputs(index, executions, "Evaluator")["evaluation"][0].uri)
            / "linear_baseline.json"
        ).read_text()
    )
    assert linear["linear_value"] < 0.3 * trivial["trivial_value"]
    assert linear["candidate_value"] == trivial["candidate_value"]
    assert linear["gap"] == pytest.approx(
        (linear["linear_value"] - linear["candidate_value"]) / linear["linear_value"]
    )
    assert linear["max_gap"] is None and linear["passed"] is None  # reported, not required
    assert linear["linear_model"].startswith("ridge regression (alpha 1) on ")
    assert linear["eval_rows"] > 50 and linear["train_rows"] > 3 * linear["eval_rows"] * 0.7
    assert "vs linear baseline (ridge regression (alpha 1) on " in out
    gap = linear["gap"]
    direction = "lower" if gap >= 0 else "higher"
    assert f"RMSE {linear['linear_value']:.4g}, this model's {abs(gap):.1%} {direction}" in out

    listed = run_cli("inspect", "runs", f"--metadata-uri={output_dir / 'metadata.db'}", timeout=120)
    assert listed.returncode == 0 and "COMPLETE" in listed.stdout
    assert re.search(r"Pusher\s+executed", listed.stdout)

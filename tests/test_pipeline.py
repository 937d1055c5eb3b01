"""The pipeline definition: every component, wired to the right inputs."""

import pytest
import tensorflow_model_analysis as tfma
from google.protobuf import json_format
from tfx import v1 as tfx

from pipeline import definition as pipeline_module
from pipeline.config import PipelineConfig
from pipeline.fingerprint import code_fingerprint, tuning_fingerprint
from tests.conftest import PROJECT_ROOT, taxi_config

EXPECTED_NODES = {
    "CsvExampleGen",
    "StatisticsGen",
    "SchemaGen",
    "CuratedSchemaImporter",
    "ExampleValidator",
    "DriftValidator",
    "DataGate",
    "Transform",
    "Tuner",
    "Trainer",
    "LatestBlessedModelResolver",
    "Evaluator",
    "InfraValidator",
    "Pusher",
    "UnlabeledExampleGen",
    "UnlabeledStatisticsGen",
    "SkewValidator",
    "BulkInferrer",
}


@pytest.fixture(scope="module")
def nodes(tmp_path_factory):
    config = taxi_config(output_dir=tmp_path_factory.mktemp("out"))
    p = pipeline_module.create_pipeline(config)
    return {c.id: c for c in p.components}, config


def _producer(channel) -> str:
    return channel.producer_component_id


def test_every_component_is_in_the_pipeline(nodes):
    by_id, _ = nodes
    assert set(by_id) == EXPECTED_NODES


def test_components_are_wired_to_the_right_inputs(nodes):
    by_id, _ = nodes
    assert _producer(by_id["StatisticsGen"].inputs["examples"]) == "CsvExampleGen"
    assert _producer(by_id["SchemaGen"].inputs["statistics"]) == "StatisticsGen"
    validator = by_id["ExampleValidator"].inputs
    assert _producer(validator["statistics"]) == "StatisticsGen"
    assert _producer(validator["schema"]) == "CuratedSchemaImporter"  # the contract, not the guess
    assert _producer(by_id["Transform"].inputs["schema"]) == "CuratedSchemaImporter"
    assert _producer(by_id["Transform"].inputs["examples"]) == "CsvExampleGen"
    drift = by_id["DriftValidator"].inputs
    assert (
        _producer(drift["statistics"])
        == _producer(drift["baseline_statistics"])
        == ("StatisticsGen")
    )
    gate = by_id["DataGate"].inputs
    assert _producer(gate["anomalies"]) == "ExampleValidator"
    assert _producer(gate["drift_anomalies"]) == "DriftValidator"
    # The gate: Transform waits for it, and everything that trains or pushes waits for Transform.
    assert "DataGate" in {n.id for n in by_id["Transform"].upstream_nodes}
    skew = by_id["SkewValidator"].inputs
    assert _producer(skew["statistics"]) == "UnlabeledStatisticsGen"
    assert _producer(skew["baseline_statistics"]) == "StatisticsGen"
    # Transform writes its graph only: Tuner and Trainer read the raw examples and transform them
    # with that graph as they batch them.
    assert list(by_id["Transform"].outputs) == ["transform_graph"]
    for trainer_like in ("Tuner", "Trainer"):
        assert _producer(by_id[trainer_like].inputs["examples"]) == "CsvExampleGen"
        assert _producer(by_id[trainer_like].inputs["transform_graph"]) == "Transform"
    assert _producer(by_id["Trainer"].inputs["hyperparameters"]) == "Tuner"
    evaluator = by_id["Evaluator"].inputs
    assert _producer(evaluator["model"]) == "Trainer"
    assert _producer(evaluator["baseline_model"]) == "LatestBlessedModelResolver"
    # The baseline is the latest blessed model other than the Trainer's candidate.
    assert {n.id for n in by_id["LatestBlessedModelResolver"].upstream_nodes} == {"Trainer"}
    assert _producer(evaluator["examples"]) == "CsvExampleGen"
    pusher = by_id["Pusher"].inputs
    assert _producer(pusher["model"]) == "Trainer"
    assert _producer(pusher["model_blessing"]) == "Evaluator"
    assert _producer(pusher["infra_blessing"]) == "InfraValidator"
    infra = by_id["InfraValidator"].inputs
    assert _producer(infra["model"]) == "Trainer"
    assert _producer(infra["examples"]) == "CsvExampleGen"
    inferrer = by_id["BulkInferrer"].inputs
    assert _producer(inferrer["examples"]) == "UnlabeledExampleGen"
    assert _producer(inferrer["model"]) == "Trainer"
    assert _producer(inferrer["model_blessing"]) == "Evaluator"


def test_settings_reach_the_components(nodes):
    by_id, config = nodes
    push_destination = json_format.Parse(
        by_id["Pusher"].exec_properties["push_destination"], tfx.proto.PushDestination()
    )
    assert push_destination.filesystem.base_directory == config.serving_model_location
    tuner_config = by_id["Tuner"].exec_properties["custom_config"]
    assert '"max_trials": 2' in tuner_config
    assert by_id["CsvExampleGen"].exec_properties["input_base"] == config.labeled_data_location
    assert by_id["UnlabeledExampleGen"].exec_properties["input_base"] == str(
        config.unlabeled_data_location
    )


def _with_blessing(profile, **blessing):
    return profile.model_copy(update={"blessing": profile.blessing.model_copy(update=blessing)})


def test_eval_config_has_thresholds_and_a_slice():
    taxi = _with_blessing(taxi_config().profile, at_least={"auc": 0.8, "accuracy": 0.7})
    eval_config = pipeline_module.eval_config(taxi)
    assert len(eval_config.slicing_specs) == 2
    thresholds = {m.class_name: m.threshold for m in eval_config.metrics_specs[0].metrics}
    assert thresholds["AUC"].value_threshold.lower_bound.value == 0.8
    assert thresholds["AUC"].change_threshold.absolute.value == -0.01
    assert thresholds["BinaryAccuracy"].value_threshold.lower_bound.value == 0.7
    assert {"ExampleCount", "Precision", "Recall", "Calibration", "BinaryAccuracy"} <= set(
        thresholds
    )


def test_binary_auc_floor_is_the_trivial_predictor_plus_the_margin():
    taxi = _with_blessing(taxi_config().profile, at_least={}, margin_over_trivial=0.1)
    thresholds = {
        m.class_name: m.threshold
        for m in pipeline_module.eval_config(taxi).metrics_specs[0].metrics
    }
    assert thresholds["AUC"].value_threshold.lower_bound.value == pytest.approx(0.6)


def test_eval_config_fits_each_task():
    penguin = PipelineConfig.from_profile(PROJECT_ROOT / "profiles" / "penguin").profile
    config = pipeline_module.eval_config(penguin)
    overall = {m.class_name: m.threshold for m in config.metrics_specs[0].metrics}
    assert overall["SparseCategoricalAccuracy"].value_threshold.lower_bound.value == 0.8
    assert overall["SparseCategoricalAccuracy"].change_threshold.absolute.value == -0.02
    assert "MultiClassConfusionMatrixPlot" in overall and "AUC" not in overall
    per_class = config.metrics_specs[1]
    assert list(per_class.binarize.class_ids.values) == [0, 1, 2]
    assert {m.class_name for m in per_class.metrics} == {"Precision", "Recall"}
    assert config.model_specs[0].prediction_key == "probabilities"
    assert config.model_specs[0].label_key == "species_xf"

    regression = penguin.model_copy(
        update={
            "label": penguin.label.model_copy(update={"task": "regression", "classes": None}),
            "blessing": penguin.blessing.model_copy(
                update={"at_least": {}, "at_most": {"rmse": 2}}
            ),
        }
    )
    config = pipeline_module.eval_config(regression)
    overall = {m.class_name: m.threshold for m in config.metrics_specs[0].metrics}
    rmse = overall["RootMeanSquaredError"]
    assert rmse.value_threshold.upper_bound.value == 2
    assert rmse.change_threshold.direction == tfma.MetricDirection.LOWER_IS_BETTER
    assert rmse.change_threshold.relative.value == 0.02
    assert {"MeanSquaredError", "MeanAbsoluteError"} <= set(overall)
    assert config.model_specs[0].prediction_key == "predictions"


def test_code_fingerprint_follows_the_code(tmp_path, monkeypatch):
    package = tmp_path / "fp_pkg"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "shared.py").write_text("X = 1\n")
    (package / "entry.py").write_text(
        "from fp_pkg import shared\n\ndef fn():\n    return shared.X\n"
    )
    (package / "unrelated.py").write_text("Y = 1\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    before = code_fingerprint("fp_pkg.entry.fn")
    (package / "unrelated.py").write_text("Y = 2\n")
    assert code_fingerprint("fp_pkg.entry.fn") == before
    (package / "shared.py").write_text("X = 2\n")
    assert code_fingerprint("fp_pkg.entry.fn") != before


def test_preprocessing_and_model_code_have_separate_fingerprints():
    config = taxi_config()
    assert code_fingerprint(config.preprocessing_fn) != code_fingerprint(config.run_fn)


def test_tuning_fingerprint_follows_the_search_space_not_the_model_code(tmp_path, monkeypatch):
    """Editing the model reuses the last best hyperparameters; a new search space re-tunes."""
    package = tmp_path / "tune_pkg"
    package.mkdir()
    (package / "__init__.py").write_text("")
    space = (
        "import keras_tuner\n\ndef search_space():\n    hp = keras_tuner.HyperParameters()\n"
        "    hp.Choice('units', [{units}])\n    return hp\n\ndef build():\n    return {model}\n"
    )
    (package / "model.py").write_text(space.format(units="8, 16", model=1))
    (package / "tuning.py").write_text("from tune_pkg import model\n\ndef tuner_fn():\n    pass\n")
    monkeypatch.syspath_prepend(str(tmp_path))

    def fingerprint():
        import importlib
        import sys

        sys.modules.pop("tune_pkg.model", None)
        importlib.invalidate_caches()
        return tuning_fingerprint("tune_pkg.tuning.tuner_fn", "tune_pkg.model.search_space")

    before = fingerprint()
    (package / "model.py").write_text(space.format(units="8, 16", model=2))
    assert fingerprint() == before
    (package / "model.py").write_text(space.format(units="8, 16, 32", model=2))
    assert fingerprint() != before


def test_retune_changes_only_the_tuner_cache_key(tmp_path):
    import json

    def keys(config):
        by_id = {c.id: c for c in pipeline_module.create_pipeline(config).components}
        return {
            node: json.loads(by_id[node].exec_properties["custom_config"])
            for node in ("Transform", "Tuner", "Trainer")
        }

    plain = keys(taxi_config(output_dir=tmp_path))
    retuned = keys(taxi_config(output_dir=tmp_path, retune_token="2026-11-27T12:00:00"))
    assert retuned["Tuner"]["retune"] == "2026-11-27T12:00:00" and "retune" not in plain["Tuner"]
    assert retuned["Transform"] == plain["Transform"] and retuned["Trainer"] == plain["Trainer"]


def test_the_baseline_excludes_the_candidate_only_when_the_orchestrator_asks():
    def resolver(**options):
        pipeline = pipeline_module.create_pipeline(taxi_config(), **options)
        return next(c for c in pipeline.components if c.id == "LatestBlessedModelResolver")

    local = resolver(exclude_candidate_from_baseline=True)
    assert set(local.inputs) == {"model", "model_blessing", "candidate"}
    stock = resolver(exclude_candidate_from_baseline=False)
    assert set(stock.inputs) == {"model", "model_blessing"}


def test_editing_the_curated_schema_changes_its_import_key(tmp_path):
    """ImportSchemaGen's cache key is the schema's path: the content fingerprint makes an edited
    schema re-import (and everything downstream re-run) at the same path."""
    schema = tmp_path / "schema.pbtxt"
    schema.write_text('feature { name: "fare" type: FLOAT }\n')

    def import_key():
        pipeline = pipeline_module.create_pipeline(taxi_config(curated_schema_file=schema))
        node = next(c for c in pipeline.components if c.id == "CuratedSchemaImporter")
        return node.exec_properties["schema_file"], node.exec_properties["content_fingerprint"]

    path, before = import_key()
    assert path == str(schema)
    schema.write_text('feature { name: "fare" type: INT }\n')
    path_after, after = import_key()
    assert path_after == path and after != before


def test_beam_options_come_from_the_orchestrator():
    pipeline = pipeline_module.create_pipeline(
        taxi_config(), beam_pipeline_args=("--direct_num_workers=1",)
    )
    assert pipeline.beam_pipeline_args == ["--direct_num_workers=1"]

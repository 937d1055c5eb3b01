"""The Evaluator trims TFMA's batches to what its metrics and slices read before TFMA splits them
per example (components/evaluator/lean_extracts.py). Its evaluation must be TFMA's own: the
session's cold taxi run's Evaluator is run again, in this process, with TFMA's default extractors
on the same model and rows, and every metric, plot and validation result compared."""

from __future__ import annotations

import json

import pytest
import tensorflow_model_analysis as tfma
from tfx.dsl.components.base.base_beam_executor import BaseBeamExecutor
from tfx.types import artifact_utils

from components.evaluator import executor, lean_extracts
from metadata.store import input_artifacts, output_artifacts
from pipeline.definition import eval_config
from tests.conftest import run_node, taxi_config

pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("taxi-sample")]


def test_slice_columns_and_kept_keys():
    config = eval_config(taxi_config().profile)
    assert lean_extracts.slice_columns(config) == {"trip_start_hour"}
    kept = lean_extracts.kept_keys(config)
    assert kept["features"] == {"trip_start_hour": {}}
    assert {"labels", "predictions", "example_weights"} <= kept.keys()
    assert "input" not in kept and "arrow_record_batch" not in kept


def _metrics(evaluation_uri: str) -> dict:
    return {
        (str(m.slice_key), str(e.key)): e.value
        for m in tfma.load_metrics(evaluation_uri)
        for e in m.metric_keys_and_values
    }


def _typed(store, artifacts_by_key: dict) -> dict:
    types = {t.id: t for t in store.get_artifact_types()}
    return {
        key: [artifact_utils.deserialize_artifact(types[a.type_id], a) for a in artifacts]
        for key, artifacts in artifacts_by_key.items()
    }


def test_the_evaluation_equals_tfmas_default_extractors(e2e_runs, tmp_path):
    output_dir = e2e_runs["output_dir"]
    assert e2e_runs["first"].returncode == 0
    index, node = run_node(output_dir, "Evaluator", run_position=-1)  # the cold run
    inputs = _typed(index.store, input_artifacts(index.store, node.execution.id))
    written = output_artifacts(index.store, node.execution.id)
    outputs = _typed(index.store, written)
    for key, artifacts in outputs.items():
        for artifact in artifacts:
            artifact.uri = str(tmp_path / key)
    properties = {
        key: value.string_value
        for key, value in node.execution.custom_properties.items()
        if key in ("eval_config", "example_splits", "trivial_baseline", "linear_baseline")
    }
    assert json.loads(properties["example_splits"])
    # TFMA's default extractors: no custom_extractors property reaches TFX's executor.
    properties[lean_extracts.CUSTOM_EXTRACTORS_PROPERTY] = None
    context = BaseBeamExecutor.Context(
        beam_pipeline_args=["--direct_running_mode=in_memory", "--direct_num_workers=1"],
        tmp_dir=str(tmp_path / "tmp"),
        unique_id="default-extractors",
    )
    executor.Executor(context).Do(inputs, outputs, properties)

    lean = _metrics(written["evaluation"][0].uri)
    default = _metrics(outputs["evaluation"][0].uri)
    assert len(lean) > 50 and lean.keys() == default.keys()
    assert {k: v for k, v in lean.items() if v != default[k]} == {}
    assert list(tfma.load_plots(written["evaluation"][0].uri)) == list(
        tfma.load_plots(outputs["evaluation"][0].uri)
    )
    assert tfma.load_validation_result(written["evaluation"][0].uri) == tfma.load_validation_result(
        outputs["evaluation"][0].uri
    )

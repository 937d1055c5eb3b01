"""Dataset profiles: the loader's validation, and how a run uses a profile (without running it)."""

import os
import shutil
from pathlib import Path

import pytest

from components import profile as profiles
from orchestration import preflight
from pipeline.config import PipelineConfig
from tests.conftest import PROJECT_ROOT, invoke, run_cli, taxi_config

MINIMAL = """
name: flowers
label: {column: Species, task: multiclass, classes: [setosa, versicolor, virginica]}
features:
  Petal Length (cm): numeric
  Petal/Sepal ratio: {kind: bucketized, buckets: 4}
"""


def _error(text: str) -> str:
    with pytest.raises(profiles.ProfileError) as refused:
        profiles.parse(text, "flowers/profile.yaml")
    return str(refused.value)


def test_shipped_profiles_load_and_taxi_keeps_its_label_rule():
    taxi = profiles.load(PROJECT_ROOT / "profiles" / "taxi")
    assert taxi.task == "binary" and taxi.label.positive_when.times_column == "fare"
    assert taxi.label.class_names == ["0", "1"]
    assert len(taxi.model_features) == 15 and taxi.slices == ["trip_start_hour"]
    assert "tips" in taxi.data_checks.drift and "tips" not in taxi.skew
    penguin = profiles.load(PROJECT_ROOT / "profiles" / "penguin")
    assert penguin.task == "multiclass" and penguin.label.class_names == ["0", "1", "2"]


def test_defaults_and_shorthand():
    profile = profiles.parse(MINIMAL, "p")
    assert profile.features["Petal Length (cm)"].kind == profiles.FeatureKind.NUMERIC
    assert profile.training.train_steps == 800 and profile.blessing.margin_over_trivial == 0.05
    assert profile.headline_metric == "accuracy"
    assert profiles.transformed_name("Petal/Sepal ratio") == "petal_sepal_ratio_xf"
    assert profiles.transformed_name("2nd Floor") == "f_2nd_floor_xf"


@pytest.mark.parametrize(
    "change, message",
    [
        (("name: flowers", "name: My Flowers"), "name: String should match pattern"),
        (("numeric", "numerc"), "features.Petal Length (cm).kind: Input should be 'numeric'"),
        (("buckets: 4", "buckets: 1"), "features.Petal/Sepal ratio.buckets: Input should be"),
        (("task: multiclass", "task: ranking"), "label.task: Input should be 'binary'"),
        (
            ("classes: [setosa, versicolor, virginica]", "classes: [setosa]"),
            "label: a multiclass label needs `classes` with at least two values",
        ),
        (
            ("classes: [setosa, versicolor, virginica]", "classes: [a, b, a]"),
            "label: `classes` lists a value twice",
        ),
        (
            ("task: multiclass, classes: [setosa, versicolor, virginica]", "task: binary"),
            "a binary label needs `classes` with its two values",
        ),
        (("name: flowers", "name: flowers\ncolour: red"), "colour: not a profile setting"),
    ],
)
def test_each_mistake_is_named_by_its_key(change, message):
    old, new = change
    assert message in _error(MINIMAL.replace(old, new, 1))


@pytest.mark.parametrize(
    "extra, message",
    [
        ("slices: [Colour]", "slices: 'Colour' is not in features"),
        ("data_checks: {drift: {Colour: 0.1}}", "data_checks.drift: 'Colour' is not a column"),
        ("blessing: {at_least: {auc: 0.8}}", "'auc' is not a multiclass metric (one of accuracy)"),
        ("data_checks: {skew: {Species: 0.1}}", "the batch to score has no label column"),
        ("code: {run_fn: my model.py}", "code.run_fn: 'my model.py' is not a dotted path"),
        ("training: {train_steps: 0}", "training.train_steps: Input should be greater than"),
    ],
)
def test_references_between_keys_are_checked(extra, message):
    assert message in _error(MINIMAL + extra + "\n")


def test_the_label_cannot_be_a_feature_and_names_must_not_collide():
    assert "the label column 'Species' is also listed in features" in _error(
        MINIMAL + "  Species: vocabulary\n"
    )
    assert "map to the same model input ['petal_length_cm_xf']" in _error(
        MINIMAL + "  petal length cm: numeric\n"
    )


def test_not_yaml_and_not_a_mapping():
    assert "is not valid YAML" in _error("name: [unclosed")
    assert "must be a YAML mapping" in _error("- just\n- a list\n")


def test_config_from_a_profile_takes_its_paths_name_and_budgets(tmp_path):
    folder = tmp_path / "flowers"
    folder.mkdir()
    (folder / "profile.yaml").write_text(
        MINIMAL + "training: {train_steps: 123}\ndata_checks: {drift: {Species: 0.2}}\n"
    )
    config = PipelineConfig.from_profile(folder, train_steps=7)
    assert config.pipeline_name == "flowers"
    assert (
        config.data_dir == folder / "data" and config.curated_schema_file == folder / "schema.pbtxt"
    )
    assert config.train_steps == 7  # the command line wins over the profile's 123
    assert PipelineConfig.from_profile(folder).train_steps == 123
    assert dict(config.drift_thresholds) == {"Species": 0.2} and dict(config.skew_thresholds) == {}


def test_a_bad_profile_stops_the_run_with_exit_2_and_nothing_written(tmp_path):
    folder = tmp_path / "bad"
    folder.mkdir()
    (folder / "profile.yaml").write_text(MINIMAL.replace("numeric", "numerc"))
    result = invoke(f"--profile={folder}", f"--output-dir={tmp_path / 'out'}")
    assert result.exit_code == 2
    assert "features.Petal Length (cm).kind" in result.output
    assert not (tmp_path / "out").exists()
    missing = invoke(f"--profile={tmp_path / 'nowhere'}", f"--output-dir={tmp_path / 'out'}")
    assert missing.exit_code == 2 and "No profile at" in missing.output


def test_a_column_the_schema_lacks_is_named_before_anything_runs(tmp_path):
    folder = tmp_path / "penguin"
    shutil.copytree(PROJECT_ROOT / "profiles" / "penguin", folder)
    profile_file = folder / "profile.yaml"
    profile_file.write_text(profile_file.read_text().replace("body_mass_g:", "body_mass:"))
    result = run_cli(f"--profile={folder}", f"--output-dir={tmp_path / 'out'}", timeout=120)
    assert result.returncode == 2, result.stdout + result.stderr
    shown = result.stdout + result.stderr
    assert "names the column 'body_mass' under `features`" in shown
    assert "(it has 'body_mass_g')" in shown
    assert not list(Path(tmp_path / "out").glob("pipeline_root/*"))
    taxi = taxi_config().profile
    misspelt = taxi.model_copy(update={"label": taxi.label.model_copy(update={"column": "tip"})})
    with pytest.raises(preflight.SetupError, match="names the column 'tip' under `label.column`"):
        preflight.check_profile_columns(taxi_config(profile=misspelt))


def test_user_code_beside_the_profile_is_importable_and_fingerprinted(tmp_path, monkeypatch):
    import sys

    from pipeline.definition import create_pipeline
    from pipeline.fingerprint import code_fingerprint
    from pipeline.user_code import make_user_code_importable

    monkeypatch.setattr(sys, "path", list(sys.path))
    monkeypatch.setenv("PYTHONPATH", "")
    folder = tmp_path / "penguin"
    shutil.copytree(PROJECT_ROOT / "profiles" / "penguin", folder)
    (folder / "penguin_code.py").write_text(
        "from components.preprocessing import preprocessing_fn as default_fn\n\n\n"
        "def preprocessing_fn(inputs, custom_config):\n"
        "    return default_fn(inputs, custom_config)\n"
    )
    profile_file = folder / "profile.yaml"
    profile_file.write_text(
        profile_file.read_text() + "code: {preprocessing_fn: penguin_code.preprocessing_fn}\n"
    )
    config = PipelineConfig.from_profile(folder)
    # Loading a profile leaves the import path alone; making its code importable is a step.
    assert str(folder) not in sys.path and os.environ["PYTHONPATH"] == ""
    make_user_code_importable(config)
    assert sys.path[0] == str(folder) and os.environ["PYTHONPATH"] == str(folder)
    make_user_code_importable(config)  # once is enough: a second call adds nothing
    assert sys.path.count(str(folder)) == 1 and os.environ["PYTHONPATH"] == str(folder)
    preflight.check_user_code(config)
    transform = next(c for c in create_pipeline(config).components if c.id == "Transform")
    assert transform.exec_properties["preprocessing_fn"] == "penguin_code.preprocessing_fn"
    before = code_fingerprint(config.preprocessing_fn)
    with (folder / "penguin_code.py").open("a") as f:
        f.write("# an edit\n")
    assert code_fingerprint(config.preprocessing_fn) != before

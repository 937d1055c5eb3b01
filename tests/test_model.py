"""The Keras model of each task, the Tuner's search space, and the exported SavedModel's serving
signatures, built, trained briefly and called for real on a tf.Transform output of a few rows."""

import functools
import os

import keras
import keras_tuner
import numpy as np
import pytest
import tensorflow as tf
import tensorflow_transform as tft
import tensorflow_transform.beam as tft_beam
from tensorflow.core.protobuf import saved_model_pb2
from tensorflow_transform.tf_metadata import dataset_metadata, metadata_io, schema_utils
from tfx import v1 as tfx

from components import model, preprocessing, tuning
from components import profile as profiles
from tests.conftest import taxi_config

ROWS = 96
PROFILES = {
    # Every kind of input: numbers, a vocabulary, a boolean, dates (ISO and epoch) and text.
    "binary": """
name: churn
label: {column: "Churned?", task: binary, classes: ["no", "yes"]}
features:
  Monthly Fee: numeric
  Plan/Type: vocabulary
  Autopay: boolean
  Signed Up: {kind: datetime, format: iso, parts: [day_of_week, month, hour, age]}
  Last Login: {kind: datetime, format: epoch_seconds, parts: [hour, age]}
  Notes: {kind: text, top_k: 20, max_tokens: 6}
""",
    "multiclass": """
name: plans
label: {column: Plan/Type, task: multiclass, classes: [basic, plus, pro]}
features:
  Monthly Fee: numeric
  "Churned?": vocabulary
""",
    "regression": """
name: fees
label: {column: Monthly Fee, task: regression}
features:
  Plan/Type: vocabulary
  "Churned?": vocabulary
""",
}
SPEC = {
    "Monthly Fee": tf.io.VarLenFeature(tf.float32),
    "Plan/Type": tf.io.VarLenFeature(tf.string),
    "Churned?": tf.io.VarLenFeature(tf.string),
    "Autopay": tf.io.VarLenFeature(tf.string),
    "Signed Up": tf.io.VarLenFeature(tf.string),
    "Last Login": tf.io.VarLenFeature(tf.int64),
    "Notes": tf.io.VarLenFeature(tf.string),
}
NOTES = {
    "basic": "too expensive for what it does, will cancel",
    "plus": "works fine",
    "pro": "great support, fast answers and no downtime this month at all",
}


def _raw_rows(rng: np.random.Generator) -> list[dict]:
    """Plans with fees that depend on the plan (so every task has something to learn); dates,
    a boolean and notes, some of them empty."""
    rows = []
    for i in range(ROWS):
        plan = rng.choice(["basic", "plus", "pro"])
        fee = {"basic": 10.0, "plus": 30.0, "pro": 80.0}[plan] + rng.normal(0, 2)
        churned = "yes" if plan == "basic" else "no"
        signed_up = f"2024-{1 + i % 12:02d}-{1 + i % 28:02d}" + (
            f" {i % 24:02d}:15" if i % 2 else ""
        )
        rows.append(
            {
                "Monthly Fee": [fee],
                "Plan/Type": [plan.encode()],
                "Churned?": [churned.encode()],
                "Autopay": []
                if i % 7 == 0
                else [("True" if plan != "basic" else "False").encode()],
                "Signed Up": [] if i % 10 == 0 else [signed_up.encode()],
                "Last Login": [1_700_000_000 + 3_541 * i],
                "Notes": [] if i % 3 == 0 else [NOTES[plan].encode()],
            }
        )
    return rows


def _example(row: dict, without: str | None) -> bytes:
    feature = {}
    for name, values in row.items():
        if name == without or not values:
            continue
        if isinstance(values[0], bytes):
            feature[name] = tf.train.Feature(bytes_list=tf.train.BytesList(value=values))
        elif isinstance(values[0], int):
            feature[name] = tf.train.Feature(int64_list=tf.train.Int64List(value=values))
        else:
            feature[name] = tf.train.Feature(float_list=tf.train.FloatList(value=values))
    return tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString()


@pytest.fixture(scope="module", params=sorted(PROFILES))
def task_run(request, tmp_path_factory):
    """tf.Transform run on the rows with the task's profile, written as Transform writes it."""
    profile = profiles.parse(PROFILES[request.param], "test profile")
    work = tmp_path_factory.mktemp(request.param)
    raw_rows = _raw_rows(np.random.default_rng(0))
    metadata = dataset_metadata.DatasetMetadata(schema_utils.schema_from_feature_spec(SPEC))
    with tft_beam.Context(temp_dir=str(work / "tmp"), force_tf_compat_v1=False):
        (output, _), transform_fn = (raw_rows, metadata) | tft_beam.AnalyzeAndTransformDataset(
            functools.partial(
                preprocessing.preprocessing_fn, custom_config={"profile": profile.transform_part()}
            ),
            output_record_batches=False,
        )
        _ = transform_fn | tft_beam.WriteTransformFn(str(work / "transform"))
    metadata_io.write_metadata(
        metadata, str(work / "transform" / tft.TFTransformOutput.RAW_METADATA_DIR)
    )
    label = np.array([row.pop(profile.transformed_label) for row in output])
    features = {k: np.array([row[k] for row in output]) for k in output[0]}
    return profile, raw_rows, features, label, tft.TFTransformOutput(str(work / "transform")), work


def test_a_short_fit_lowers_the_loss(task_run):
    profile, _, features, label, _, _ = task_run
    keras.utils.set_random_seed(1)
    scale = (float(label.mean()), float(label.std())) if profile.task == "regression" else (0, 1)
    m = model.build_keras_model(model.search_space(profile.model.model_dump()), profile, scale)
    before = m.evaluate(features, label, verbose=0, return_dict=True)["loss"]
    m.fit(features, label, epochs=20, batch_size=16, verbose=0)
    after = m.evaluate(features, label, verbose=0, return_dict=True)["loss"]
    assert after < before * 0.8


def test_the_export_answers_on_every_signature_of_its_task(task_run):
    profile, raw_rows, features, label, transform_output, work = task_run
    keras.utils.set_random_seed(1)
    scale = (float(label.mean()), float(label.std())) if profile.task == "regression" else (0, 1)
    m = model.build_keras_model(model.search_space(profile.model.model_dump()), profile, scale)
    m.fit(features, label, epochs=30, batch_size=16, verbose=0)
    export_dir = str(work / "export")
    model.export_serving_model(m, transform_output, export_dir, profile)

    loaded = tf.saved_model.load(export_dir)
    assert set(loaded.signatures) == {
        *model.serving_signatures(profile.task),
        model.TRANSFORM_SIGNATURE,
    }
    examples = tf.constant([_example(r, profile.label.column) for r in raw_rows[:8]])
    output = loaded.signatures[model.SERVING_SIGNATURE](examples=examples)
    values = output[model.PREDICTION_KEYS[profile.task]].numpy()
    if profile.task == "multiclass":
        assert values.shape == (8, 3)
        np.testing.assert_allclose(values.sum(axis=1), 1.0, rtol=1e-5)
        assert (values.argmax(axis=1) == label[:8]).mean() >= 0.75
    elif profile.task == "binary":
        assert values.shape == (8, 1) and ((values >= 0) & (values <= 1)).all()
    else:
        assert values.shape == (8, 1)
        # Predictions come back in the label's own units (fees of 10 to 80), not standardized.
        assert np.abs(values[:, 0] - label[:8]).mean() < 10

    if model.CLASSIFY_SIGNATURE in loaded.signatures:
        classified = loaded.signatures[model.CLASSIFY_SIGNATURE](inputs=examples)
        assert [c.decode() for c in classified["classes"].numpy()[0]] == profile.label.class_names
        assert classified["scores"].shape == (8, len(profile.label.class_names))
    if model.REGRESS_SIGNATURE in loaded.signatures:
        assert loaded.signatures[model.REGRESS_SIGNATURE](inputs=examples)["outputs"].shape == (
            8,
            1,
        )

    saved = saved_model_pb2.SavedModel()
    saved.ParseFromString(open(os.path.join(export_dir, "saved_model.pb"), "rb").read())
    methods = {k: v.method_name for k, v in saved.meta_graphs[0].signature_def.items()}
    if profile.task != "regression":
        assert methods[model.CLASSIFY_SIGNATURE] == "tensorflow/serving/classify"
    if profile.task != "multiclass":
        assert methods[model.REGRESS_SIGNATURE] == "tensorflow/serving/regress"
    schema_text = open(os.path.join(export_dir, model.SCHEMA_ASSET)).read()
    assert profile.label.column not in schema_text  # the server never asks for the label


def test_search_space_centres_on_the_profiles_model_size():
    hp = model.search_space({"hidden_units": 16, "hidden_layers": 1, "learning_rate": 0.01})
    assert hp.get("hidden_units") == 16 and hp.get("num_hidden_layers") == 1
    units = next(p for p in hp.space if p.name == "hidden_units")
    assert list(units.values) == [8, 16, 32]
    taxi = model.search_space(taxi_config().profile.model.model_dump())
    rates = next(p for p in taxi.space if p.name == "learning_rate")
    assert list(rates.values) == [3e-3, 1e-3, 3e-4]


def test_hyperparameters_from_tuner_output_override_defaults():
    tuned = model.search_space()
    tuned.values["hidden_units"] = 128
    assert model.hyperparameters_from(tuned.get_config()).get("hidden_units") == 128
    assert model.hyperparameters_from(None).get("hidden_units") == model.search_space().get(
        "hidden_units"
    )


class _FakeDataAccessor:
    """Stands in for TFX's DataAccessor: serves the raw rows, parsed as TFXIO parses them."""

    def __init__(self, raw_rows):
        self.examples = [_example(row, without=None) for row in raw_rows]

    def tf_dataset_factory(self, file_pattern, options, schema):
        assert options.num_epochs == 1  # input_dataset repeats the transformed rows itself
        batches = tf.data.Dataset.from_tensor_slices(self.examples).batch(options.batch_size)
        return batches.map(lambda serialized: tf.io.parse_example(serialized, SPEC))


def test_training_batches_are_the_transform_graph_applied_to_raw_examples(task_run):
    """Transform does not materialize: what the model trains on must be exactly what
    tf.Transform computes (and the export serves with), every row once per pass."""
    profile, raw_rows, features, label, transform_output, _ = task_run
    dataset = model.input_dataset(
        ["unused"],
        _FakeDataAccessor(raw_rows),
        transform_output,
        profile.transformed_label,
        batch_size=16,
        shuffle_seed=3,
    )
    batches = list(dataset.take(2 * ROWS // 16))  # two passes
    assert all(set(x) == set(features) for x, _ in batches)
    columns = sorted(features)

    def rows(batch_list):
        """Each row's transformed values and label, rows in a canonical order."""
        table = np.array(
            [
                [v for c in columns for v in np.ravel(np.asarray(x[c][i], dtype=float))]
                + [float(y[i])]
                for x, y in batch_list
                for i in range(len(y))
            ]
        )
        return table[np.lexsort(table.T[::-1])]

    expected = np.column_stack([features[c].reshape(ROWS, -1) for c in columns] + [label]).astype(
        float
    )
    expected = expected[np.lexsort(expected.T[::-1])]
    half = len(batches) // 2
    np.testing.assert_allclose(rows(batches[:half]), expected, rtol=1e-6)
    np.testing.assert_allclose(rows(batches[half:]), expected, rtol=1e-6)
    # Re-shuffled every pass.
    assert [np.asarray(y).tolist() for _, y in batches[:half]] != [
        np.asarray(y).tolist() for _, y in batches[half:]
    ]


@pytest.mark.parametrize("max_trials", [1, 3])
def test_tuner_fn_returns_a_bounded_random_search_with_the_tasks_objective(task_run, max_trials):
    profile, raw_rows, _, _, _, work = task_run
    fn_args = tfx.components.FnArgs(
        working_dir=str(work / f"tuner-{max_trials}"),
        train_files=["unused"],
        eval_files=["unused"],
        transform_graph_path=str(work / "transform"),
        train_steps=2,
        eval_steps=1,
        data_accessor=_FakeDataAccessor(raw_rows),
        custom_config={"max_trials": max_trials, "seed": 7, "profile": profile.training_part()},
    )
    result = tuning.tuner_fn(fn_args)
    assert isinstance(result.tuner, keras_tuner.RandomSearch)
    assert result.tuner.oracle.max_trials == max_trials
    assert (
        result.tuner.oracle.objective.name
        == {
            "binary": "val_auc",
            "multiclass": "val_sparse_categorical_accuracy",
            "regression": "val_root_mean_squared_error",
        }[profile.task]
    )
    assert result.fit_kwargs["steps_per_epoch"] == 2
    result.tuner.search(
        **{**result.fit_kwargs, "epochs": 1}
    )  # the objective exists in Keras's logs
    assert result.tuner.get_best_hyperparameters(1)


def test_tuner_fn_rejects_an_empty_budget(tmp_path):
    fn_args = tfx.components.FnArgs(
        working_dir=str(tmp_path),
        custom_config={"max_trials": 0, "profile": taxi_config().profile.training_part()},
    )
    with pytest.raises(ValueError, match="max_trials"):
        tuning.tuner_fn(fn_args)

"""The Keras model and the Tuner's search space, built and exercised for real."""

import keras
import keras_tuner
import numpy as np
import pytest
import tensorflow as tf
from tfx import v1 as tfx

from components import features, model, tuning


def fake_transformed_batch(n: int, rng: np.random.Generator) -> tuple[dict, np.ndarray]:
    """Transformed-feature tensors in the model's input format, and a label that depends on them."""
    batch = {}
    for key in features.DENSE_FLOAT_FEATURE_KEYS:
        batch[features.transformed_name(key)] = rng.normal(size=n).astype("float32")
    for name, cardinality in model._categorical_inputs().items():
        batch[name] = rng.integers(0, min(cardinality, 5), size=n).astype("int64")
    label = (batch[features.transformed_name("fare")] > 0).astype("int64")
    return batch, label


def test_model_scores_a_batch_with_probabilities():
    m = model.build_keras_model(model.search_space())
    batch, _ = fake_transformed_batch(16, np.random.default_rng(0))
    out = m(batch)
    assert tuple(out.shape) == (16, 1)
    assert out.dtype == "float32"
    values = np.asarray(out)
    assert ((values >= 0) & (values <= 1)).all()


def test_a_short_fit_lowers_the_loss():
    keras.utils.set_random_seed(1)
    m = model.build_keras_model(model.search_space())
    batch, label = fake_transformed_batch(512, np.random.default_rng(1))
    before = m.evaluate(batch, label, verbose=0, return_dict=True)["loss"]
    m.fit(batch, label, epochs=5, batch_size=64, verbose=0)
    after = m.evaluate(batch, label, verbose=0, return_dict=True)["loss"]
    assert after < before * 0.8


def test_search_space_is_bounded_and_defaults_are_in_it():
    hp = model.search_space()
    assert {p.name for p in hp.space} == {
        "learning_rate",
        "num_hidden_layers",
        "hidden_units",
        "embedding_dim",
    }
    for p in hp.space:
        values = (
            list(p.values) if hasattr(p, "values") else list(range(p.min_value, p.max_value + 1))
        )
        assert 1 <= len(values) <= 10
        assert hp.get(p.name) in values


def test_hyperparameters_from_tuner_output_override_defaults():
    tuned = model.search_space()
    tuned.values["hidden_units"] = 128
    assert model.hyperparameters_from(tuned.get_config()).get("hidden_units") == 128
    assert model.hyperparameters_from(None).get("hidden_units") == model.search_space().get(
        "hidden_units"
    )


class _FakeDataAccessor:
    """Stands in for TFX's DataAccessor: serves a small in-memory dataset."""

    def tf_dataset_factory(self, file_pattern, options, schema):
        batch, label = fake_transformed_batch(64, np.random.default_rng(2))
        return tf.data.Dataset.from_tensor_slices((batch, label)).batch(options.batch_size)


class _FakeTransformOutput:
    """Stands in for tft.TFTransformOutput: the fake data accessor ignores the schema."""

    def __init__(self, path):
        self.transformed_metadata = type("Metadata", (), {"schema": None})()


@pytest.mark.parametrize("max_trials", [1, 3])
def test_tuner_fn_returns_a_bounded_random_search(tmp_path, monkeypatch, max_trials):
    monkeypatch.setattr(tuning.tft, "TFTransformOutput", _FakeTransformOutput)
    fn_args = tfx.components.FnArgs(
        working_dir=str(tmp_path),
        train_files=["unused"],
        eval_files=["unused"],
        transform_graph_path="unused",
        train_steps=2,
        eval_steps=1,
        data_accessor=_FakeDataAccessor(),
        custom_config={"max_trials": max_trials, "seed": 7},
    )
    result = tuning.tuner_fn(fn_args)
    assert isinstance(result.tuner, keras_tuner.RandomSearch)
    assert result.tuner.oracle.max_trials == max_trials
    assert result.tuner.oracle.objective.name == "val_auc"
    assert result.fit_kwargs["steps_per_epoch"] == 2
    assert result.fit_kwargs["validation_steps"] == 1


def test_tuner_fn_rejects_an_empty_budget(tmp_path):
    fn_args = tfx.components.FnArgs(working_dir=str(tmp_path), custom_config={"max_trials": 0})
    with pytest.raises(ValueError, match="max_trials"):
        tuning.tuner_fn(fn_args)

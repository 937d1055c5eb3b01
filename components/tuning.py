"""The Tuner's `tuner_fn`: a bounded KerasTuner random search over `model.search_space()`."""

from __future__ import annotations

import keras_tuner
import tensorflow_transform as tft
from tfx import v1 as tfx

from components import model

DEFAULT_MAX_TRIALS = 2


def tuner_fn(fn_args: tfx.components.FnArgs) -> tfx.components.TunerFnResult:
    """Builds the search; the trial budget comes from `custom_config['max_trials']`."""
    custom_config = fn_args.custom_config or {}
    max_trials = int(custom_config.get("max_trials", DEFAULT_MAX_TRIALS))
    seed = int(custom_config.get("seed", model.DEFAULT_SEED))
    if max_trials < 1:
        raise ValueError(f"Tuner max_trials must be at least 1, got {max_trials}.")

    tuner = keras_tuner.RandomSearch(
        model.build_keras_model,
        max_trials=max_trials,
        hyperparameters=model.search_space(),
        objective=keras_tuner.Objective("val_auc", direction="max"),
        directory=fn_args.working_dir,
        project_name="taxi_search",
        seed=seed,
        overwrite=True,
    )
    tf_transform_output = tft.TFTransformOutput(fn_args.transform_graph_path)
    train = model.input_dataset(
        fn_args.train_files,
        fn_args.data_accessor,
        tf_transform_output,
        model.TRAIN_BATCH_SIZE,
        seed,
    )
    evaluation = model.input_dataset(
        fn_args.eval_files, fn_args.data_accessor, tf_transform_output, model.EVAL_BATCH_SIZE, seed
    )
    return tfx.components.TunerFnResult(
        tuner=tuner,
        fit_kwargs={
            "x": train,
            "validation_data": evaluation,
            "steps_per_epoch": fn_args.train_steps,
            "validation_steps": fn_args.eval_steps,
            "epochs": 1,
            "verbose": 2,
        },
    )

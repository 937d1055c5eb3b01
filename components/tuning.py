"""The Tuner's `tuner_fn`: a bounded KerasTuner random search over `model.search_space()`."""

from __future__ import annotations

import keras
import keras_tuner
import tensorflow_transform as tft
from tfx import v1 as tfx

from components import model

DEFAULT_MAX_TRIALS = 2
# What the search maximizes or minimizes, per task (the validation metric Keras reports).
OBJECTIVES = {
    task: keras_tuner.Objective(metric, direction=direction)
    for task, (metric, direction) in model.VALIDATION_METRIC.items()
}


def tuner_fn(fn_args: tfx.components.FnArgs) -> tfx.components.TunerFnResult:
    """Builds the search; the trial budget comes from `custom_config['max_trials']`."""
    profile, seed = model.training_inputs(fn_args)
    max_trials = int((fn_args.custom_config or {}).get("max_trials", DEFAULT_MAX_TRIALS))
    if max_trials < 1:
        raise ValueError(f"Tuner max_trials must be at least 1, got {max_trials}.")

    tf_transform_output = tft.TFTransformOutput(fn_args.transform_graph_path)
    train, evaluation = model.datasets(fn_args, tf_transform_output, profile, seed)
    scale = model.label_scale(train) if profile.task == "regression" else (0.0, 1.0)

    def build_trial_model(hparams: keras_tuner.HyperParameters):
        # Every trial starts from the run's seed: a trial's score does not depend on the trials
        # before it, and the same trial scores the same in every run.
        keras.utils.set_random_seed(seed)
        return model.build_keras_model(hparams, profile=profile, label_scale=scale)

    tuner = keras_tuner.RandomSearch(
        build_trial_model,
        max_trials=max_trials,
        hyperparameters=model.search_space(profile.model.model_dump()),
        objective=OBJECTIVES[profile.task],
        directory=fn_args.working_dir,
        project_name=f"{profile.name}_search",
        seed=seed,
        overwrite=True,
    )
    return tfx.components.TunerFnResult(
        tuner=tuner,
        fit_kwargs={
            "x": train,
            "validation_data": evaluation,
            "steps_per_epoch": fn_args.train_steps,
            "validation_steps": fn_args.eval_steps,
            "epochs": 1,
            "class_weight": model.class_weights(profile, train),
            "verbose": 2,
        },
    )

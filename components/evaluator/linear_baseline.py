"""The linear baseline a candidate is measured against: a linear model fitted on the same
transformed features, scored on the same eval split, in the same run.

The trivial predictor (trivial_baseline.py) says whether the model learned anything; the linear
baseline says whether it learned as much as a linear model would from the same inputs. It is
fitted by scikit-learn on Transform's outputs (the model's inputs, as `Profile.model_inputs`
lists them): numbers as they are (z-scores, sines and cosines, ages), categories one-hot, and
words as the share of the value's words each word is (a bag of words). Binary and multiclass
labels get a logistic regression, regression labels a ridge regression, both at scikit-learn's
default regularization (C=1, alpha=1).

It is scored on the headline metric (AUC, accuracy, RMSE) of the eval splits, the candidate on
TFMA's figure for the same splits. The profile may require the candidate to be no worse than
the baseline by more than `blessing.vs_linear_baseline` (AUC and accuracy in absolute points,
RMSE as a fraction of the baseline's); off by default, the figures are reported either way.

Splits larger than `max_rows` are read every k-th example (a spread sample, the same in every
run), so that the baseline costs seconds at any scale.
"""

from __future__ import annotations

import dataclasses
import glob
import math
import os
from typing import Any

import numpy as np

RESULT_FILE = "linear_baseline.json"
DEFAULT_MAX_ROWS = 100_000
_TRANSFORM_BATCH = 1024


@dataclasses.dataclass(frozen=True)
class Settings:
    """What the Evaluator gets in its `linear_baseline` parameter (as JSON)."""

    profile: dict  # the profile's transform part (label and features)
    metric: str  # auc, accuracy or rmse
    max_gap: float | None  # blessing.vs_linear_baseline
    train_splits: list[str]
    eval_splits: list[str]
    max_rows: int = DEFAULT_MAX_ROWS


@dataclasses.dataclass(frozen=True)
class Result:
    metric: str
    linear_value: float | None
    candidate_value: float | None
    linear_model: str  # what was fitted, in words
    train_rows: int
    eval_rows: int
    max_gap: float | None
    # How much better the candidate is (positive) or worse (negative): AUC and accuracy in
    # points, RMSE as a fraction of the baseline's.
    gap: float | None
    passed: bool | None  # None: no requirement (max_gap None) or nothing to compare
    note: str = ""  # why there is no figure, when there is none

    def reason(self) -> str:
        """Why the candidate was not blessed, as a sentence."""
        if self.metric == "rmse":
            return (
                f"rmse {self.candidate_value:.4f} is {-self.gap:.1%} above the linear baseline's "
                f"{self.linear_value:.4f}; blessing.vs_linear_baseline allows {self.max_gap:.1%}"
            )
        return (
            f"{self.metric} {self.candidate_value:.4f} is {-self.gap:.4f} below the linear "
            f"baseline's {self.linear_value:.4f}; blessing.vs_linear_baseline allows "
            f"{self.max_gap:.4f}"
        )


def gap(metric: str, candidate: float, linear: float) -> float:
    """How much better the candidate is: points of AUC or accuracy, or the fraction of the
    baseline's RMSE by which the candidate's is lower."""
    if metric == "rmse":
        return (linear - candidate) / linear if linear > 0 else 0.0
    return candidate - linear


def split_files(examples_uri: str, split: str) -> list[str]:
    return sorted(glob.glob(os.path.join(examples_uri, f"Split-{split}", "*")))


def transformed_rows(
    examples_uri: str, splits: list[str], transform_uri: str, max_rows: int, counts: list[int]
) -> dict[str, np.ndarray]:
    """Transform's outputs for the examples of `splits` (every k-th when they hold more than
    `max_rows`), as arrays by output name."""
    import tensorflow as tf
    import tensorflow_transform as tft

    files = [f for split in splits for f in split_files(examples_uri, split)]
    if not files:
        raise ValueError(f"no examples under {examples_uri} for splits {', '.join(splits)}")
    output = tft.TFTransformOutput(transform_uri)
    layer = output.transform_features_layer()
    spec = output.raw_feature_spec()

    @tf.function(autograph=False)
    def transform(serialized):
        return layer(tf.io.parse_example(serialized, spec))

    every = max(1, math.ceil(sum(counts) / max_rows)) if counts else 1
    compression = "GZIP" if files[0].endswith(".gz") else ""
    dataset = tf.data.TFRecordDataset(files, compression_type=compression)
    if every > 1:
        dataset = dataset.shard(every, 0)
    parts: dict[str, list[np.ndarray]] = {}
    for batch in dataset.batch(_TRANSFORM_BATCH):
        for name, value in transform(batch).items():
            if isinstance(value, tf.SparseTensor):
                value = tf.sparse.to_dense(value)
            parts.setdefault(name, []).append(value.numpy())
    return {name: np.concatenate(values) for name, values in parts.items()}


def design_matrix(profile, columns: dict[str, np.ndarray]):
    """The linear model's inputs: numbers as they are, categories one-hot, words as a bag of
    words (each word's share of the value's words); a scipy CSR matrix."""
    from scipy import sparse

    blocks = []
    for model_input in profile.model_inputs():
        value = columns[model_input.name]
        rows = len(value)
        if model_input.kind == "numeric":
            blocks.append(sparse.csr_matrix(value.reshape(rows, 1).astype(np.float64)))
        elif model_input.kind == "categorical":
            ids = np.clip(value.reshape(rows).astype(np.int64), 0, model_input.size - 1)
            blocks.append(
                sparse.csr_matrix(
                    (np.ones(rows), (np.arange(rows), ids)), shape=(rows, model_input.size)
                )
            )
        else:  # tokens: 0 pads
            ids = value.reshape(rows, -1).astype(np.int64)
            row_index, position = np.nonzero(ids)
            words = np.maximum(1, (ids > 0).sum(axis=1))
            blocks.append(
                sparse.csr_matrix(
                    (1.0 / words[row_index], (row_index, ids[row_index, position])),
                    shape=(rows, model_input.size),
                )
            )
    return sparse.hstack(blocks, format="csr")


def fit_and_score(
    profile, train: dict, evaluation: dict, metric: str
) -> tuple[float | None, str, int, int, str]:
    """(the baseline's metric on the eval rows, the model in words, train rows, eval rows,
    note when there is no figure)."""
    from sklearn.linear_model import LogisticRegression, Ridge
    from sklearn.metrics import accuracy_score, mean_squared_error, roc_auc_score

    label = profile.transformed_label
    task = profile.task
    train_y, eval_y = train[label].reshape(-1), evaluation[label].reshape(-1)
    train_x, eval_x = design_matrix(profile, train), design_matrix(profile, evaluation)
    if task != "regression":  # rows whose label is not one of the classes (-1) are left out
        keep_train, keep_eval = train_y >= 0, eval_y >= 0
        train_x, train_y = train_x[keep_train], train_y[keep_train].astype(np.int64)
        eval_x, eval_y = eval_x[keep_eval], eval_y[keep_eval].astype(np.int64)
    rows = (train_x.shape[0], eval_x.shape[0])
    features = train_x.shape[1]
    if task == "regression":
        model = Ridge(alpha=1.0)
        described = f"ridge regression (alpha 1) on {features} inputs"
    else:
        model = LogisticRegression(C=1.0, max_iter=2000)
        described = f"logistic regression (C 1) on {features} inputs"
    described += " (numbers as they are, categories one-hot, words as a bag of words)"
    if task != "regression" and len(np.unique(train_y)) < 2:
        return None, described, *rows, "the training rows hold one class only"
    model.fit(train_x, train_y)
    if metric == "auc":
        if len(np.unique(eval_y)) < 2:
            return None, described, *rows, "the eval rows hold one class only: AUC is undefined"
        return float(roc_auc_score(eval_y, model.predict_proba(eval_x)[:, 1])), described, *rows, ""
    if metric == "accuracy":
        return float(accuracy_score(eval_y, model.predict(eval_x))), described, *rows, ""
    rmse = math.sqrt(mean_squared_error(eval_y, model.predict(eval_x)))
    return float(rmse), described, *rows, ""


def check(
    settings: Settings,
    examples_uri: str,
    transform_uri: str,
    split_counts: dict[str, int],
    candidate_value: float | None,
) -> Result:
    """Fits and scores the baseline, and compares the candidate with it."""
    from components import profile as profiles

    profile = profiles.from_config(settings.profile)
    train, evaluation = (
        transformed_rows(
            examples_uri,
            splits,
            transform_uri,
            settings.max_rows,
            [split_counts.get(s, 0) for s in splits],
        )
        for splits in (settings.train_splits, settings.eval_splits)
    )
    linear, described, train_rows, eval_rows, note = fit_and_score(
        profile, train, evaluation, settings.metric
    )
    difference = None
    if linear is not None and candidate_value is not None:
        difference = gap(settings.metric, candidate_value, linear)
    passed = None
    if settings.max_gap is not None and difference is not None:
        passed = difference >= -settings.max_gap
    return Result(
        metric=settings.metric,
        linear_value=linear,
        candidate_value=candidate_value,
        linear_model=described,
        train_rows=train_rows,
        eval_rows=eval_rows,
        max_gap=settings.max_gap,
        gap=difference,
        passed=passed,
        note=note,
    )


def as_record(result: Result) -> dict[str, Any]:
    record = dataclasses.asdict(result)
    record["reason"] = result.reason() if result.passed is False else ""
    return record

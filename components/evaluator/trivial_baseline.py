"""The trivial predictor a candidate must beat, computed from the training statistics.

- binary: a constant score, whose AUC is 0.5 whatever the constant;
- multiclass: the training data's majority class, scored by its accuracy on the eval split;
- regression: the training mean, scored by its RMSE on the eval split, which the eval split's
  statistics give exactly: sqrt(eval variance + (eval mean - training mean)^2).

The candidate passes when its headline metric beats the trivial one by the profile's margin:
AUC and accuracy by `margin` points, RMSE by `margin` as a fraction of the trivial RMSE.
"""

from __future__ import annotations

import dataclasses
import math
import os
from collections import Counter
from typing import Any

from tensorflow_metadata.proto.v0 import statistics_pb2

RESULT_FILE = "trivial_baseline.json"


@dataclasses.dataclass(frozen=True)
class Settings:
    """What the Evaluator gets in its `trivial_baseline` parameter (as JSON)."""

    task: str
    label: str  # the raw label column
    classes: list[str]
    metric: str  # the profile's headline metric name (auc, accuracy, rmse)
    metric_key: str  # the key TFMA writes it under
    margin: float
    train_splits: list[str]
    eval_splits: list[str]


@dataclasses.dataclass(frozen=True)
class Result:
    metric: str
    trivial_value: float
    candidate_value: float | None
    required: float  # the candidate's bound: at least (auc, accuracy) or at most (rmse)
    passed: bool
    trivial_predictor: str  # what the trivial predictor predicts, in words

    def reason(self) -> str:
        """Why the candidate was not blessed, as a sentence."""
        bound = "at most" if self.metric == "rmse" else "at least"
        got = "not computed" if self.candidate_value is None else f"{self.candidate_value:.4f}"
        return (
            f"{self.metric} {got} does not beat the trivial predictor ({self.trivial_predictor}: "
            f"{self.metric} {self.trivial_value:.4f}) by the margin: needs {bound} "
            f"{self.required:.4f}"
        )


def feature_statistics(statistics: statistics_pb2.DatasetFeatureStatisticsList, name: str):
    """One column's statistics in a split's statistics; None when it has none."""
    for dataset in statistics.datasets:
        for feature in dataset.features:
            if (feature.path.step and list(feature.path.step) == [name]) or feature.name == name:
                return feature
    return None


def class_counts(feature) -> Counter:
    """Rows per label value, from a categorical label's rank histogram."""
    counts: Counter = Counter()
    if feature is None or not feature.HasField("string_stats"):
        return counts
    for bucket in feature.string_stats.rank_histogram.buckets:
        counts[bucket.label] += int(bucket.sample_count)
    if not counts:
        for value in feature.string_stats.top_values:
            counts[value.value] += int(value.frequency)
    return counts


def _moments(feature) -> tuple[float, float, float]:
    """(rows with a value, mean, variance) of a numeric label."""
    stats = feature.num_stats
    return float(stats.common_stats.num_non_missing), stats.mean, stats.std_dev**2


def _pooled(moments: list[tuple[float, float, float]]) -> tuple[float, float, float]:
    """The moments of several splits taken together."""
    total = sum(n for n, _, _ in moments)
    if total == 0:
        return 0.0, 0.0, 0.0
    mean = sum(n * m for n, m, _ in moments) / total
    variance = sum(n * (v + (m - mean) ** 2) for n, m, v in moments) / total
    return total, mean, variance


def check(
    settings: Settings,
    split_statistics: dict[str, statistics_pb2.DatasetFeatureStatisticsList],
    candidate_value: float | None,
) -> Result:
    """The trivial predictor's score on the eval splits and whether the candidate beats it."""
    margin = settings.margin
    if settings.task == "binary":
        trivial, predictor = 0.5, "a constant score"
        required = trivial + margin
        passed = candidate_value is not None and candidate_value >= required
        return Result(settings.metric, trivial, candidate_value, required, passed, predictor)

    def label_features(splits: list[str]):
        found = [feature_statistics(split_statistics[s], settings.label) for s in splits]
        return [f for f in found if f is not None]

    train, evaluation = label_features(settings.train_splits), label_features(settings.eval_splits)
    if not train or not evaluation:
        raise ValueError(
            f"The statistics have no label column {settings.label!r} in the train or eval splits."
        )
    if settings.task == "multiclass":
        train_counts = sum((class_counts(f) for f in train), Counter())
        eval_counts = sum((class_counts(f) for f in evaluation), Counter())
        if not train_counts:
            raise ValueError(
                f"The statistics count no classes for label {settings.label!r}: mark it "
                "categorical in the curated schema (int_domain { is_categorical: true })."
            )
        majority = max(sorted(train_counts), key=lambda c: train_counts[c])
        trivial = eval_counts[majority] / max(1, sum(eval_counts.values()))
        required = trivial + margin
        passed = candidate_value is not None and candidate_value >= required
        predictor = f"always class {majority!r}"
        return Result(settings.metric, trivial, candidate_value, required, passed, predictor)

    _, train_mean, _ = _pooled([_moments(f) for f in train])
    _, eval_mean, eval_variance = _pooled([_moments(f) for f in evaluation])
    trivial = math.sqrt(eval_variance + (eval_mean - train_mean) ** 2)
    required = trivial * (1 - margin)
    passed = candidate_value is not None and candidate_value <= required
    predictor = f"always the training mean {train_mean:.4g}"
    return Result(settings.metric, trivial, candidate_value, required, passed, predictor)


def load_split_statistics(uri: str, splits: list[str]) -> dict[str, Any]:
    """StatisticsGen's output for `splits` (its files are Split-<name>/FeatureStats.pb, a
    serialized DatasetFeatureStatisticsList, as tfdv.load_stats_binary reads them; read here
    without importing TFDV, which takes seconds)."""
    loaded = {}
    for split in splits:
        with open(os.path.join(uri, f"Split-{split}", "FeatureStats.pb"), "rb") as f:
            loaded[split] = statistics_pb2.DatasetFeatureStatisticsList.FromString(f.read())
    return loaded

"""What the data must hold for training and evaluation to mean anything, beyond the schema:
checked by the data gate on the labeled statistics, before Transform.

- a `text` feature needs text in some row of the training splits (else its vocabulary of words
  is empty, and the model would read nothing from it);
- a binary or multiclass label needs two classes or more in the training splits (else there is
  nothing to tell apart) and in the eval splits (else AUC is undefined, and accuracy says nothing
  about the other classes).
"""

from __future__ import annotations

import dataclasses

from components.data_gate.anomalies import Finding
from components.evaluator.trivial_baseline import feature_statistics, load_split_statistics

CHECK = "training"


@dataclasses.dataclass(frozen=True)
class Settings:
    """What the data gate gets in its `training_checks` parameter (as JSON)."""

    label: str
    task: str
    derived_label: bool  # label.positive_when: the classes are computed, not in the column
    text_columns: list[str]
    train_splits: list[str]
    eval_splits: list[str]


def _present(feature) -> int:
    """Rows with a value."""
    if feature is None:
        return 0
    for stats in ("string_stats", "num_stats"):
        if feature.HasField(stats):
            return int(getattr(feature, stats).common_stats.num_non_missing)
    return 0


def _values(feature) -> list[str]:
    """The distinct values of a categorical label seen (at most a few), from its statistics."""
    if feature is None:
        return []
    if feature.HasField("string_stats"):
        seen = [b.label for b in feature.string_stats.rank_histogram.buckets if b.sample_count]
        seen = seen or [v.value for v in feature.string_stats.top_values if v.frequency]
        if feature.string_stats.unique > len(seen):
            seen += ["(more)"] * (feature.string_stats.unique - len(seen))
        return seen
    if feature.HasField("num_stats") and feature.num_stats.common_stats.num_non_missing:
        low, high = feature.num_stats.min, feature.num_stats.max
        return [f"{low:g}"] if low == high else [f"{low:g}", f"{high:g}"]
    return []


def findings(settings: Settings, statistics_uri: str) -> list[Finding]:
    loaded = load_split_statistics(statistics_uri, settings.train_splits + settings.eval_splits)
    train = [loaded[s] for s in settings.train_splits]
    evaluation = [loaded[s] for s in settings.eval_splits]
    found = []
    for column in settings.text_columns:
        if sum(_present(feature_statistics(stats, column)) for stats in train) == 0:
            found.append(
                Finding(
                    CHECK,
                    column,
                    "No text to learn from",
                    f"the profile reads {column!r} as free text (kind: text), but it is empty "
                    "in every labeled row of the training split: fill it in, or set its kind to "
                    "ignored in profile.yaml (features)",
                    list(settings.train_splits),
                )
            )
    if settings.task != "regression" and not settings.derived_label:
        for role, splits, statistics in (
            ("training", settings.train_splits, train),
            ("eval", settings.eval_splits, evaluation),
        ):
            values = sorted(
                {
                    v
                    for stats in statistics
                    for v in _values(feature_statistics(stats, settings.label))
                }
            )
            if len(values) == 1:
                found.append(
                    Finding(
                        CHECK,
                        settings.label,
                        f"One class in the {role} split",
                        f"every labeled row of the {role} split has the label {values[0]!r}, so "
                        + (
                            "the model cannot learn to tell the classes apart"
                            if role == "training"
                            else "the model cannot be evaluated (AUC needs both classes, "
                            "accuracy all of them)"
                        )
                        + ": add labeled rows of the other class(es); the eval split is about "
                        "one row in four, chosen by a hash of the row",
                        list(splits),
                    )
                )
    return found

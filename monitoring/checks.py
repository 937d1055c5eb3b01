"""The checks `monitor` makes on one version's traffic, each giving figures and findings:

- **schema**: the window's TFDV statistics validated against the version's curated schema in the
  SERVING environment (missing required features, values outside a domain or a closed list, type
  errors), as ExampleValidator validates training data;
- **skew**: the window against the training split's statistics, and **drift**: against the
  previous window, with TFDV's comparators (L-infinity for categorical columns, approximate
  Jensen-Shannon divergence for numeric ones) at the profile's thresholds;
- **prediction drift**: the model's answers in the window against its answers on the eval split;
- **live quality**: labels that arrived for logged rows, scored with the task's metrics, against
  the Evaluator's figure for the version.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
from tensorflow_metadata.proto.v0 import anomalies_pb2, schema_pb2, statistics_pb2

from components import profile as profiles
from components.profile import Profile
from metadata.store import native_stderr_captured

CATEGORICAL_DISTANCE = "L-infinity"
NUMERIC_DISTANCE = "Jensen-Shannon"
PREDICTION_BINS = 10
# The Evaluator's metric, per task, that live quality is held against (TFMA's metric key).
EVALUATOR_KEYS = {
    "auc": "auc",
    "accuracy": {"binary": "binary_accuracy", "multiclass": "sparse_categorical_accuracy"},
    "rmse": "root_mean_squared_error",
}


@dataclasses.dataclass
class Finding:
    """A threshold crossed: one line naming the check, the feature and the figure."""

    check: str  # schema, skew, drift, prediction_drift, quality
    feature: str  # "" for the whole data set or the model's answers
    message: str
    value: float | None = None
    threshold: float | None = None

    def line(self) -> str:
        where = f"{self.feature}: " if self.feature else ""
        return f"{self.check}: {where}{self.message}"


# ---- statistics ---------------------------------------------------------------------------------


def decode(examples: list[bytes]):
    """Serialized tf.Examples as one Arrow record batch (a column per feature, as TFDV reads)."""
    from tfx_bsl.coders import example_coder

    return example_coder.ExamplesToRecordBatchDecoder().DecodeBatch(examples)


def statistics_of(examples: list[bytes]) -> statistics_pb2.DatasetFeatureStatisticsList:
    """TFDV's statistics of serialized tf.Examples, computed in this process with the generators
    StatisticsGen uses (components/statistics_gen/executor.py)."""
    return statistics_of_batch(decode(examples))


def statistics_of_batch(batch) -> statistics_pb2.DatasetFeatureStatisticsList:
    import tensorflow_data_validation as tfdv
    from tensorflow_data_validation.statistics import stats_impl

    return stats_impl.generate_statistics_in_memory(batch, tfdv.StatsOptions())


# Values of a categorical feature a distribution shows: the training data's most frequent, then
# live values the training data never had.
TOP_VALUES = 12
NEW_VALUES = 4


def _live_values(batch, name: str) -> list:
    if name not in batch.schema.names:
        return []
    return [v for v in batch.column(name).flatten().to_pylist() if v is not None]


def distributions(
    batch, training: statistics_pb2.DatasetFeatureStatisticsList, schema: schema_pb2.Schema
) -> dict[str, dict[str, Any]]:
    """Per feature of the serving schema, the training split's distribution and the window's on
    the same bins: the training histogram's buckets for numbers (with the live values below and
    above its range), the training data's top values for categories (and new live values)."""
    by_name = {".".join(f.path.step) or f.name: f for f in training.datasets[0].features}
    serving = [f.name for f in schema.feature if "SERVING" not in f.not_in_environment]
    found = {}
    for name in sorted(serving):
        stats = by_name.get(name)
        values = _live_values(batch, name)
        if stats is None:
            continue
        if stats.WhichOneof("stats") == "string_stats":
            buckets = stats.string_stats.rank_histogram.buckets
            total = sum(b.sample_count for b in buckets) or 1
            live = [
                v.decode("utf-8", "replace") if isinstance(v, bytes) else str(v) for v in values
            ]
            counts: dict[str, int] = {}
            for v in live:
                counts[v] = counts.get(v, 0) + 1
            top = [b.label for b in buckets[:TOP_VALUES]]
            known = {b.label for b in buckets}
            new = sorted((v for v in counts if v not in known), key=lambda v: -counts[v])
            labels = top + new[:NEW_VALUES]
            training_share = {b.label: b.sample_count / total for b in buckets}
            found[name] = {
                "kind": "categorical",
                "labels": labels,
                "new": new[:NEW_VALUES],
                "training": [round(training_share.get(v, 0.0), 4) for v in labels],
                "live": [round(counts.get(v, 0) / max(len(live), 1), 4) for v in labels],
                "live_values": len(live),
            }
            continue
        histograms = [
            h
            for h in stats.num_stats.histograms
            if h.type == statistics_pb2.Histogram.STANDARD and h.buckets
        ]
        if not histograms:
            continue
        buckets = histograms[0].buckets
        edges = [buckets[0].low_value] + [b.high_value for b in buckets]
        total = sum(b.sample_count for b in buckets) or 1
        live = np.asarray(values, np.float64)
        inside = np.histogram(live, edges)[0] if len(live) else np.zeros(len(buckets))
        found[name] = {
            "kind": "numeric",
            "edges": [round(e, 6) for e in edges],
            "training": [round(b.sample_count / total, 4) for b in buckets],
            "live": [round(float(c) / max(len(live), 1), 4) for c in inside],
            "live_below": round(float(np.sum(live < edges[0])) / max(len(live), 1), 4),
            "live_above": round(float(np.sum(live > edges[-1])) / max(len(live), 1), 4),
            "training_mean": round(stats.num_stats.mean, 4),
            "live_mean": round(float(live.mean()), 4) if len(live) else None,
            "live_values": int(len(live)),
        }
    return found


def read_statistics(path: str) -> statistics_pb2.DatasetFeatureStatisticsList:
    statistics = statistics_pb2.DatasetFeatureStatisticsList()
    with open(path, "rb") as f:
        statistics.ParseFromString(f.read())
    return statistics


def read_schema(path: str) -> schema_pb2.Schema:
    from google.protobuf import text_format

    with open(path, encoding="utf-8") as f:
        return text_format.Parse(f.read(), schema_pb2.Schema())


def categorical_features(schema: schema_pb2.Schema) -> set[str]:
    """Strings, and integers marked categorical: the columns compared by L-infinity distance."""
    return {
        f.name
        for f in schema.feature
        if f.type == schema_pb2.BYTES or (f.HasField("int_domain") and f.int_domain.is_categorical)
    }


def _with_comparators(schema: schema_pb2.Schema, thresholds: dict[str, float], kind: str):
    """A copy of the schema with `kind` (skew_comparator or drift_comparator) set per feature."""
    copy = schema_pb2.Schema()
    copy.CopyFrom(schema)
    categorical = categorical_features(schema)
    for feature in copy.feature:
        if feature.name not in thresholds:
            continue
        comparator = getattr(feature, kind)
        if feature.name in categorical:
            comparator.infinity_norm.threshold = thresholds[feature.name]
        else:
            comparator.jensen_shannon_divergence.threshold = thresholds[feature.name]
    return copy


def _distances(anomalies: anomalies_pb2.Anomalies, which: str) -> dict[str, dict[str, float]]:
    """Feature -> {distance, threshold, measure} from TFDV's drift_skew_info."""
    found = {}
    for info in anomalies.drift_skew_info:
        name = ".".join(info.path.step)
        for m in getattr(info, which):
            found[name] = {
                "distance": round(m.value, 4),
                "threshold": round(m.threshold, 4),
                "measure": CATEGORICAL_DISTANCE
                if m.type == anomalies_pb2.DriftSkewInfo.Measurement.L_INFTY
                else NUMERIC_DISTANCE,
            }
    return found


_COMPARATOR_TYPES = {
    anomalies_pb2.AnomalyInfo.COMPARATOR_L_INFTY_HIGH,
    anomalies_pb2.AnomalyInfo.COMPARATOR_JENSEN_SHANNON_DIVERGENCE_HIGH,
    anomalies_pb2.AnomalyInfo.COMPARATOR_CONTROL_DATA_MISSING,
    anomalies_pb2.AnomalyInfo.COMPARATOR_TREATMENT_DATA_MISSING,
    anomalies_pb2.AnomalyInfo.COMPARATOR_NORMALIZED_ABSOLUTE_DIFFERENCE_HIGH,
}


def _split_findings(anomalies: anomalies_pb2.Anomalies, comparator_check: str):
    """(schema findings, comparator findings) of one validation."""
    schema_found, compared = [], []
    for feature, info in sorted(anomalies.anomaly_info.items()):
        comparator = [r for r in info.reason if r.type in _COMPARATOR_TYPES]
        other = [r for r in info.reason if r.type not in _COMPARATOR_TYPES]
        if comparator:
            compared.append(
                Finding(comparator_check, feature, "; ".join(r.description for r in comparator))
            )
        if other:
            schema_found.append(
                Finding(
                    "schema",
                    feature,
                    f"{info.short_description}. " + "; ".join(r.description for r in other),
                )
            )
    dataset = anomalies.dataset_anomaly_info
    if dataset.reason:
        schema_found.append(Finding("schema", "", "; ".join(r.description for r in dataset.reason)))
    return schema_found, compared


def validate(
    live: statistics_pb2.DatasetFeatureStatisticsList,
    schema: schema_pb2.Schema,
    training: statistics_pb2.DatasetFeatureStatisticsList | None,
    previous: statistics_pb2.DatasetFeatureStatisticsList | None,
    skew_thresholds: dict[str, float],
    drift_thresholds: dict[str, float],
) -> dict[str, Any]:
    """Schema findings, and the skew and drift distances and findings (None: not compared)."""
    import tensorflow_data_validation as tfdv

    drift_schema = _with_comparators(schema, drift_thresholds, "drift_comparator")
    with native_stderr_captured() as native:  # TFDV's C++ warnings: kept, not on the console
        serving = tfdv.validate_statistics(
            live, drift_schema, environment="SERVING", previous_statistics=previous
        )
    schema_findings, drift_findings = _split_findings(serving, "drift")
    result: dict[str, Any] = {
        "schema": schema_findings,
        "drift": {
            "distances": _distances(serving, "drift_measurements"),
            "findings": drift_findings,
        }
        if previous is not None
        else None,
        "skew": None,
    }
    if training is not None:
        # TFDV compares `serving_statistics` with `statistics`, validated in its own environment.
        skew_schema = _with_comparators(schema, skew_thresholds, "skew_comparator")
        with native_stderr_captured() as more:
            skewed = tfdv.validate_statistics(
                training, skew_schema, environment="TRAINING", serving_statistics=live
            )
        native += more
        _, skew_findings = _split_findings(skewed, "skew")
        result["skew"] = {
            "distances": _distances(skewed, "skew_measurements"),
            "findings": skew_findings,
        }
    result["tfdv_warnings"] = [
        line.split("] ", 1)[-1]
        for text in native
        for line in text.splitlines()
        if line.startswith(("W", "E")) and "] " in line
    ]
    return result


# ---- the model's answers ------------------------------------------------------------------------


def answer_values(answers: list[np.ndarray] | np.ndarray, task: str) -> np.ndarray:
    """One figure per row, as the task reads the model's answer: P(positive) (binary; Classify's
    answers hold both classes' scores), the predicted class (multiclass), the value
    (regression)."""
    rows = [np.asarray(a, np.float64).ravel() for a in answers]
    if task == "binary":
        return np.array([r[-1] for r in rows])
    if task == "multiclass":
        return np.array([int(np.argmax(r)) for r in rows], np.float64)
    return np.array([r[0] for r in rows])


def jensen_shannon(p: np.ndarray, q: np.ndarray) -> float:
    """Jensen-Shannon divergence (base 2, between 0 and 1) of two histograms."""
    p = p / p.sum() if p.sum() else p
    q = q / q.sum() if q.sum() else q
    m = (p + q) / 2

    def kl(a: np.ndarray) -> float:
        mask = a > 0
        return float(np.sum(a[mask] * np.log2(a[mask] / m[mask])))

    return max(0.0, (kl(p) + kl(q)) / 2)


def prediction_drift(
    live: np.ndarray, reference: np.ndarray, task: str, threshold: float
) -> dict[str, Any]:
    """The live answers' distribution against the eval split's: JSD over the reference's decile
    bins (predicted classes for multiclass), with both histograms."""
    if task == "multiclass":
        classes = int(max(live.max(initial=0), reference.max(initial=0))) + 1
        edges = None
        live_counts = np.bincount(live.astype(int), minlength=classes).astype(float)
        reference_counts = np.bincount(reference.astype(int), minlength=classes).astype(float)
    else:
        inner = np.unique(np.quantile(reference, np.linspace(0, 1, PREDICTION_BINS + 1)[1:-1]))
        edges = [-np.inf, *inner.tolist(), np.inf]
        live_counts = np.histogram(live, edges)[0].astype(float)
        reference_counts = np.histogram(reference, edges)[0].astype(float)
    distance = jensen_shannon(live_counts, reference_counts)
    result = {
        "distance": round(distance, 4),
        "threshold": threshold,
        "measure": NUMERIC_DISTANCE,
        "live_mean": round(float(live.mean()), 4),
        "eval_mean": round(float(reference.mean()), 4),
        "bin_edges": None if edges is None else [round(e, 6) for e in inner.tolist()],
        "live_share": (live_counts / max(live_counts.sum(), 1)).round(4).tolist(),
        "eval_share": (reference_counts / max(reference_counts.sum(), 1)).round(4).tolist(),
        "findings": [],
    }
    if distance > threshold:
        result["findings"].append(
            Finding(
                "prediction_drift",
                "",
                f"the model's answers drifted from its answers on the eval split: "
                f"Jensen-Shannon {distance:.3f} > {threshold:g} (mean {live.mean():.3f} live, "
                f"{reference.mean():.3f} on the eval split)",
                distance,
                threshold,
            )
        )
    return result


# ---- live quality -------------------------------------------------------------------------------


class LabelError(ValueError):
    """A label value the profile's label cannot read."""


def target_of(value: Any, profile: Profile, example: bytes) -> float:
    """The model's target for a label value as the label column holds it: the class id
    (binary, multiclass) or the value (regression); a derived binary label
    (positive_when) is worked out with the logged row's own features, as Transform does."""
    label = profile.label
    if label.task == "regression":
        return _number(value)
    if label.positive_when is not None:
        # In float32, a missing times_column read as 0, as Transform derives the training label
        # (components/preprocessing.py): a tip of exactly a fifth of the fare is decided alike.
        rule = label.positive_when
        bound = np.float32(rule.greater_than)
        if rule.times_column:
            bound = np.float32(_feature_value(example, rule.times_column)) * bound
        return float(np.float32(_number(value)) > bound)
    text = profiles.class_text(value)
    if text not in label.class_names:
        try:  # "1.0" in a CSV for the class 1
            text = profiles.class_text(float(text))
        except ValueError:
            pass
    if text not in label.class_names:
        raise LabelError(f"{value!r} is not one of the classes {label.class_names}")
    return float(label.class_names.index(text))


def _number(value: Any) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        raise LabelError(f"{value!r} is not a number") from None


def _feature_value(example: bytes, name: str) -> float:
    import tensorflow as tf

    feature = tf.train.Example.FromString(example).features.feature.get(name)
    values = list(feature.float_list.value) or list(feature.int64_list.value) if feature else []
    return float(values[0]) if values else 0.0


def live_quality(
    targets: np.ndarray,
    answers: list[np.ndarray],
    profile: Profile,
    evaluator_metrics: dict[str, float],
) -> dict[str, Any]:
    """The task's metrics on the labelled rows, the Evaluator's figure beside each, and a
    finding when the headline metric fell by more than monitoring.quality.max_drop."""
    from sklearn import metrics

    task = profile.task
    settings = profile.monitoring.quality
    figures: dict[str, float] = {}
    if task == "binary":
        scores = answer_values(answers, task)
        figures["accuracy"] = float(np.mean((scores >= 0.5) == (targets == 1)))
        if len(np.unique(targets)) == 2:
            figures["auc"] = float(metrics.roc_auc_score(targets, scores))
    elif task == "multiclass":
        predicted = answer_values(answers, task)
        figures["accuracy"] = float(np.mean(predicted == targets))
        for class_id, name in enumerate(profile.label.class_names):
            of_class = targets == class_id
            if of_class.any():
                figures[f"accuracy[{name}]"] = float(np.mean(predicted[of_class] == class_id))
    else:
        values = answer_values(answers, task)
        figures["rmse"] = float(np.sqrt(np.mean((values - targets) ** 2)))
        figures["mae"] = float(np.mean(np.abs(values - targets)))
    headline = profile.headline_metric
    key = EVALUATOR_KEYS[headline]
    key = key[task] if isinstance(key, dict) else key
    evaluator = evaluator_metrics.get(key)
    result = {
        "labelled_rows": int(len(targets)),
        "metrics": {k: round(v, 4) for k, v in figures.items()},
        "headline": headline,
        "evaluator": round(evaluator, 4) if evaluator is not None else None,
        "max_drop": settings.max_drop,
        "judged": len(targets) >= settings.min_labels,
        "findings": [],
    }
    live = figures.get(headline)
    if not result["judged"] or live is None or evaluator is None:
        return result
    worse = (
        live > evaluator * (1 + settings.max_drop)
        if headline in profiles.LOWER_IS_BETTER
        else live < evaluator - settings.max_drop
    )
    if worse:
        allowed = (
            f"at most {settings.max_drop:.0%} above"
            if headline in profiles.LOWER_IS_BETTER
            else f"at most {settings.max_drop:g} below"
        )
        result["findings"].append(
            Finding(
                "quality",
                "",
                f"live {headline} {live:.4f} on {len(targets)} labelled rows, against the "
                f"Evaluator's {evaluator:.4f} ({allowed}, monitoring.quality.max_drop)",
                live,
                evaluator,
            )
        )
    return result

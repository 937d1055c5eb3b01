"""What each kind of TFX artifact holds, read from its files, as plain data.

The one place the project reads an artifact's contents: `inspect show` (text and JSON), the run
summary, `inspect diff` and the HTML report all call `read()` or the reader for a type. TensorFlow,
TFDV and TFMA are imported inside the readers that need them, so listing runs never loads them.
"""

from __future__ import annotations

import dataclasses
import glob
import json
import os
from collections.abc import Callable, Mapping
from typing import Any

from components import profile as profiles
from components import tfx_private
from components.data_gate.anomalies import anomaly_splits, load_anomalies, reason_text
from components.evaluator import linear_baseline as linear_baseline_module
from components.evaluator import trivial_baseline as trivial_baseline_module

_MAX_TOP_VALUES = 5
# The ModelBlessing custom property the Evaluator sets (components/evaluator/executor.py).
BEATS_TRIVIAL_PROPERTY = "beats_trivial_predictor"
_INFERENCE_SAMPLE = 3


@dataclasses.dataclass(frozen=True)
class ArtifactFiles:
    """What a reader needs to know of one artifact."""

    type_name: str
    uri: str
    properties: Mapping[str, Any]
    # Output key -> URI of the other outputs of the execution that produced it (a ModelBlessing's
    # reasons are in the ModelEvaluation written beside it).
    sibling_uris: Mapping[str, str] = dataclasses.field(default_factory=dict)


def read(artifact: ArtifactFiles) -> dict[str, Any]:
    """The artifact's contents as plain data; {} for a type without a reader."""
    reader = _READERS.get(artifact.type_name)
    if reader is None:
        return {}
    try:
        return reader(artifact)
    except (OSError, ValueError) as e:
        return {"error": f"cannot read the {artifact.type_name} at {artifact.uri}: {e}"}


def _splits(uri: str) -> list[str]:
    return sorted(
        os.path.basename(p)[len("Split-") :] for p in glob.glob(os.path.join(uri, "Split-*"))
    )


# ---- statistics -------------------------------------------------------------------------
def statistics(uri: str) -> dict[str, Any]:
    """Per split: example count, and per feature its type, count, missing and distribution."""
    import tensorflow_data_validation as tfdv  # imported when needed: TFDV loads TensorFlow

    result: dict[str, Any] = {"splits": {}}
    for split in _splits(uri):
        stats = tfdv.load_stats_binary(os.path.join(uri, f"Split-{split}", "FeatureStats.pb"))
        dataset = stats.datasets[0]
        features = {}
        for feature in dataset.features:
            name = feature.path.step[0] if feature.path.step else feature.name
            kind = feature.WhichOneof("stats")
            common = getattr(feature, kind).common_stats if kind else None
            present = int(common.num_non_missing) if common else 0
            values = int(common.tot_num_values) if common else 0
            single_valued = common is not None and common.max_num_values <= 1
            entry: dict[str, Any] = {
                "type": _feature_type(feature.type),
                # CSV ingestion keeps an empty cell as a present feature with no value:
                # for single-valued columns, count values, and count empty cells as missing.
                "count": values if single_valued else present,
                "missing": (int(common.num_missing) if common else 0)
                + (present - values if single_valued else 0),
            }
            if kind == "num_stats":
                num = feature.num_stats
                entry.update(
                    mean=num.mean,
                    std=num.std_dev,
                    min=num.min,
                    max=num.max,
                    zeros=int(num.num_zeros),
                )
                standard = [h for h in num.histograms if h.type == h.STANDARD]
                if standard:
                    entry["histogram"] = [
                        {"low": b.low_value, "high": b.high_value, "count": b.sample_count}
                        for b in standard[0].buckets
                    ]
            elif kind == "string_stats":
                entry["unique"] = int(feature.string_stats.unique)
                entry["top_values"] = [
                    {"value": v.value, "count": v.frequency}
                    for v in feature.string_stats.top_values[:_MAX_TOP_VALUES]
                ]
            features[name] = entry
        result["splits"][split] = {"examples": int(dataset.num_examples), "features": features}
    return result


def _feature_type(value: int) -> str:
    from tensorflow_metadata.proto.v0 import statistics_pb2

    return statistics_pb2.FeatureNameStatistics.Type.Name(value)


# ---- schema -----------------------------------------------------------------------------
def schema(uri: str) -> dict[str, Any]:
    """Every feature: type, required or not, domain, environments it is not in."""
    from google.protobuf import text_format
    from tensorflow_metadata.proto.v0 import schema_pb2

    path = uri if uri.endswith(".pbtxt") else os.path.join(uri, "schema.pbtxt")
    parsed = text_format.Parse(open(path).read(), schema_pb2.Schema())
    domains = {d.name: list(d.value) for d in parsed.string_domain}
    features = []
    for f in parsed.feature:
        entry: dict[str, Any] = {
            "name": f.name,
            "type": schema_pb2.FeatureType.Name(f.type),
            "required": f.value_count.min >= 1
            if f.HasField("value_count")
            else f.presence.min_fraction >= 1.0,
            "presence": f.presence.min_fraction,
        }
        kind = f.WhichOneof("domain_info")
        if kind == "int_domain":
            entry["domain"] = f"{f.int_domain.min}..{f.int_domain.max}"
        elif kind == "float_domain":
            low = f"{f.float_domain.min:g}" if f.float_domain.HasField("min") else "-inf"
            high = f"{f.float_domain.max:g}" if f.float_domain.HasField("max") else "inf"
            entry["domain"] = f"{low}..{high}"
        elif kind == "domain":
            entry["domain"] = domains.get(f.domain, [])
        if f.not_in_environment:
            entry["not_in_environment"] = list(f.not_in_environment)
        features.append(entry)
    return {"features": features}


# ---- anomalies --------------------------------------------------------------------------
def anomalies(uri: str) -> dict[str, Any]:
    """Per split (or split pair, for drift and skew): feature, kind, description, severity."""
    from tensorflow_metadata.proto.v0 import anomalies_pb2

    result = {"splits": {}}
    for split in anomaly_splits(uri):
        parsed = load_anomalies(uri, split)
        infos = sorted(parsed.anomaly_info.items())
        if parsed.HasField("dataset_anomaly_info"):
            infos.append(("(dataset)", parsed.dataset_anomaly_info))
        items = []
        for name, info in infos:
            kind, description = reason_text(info)
            severity = anomalies_pb2.AnomalyInfo.Severity.Name(info.severity)
            items.append(
                {"feature": name, "kind": kind, "description": description, "severity": severity}
            )
        result["splits"][split] = items
    result["count"] = sum(len(v) for v in result["splits"].values())
    return result


# ---- evaluation and blessings -------------------------------------------------------------
TASKS = ("binary", "multiclass", "regression")
# Per task, the overall metrics people read first, in order: (TFMA metric key, label).
TASK_METRICS: dict[str, tuple[tuple[str, str], ...]] = {
    "binary": (
        ("auc", "AUC"),
        ("binary_accuracy", "accuracy"),
        ("precision", "precision"),
        ("recall", "recall"),
        ("calibration", "calibration"),
    ),
    "multiclass": (("sparse_categorical_accuracy", "accuracy"),),
    "regression": (
        ("root_mean_squared_error", "RMSE"),
        ("mean_absolute_error", "MAE"),
        ("mean_squared_error", "MSE"),
        ("mean_label", "mean label"),
    ),
}
# The metric the trivial-predictor margin and the no-regression check apply to, per task.
# The metric the no-regression check and the trivial-predictor margin apply to (the profile's).
HEADLINE_METRIC_KEY = {
    task: profiles.METRICS[task][name][1] for task, name in profiles.HEADLINE_METRIC.items()
}
# Per task, the metrics of each slice in tables (`inspect show`, the report).
SLICE_METRICS: dict[str, tuple[str, ...]] = {
    "binary": ("example_count", "auc", "binary_accuracy"),
    "multiclass": ("example_count", "sparse_categorical_accuracy"),
    "regression": ("example_count", "root_mean_squared_error", "mean_absolute_error"),
}
METRIC_LABELS = {
    "example_count": "examples",
    **{key: label for metrics in TASK_METRICS.values() for key, label in metrics},
}
# The trivial predictor's metric (trivial_baseline.json) and its label.
TRIVIAL_METRIC_LABELS = {"auc": "AUC", "accuracy": "accuracy", "rmse": "RMSE"}
# What the Evaluator writes beside TFMA's files (components/evaluator/trivial_baseline.py).
TRIVIAL_BASELINE_FILE = trivial_baseline_module.RESULT_FILE
LINEAR_BASELINE_FILE = linear_baseline_module.RESULT_FILE
# A TFMA metric class name that only one task's eval config has -> that task.
_TASK_OF_METRIC_CLASS = {
    "AUC": "binary",
    "BinaryAccuracy": "binary",
    "Calibration": "binary",
    "CalibrationPlot": "binary",
    "SparseCategoricalAccuracy": "multiclass",
    "MultiClassConfusionMatrixPlot": "multiclass",
    "MeanSquaredError": "regression",
    "MeanAbsoluteError": "regression",
    "RootMeanSquaredError": "regression",
}
_TASK_OF_TRIVIAL_METRIC = {"auc": "binary", "accuracy": "multiclass", "rmse": "regression"}
NO_PREDICTION = "(none)"  # the confusion matrix column of examples no class reached a threshold


@dataclasses.dataclass(frozen=True)
class TaskInfo:
    """A run's (or an evaluation's) task and class names, in class id order."""

    task: str | None
    class_names: list[str] = dataclasses.field(default_factory=list)


def task_of_execution(execution) -> TaskInfo | None:
    """The task and class names an execution was given, from its properties: the Evaluator's
    `trivial_baseline` settings, or the profile in a Transform, Tuner or Trainer
    `custom_config`; None when it has neither."""
    from components.profile import Label  # pydantic: class names as the profile defines them

    values = {k: v for k, v in execution.properties.items()}
    values.update(execution.custom_properties)
    raw = values.get("trivial_baseline")
    try:
        if raw is not None and raw.string_value:
            settings = json.loads(raw.string_value)
            if settings.get("task") in TASKS:
                return TaskInfo(settings["task"], [str(c) for c in settings.get("classes") or []])
        raw = values.get("custom_config")
        if raw is not None and raw.string_value:
            label = ((json.loads(raw.string_value) or {}).get("profile") or {}).get("label")
            if label:
                parsed = Label.model_validate(label)
                return TaskInfo(parsed.task, parsed.class_names)
    except ValueError:  # not JSON, or not a label this version knows: no task from here
        return None
    return None


def evaluation_task(
    eval_config: Mapping[str, Any] | None,
    trivial: Mapping[str, Any] | None = None,
    metric_keys: Any = (),
) -> str | None:
    """The task of an evaluation from its own files: the metrics its eval config asked for,
    else the trivial predictor's metric, else the metrics it holds."""
    for spec in (eval_config or {}).get("metricsSpecs", []):
        for metric in spec.get("metrics", []):
            task = _TASK_OF_METRIC_CLASS.get(metric.get("className", ""))
            if task:
                return task
    if trivial and trivial.get("metric") in _TASK_OF_TRIVIAL_METRIC:
        return _TASK_OF_TRIVIAL_METRIC[trivial["metric"]]
    keys = set(metric_keys)
    for task, key in HEADLINE_METRIC_KEY.items():
        if key in keys:
            return task
    return None


def _eval_config(uri: str) -> dict[str, Any]:
    path = os.path.join(uri, "eval_config.json")
    if not os.path.exists(path):
        return {}
    with open(path) as f:
        return json.load(f).get("evalConfig", {})


def trivial_baseline(uri: str) -> dict[str, Any] | None:
    """The Evaluator's trivial-predictor check (metric, trivial_value, candidate_value,
    required, passed, trivial_predictor, reason, classes); None for an evaluation without one."""
    path = os.path.join(uri, TRIVIAL_BASELINE_FILE)
    if not os.path.exists(path):
        return None
    with open(path) as f:
        return json.load(f)


def linear_baseline(uri: str) -> dict[str, Any] | None:
    """The Evaluator's linear baseline (metric, linear_value, candidate_value, gap, max_gap,
    passed, linear_model, train_rows, eval_rows, note, reason); None for an evaluation without
    one."""
    path = os.path.join(uri, LINEAR_BASELINE_FILE)
    if not os.path.exists(path):
        return None
    with open(path) as f:
        return json.load(f)


def _metric_name(key) -> tuple[str, int | None]:
    """(name, class id or None) of a TFMA metric key; a key with another sub key (top k) or an
    averaging keeps it in its name, so that no two metrics share a name."""
    name = key.name
    if key.HasField("sub_key"):
        sub = key.sub_key
        if sub.HasField("class_id"):
            return name, sub.class_id.value
        if sub.HasField("top_k"):
            name += f"@top_{sub.top_k.value}"
        elif sub.HasField("k"):
            name += f"@k_{sub.k.value}"
    if key.HasField("aggregation_type"):
        kind = key.aggregation_type.WhichOneof("type")
        if kind:
            name += f" ({kind})"
    return name, None


def class_label(class_id: int, class_names: list[str]) -> str:
    """A class's name from its id (its index in the profile's classes), else the id."""
    return class_names[class_id] if 0 <= class_id < len(class_names) else str(class_id)


def confusion_matrix(uri: str, class_names: list[str]) -> dict[str, Any] | None:
    """The multi-class confusion matrix of the whole eval data (TFMA's
    MultiClassConfusionMatrixPlot at its lowest threshold, 0: the predicted class is the most
    probable one): rows are actual classes, columns predicted classes, cells example counts."""
    import tensorflow_model_analysis as tfma

    for per_slice in tfma.load_plots(uri):
        if per_slice.slice_key.single_slice_keys:
            continue
        for entry in per_slice.plot_keys_and_values:
            if entry.key.model_name not in ("", "candidate") or not entry.value.HasField(
                "multi_class_confusion_matrix_at_thresholds"
            ):
                continue
            matrices = entry.value.multi_class_confusion_matrix_at_thresholds.matrices
            if not matrices:
                continue
            matrix = min(matrices, key=lambda m: m.threshold)
            ids = {e.actual_class_id for e in matrix.entries} | {
                e.predicted_class_id for e in matrix.entries
            }
            size = max(len(class_names), max(ids, default=-1) + 1)
            names = [class_label(i, class_names) for i in range(size)]
            none_column = any(e.predicted_class_id < 0 for e in matrix.entries)
            counts = [[0.0] * (size + none_column) for _ in range(size)]
            for e in matrix.entries:
                if e.actual_class_id < 0:
                    continue
                column = e.predicted_class_id if e.predicted_class_id >= 0 else size
                counts[e.actual_class_id][column] += e.num_weighted_examples
            cells = [[int(c) if float(c).is_integer() else c for c in row] for row in counts]
            return {
                "actual": names,
                "predicted": names + ([NO_PREDICTION] if none_column else []),
                "counts": cells,
                "total": sum(sum(row) for row in cells),
                "threshold": matrix.threshold,
            }
    return None


def evaluation(uri: str, class_names: list[str] | None = None) -> dict[str, Any]:
    """Overall and per-slice metrics, per-class metrics and the confusion matrix (multiclass),
    the change against the baseline, thresholds, the trivial-predictor check, verdict.

    `class_names` (in class id order) names the classes; without them (they are in ML Metadata,
    see `task_of_execution`, not in the evaluation's files) a class is named by its id."""
    import tensorflow_model_analysis as tfma

    slices: dict[str, dict[str, float]] = {}
    diffs: dict[str, dict[str, float]] = {}
    per_class: dict[str, dict[int, dict[str, float]]] = {}
    for per_slice in tfma.load_metrics(uri):
        name = slice_name(per_slice.slice_key, overall="Overall")
        for entry in per_slice.metric_keys_and_values:
            if entry.key.model_name not in ("", "candidate") or not entry.value.HasField(
                "double_value"
            ):
                continue
            metric, class_id = _metric_name(entry.key)
            value = entry.value.double_value.value
            if class_id is not None:
                if not entry.key.is_diff:
                    per_class.setdefault(name, {}).setdefault(class_id, {})[metric] = value
                continue
            target = diffs if entry.key.is_diff else slices
            target.setdefault(name, {})[metric] = value
    config = _eval_config(uri)
    thresholds = {}
    for spec in config.get("metricsSpecs", []):
        for metric in spec.get("metrics", []):
            if "threshold" in metric:
                thresholds[metric["className"]] = metric["threshold"]
    trivial = trivial_baseline(uri)
    overall = slices.get("Overall", {})
    task = evaluation_task(config, trivial, overall)
    # The Evaluator records the class names beside its figures (trivial_baseline.json).
    names = list(class_names or (trivial or {}).get("classes") or [])
    if task == "multiclass" and not names:
        ids = [i for by_class in per_class.values() for i in by_class]
        for spec in config.get("metricsSpecs", []):
            ids += spec.get("binarize", {}).get("classIds", {}).get("values", [])
        names = [str(i) for i in range(max(ids, default=-1) + 1)]

    def named(by_class: dict[int, dict[str, float]]) -> dict[str, dict[str, float]]:
        return {class_label(i, names): by_class[i] for i in sorted(by_class)}

    validation = tfma.load_validation_result(uri)
    ordered = sorted(slices, key=_slice_order)
    return {
        "task": task,
        "class_names": names,
        "overall": overall,
        "per_class": named(per_class.get("Overall", {})),
        "slices": {k: slices[k] for k in ordered if k != "Overall"},
        "slices_per_class": {
            k: named(per_class[k]) for k in sorted(per_class, key=_slice_order) if k != "Overall"
        },
        "confusion_matrix": confusion_matrix(uri, names) if task == "multiclass" else None,
        "baseline_diff": diffs.get("Overall", {}),
        "thresholds": thresholds,
        "trivial_baseline": trivial,
        "linear_baseline": linear_baseline(uri),
        "validation_ok": validation.validation_ok,
        "failures": blessing_reasons(uri),
    }


def _slice_order(name: str):
    column, _, value = name.partition("=")
    try:  # numbers first, in order, then text: a column may hold both
        return (column, 0, float(value), "")
    except ValueError:
        return (column, 1, 0.0, value)


def blessing_reasons(evaluation_uri: str) -> list[str]:
    """Each failed threshold, and a failed trivial-predictor check, as a sentence; empty when
    every check passed."""
    import tensorflow_model_analysis as tfma

    reasons = []
    result = tfma.load_validation_result(evaluation_uri)
    for per_slice in result.metric_validations_per_slice:
        where = slice_name(per_slice.slice_key)
        for failure in per_slice.failures:
            kind = "change vs baseline" if failure.metric_key.is_diff else "value"
            reasons.append(
                f"{failure.metric_key.name} {kind} {failure.metric_value.double_value.value:.4f} "
                f"on {where} fails its threshold ({_threshold_text(failure.metric_threshold)})"
            )
    if result.missing_thresholds:
        reasons.append("a metric that has a threshold was not computed")
    for missing in result.missing_slices:
        reasons.append(f"no evaluation data for slice {slice_name(missing)}")
    if result.rubber_stamp:
        reasons.append("no baseline yet: change thresholds were not applied (first blessed model)")
    trivial = trivial_baseline(evaluation_uri)
    if trivial and not trivial.get("passed") and trivial.get("reason"):
        reasons.append(trivial["reason"])
    linear = linear_baseline(evaluation_uri)
    if linear and linear.get("passed") is False and linear.get("reason"):
        reasons.append(linear["reason"])
    return reasons


def slice_name(slice_key, overall: str = "all data") -> str:
    """'trip_start_hour=0' for a TFMA slice key; `overall` for the whole data set."""
    parts = []
    for k in slice_key.single_slice_keys:
        kind = k.WhichOneof("kind")
        value = (
            k.bytes_value.decode() if kind == "bytes_value" else getattr(k, kind) if kind else ""
        )
        parts.append(f"{k.column}={value}")
    return ", ".join(parts) or overall


def _threshold_text(threshold) -> str:
    if threshold.HasField("value_threshold"):
        t = threshold.value_threshold
        bounds = []
        if t.HasField("lower_bound"):
            bounds.append(f">= {t.lower_bound.value:g}")
        if t.HasField("upper_bound"):
            bounds.append(f"<= {t.upper_bound.value:g}")
        return " and ".join(bounds)
    t = threshold.change_threshold
    return f"change >= {t.absolute.value:g}" if t.HasField("absolute") else str(t).strip()


def model_blessing(artifact: ArtifactFiles) -> dict[str, Any]:
    """The Evaluator's verdict, with the reasons from the evaluation written beside it."""
    result: dict[str, Any] = {"blessed": artifact.properties.get("blessed") == 1}
    beats = artifact.properties.get(BEATS_TRIVIAL_PROPERTY)
    if beats is not None:
        result["beats_trivial_predictor"] = beats == 1
    within = artifact.properties.get("within_linear_baseline")
    if within is not None:
        result["within_linear_baseline"] = within == 1
    evaluation_uri = artifact.sibling_uris.get("evaluation")
    if evaluation_uri:
        result["reasons"] = blessing_reasons(evaluation_uri) or ["every threshold passed"]
    return result


def infra_blessing(artifact: ArtifactFiles) -> dict[str, Any]:
    """The InfraValidator's verdict, its reason and the model server it used."""
    properties = artifact.properties
    return {
        "blessed": properties.get("blessed") == 1,
        "reason": properties.get("reason", "no reason recorded"),
        "model_server": properties.get("model_server"),
    }


# ---- models and their outputs -----------------------------------------------------------
def model(uri: str) -> dict[str, Any]:
    """The SavedModel's path and its signatures (inputs, outputs), without loading it."""
    serving = os.path.join(uri, "Format-Serving")
    path = serving if os.path.isdir(serving) else uri
    saved_model = tfx_private.parse_saved_model(path)
    signatures = {}
    for name, sig in saved_model.meta_graphs[0].signature_def.items():
        if name.startswith("__"):
            continue
        signatures[name] = {
            "inputs": sorted(sig.inputs),
            "outputs": sorted(sig.outputs),
            "method": sig.method_name,
        }
    return {"saved_model": path, "signatures": signatures}


def pushed_model(artifact: ArtifactFiles) -> dict[str, Any]:
    """Whether Pusher pushed, which version, and where to."""
    properties = artifact.properties
    return {
        "pushed": properties.get("pushed") == 1,
        "version": properties.get("pushed_version"),
        "destination": properties.get("pushed_destination"),
    }


def _prediction_log_files(inference_uri: str) -> list[str]:
    return sorted(glob.glob(os.path.join(inference_uri, "prediction_logs-*")))


def _prediction_log_records(inference_uri: str):
    """BulkInferrer's serialized PredictionLogs, read in batches (one eager step per record
    would take 17 s for 100,000 predictions)."""
    import tensorflow as tf

    for path in _prediction_log_files(inference_uri):
        dataset = tf.data.TFRecordDataset(path, compression_type="GZIP").batch(4096)
        for batch in dataset.as_numpy_iterator():
            yield from batch


def count_prediction_logs(inference_uri: str) -> int:
    """Number of PredictionLog records BulkInferrer wrote (counted inside TensorFlow's graph)."""
    import tensorflow as tf

    files = _prediction_log_files(inference_uri)
    if not files:
        return 0
    dataset = tf.data.TFRecordDataset(files, compression_type="GZIP")
    return int(dataset.reduce(tf.constant(0, tf.int64), lambda count, _: count + 1))


def inference_result(uri: str) -> dict[str, Any]:
    """How many predictions BulkInferrer wrote, a sample, their mean and histogram."""
    import numpy as np
    import tensorflow as tf
    from tensorflow_serving.apis import prediction_log_pb2

    count, sample, values = 0, [], []
    for record in _prediction_log_records(uri):
        count += 1
        log = prediction_log_pb2.PredictionLog.FromString(record)
        outputs = log.predict_log.response.outputs
        if len(sample) < _INFERENCE_SAMPLE:
            sample.append({k: tf.make_ndarray(v).ravel().tolist() for k, v in outputs.items()})
        for tensor in outputs.values():
            # Float outputs carry their values in float_val; anything else is converted.
            values.extend(
                tensor.float_val if tensor.float_val else tf.make_ndarray(tensor).ravel().tolist()
            )
    summary: dict[str, Any] = {"predictions": count, "sample": sample}
    if values:
        summary["mean_prediction"] = sum(values) / len(values)
        # Tenths of [0, 1], each including its low end; the last also 1.0 (numpy's histogram).
        edges = [i / 10 for i in range(11)]
        counts, _ = np.histogram(np.asarray(values, dtype=np.float64), bins=edges)
        summary["histogram"] = [
            {"low": edges[i], "high": edges[i + 1], "count": int(counts[i])} for i in range(10)
        ]
    return summary


def hyperparameters(uri: str) -> dict[str, Any]:
    """The Tuner's best hyperparameter values."""
    config = json.load(open(os.path.join(uri, "best_hyperparameters.txt")))
    return {"values": config.get("values", {})}


def examples(uri: str) -> dict[str, Any]:
    """The splits and how many files each has."""
    return {
        "splits": {s: len(glob.glob(os.path.join(uri, f"Split-{s}", "*"))) for s in _splits(uri)}
    }


def _by_uri(reader: Callable[[str], dict[str, Any]]) -> Callable[[ArtifactFiles], dict]:
    return lambda artifact: reader(artifact.uri)


# Artifact type name -> reader. A new artifact type gets its reader here, and `inspect show`,
# the summary and the report can show it.
_READERS: dict[str, Callable[[ArtifactFiles], dict[str, Any]]] = {
    "ExampleStatistics": _by_uri(statistics),
    "Schema": _by_uri(schema),
    "ExampleAnomalies": _by_uri(anomalies),
    "ModelEvaluation": _by_uri(evaluation),
    "ModelBlessing": model_blessing,
    "InfraBlessing": infra_blessing,
    "Model": _by_uri(model),
    "PushedModel": pushed_model,
    "InferenceResult": _by_uri(inference_result),
    "HyperParameters": _by_uri(hyperparameters),
    "Examples": _by_uri(examples),
}

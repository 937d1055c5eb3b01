"""Type-specific contents of TFX artifacts, read from their files, as plain data."""

from __future__ import annotations

import glob
import json
import os
from typing import Any

_MAX_TOP_VALUES = 5
_INFERENCE_SAMPLE = 3


def details(type_name: str, uri: str, properties: dict[str, Any], explorer=None) -> dict[str, Any]:
    reader = _READERS.get(type_name)
    if reader is None:
        return {}
    try:
        return reader(uri, properties, explorer)
    except (OSError, ValueError) as e:
        return {"error": f"cannot read the {type_name} at {uri}: {e}"}


def _splits(uri: str) -> list[str]:
    return sorted(
        os.path.basename(p)[len("Split-") :] for p in glob.glob(os.path.join(uri, "Split-*"))
    )


# ---- statistics -------------------------------------------------------------------------
def statistics(uri: str, properties=None, explorer=None) -> dict[str, Any]:
    import tensorflow_data_validation as tfdv

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


def diff_statistics(a: dict | None, b: dict | None) -> dict[str, Any]:
    if not a or not b:
        return {"available": False}
    split = (
        "train"
        if "train" in a["splits"] and "train" in b["splits"]
        else next(iter(a["splits"]), None)
    )
    if split is None or split not in b["splits"]:
        return {"available": False}
    fa, fb = a["splits"][split]["features"], b["splits"][split]["features"]
    changed = {}
    for name in sorted(set(fa) | set(fb)):
        x, y = fa.get(name), fb.get(name)
        if x is None or y is None:
            changed[name] = {"a": x and "present", "b": y and "present"}
            continue
        delta = {
            k: {"a": x[k], "b": y[k]}
            for k in ("count", "missing", "mean", "std")
            if k in x and x.get(k) != y.get(k)
        }
        if delta:
            changed[name] = delta
    return {
        "available": True,
        "split": split,
        "examples": {"a": a["splits"][split]["examples"], "b": b["splits"][split]["examples"]},
        "changed_features": changed,
    }


# ---- schema -----------------------------------------------------------------------------
def schema(uri: str, properties=None, explorer=None) -> dict[str, Any]:
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


def diff_schema(a: dict | None, b: dict | None) -> dict[str, Any]:
    if not a or not b:
        return {"available": False}
    fa = {f["name"]: f for f in a["features"]}
    fb = {f["name"]: f for f in b["features"]}
    return {
        "available": True,
        "added": sorted(set(fb) - set(fa)),
        "removed": sorted(set(fa) - set(fb)),
        "changed": {
            n: {"a": fa[n], "b": fb[n]} for n in sorted(set(fa) & set(fb)) if fa[n] != fb[n]
        },
    }


# ---- anomalies --------------------------------------------------------------------------
def anomalies(uri: str, properties=None, explorer=None) -> dict[str, Any]:
    """Per split (or split pair, for drift and skew): feature, kind, description, severity."""
    from tensorflow_metadata.proto.v0 import anomalies_pb2

    from components.data_gate.anomalies import anomaly_splits, load_anomalies, reason_text

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
def evaluation(uri: str, properties=None, explorer=None) -> dict[str, Any]:
    import tensorflow_model_analysis as tfma

    from pipeline.run_summary import blessing_reasons

    slices: dict[str, dict[str, float]] = {}
    diffs: dict[str, dict[str, float]] = {}
    for per_slice in tfma.load_metrics(uri):
        name = (
            ", ".join(
                f"{k.column}={k.int64_value if k.HasField('int64_value') else k.float_value if k.HasField('float_value') else k.bytes_value.decode()}"
                for k in per_slice.slice_key.single_slice_keys
            )
            or "Overall"
        )
        for entry in per_slice.metric_keys_and_values:
            if entry.key.model_name not in ("", "candidate") or not entry.value.HasField(
                "double_value"
            ):
                continue
            target = diffs if entry.key.is_diff else slices
            target.setdefault(name, {})[entry.key.name] = entry.value.double_value.value
    thresholds = {}
    config_path = os.path.join(uri, "eval_config.json")
    if os.path.exists(config_path):
        config = json.load(open(config_path))["evalConfig"]
        for spec in config.get("metricsSpecs", []):
            for metric in spec.get("metrics", []):
                if "threshold" in metric:
                    thresholds[metric["className"]] = metric["threshold"]
    validation = tfma.load_validation_result(uri)
    return {
        "overall": slices.get("Overall", {}),
        "slices": {
            k: v
            for k, v in sorted(slices.items(), key=lambda kv: _slice_order(kv[0]))
            if k != "Overall"
        },
        "baseline_diff": diffs.get("Overall", {}),
        "thresholds": thresholds,
        "validation_ok": validation.validation_ok,
        "failures": blessing_reasons(uri),
    }


def _slice_order(name: str):
    column, _, value = name.partition("=")
    try:
        return (column, float(value))
    except ValueError:
        return (column, value)


def model_blessing(uri: str, properties: dict[str, Any], explorer=None) -> dict[str, Any]:
    result: dict[str, Any] = {"blessed": properties.get("blessed") == 1}
    if explorer is not None:
        evaluations = [
            a
            for a in explorer.artifacts()
            if a["type"] == "ModelEvaluation"
            and a["execution_id"] is not None
            and a["execution_id"] == _execution_of(explorer, uri)
        ]
        if evaluations:
            from pipeline.run_summary import blessing_reasons

            result["reasons"] = blessing_reasons(evaluations[0]["uri"]) or [
                "every threshold passed"
            ]
            result["evaluation_id"] = evaluations[0]["id"]
    return result


def _execution_of(explorer, uri: str) -> int | None:
    for artifact in explorer.store.get_artifacts_by_uri(uri):
        return explorer.describe(artifact)["execution_id"]
    return None


def infra_blessing(uri: str, properties: dict[str, Any], explorer=None) -> dict[str, Any]:
    return {
        "blessed": properties.get("blessed") == 1,
        "reason": properties.get("reason", "no reason recorded"),
        "model_server": properties.get("model_server"),
    }


# ---- models and their outputs -----------------------------------------------------------
def model(uri: str, properties=None, explorer=None) -> dict[str, Any]:
    from tensorflow.python.saved_model import loader_impl

    serving = os.path.join(uri, "Format-Serving")
    path = serving if os.path.isdir(serving) else uri
    saved_model = loader_impl.parse_saved_model(path)
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


def pushed_model(uri: str, properties: dict[str, Any], explorer=None) -> dict[str, Any]:
    return {
        "pushed": properties.get("pushed") == 1,
        "version": properties.get("pushed_version"),
        "destination": properties.get("pushed_destination"),
    }


def inference_result(uri: str, properties=None, explorer=None) -> dict[str, Any]:
    import tensorflow as tf
    from tensorflow_serving.apis import prediction_log_pb2

    count, sample, values = 0, [], []
    for path in sorted(glob.glob(os.path.join(uri, "prediction_logs-*"))):
        for record in tf.data.TFRecordDataset(path, compression_type="GZIP"):
            count += 1
            log = prediction_log_pb2.PredictionLog.FromString(record.numpy())
            outputs = {
                k: tf.make_ndarray(v).ravel().tolist()
                for k, v in log.predict_log.response.outputs.items()
            }
            values.extend(v for vs in outputs.values() for v in vs)
            if len(sample) < _INFERENCE_SAMPLE:
                sample.append(outputs)
    summary: dict[str, Any] = {"predictions": count, "sample": sample}
    if values:
        summary["mean_prediction"] = sum(values) / len(values)
        summary["histogram"] = [
            {
                "low": i / 10,
                "high": (i + 1) / 10,
                "count": sum(
                    1 for v in values if i / 10 <= v < (i + 1) / 10 or (i == 9 and v == 1.0)
                ),
            }
            for i in range(10)
        ]
    return summary


def hyperparameters(uri: str, properties=None, explorer=None) -> dict[str, Any]:
    config = json.load(open(os.path.join(uri, "best_hyperparameters.txt")))
    return {"values": config.get("values", {})}


def examples(uri: str, properties: dict[str, Any], explorer=None) -> dict[str, Any]:
    return {
        "splits": {s: len(glob.glob(os.path.join(uri, f"Split-{s}", "*"))) for s in _splits(uri)}
    }


def diff_flat(a: dict | None, b: dict | None) -> dict[str, Any]:
    if a is None or b is None:
        return {"available": False}
    return {
        "available": True,
        "changed": {
            k: {"a": a.get(k), "b": b.get(k)}
            for k in sorted(set(a) | set(b))
            if a.get(k) != b.get(k)
        },
        "unchanged": sorted(k for k in set(a) & set(b) if a[k] == b[k]),
    }


_READERS = {
    "ExampleStatistics": statistics,
    "Schema": schema,
    "ExampleAnomalies": anomalies,
    "ModelEvaluation": evaluation,
    "ModelBlessing": model_blessing,
    "InfraBlessing": infra_blessing,
    "Model": model,
    "PushedModel": pushed_model,
    "InferenceResult": inference_result,
    "HyperParameters": hyperparameters,
    "Examples": examples,
}

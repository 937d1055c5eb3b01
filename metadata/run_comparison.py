"""Two runs compared artifact by artifact, down to the bytes: is a replay the same as the original?

The runs may live in two stores (`reproduce` replays into a fresh output directory). Each output
of each component of run A is paired with the same output of run B and compared by what it holds:
- files byte for byte, by path under the artifact's folder;
- what cannot be byte-identical by construction compared by content instead: a SavedModel's
  weights variable by variable (its graph names functions with process-wide counters), tf.Transform's
  graph by its constants (the analyzers' results) and assets, the evaluation's metrics one by one;
- the artifact properties that are results (a blessing, whether Pusher pushed).
Files that only name where a run wrote (the evaluation's config holds model paths) are left out.
A difference says how much: which variables and by how much at most, which metrics and by how
much, which features' statistics, how many examples.
"""

from __future__ import annotations

import dataclasses
import glob
import gzip
import os
import re
import struct
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from components.data_files import sha256_and_size
from metadata.runs import run_context, run_executions
from metadata.store import Artifact, StoreIndex, output_artifacts, properties

# Artifact properties that are results, by type: they must match.
_RESULT_PROPERTIES = {
    "ModelBlessing": ("blessed",),
    "InfraBlessing": ("blessed",),
    "PushedModel": ("pushed",),
    "ExampleAnomalies": ("blessed",),
}
# Files compared by content, not bytes (see the module's docstring), by artifact type.
_SAVED_MODEL_FILES = re.compile(r"^(saved_model\.pb|fingerprint\.pb|variables/.*)$")
_TRANSFORM_GRAPH_FILES = re.compile(r"^transform_fn/(saved_model\.pb|fingerprint\.pb)$")
_EVALUATION_CONFIG = re.compile(r"^eval_config\.json$")
# Sharded TFRecord outputs whose records are a set, not a sequence (TFMA's metrics, plots and
# attributions, BulkInferrer's predictions): with several Beam workers, which shard holds a
# record, and in which order, changes from run to run. They are compared record by record,
# whatever the shard and order.
_SHARD = re.compile(r"^(?P<family>[^/]+)-\d{5}-of-\d{5}(?P<suffix>\.[a-z]+)?$")
_RECORD_SET_TYPES = ("ModelEvaluation", "InferenceResult")
_MAX_LISTED = 8  # differences listed per artifact before "... and N more"


@dataclasses.dataclass
class ArtifactComparison:
    """One output of one component in both runs."""

    output: str  # "<node>.<output key>", e.g. "Trainer.model"
    type_name: str
    identical: bool
    differences: list[str]
    artifact_a: int | None
    artifact_b: int | None

    def as_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def run_outputs_by_node(index: StoreIndex, run_id: str) -> dict[str, Artifact]:
    """Every output of every execution of the run (cached ones too), by '<node>.<output key>'.
    Inputs a run resolved from earlier runs (the Evaluator's baseline) are not its outputs."""
    found: dict[str, Artifact] = {}
    for node in run_executions(index, run_context(index, run_id).id):
        for key, artifacts in output_artifacts(index.store, node.execution.id).items():
            for artifact in artifacts:
                found.setdefault(f"{node.node_id}.{key}", artifact)
    return found


def compare_runs(
    index_a: StoreIndex, run_a: str, index_b: StoreIndex, run_b: str
) -> dict[str, Any]:
    """Run A's outputs against run B's, artifact by artifact."""
    outputs_a, outputs_b = run_outputs_by_node(index_a, run_a), run_outputs_by_node(index_b, run_b)
    comparisons = []
    for output in sorted(set(outputs_a) | set(outputs_b)):
        a, b = outputs_a.get(output), outputs_b.get(output)
        if a is None or b is None:
            present = "run B" if a is None else "run A"
            comparisons.append(
                ArtifactComparison(
                    output,
                    index_a.type_name(a) if a else index_b.type_name(b),
                    False,
                    [f"only {present} has it"],
                    a.id if a else None,
                    b.id if b else None,
                )
            )
            continue
        type_name = index_a.type_name(a)
        differences = compare_artifacts(type_name, a, b)
        comparisons.append(
            ArtifactComparison(output, type_name, not differences, differences, a.id, b.id)
        )
    return {
        "identical": all(c.identical for c in comparisons),
        "artifacts": [c.as_json() for c in comparisons],
        "differences": [
            f"{c.output}: {difference}" for c in comparisons for difference in c.differences
        ],
    }


def compare_artifacts(type_name: str, a: Artifact, b: Artifact) -> list[str]:
    """What differs between two artifacts of type `type_name`, one line each."""
    differences = []
    props_a, props_b = properties(a), properties(b)
    for name in _RESULT_PROPERTIES.get(type_name, ()):
        if props_a.get(name) != props_b.get(name):
            differences.append(f"{name}: {props_a.get(name)} vs {props_b.get(name)}")
    if type_name in ("Model", "PushedModel"):
        model_a, model_b = _saved_model_dir(a.uri), _saved_model_dir(b.uri)
        differences += compare_files(model_a, model_b, skip=_SAVED_MODEL_FILES)
        differences += compare_weights(model_a, model_b)
    elif type_name == "TransformGraph":
        differences += compare_files(a.uri, b.uri, skip=_TRANSFORM_GRAPH_FILES)
        differences += compare_graph_constants(
            os.path.join(a.uri, "transform_fn"), os.path.join(b.uri, "transform_fn")
        )
    elif type_name in _RECORD_SET_TYPES:
        skip = re.compile(f"{_SHARD.pattern}|{_EVALUATION_CONFIG.pattern}")
        differences += compare_files(a.uri, b.uri, skip=skip)
        differing = compare_record_sets(a.uri, b.uri)
        if type_name == "ModelEvaluation" and "metrics" in differing:
            differences += compare_metrics(a.uri, b.uri)
        differences += [text for family, text in differing.items() if family != "metrics"]
    else:
        differences += compare_files(a.uri, b.uri)
        if type_name == "Examples" and differences:
            differences += _explain_examples(a.uri, b.uri)
        elif type_name == "ExampleStatistics" and differences:
            differences += _explain_statistics(a.uri, b.uri)
    return _capped(differences)


def _capped(lines: list[str]) -> list[str]:
    if len(lines) <= _MAX_LISTED:
        return lines
    return lines[:_MAX_LISTED] + [f"... and {len(lines) - _MAX_LISTED} more"]


# ---- files ------------------------------------------------------------------------------------
def _file_digests(root: str, skip: re.Pattern | None) -> dict[str, str]:
    digests = {}
    base = Path(root)
    if not base.is_dir():
        return digests
    for path in sorted(p for p in base.rglob("*") if p.is_file()):
        relative = path.relative_to(base).as_posix()
        if skip is not None and skip.match(relative):
            continue
        digests[relative] = sha256_and_size(path)[0]
    return digests


def compare_files(root_a: str, root_b: str, skip: re.Pattern | None = None) -> list[str]:
    """Files under two artifact folders, by relative path and SHA-256."""
    a, b = _file_digests(root_a, skip), _file_digests(root_b, skip)
    differences = []
    for name in sorted(set(a) | set(b)):
        if name not in b:
            differences.append(f"file {name} only in run A")
        elif name not in a:
            differences.append(f"file {name} only in run B")
        elif a[name] != b[name]:
            differences.append(f"file {name} differs (sha256 {a[name][:12]} vs {b[name][:12]})")
    return differences


def _tfrecords(path: str) -> Iterator[bytes]:
    """The records of a (gzipped) TFRecord file, read without TensorFlow."""
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rb") as f:
        while header := f.read(12):
            (length,) = struct.unpack("<Q", header[:8])
            yield f.read(length)
            f.read(4)


def _record_sets(root: str) -> dict[str, Counter]:
    """Family (`metrics`, `prediction_logs`) -> its records in every shard, as a multiset."""
    families: dict[str, Counter] = {}
    for path in sorted(Path(root).glob("*")):
        match = _SHARD.match(path.name)
        if match and path.is_file():
            records = families.setdefault(match["family"], Counter())
            records.update(_tfrecords(str(path)))
    return families


def compare_record_sets(root_a: str, root_b: str) -> dict[str, str]:
    """Family -> how its records differ, for the sharded TFRecord files of two folders."""
    a, b = _record_sets(root_a), _record_sets(root_b)
    differing = {}
    for family in sorted(set(a) | set(b)):
        records_a, records_b = a.get(family, Counter()), b.get(family, Counter())
        if records_a == records_b:
            continue
        only_a, only_b = records_a - records_b, records_b - records_a
        differing[family] = (
            f"{family}: {sum(records_a.values())} vs {sum(records_b.values())} records; "
            f"{sum(only_a.values())} only in run A, {sum(only_b.values())} only in run B"
        )
        if family == "prediction_logs":
            differing[family] += _prediction_differences(only_a, only_b)
    return differing


def _prediction_differences(only_a: Counter, only_b: Counter) -> str:
    """For prediction logs found in one run only: how far the answers to the same requests are."""
    import numpy as np
    import tensorflow as tf
    from tensorflow_serving.apis import prediction_log_pb2

    def answers(records: Counter) -> dict[bytes, dict[str, np.ndarray]]:
        found = {}
        for record in records:
            log = prediction_log_pb2.PredictionLog.FromString(record)
            kind = log.WhichOneof("log_type")
            if kind != "predict_log":
                continue
            request = log.predict_log.request.SerializeToString(deterministic=True)
            found[request] = {
                name: tf.make_ndarray(tensor)
                for name, tensor in log.predict_log.response.outputs.items()
            }
        return found

    a, b = answers(only_a), answers(only_b)
    deltas = [
        float(np.max(np.abs(a[request][name].astype("float64") - b[request][name])))
        for request in a.keys() & b.keys()
        for name in a[request].keys() & b[request].keys()
        if a[request][name].dtype.kind == "f" and a[request][name].shape == b[request][name].shape
    ]
    if not deltas:
        return ""
    return (
        f" (the same {len(a.keys() & b.keys())} requests answered differently, "
        f"by at most {max(deltas):.3g})"
    )


def _explain_examples(uri_a: str, uri_b: str) -> list[str]:
    """Per split: how many examples each run wrote, how many are in one run only."""
    lines = []
    splits = sorted({Path(p).name for uri in (uri_a, uri_b) for p in glob.glob(f"{uri}/Split-*")})
    for split in splits:
        records = []
        for uri in (uri_a, uri_b):
            files = sorted(glob.glob(os.path.join(uri, split, "*")))
            records.append(Counter(r for f in files for r in _tfrecords(f)))
        only_a = sum((records[0] - records[1]).values())
        only_b = sum((records[1] - records[0]).values())
        if only_a or only_b:
            lines.append(
                f"{split[len('Split-') :]}: {sum(records[0].values())} vs "
                f"{sum(records[1].values())} examples; {only_a} only in run A, {only_b} only in run B"
            )
        elif records[0] and records[0] == records[1]:
            lines.append(f"{split[len('Split-') :]}: the same examples in another order")
    return lines


def _explain_statistics(uri_a: str, uri_b: str) -> list[str]:
    """Which features' statistics differ, per split."""
    from tensorflow_metadata.proto.v0 import statistics_pb2

    lines = []
    for path_a in sorted(glob.glob(f"{uri_a}/Split-*/FeatureStats.pb")):
        split = Path(path_a).parent.name
        path_b = os.path.join(uri_b, split, "FeatureStats.pb")
        if not os.path.exists(path_b):
            continue
        stats = []
        for path in (path_a, path_b):
            parsed = statistics_pb2.DatasetFeatureStatisticsList()
            parsed.ParseFromString(Path(path).read_bytes())
            stats.append(
                {f.path.SerializeToString(): f for d in parsed.datasets for f in d.features}
            )
        changed = sorted(
            ".".join(stats[0][key].path.step) or stats[0][key].name
            for key in stats[0].keys() & stats[1].keys()
            if stats[0][key] != stats[1][key]
        )
        if changed:
            lines.append(f"{split[len('Split-') :]}: statistics of {', '.join(changed)} differ")
    return lines


# ---- models and graphs --------------------------------------------------------------------------
def _saved_model_dir(uri: str) -> str:
    """Trainer's Model holds the SavedModel in Format-Serving/; a PushedModel is the SavedModel."""
    serving = os.path.join(uri, "Format-Serving")
    return serving if os.path.isdir(serving) else uri


def _variables(saved_model_dir: str) -> dict[tuple[str, tuple], list[Any]]:
    import tensorflow as tf

    loaded = tf.saved_model.load(saved_model_dir)
    variables = [
        t for t in tf.train.TrackableView(loaded).descendants() if isinstance(t, tf.Variable)
    ]
    found: dict[tuple[str, tuple], list[Any]] = {}
    for variable in variables:
        found.setdefault((variable.name, tuple(variable.shape)), []).append(variable.numpy())
    return found


def compare_weights(dir_a: str, dir_b: str) -> list[str]:
    """Each variable of two SavedModels, matched by name and shape: equal to the last bit, or the
    largest difference."""
    import numpy as np

    if not os.path.exists(os.path.join(dir_a, "saved_model.pb")) or not os.path.exists(
        os.path.join(dir_b, "saved_model.pb")
    ):
        return []  # a model not pushed: the `pushed` property says so
    a, b = _variables(dir_a), _variables(dir_b)
    lines = []
    for key in sorted(set(a) | set(b)):
        name = f"{key[0].removesuffix(':0')} {list(key[1])}"
        if key not in a or key not in b:
            lines.append(f"variable {name} only in run {'B' if key not in a else 'A'}")
            continue
        for x, y in zip(a[key], b[key], strict=False):
            if np.array_equal(x, y):
                continue
            if x.dtype.kind in "fiu":
                delta = float(np.max(np.abs(x.astype("float64") - y.astype("float64"))))
                lines.append(
                    f"weights {name}: {int(np.sum(x != y))} of {x.size} values differ, "
                    f"by at most {delta:.3g}"
                )
            else:
                lines.append(f"weights {name} differ")
    return lines


def _graph_constants(saved_model_dir: str) -> dict[tuple[str, str], bytes]:
    """The graph's constants by (function, node) name; function names lose the counter TF
    appends (`__inference_pruned_10834` -> `__inference_pruned`)."""
    from tensorflow.core.protobuf import saved_model_pb2

    saved_model = saved_model_pb2.SavedModel()
    saved_model.ParseFromString(Path(saved_model_dir, "saved_model.pb").read_bytes())
    constants = {}
    for graph in saved_model.meta_graphs:
        for node in graph.graph_def.node:
            if node.op == "Const":
                constants[("", node.name)] = node.attr["value"].tensor
        for function in graph.graph_def.library.function:
            name = re.sub(r"_\d+$", "", function.signature.name)
            for node in function.node_def:
                if node.op == "Const":
                    constants[(name, node.name)] = node.attr["value"].tensor
    return constants


def compare_graph_constants(dir_a: str, dir_b: str) -> list[str]:
    """tf.Transform's graph: the constants its analyzers computed (means, variances, quantile
    boundaries, vocabulary sizes), value by value."""
    import numpy as np
    import tensorflow as tf

    a, b = _graph_constants(dir_a), _graph_constants(dir_b)
    lines = []
    if len(a) != len(b):
        lines.append(f"the transform graphs hold {len(a)} and {len(b)} constants")
    for key in sorted(a.keys() & b.keys()):
        if a[key].SerializeToString(deterministic=True) == b[key].SerializeToString(
            deterministic=True
        ):
            continue
        x, y = tf.make_ndarray(a[key]), tf.make_ndarray(b[key])
        if x.shape == y.shape and x.dtype.kind in "fiu" and np.array_equal(x, y):
            continue
        shown = key[1] if not key[0] else f"{key[0]}/{key[1]}"
        if x.size == 1 and y.size == 1 and x.dtype.kind in "fiu":
            lines.append(f"transform constant {shown}: {x.item()!r} vs {y.item()!r}")
        else:
            lines.append(f"transform constant {shown} differs")
    return lines


# ---- evaluation ---------------------------------------------------------------------------------
def _metrics(uri: str) -> dict[str, float]:
    from metadata import artifact_readers

    evaluation = artifact_readers.evaluation(uri)
    flat = {f"Overall {k}": v for k, v in evaluation["overall"].items()}
    for slice_name, metrics in evaluation["slices"].items():
        flat.update({f"{slice_name} {k}": v for k, v in metrics.items()})
    for class_name, metrics in evaluation["per_class"].items():
        flat.update({f"class {class_name} {k}": v for k, v in metrics.items()})
    return flat


def compare_metrics(uri_a: str, uri_b: str) -> list[str]:
    """Every metric of every slice (and class): the same value to the last digit, or both."""
    a, b = _metrics(uri_a), _metrics(uri_b)
    lines = []
    for name in sorted(set(a) | set(b)):
        if a.get(name) != b.get(name):
            lines.append(f"metric {name}: {a.get(name)!r} vs {b.get(name)!r}")
    return lines or ["the metrics files differ, though every metric read from them is equal"]

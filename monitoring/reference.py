"""What a served version is judged against, found through ML Metadata lineage, not paths:

    PushedModel -> Pusher (or a rollback) -> Model -> Trainer -> its examples and curated schema
                -> the StatisticsGen that read those examples -> the training split's statistics
    ModelBlessing (Pusher's input) -> the Evaluator's evaluation -> its metrics

and the model's answers on the eval split (the same examples the Evaluator scored), computed once
per version with the served SavedModel and kept beside the request log.
"""

from __future__ import annotations

import dataclasses
import os
from typing import Any

import numpy as np

from components.span_example_gen import spans
from deployment import model_versions
from metadata.store import (
    INPUT_EVENTS,
    NotFound,
    StoreIndex,
    input_artifacts,
    output_artifacts,
)
from pipeline import node_ids

TRAIN_SPLIT = spans.split_name(spans.LATEST, spans.TRAIN)
EVAL_SPLIT = spans.split_name(spans.LATEST, spans.EVAL)
STATISTICS_FILE = "FeatureStats.pb"  # TFX's StatisticsGen writes each split's statistics here
# Eval examples the reference answers are computed on (the eval split's first ones).
REFERENCE_ROWS = 10_000
REFERENCE_CACHE = ".reference-answers-{version}.npy"
SERVING_SIGNATURE = "serving_default"  # components/model.py exports it


class NoRecord(Exception):
    """The served version has no usable record in ML Metadata; says what is missing."""


@dataclasses.dataclass
class Reference:
    version: int
    record: dict[str, Any]  # model_versions' record: path, run, metrics, task, ids
    schema_path: str
    training_statistics_path: str
    training_statistics_id: int
    schema_id: int
    eval_examples_pattern: str
    training_split: str

    @property
    def evaluator_metrics(self) -> dict[str, float]:
        return self.record["metrics"]


def _consumers(index: StoreIndex, artifact_id: int) -> list[int]:
    return sorted(
        {
            e.execution_id
            for e in index.store.get_events_by_artifact_ids([artifact_id])
            if e.type in INPUT_EVENTS
        }
    )


def find(index: StoreIndex, version: int) -> Reference:
    """The served version's training statistics, schema, eval split and metrics, by lineage."""
    try:
        record = model_versions.version_record(index, version)
    except NotFound as e:
        raise NoRecord(
            f"model version {version} has no push recorded in ML Metadata at {index.location} "
            "(was it copied into the serving folder by hand?); `models` lists the versions pushed"
        ) from e
    if record["model_id"] is None:
        raise NoRecord(f"the push of version {version} recorded no Model input")
    trainer_id = index.producing_execution.get(record["model_id"])
    if trainer_id is None:
        raise NoRecord(f"version {version}'s Model has no producing execution (Trainer) recorded")
    trainer_inputs = input_artifacts(index.store, trainer_id)
    examples = (trainer_inputs.get("examples") or [None])[0]
    schema = (trainer_inputs.get("schema") or [None])[0]
    if examples is None or schema is None:
        raise NoRecord(f"the Trainer of version {version} recorded no examples or schema input")
    statistics = None
    for execution_id in _consumers(index, examples.id):
        if index.node_of_execution.get(execution_id) != node_ids.STATISTICS_GEN:
            continue
        found = output_artifacts(index.store, execution_id).get("statistics")
        path = os.path.join(found[0].uri, f"Split-{TRAIN_SPLIT}", STATISTICS_FILE) if found else ""
        if path and os.path.isfile(path):
            statistics = found[0]
            break
    if statistics is None:
        raise NoRecord(
            f"no statistics of version {version}'s training examples (artifact {examples.id}) "
            "are recorded"
        )
    schema_files = (
        [f for f in os.listdir(schema.uri) if f.endswith(".pbtxt")]
        if os.path.isdir(schema.uri)
        else []
    )
    if not schema_files:
        raise NoRecord(f"version {version}'s curated schema is gone from {schema.uri}")
    return Reference(
        version=version,
        record=record,
        schema_path=os.path.join(schema.uri, schema_files[0]),
        training_statistics_path=os.path.join(
            statistics.uri, f"Split-{TRAIN_SPLIT}", STATISTICS_FILE
        ),
        training_statistics_id=statistics.id,
        schema_id=schema.id,
        eval_examples_pattern=os.path.join(examples.uri, f"Split-{EVAL_SPLIT}", "*"),
        training_split=TRAIN_SPLIT,
    )


def reference_answers(reference: Reference, cache_dir: str) -> np.ndarray:
    """The served model's answers (serving_default) on the first REFERENCE_ROWS examples of the
    eval split, one row per example; cached per version in `cache_dir`."""
    cache = os.path.join(cache_dir, REFERENCE_CACHE.format(version=reference.version))
    if os.path.isfile(cache):
        return np.load(cache)
    import tensorflow as tf

    files = sorted(tf.io.gfile.glob(reference.eval_examples_pattern))
    if not files:
        raise NoRecord(
            f"the eval split of version {reference.version} is gone "
            f"({reference.eval_examples_pattern})"
        )
    compression = "GZIP" if files[0].endswith(".gz") else ""
    batches = tf.data.TFRecordDataset(files, compression_type=compression)
    batches = batches.take(REFERENCE_ROWS).batch(1024)
    serve = tf.saved_model.load(reference.record["path"]).signatures[SERVING_SIGNATURE]
    answers = []
    for batch in batches:
        (output,) = serve(examples=batch).values()
        answers.append(output.numpy().reshape(len(batch), -1))
    result = np.concatenate(answers).astype(np.float64)
    os.makedirs(cache_dir, exist_ok=True)
    np.save(cache + ".tmp.npy", result)
    os.replace(cache + ".tmp.npy", cache)
    return result


def describe(reference: Reference) -> dict[str, Any]:
    """What the JSON output says about the reference."""
    return {
        "version": reference.version,
        "run_id": reference.record["run_id"],
        "model_path": reference.record["path"],
        "schema": reference.schema_path,
        "training_statistics": reference.training_statistics_path,
        "evaluator_metrics": reference.evaluator_metrics,
        "task": reference.record["task"],
    }

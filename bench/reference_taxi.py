"""The benchmark's reference: TFX 1.16's own Chicago taxi example, run as installed.

    python bench/reference_taxi.py run --data-root DIR --work-dir DIR [--beam-arg=ARG ...]
    python bench/reference_taxi.py score --work-dir DIR --json-out FILE

`run` imports `tfx.examples.chicago_taxi_pipeline.taxi_pipeline_native_keras` from the installed
`tfx` package, builds its pipeline with the example's own `_create_pipeline(...)` (its module file
is the installed `taxi_utils_native_keras.py`, unmodified), and runs it with TFX's LocalDagRunner.
Only the paths and Beam options are ours: the CSV directory, a fresh pipeline root, SQLite ML
Metadata and the push destination under --work-dir, and the DirectRunner options given with
--beam-arg. Like the example's own `__main__`, absl logs at INFO.

`score` is not part of the measured run: the example's Evaluator computes binary accuracy only
(its eval config asks for `BinaryAccuracy`, and its model compiles no other metric), so for an AUC
beside the project's, this loads the model the example's Trainer exported, scores the example's
own eval split (its CsvExampleGen output, the rows its Evaluator evaluated) with the model's
`serving_default` signature, takes each row's label from the model's own `transform_features`
signature (`tips_xf`, the Evaluator's label key), and computes ROC AUC (exact, scikit-learn) and
binary accuracy at 0.5 (which should equal the Evaluator's figure).
"""

from __future__ import annotations

import argparse
import glob
import importlib
import importlib.util
import json
import os
import sys
from pathlib import Path

EXAMPLE_PACKAGE = "tfx.examples.chicago_taxi_pipeline"
EXAMPLE_MODULE = f"{EXAMPLE_PACKAGE}.taxi_pipeline_native_keras"
MODULE_FILE_MODULE = f"{EXAMPLE_PACKAGE}.taxi_utils_native_keras"
PIPELINE_NAME = "chicago_taxi_native_keras"  # the example's own _pipeline_name
LABEL_KEY = "tips_xf"  # the example's Evaluator label key


def paths(work_dir: Path) -> dict[str, Path]:
    """Where the reference run writes, all under `work_dir`."""
    return {
        "pipeline_root": work_dir / "pipeline_root",
        "metadata": work_dir / "metadata.db",
        "serving_model_dir": work_dir / "serving_model" / PIPELINE_NAME,
    }


def installed_file(module: str) -> Path:
    """The installed file of `module`, found without importing it."""
    spec = importlib.util.find_spec(module)
    if spec is None or spec.origin is None:
        raise ModuleNotFoundError(f"{module} is not installed")
    return Path(spec.origin)


# Environment variables that change which Keras, backend or devices TensorFlow uses.
RECORDED_ENVIRONMENT = (
    "TF_USE_LEGACY_KERAS",
    "KERAS_BACKEND",
    "CUDA_VISIBLE_DEVICES",
    "TF_CPP_MIN_LOG_LEVEL",
    "TF_ENABLE_ONEDNN_OPTS",
)


def environment(at_start: dict[str, str | None]) -> dict:
    """What this process runs the example with: versions, which Keras `tf.keras` is, and the
    variables as they were when the process started and as they are after the imports
    (tensorflow_transform sets TF_USE_LEGACY_KERAS=1 when it is imported and finds it unset)."""
    import importlib.metadata

    import tensorflow as tf

    versions = {}
    for package in ("tfx", "tensorflow", "keras", "tf-keras", "tensorflow-model-analysis"):
        try:
            versions[package] = importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            versions[package] = None
    return {
        "versions": versions,
        "tf_keras_module": tf.keras.__name__,
        "tf_keras_version": getattr(tf.keras, "__version__", None),
        "variables_at_start": at_start,
        "variables_after_imports": {name: os.environ.get(name) for name in RECORDED_ENVIRONMENT},
        "example_file": str(installed_file(EXAMPLE_MODULE)),
        "module_file": str(installed_file(MODULE_FILE_MODULE)),
    }


def run(data_root: Path, work_dir: Path, beam_args: list[str]) -> int:
    at_start = {name: os.environ.get(name) for name in RECORDED_ENVIRONMENT}
    # The example first, so that its own imports, in its own order, decide which Keras `tf.keras`
    # is (its first import, TFMA, settles it before tensorflow_transform sets
    # TF_USE_LEGACY_KERAS), as when the example runs as a script.
    example = importlib.import_module(EXAMPLE_MODULE)
    import absl.logging
    from tfx import v1 as tfx

    where = paths(work_dir)
    absl.logging.set_verbosity(absl.logging.INFO)  # as the example's __main__
    work_dir.mkdir(parents=True, exist_ok=True)
    (work_dir / "environment.json").write_text(json.dumps(environment(at_start), indent=2))
    pipeline = example._create_pipeline(
        pipeline_name=example._pipeline_name,
        pipeline_root=str(where["pipeline_root"]),
        data_root=str(data_root),
        module_file=str(installed_file(MODULE_FILE_MODULE)),
        serving_model_dir=str(where["serving_model_dir"]),
        metadata_path=str(where["metadata"]),
        beam_pipeline_args=list(beam_args),
    )
    tfx.orchestration.LocalDagRunner().run(pipeline)
    return 0


def _latest_execution(store, type_suffix: str):
    types = {t.id: t.name for t in store.get_execution_types()}
    found = [e for e in store.get_executions() if types.get(e.type_id, "").endswith(type_suffix)]
    return max(found, key=lambda e: e.id) if found else None


def score(work_dir: Path) -> dict:
    """AUC and binary accuracy of the reference's model on its own eval split."""
    import numpy as np
    import tensorflow as tf
    from sklearn.metrics import roc_auc_score

    from metadata.store import open_store, output_artifacts

    store = open_store(paths(work_dir)["metadata"])
    trainer = _latest_execution(store, "Trainer")
    example_gen = _latest_execution(store, "CsvExampleGen")
    if trainer is None or example_gen is None:
        raise LookupError("no Trainer or CsvExampleGen execution in the reference's ML Metadata")
    models = output_artifacts(store, trainer.id).get("model")
    examples = output_artifacts(store, example_gen.id).get("examples")
    if not models or not examples:
        raise LookupError("the reference's Trainer model or ExampleGen examples are not recorded")
    model_uri, examples_uri = models[0].uri, examples[0].uri
    files = sorted(glob.glob(os.path.join(examples_uri, "Split-eval", "*")))
    model = tf.saved_model.load(os.path.join(model_uri, "Format-Serving"))
    serve = model.signatures["serving_default"]
    transform = model.signatures["transform_features"]
    scores, labels = [], []
    for batch in tf.data.TFRecordDataset(files, compression_type="GZIP").batch(1024):
        scores.append(serve(examples=batch)["outputs"].numpy().reshape(-1))
        labels.append(transform(examples=batch)[LABEL_KEY].numpy().reshape(-1))
    y_score, y_true = np.concatenate(scores), np.concatenate(labels)
    return {
        "auc": float(roc_auc_score(y_true, y_score)),
        "binary_accuracy": float(np.mean((y_score > 0.5) == (y_true == 1))),
        "example_count": int(y_true.size),
        "mean_label": float(np.mean(y_true)),
        "eval_files": [os.path.relpath(f, work_dir) for f in files],
        "model_uri": os.path.relpath(model_uri, work_dir),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    run_parser = sub.add_parser("run", help="run the example (what the harness measures)")
    run_parser.add_argument("--data-root", type=Path, required=True, help="a folder of CSV files")
    run_parser.add_argument("--work-dir", type=Path, required=True, help="fresh output folder")
    run_parser.add_argument(
        "--beam-arg", action="append", default=[], metavar="ARG", help="Beam option, repeatable"
    )
    score_parser = sub.add_parser("score", help="AUC of the finished run's model (not timed)")
    score_parser.add_argument("--work-dir", type=Path, required=True)
    score_parser.add_argument("--json-out", type=Path, required=True)
    args = parser.parse_args(argv)
    if args.command == "run":
        return run(args.data_root.resolve(), args.work_dir.resolve(), args.beam_arg)
    args.json_out.write_text(json.dumps(score(args.work_dir.resolve()), indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Run the whole TFX chain locally: `python run_local.py [options]` (see --help).

Also: `python run_local.py inspect {runs,artifacts,show,lineage,diff} ...` and
`python run_local.py report [RUN]` read what runs did from ML Metadata.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import logging
import os
import sys
from pathlib import Path

from pipeline import beam_mode
from pipeline.config import PipelineConfig

# Exit codes: 0 success, 1 a component failed, 2 bad settings or inputs found before the run,
# 3 the data gate refused the data, 130 interrupted.
EXIT_DATA_REFUSED = 3
DEFAULT_IMAGE = "tfx-reference-pipeline:latest"
DEFAULT_IMAGE_PROJECT_DIR = "/pipeline"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    defaults = PipelineConfig()
    parser = argparse.ArgumentParser(
        description="Run the TFX pipeline (ExampleGen to BulkInferrer) locally on Beam's "
        "DirectRunner, with ML Metadata in a SQLite file under the output directory.",
    )
    parser.add_argument(
        "--data-dir",
        type=Path,
        default=defaults.data_dir,
        help="folder with labeled/ and unlabeled/ CSV folders (default: %(default)s)",
    )
    parser.add_argument(
        "--output-dir",
        type=Path,
        default=defaults.output_dir,
        help="where metadata.db, pipeline_root/, serving_model/ and logs/ go "
        "(default: %(default)s)",
    )
    parser.add_argument(
        "--schema",
        type=Path,
        default=defaults.curated_schema_file,
        help="curated schema (text proto) ExampleValidator and Transform use "
        "(default: %(default)s)",
    )
    parser.add_argument(
        "--tuner-trials",
        type=int,
        default=defaults.tuner_trials,
        help="KerasTuner trial budget (default: %(default)s)",
    )
    parser.add_argument(
        "--tuner-train-steps",
        type=int,
        default=defaults.tuner_train_steps,
        help="training steps per tuning trial (default: %(default)s)",
    )
    parser.add_argument(
        "--train-steps",
        type=int,
        default=defaults.train_steps,
        help="Trainer training steps (default: %(default)s)",
    )
    parser.add_argument(
        "--eval-steps",
        type=int,
        default=defaults.eval_steps,
        help="validation steps for Tuner and Trainer (default: %(default)s)",
    )
    parser.add_argument(
        "--seed",
        type=int,
        default=defaults.seed,
        help="random seed for tuning and training (default: %(default)s)",
    )
    parser.add_argument(
        "--training-spans",
        type=int,
        default=defaults.training_spans,
        metavar="N",
        help="train on the latest N spans of labeled/ (default: %(default)s)",
    )
    parser.add_argument(
        "--beam-arg",
        action="append",
        default=[],
        metavar="ARG",
        help="extra Apache Beam pipeline option, repeatable, e.g. "
        "--beam-arg=--direct_running_mode=multi_processing or "
        "--beam-arg=--runner=FlinkRunner; later options override --beam-mode's",
    )
    parser.add_argument(
        "--beam-mode",
        choices=beam_mode.MODES,
        default="auto",
        help="Beam DirectRunner mode; auto: in_memory below "
        f"{beam_mode.MULTI_PROCESSING_FROM_BYTES // 2**20} MiB of labeled CSV read, else "
        "multi_processing with one worker per core (default: %(default)s)",
    )
    parser.add_argument(
        "--retune",
        action="store_true",
        help="run a new hyperparameter search even if data and search space are unchanged "
        "(otherwise the last best hyperparameters are reused)",
    )
    parser.add_argument(
        "--model-server-bin",
        default=None,
        metavar="PATH",
        help="tensorflow_model_server binary for InfraValidator (default: one on PATH, "
        "else the project's model server)",
    )
    kubeflow = parser.add_argument_group(
        "Kubeflow Pipelines",
        "used with --orchestrator kubeflow: compile (and submit) instead of run",
    )
    kubeflow.add_argument(
        "--orchestrator",
        choices=("local", "kubeflow"),
        default="local",
        help="local: run here (default); kubeflow: compile the same pipeline to a KFP v2 spec",
    )
    kubeflow.add_argument(
        "--image",
        default=DEFAULT_IMAGE,
        help="container image every task runs in, built from the Dockerfile (default: %(default)s)",
    )
    kubeflow.add_argument(
        "--pipeline-root",
        default=None,
        metavar="URI",
        help="where tasks write artifacts, an object store the cluster reaches (gs://..., s3://..., "
        "minio://...); default: <output-dir>/kubeflow/pipeline_root, fine for compiling only",
    )
    kubeflow.add_argument(
        "--data-uri",
        default=None,
        metavar="URI",
        help="folder with labeled/ and unlabeled/ CSVs as the tasks see it (default: the data "
        "baked into the image, <image-project-dir>/data)",
    )
    kubeflow.add_argument(
        "--serving-model-uri",
        default=None,
        metavar="URI",
        help="Pusher's destination (default: <pipeline-root>/serving_model/<pipeline name>)",
    )
    kubeflow.add_argument(
        "--image-project-dir",
        default=DEFAULT_IMAGE_PROJECT_DIR,
        metavar="PATH",
        help="where this project (code, schema/, data/) lives inside the image (default: %(default)s)",
    )
    kubeflow.add_argument(
        "--kfp-endpoint",
        default=None,
        metavar="URL",
        help="submit the compiled pipeline to this Kubeflow Pipelines API endpoint",
    )
    kubeflow.add_argument(
        "--kfp-experiment", default=None, help="KFP experiment to file the run under"
    )
    parser.add_argument(
        "--no-cache",
        action="store_true",
        help="re-execute every component instead of reusing cached results",
    )
    return parser.parse_args(argv)


def config_from_args(args: argparse.Namespace) -> PipelineConfig:
    for name in (
        "tuner_trials",
        "tuner_train_steps",
        "train_steps",
        "eval_steps",
        "training_spans",
    ):
        if getattr(args, name) < 1:
            raise SystemExit(
                f"error: --{name.replace('_', '-')} must be at least 1, got {getattr(args, name)}."
            )
    args.labeled_bytes = beam_mode.labeled_bytes_read(
        args.data_dir.resolve() / "labeled", PipelineConfig.span_pattern, args.training_spans
    )
    args.resolved_beam_mode = beam_mode.resolve(args.beam_mode, args.labeled_bytes)
    config = PipelineConfig(
        data_dir=args.data_dir.resolve(),
        output_dir=args.output_dir.resolve(),
        curated_schema_file=args.schema.resolve(),
        tuner_trials=args.tuner_trials,
        tuner_train_steps=args.tuner_train_steps,
        train_steps=args.train_steps,
        eval_steps=args.eval_steps,
        seed=args.seed,
        training_spans=args.training_spans,
        beam_args=beam_mode.local_beam_args(args.resolved_beam_mode, tuple(args.beam_arg)),
        retune_token=datetime.datetime.now().isoformat() if args.retune else None,
        model_server_binary=args.model_server_bin,
        enable_cache=not args.no_cache,
    )
    if args.orchestrator == "kubeflow":
        project = args.image_project_dir.rstrip("/")
        pipeline_root = args.pipeline_root or str(config.output_dir / "kubeflow" / "pipeline_root")
        config = dataclasses.replace(
            config,
            data_uri=args.data_uri or f"{project}/data",
            pipeline_root_uri=pipeline_root,
            serving_model_uri=args.serving_model_uri
            or f"{pipeline_root.rstrip('/')}/serving_model/{config.pipeline_name}",
            curated_schema_uri=f"{project}/schema/{config.curated_schema_file.name}",
        )
    return config


def compile_for_kubeflow(args: argparse.Namespace, config: PipelineConfig) -> int:
    """`--orchestrator kubeflow`: compile, print where the spec is, and submit when asked."""
    from pipeline import preflight
    from pipeline.console import output_to_log_file

    started = datetime.datetime.now()
    log_path = config.logs_dir / f"compile-{started:%Y%m%d-%H%M%S}.log"
    compile_dir = config.output_dir / "kubeflow"
    with output_to_log_file(log_path) as console:
        from pipeline import kubeflow_runner  # imports TensorFlow: its noise goes to the log

        try:
            preflight.check_user_code(config)
            compiled = kubeflow_runner.compile_pipeline(config, args.image, compile_dir)
        except preflight.SetupError as e:
            console.write(f"error: {e}\n")
            return 2
        except Exception as e:  # noqa: BLE001 - the compiler's own message is the useful part
            logging.exception("Compilation failed")
            console.write(
                f"error: the pipeline does not compile for Kubeflow: {type(e).__name__}: "
                f"{str(e).splitlines()[0] if str(e) else ''}\nFull log: {log_path}\n"
            )
            return 1
        console.write(
            f"Compiled {config.pipeline_name} for Kubeflow Pipelines (KFP v2):\n"
            f"  pipeline spec (KFP):         {compiled.pipeline_spec}\n"
            f"  pipeline job (Vertex AI):    {compiled.pipeline_job}\n"
            f"  image:                       {args.image}\n"
            f"  pipeline root:               {config.pipeline_root_location}\n"
            f"  data:                        {config.labeled_data_location}, "
            f"{config.unlabeled_data_location}\n"
            f"  pushed models:               {config.serving_model_location}\n"
        )
        if not args.kfp_endpoint:
            console.write(
                "Submit it with: python run_local.py --orchestrator kubeflow --kfp-endpoint URL "
                "(same options), or upload the .yaml in the KFP UI (see README, Run on Kubeflow).\n"
            )
            return 0
        try:
            run_id, run_url = kubeflow_runner.submit(
                compiled, args.kfp_endpoint, args.kfp_experiment
            )
        except kubeflow_runner.SubmitError as e:
            logging.exception("Submission failed")
            console.write(f"error: {e}\nThe compiled spec stays at {compiled.pipeline_spec}.\n")
            return 1
        console.write(f"Submitted run {run_id}: {run_url}\n")
    return 0


def write_run_report(config: PipelineConfig, run_id: str, log_path: Path) -> str:
    """Writes the run's HTML report; a report that cannot be written never fails the run."""
    from pipeline import explorer, report

    try:
        store = explorer.Explorer(explorer.open_store(config.metadata_path))
        path = report.write_report(store, run_id, None, config.metadata_path)
        return os.path.relpath(path) if path.is_relative_to(Path.cwd()) else str(path)
    except Exception:  # noqa: BLE001 - the run itself succeeded; say so and point at the log
        logging.exception("Writing the HTML report failed")
        return f"not written (see {log_path})"


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] in ("inspect", "report", "schema"):
        from pipeline import explorer_cli

        return explorer_cli.main(argv)
    args = parse_args(argv)
    config = config_from_args(args)
    from pipeline import preflight

    try:
        preflight.check_output_dir(config.output_dir)
    except preflight.SetupError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if args.orchestrator == "kubeflow":
        return compile_for_kubeflow(args, config)

    from pipeline.console import output_to_log_file

    started = datetime.datetime.now()
    log_path = config.logs_dir / f"run-{started:%Y%m%d-%H%M%S}.log"
    with output_to_log_file(log_path) as console:
        console.write(
            f"Pipeline {config.pipeline_name}: data {config.data_dir}, outputs {config.output_dir}\n"
        )
        chosen = "auto, " if args.beam_mode == "auto" else ""
        console.write(
            f"Beam:     DirectRunner {args.resolved_beam_mode} ({chosen}"
            f"{args.labeled_bytes / 2**20:.1f} MiB of labeled CSV to read)\n"
        )
        console.write(f"Full log: {log_path}\n")
        try:
            preflight.run_all(config)
        except preflight.SetupError as e:
            console.write(f"error: {e}\n")
            return 2

        from pipeline import local_runner
        from pipeline.summary_text import format_summary

        try:
            summary = local_runner.run(config, console)
        except local_runner.DataRefusedError as e:
            elapsed = (datetime.datetime.now() - started).total_seconds()
            console.write("\n" + format_summary(e.summary, config, log_path, elapsed) + "\n")
            console.write(f"Report:     {write_run_report(config, e.summary.run_id, log_path)}\n")
            return EXIT_DATA_REFUSED
        except local_runner.PipelineRunError as e:
            from components.span_example_gen.csv_checks import InvalidInputData

            cause_lines = str(e.cause).strip().splitlines() or [""]
            # Input-data errors are written for people in full; others show their first line.
            message = (
                "\n".join(cause_lines)
                if isinstance(e.cause, InvalidInputData)
                else (cause_lines[0][:400])
            )
            console.write(
                f"\nerror: {e.node_id or 'The pipeline'} failed: {type(e.cause).__name__}: "
                f"{message}\n"
                f"Nothing was pushed. ML Metadata records the failed execution in "
                f"{config.metadata_path}; the traceback is in {log_path}. Fix the cause and run "
                "again: completed components are reused from the cache.\n"
            )
            return 1
        except Exception:  # noqa: BLE001 - reported in words; the traceback goes to the log
            logging.exception("Unexpected error")
            console.write(
                f"\nerror: the run stopped on an unexpected error; the traceback is in {log_path}.\n"
            )
            return 1
        except KeyboardInterrupt:
            console.write("\ninterrupted: the run was stopped; nothing more was pushed.\n")
            return 130
        elapsed = (datetime.datetime.now() - started).total_seconds()
        console.write("\n" + format_summary(summary, config, log_path, elapsed) + "\n")
        console.write(f"Report:     {write_run_report(config, summary.run_id, log_path)}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())

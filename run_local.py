"""Run the whole TFX chain locally: `python run_local.py [options]` (see --help)."""

from __future__ import annotations

import argparse
import datetime
import logging
import sys
from pathlib import Path

from pipeline.config import DEFAULT_BEAM_ARGS, PipelineConfig


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
        "--beam-arg",
        action="append",
        default=[],
        metavar="ARG",
        help="extra Apache Beam pipeline option, repeatable, e.g. "
        "--beam-arg=--direct_running_mode=multi_processing or "
        "--beam-arg=--runner=FlinkRunner; later options override the defaults "
        f"({' '.join(DEFAULT_BEAM_ARGS)})",
    )
    parser.add_argument(
        "--model-server-bin",
        default=None,
        metavar="PATH",
        help="tensorflow_model_server binary for InfraValidator (default: one on PATH, "
        "else the project's model server)",
    )
    parser.add_argument(
        "--no-cache",
        action="store_true",
        help="re-execute every component instead of reusing cached results",
    )
    return parser.parse_args(argv)


def config_from_args(args: argparse.Namespace) -> PipelineConfig:
    for name in ("tuner_trials", "tuner_train_steps", "train_steps", "eval_steps"):
        if getattr(args, name) < 1:
            raise SystemExit(
                f"error: --{name.replace('_', '-')} must be at least 1, got {getattr(args, name)}."
            )
    return PipelineConfig(
        data_dir=args.data_dir.resolve(),
        output_dir=args.output_dir.resolve(),
        curated_schema_file=args.schema.resolve(),
        tuner_trials=args.tuner_trials,
        tuner_train_steps=args.tuner_train_steps,
        train_steps=args.train_steps,
        eval_steps=args.eval_steps,
        seed=args.seed,
        beam_args=DEFAULT_BEAM_ARGS + tuple(args.beam_arg),
        model_server_binary=args.model_server_bin,
        enable_cache=not args.no_cache,
    )


def main(argv: list[str] | None = None) -> int:
    config = config_from_args(parse_args(argv))
    from pipeline import preflight

    try:
        preflight.check_output_dir(config.output_dir)
    except preflight.SetupError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2

    from pipeline.console import output_to_log_file

    started = datetime.datetime.now()
    log_path = config.logs_dir / f"run-{started:%Y%m%d-%H%M%S}.log"
    with output_to_log_file(log_path) as console:
        console.write(
            f"Pipeline {config.pipeline_name}: data {config.data_dir}, outputs {config.output_dir}\n"
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
        except local_runner.PipelineRunError as e:
            cause_lines = str(e.cause).strip().splitlines() or [""]
            console.write(
                f"\nerror: {e.node_id or 'The pipeline'} failed: {type(e.cause).__name__}: "
                f"{cause_lines[0][:400]}\n"
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
    return 0


if __name__ == "__main__":
    sys.exit(main())

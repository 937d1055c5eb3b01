"""The command line's entry point, the `main` group: `python run_local.py [RUN OPTIONS]` runs the
pipeline (its options are here; what a run does is cli/run_commands.py), and its commands, each
in a module of its own, read what ran:

    python run_local.py [options]                     run the whole chain here (or, with
                                                      --orchestrator kubeflow, compile and submit)
    python run_local.py inspect runs|artifacts|show|lineage|diff     cli/inspect_commands.py
    python run_local.py report [RUN]                                 cli/report_command.py
    python run_local.py schema diff|accept                           cli/schema_commands.py
    python run_local.py run-spec PIPELINE_JOB                        cli/run_spec_command.py
    python run_local.py serve | models [rollback VERSION]            cli/serve_commands.py
    python run_local.py monitor [--since 1h] [--labels FILE]         cli/monitor_command.py
    python run_local.py watch [--monitor 15m] [-- RUN OPTIONS]       cli/watch_command.py
    python run_local.py init --csv FILE --label COLUMN --out DIR     cli/init_command.py

The settings a profile gives default to the profile's (--profile; the default profile is chosen in
cli/options.py), the others to PipelineConfig's defaults. The config checks ranges once, and a bad
value is reported by its option name with exit code 2 (see cli/exit_codes.py).
"""

from __future__ import annotations

import datetime
import functools
from pathlib import Path
from typing import Any

import click
from click.core import ParameterSource

from cli import run_commands
from cli.init_command import init
from cli.inspect_commands import inspect
from cli.monitor_command import monitor_command
from cli.options import (
    CONTEXT_SETTINGS,
    METADATA_URI_HELP,
    field_default,
    load_config,
    metadata_location_of,
    metadata_uri_options,
    parallelism_option,
    profile_option,
    setting,
)
from cli.report_command import report_command
from cli.reproduce_command import reproduce
from cli.run_spec_command import run_spec
from cli.schema_commands import schema
from cli.serve_commands import models, serve_command
from cli.user_errors import UserError
from cli.watch_command import watch_command
from orchestration import beam_mode, kubeflow_locations
from pipeline.config import BEAM_MODES, PROFILE_SETTINGS


@click.group(
    invoke_without_command=True,
    context_settings=CONTEXT_SETTINGS,
    epilog="Exit codes: 0 success; 1 a component failed; 2 bad settings or inputs found before "
    "the run (or another run on the same output directory); 3 the data gate refused the data; "
    "4 `monitor` found a threshold crossed; 5 `reproduce`: the replay differs from the run; "
    "6 a fault outside the pipeline (a process killed, ML Metadata's server lost, a full disk, "
    "a read-only folder); 130 stopped with Ctrl-C; 143 stopped with SIGTERM. "
    "`python run_local.py COMMAND --help` documents each command.",
)
@profile_option
@setting("--data-dir", "Folder with labeled/ and unlabeled/, one folder per span in each.")
@setting(
    "--output-dir", "Where metadata.db, pipeline_root/, serving_model/, logs/ and reports/ go."
)
@setting(
    "--schema",
    "Curated schema (text proto) that ExampleValidator and Transform use.",
    field="curated_schema_file",
)
@setting("--tuner-trials", "KerasTuner trial budget.")
@setting("--tuner-train-steps", "Training steps per tuning trial.")
@setting("--train-steps", "Trainer training steps.")
@setting("--eval-steps", "Validation steps for Tuner and Trainer.")
@setting("--seed", "Random seed for tuning and training.")
@setting("--training-spans", "Train on the latest N spans of labeled/.", metavar="N")
@click.option(
    "--retune",
    is_flag=True,
    help="Search hyperparameters again even if data and search space are unchanged "
    "(otherwise the last best hyperparameters are reused).",
)
@click.option(
    "--beam-mode",
    type=click.Choice(BEAM_MODES),
    default=field_default("beam_mode"),
    show_default=True,
    help="Beam DirectRunner mode; auto: in_memory below "
    f"{beam_mode.MULTI_PROCESSING_FROM_BYTES // 2**20} MiB of labeled CSV read, else "
    "multi_processing with one worker per core.",
)
@click.option(
    "--beam-arg",
    "beam_args",
    multiple=True,
    metavar="ARG",
    help="Extra Apache Beam pipeline option, repeatable, e.g. "
    "--beam-arg=--direct_running_mode=multi_processing or --beam-arg=--runner=FlinkRunner; "
    "later options override --beam-mode's.",
)
@click.option(
    "--model-server-bin",
    default=None,
    metavar="PATH",
    help="tensorflow_model_server binary for InfraValidator [default: one on PATH, else the "
    "project's model server].",
)
@parallelism_option(
    "How many components may run at once, each in its own process (independent ones: the "
    "unlabeled data's beside the labeled data's, Evaluator beside InfraValidator) "
    "[default: one per core]."
)
@click.option(
    "--deterministic/--no-deterministic",
    default=field_default("deterministic"),
    show_default=True,
    help="Bit-identical models and metrics for the same data, code and settings (TensorFlow's "
    "op determinism, every tuner trial seeded, a fixed hash seed); `reproduce` proves it. "
    "--no-deterministic trades that for speed.",
)
@setting(
    "--retries",
    "Run a component again up to N times when it failed from a transient fault (its process "
    "killed, ML Metadata's server lost); Kubeflow: each task's retry policy.",
    metavar="N",
)
@setting(
    "--metadata-retry-seconds",
    "How long ML Metadata calls that cannot reach the database are retried, with back-off, "
    "before the run gives up (at the start and during the run).",
    metavar="SECONDS",
)
@click.option(
    "--no-cache", is_flag=True, help="Re-execute every component instead of reusing cached results."
)
@functools.partial(
    metadata_uri_options,
    help=METADATA_URI_HELP + " [default: <output-dir>/metadata.db] Runs on one database from "
    "other output directories or machines run side by side; on one output directory, one at a "
    "time. Kubeflow runs use Kubeflow Pipelines' own ML Metadata, so this applies to local runs.",
)
@click.option(
    "--orchestrator",
    type=click.Choice(["local", "kubeflow"]),
    default="local",
    show_default=True,
    help="local: run here; kubeflow: compile the same pipeline to a KFP v2 spec (and submit it "
    "with --kfp-endpoint). Kubeflow brings its own ML Metadata.",
)
@click.option(
    "--image",
    default=kubeflow_locations.DEFAULT_IMAGE,
    show_default=True,
    help="Kubeflow: container image every task runs in, built from the Dockerfile.",
)
@click.option(
    "--pipeline-root",
    default=None,
    metavar="URI",
    help="Kubeflow: where tasks write artifacts, an object store the cluster reaches (gs://, "
    "s3://, minio://) [default: <output-dir>/kubeflow/pipeline_root, fine for compiling only].",
)
@click.option(
    "--data-uri",
    default=None,
    metavar="URI",
    help="Kubeflow: folder with labeled/ and unlabeled/ as the tasks see it [default: the data "
    "in the image, <image-project-dir>/data].",
)
@click.option(
    "--serving-model-uri",
    default=None,
    metavar="URI",
    help="Kubeflow: Pusher's destination [default: <pipeline-root>/serving_model/<pipeline>].",
)
@click.option(
    "--image-project-dir",
    default=kubeflow_locations.DEFAULT_IMAGE_PROJECT_DIR,
    show_default=True,
    metavar="PATH",
    help="Kubeflow: where this project (code, schema/, data/) lives inside the image.",
)
@click.option(
    "--kfp-endpoint",
    default=None,
    metavar="URL",
    help="Kubeflow: submit the compiled pipeline to this Kubeflow Pipelines API endpoint.",
)
@click.option("--kfp-experiment", default=None, help="Kubeflow: experiment to file the run under.")
@click.pass_context
def main(ctx: click.Context, **options: Any) -> None:
    """Run the TFX pipeline, ExampleGen to BulkInferrer, on this machine.

    Every Beam step runs on Apache Beam's DirectRunner; ML Metadata is a SQLite file in the
    output directory, or a MySQL or PostgreSQL database shared by a team (--metadata-uri). With
    --orchestrator kubeflow the same pipeline compiles for Kubeflow Pipelines instead, which keeps
    its own ML Metadata. The commands below read what runs did.
    """
    if ctx.invoked_subcommand is not None:
        given = [
            "--" + name.replace("_", "-")
            for name in options
            if ctx.get_parameter_source(name) == ParameterSource.COMMANDLINE
        ]
        if given:
            raise UserError(
                f"{', '.join(given)}: run options go without a command "
                f"(`python run_local.py {' '.join(given)} ...` runs the pipeline)."
            )
        return
    if (
        options["orchestrator"] == "kubeflow"
        and ctx.get_parameter_source("metadata_uri") == ParameterSource.COMMANDLINE
    ):
        raise UserError(
            "--metadata-uri applies to local runs: Kubeflow Pipelines records its runs in its "
            "own ML Metadata. Leave it out with --orchestrator kubeflow."
        )
    given = {
        name
        for name in options
        if ctx.get_parameter_source(name)
        in (ParameterSource.COMMANDLINE, ParameterSource.ENVIRONMENT)
    }
    ctx.exit(_run(given=given, **options))


def _run(
    given: set[str],
    profile_dir: Path,
    orchestrator: str,
    metadata_uri: str | None,
    metadata_password_file: Path | None,
    image: str,
    pipeline_root: str | None,
    data_uri: str | None,
    serving_model_uri: str | None,
    image_project_dir: str,
    kfp_endpoint: str | None,
    kfp_experiment: str | None,
    retune: bool,
    no_cache: bool,
    beam_args: tuple[str, ...],
    model_server_bin: str | None,
    parallelism: int | None,
    **settings: Any,
) -> int:
    settings = {
        **{k: v for k, v in settings.items() if k in given or k not in PROFILE_SETTINGS},
        "output_dir": settings["output_dir"].resolve(),
        "extra_beam_args": beam_args,
        "model_server_binary": model_server_bin,
        "retune_token": datetime.datetime.now().isoformat() if retune else None,
        "enable_cache": not no_cache,
    }
    for path_setting in ("data_dir", "curated_schema_file"):
        if path_setting in settings:
            settings[path_setting] = settings[path_setting].resolve()
    if orchestrator == "local":
        location = metadata_location_of(metadata_uri, metadata_password_file, None)
        config = load_config(profile_dir, **settings, metadata=location)
        return run_commands.run_locally(config, parallelism)
    profile_config = load_config(profile_dir, **settings)
    locations = kubeflow_locations.task_locations(
        output_dir=settings["output_dir"],
        pipeline_name=profile_config.pipeline_name,
        data_dir=profile_config.data_dir,
        curated_schema_file=profile_config.curated_schema_file,
        image_project_dir=image_project_dir,
        pipeline_root=pipeline_root,
        data_uri=data_uri,
        serving_model_uri=serving_model_uri,
    )
    config = load_config(profile_dir, **settings, **locations)
    return run_commands.compile_for_kubeflow(config, image, kfp_endpoint, kfp_experiment)


# ---- the commands, each in a module of its own --------------------------------------------------
for _command in (
    inspect,
    report_command,
    schema,
    run_spec,
    serve_command,
    models,
    monitor_command,
    watch_command,
    init,
    reproduce,
):
    main.add_command(_command)

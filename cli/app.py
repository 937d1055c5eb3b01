"""The command line: `python run_local.py [RUN OPTIONS]` runs the pipeline; commands read what ran.

    python run_local.py [options]                     run the whole chain here (or, with
                                                      --orchestrator kubeflow, compile and submit)
    python run_local.py inspect runs|artifacts|show|lineage|diff
    python run_local.py report [RUN]
    python run_local.py schema diff|accept
    python run_local.py run-spec PIPELINE_JOB         run a compiled Kubeflow spec here, task by task
    python run_local.py serve                         serve the pushed model (TF Serving's APIs)
    python run_local.py models [rollback VERSION]     the pushed versions; serve an earlier one

Every default comes from `PipelineConfig`; the config checks ranges once, and a bad value is
reported here by its option name with exit code 2 (see cli/exit_codes.py).
"""

from __future__ import annotations

import datetime
import functools
import json
import os
import sys
from pathlib import Path
from typing import Any

import click
from click.core import ParameterSource

from cli import exit_codes, inspect_text, models_text, run_commands, schema_text
from cli import report as html_report
from cli.init_command import init
from cli.user_errors import UserError, quiet_libraries
from components.profile import ProfileError
from metadata import artifacts, lineage, run_diff, runs, schema_review
from metadata.store import NotFound, StoreIndex, UnusableStore
from orchestration import beam_mode, kubeflow_locations
from pipeline import metadata_location
from pipeline.config import (
    BEAM_MODES,
    DEFAULT_PROFILE_DIR,
    ConfigError,
    PipelineConfig,
    profile_settings,
)
from pipeline.metadata_location import MetadataLocation, MetadataUriError

DEFAULTS = PipelineConfig()
# Settings a profile gives; the command line overrides them only when given there.
PROFILE_SETTINGS = frozenset(profile_settings(DEFAULT_PROFILE_DIR, DEFAULTS.profile))
# Config fields whose option is not simply `--<field-name>`.
_OPTION_OF_SETTING = {"curated_schema_file": "--schema", "extra_beam_args": "--beam-arg"}


def _config(**settings: Any) -> PipelineConfig:
    """The one PipelineConfig of this command; a value out of range is the user's to fix."""
    try:
        return PipelineConfig(**settings)
    except ConfigError as e:
        option = _OPTION_OF_SETTING.get(e.setting, "--" + e.setting.replace("_", "-"))
        raise UserError(f"{option} {e.problem}.") from e


CONTEXT_SETTINGS = {"help_option_names": ["-h", "--help"], "max_content_width": 100}


def _setting(flag: str, help: str, field: str | None = None, **options: Any):
    """An option for a PipelineConfig field, its type and shown default taken from the config;
    a setting the profile gives defaults to the profile's value (the taxi profile's is shown)."""
    name = field or flag.lstrip("-").replace("-", "_")
    default = getattr(DEFAULTS, name)
    kind = click.Path(path_type=Path) if isinstance(default, Path) else type(default)
    shown = f"the profile's; taxi: {default}" if name in PROFILE_SETTINGS else True
    return click.option(
        flag, name, type=kind, default=default, show_default=shown, help=help, **options
    )


def _profile_option(command):
    return click.option(
        "--profile",
        "profile_dir",
        type=click.Path(path_type=Path),
        default=DEFAULT_PROFILE_DIR,
        show_default="profiles/taxi",
        metavar="DIR",
        help="Dataset profile: a folder with profile.yaml (data, label and task, feature kinds, "
        "thresholds, budgets). `init` writes one for a CSV.",
    )(command)


def _load_profile(profile_dir: Path, **settings: Any) -> PipelineConfig:
    """The config of the profile in `profile_dir`, with `settings` given on the command line
    overriding the profile's. User code beside profile.yaml is importable (here and in Beam's
    worker processes)."""
    try:
        config = PipelineConfig.from_profile(profile_dir, **settings)
    except ProfileError as e:
        raise UserError(str(e)) from e
    except ConfigError as e:
        option = _OPTION_OF_SETTING.get(e.setting, "--" + e.setting.replace("_", "-"))
        raise UserError(f"{option} {e.problem}.") from e
    code_dir = str(config.profile_dir)
    if code_dir not in sys.path:
        sys.path.insert(0, code_dir)
        os.environ["PYTHONPATH"] = os.pathsep.join(
            p for p in (code_dir, os.environ.get("PYTHONPATH")) if p
        )
    return config


_METADATA_URI_HELP = (
    "ML Metadata store: sqlite:///PATH (or a plain path), mysql://USER@HOST:PORT/DATABASE or "
    "postgresql://USER@HOST:PORT/DATABASE; a team shares one database server. Give the password "
    f"in {metadata_location.PASSWORD_ENV_VAR} or --metadata-password-file rather than in the URI "
    "(`ps` shows command lines)."
)


def _metadata_location(
    uri: str | None, password_file: Path | None, default: Path | None
) -> MetadataLocation | None:
    """The store a command uses: `uri`, else the SQLite file `default` (None: the run's own)."""
    if uri is None:
        return metadata_location.sqlite_location(default) if default else None
    try:
        password = (
            metadata_location.read_password_file(password_file)
            if password_file
            else os.environ.get(metadata_location.PASSWORD_ENV_VAR)
        )
        return metadata_location.parse_metadata_uri(uri, password=password)
    except MetadataUriError as e:
        option = "--metadata-password-file" if "password file" in str(e) else "--metadata-uri"
        raise UserError(f"{option}: {e}.") from e


def _metadata_uri_options(command, help: str):
    command = click.option(
        "--metadata-password-file",
        type=click.Path(dir_okay=False, path_type=Path),
        envvar=metadata_location.PASSWORD_FILE_ENV_VAR,
        show_envvar=True,
        default=None,
        metavar="FILE",
        help="File whose first line is the ML Metadata database password.",
    )(command)
    return click.option(
        "--metadata-uri",
        "--metadata-path",
        "metadata_uri",
        envvar=metadata_location.URI_ENV_VAR,
        show_envvar=True,
        default=None,
        metavar="URI",
        help=help,
    )(command)


def _store_location(command):
    """The reader's store options (--metadata-uri, --metadata-password-file), given to the
    command as one `location`."""

    @functools.wraps(command)
    def with_location(*args, metadata_uri, metadata_password_file, **kwargs):
        location = _metadata_location(metadata_uri, metadata_password_file, DEFAULTS.metadata_path)
        return command(*args, location=location, **kwargs)

    return _metadata_uri_options(
        with_location, _METADATA_URI_HELP + f" [default: {DEFAULTS.metadata_path}]"
    )


# ---- the run ---------------------------------------------------------------------------------
@click.group(
    invoke_without_command=True,
    context_settings=CONTEXT_SETTINGS,
    epilog="Exit codes: 0 success; 1 a component failed; 2 bad settings or inputs found before "
    "the run (or another run on the same output directory); 3 the data gate refused the data; "
    "130 stopped with Ctrl-C; 143 stopped with SIGTERM. "
    "`python run_local.py COMMAND --help` documents each command.",
)
@_profile_option
@_setting("--data-dir", "Folder with labeled/ and unlabeled/, one folder per span in each.")
@_setting(
    "--output-dir", "Where metadata.db, pipeline_root/, serving_model/, logs/ and reports/ go."
)
@_setting(
    "--schema",
    "Curated schema (text proto) that ExampleValidator and Transform use.",
    field="curated_schema_file",
)
@_setting("--tuner-trials", "KerasTuner trial budget.")
@_setting("--tuner-train-steps", "Training steps per tuning trial.")
@_setting("--train-steps", "Trainer training steps.")
@_setting("--eval-steps", "Validation steps for Tuner and Trainer.")
@_setting("--seed", "Random seed for tuning and training.")
@_setting("--training-spans", "Train on the latest N spans of labeled/.", metavar="N")
@click.option(
    "--retune",
    is_flag=True,
    help="Search hyperparameters again even if data and search space are unchanged "
    "(otherwise the last best hyperparameters are reused).",
)
@click.option(
    "--beam-mode",
    type=click.Choice(BEAM_MODES),
    default=DEFAULTS.beam_mode,
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
@click.option(
    "--parallelism",
    type=click.IntRange(min=1),
    default=None,
    metavar="N",
    help="How many components may run at once, each in its own process (independent ones: "
    "the unlabeled data's beside the labeled data's, Evaluator beside InfraValidator) "
    "[default: one per core].",
)
@click.option(
    "--no-cache", is_flag=True, help="Re-execute every component instead of reusing cached results."
)
@functools.partial(
    _metadata_uri_options,
    help=_METADATA_URI_HELP + " [default: <output-dir>/metadata.db] Runs on one database from "
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
        location = _metadata_location(metadata_uri, metadata_password_file, None)
        config = _load_profile(profile_dir, **settings, metadata=location)
        return run_commands.run_locally(config, parallelism)
    profile_config = _load_profile(profile_dir, **settings)
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
    config = _load_profile(profile_dir, **settings, **locations)
    return run_commands.compile_for_kubeflow(config, image, kfp_endpoint, kfp_experiment)


# ---- inspect: what ML Metadata knows -----------------------------------------------------------
def _store_options(command):
    command = click.option("--json", "as_json", is_flag=True, help="Print JSON instead of text.")(
        command
    )
    return _store_location(command)


def _open(location: MetadataLocation) -> StoreIndex:
    quiet_libraries()
    try:
        return StoreIndex.open(location)
    except (NotFound, UnusableStore) as e:
        raise UserError(str(e)) from e


def _answer(as_json: bool, compute, as_text) -> None:
    """Prints what `compute()` returns, as JSON or as text; a missing id or run is a UserError."""
    try:
        data = compute()
    except NotFound as e:
        raise UserError(str(e)) from e
    click.echo(json.dumps(data, indent=2, default=str) if as_json else as_text(data))


def _artifact_id(value: str) -> int:
    if not value.isdigit():
        raise UserError(
            f"artifact id must be a number, got {value!r}; `inspect artifacts` lists them"
        )
    return int(value)


@main.group(context_settings=CONTEXT_SETTINGS)
def inspect() -> None:
    """Query runs, executions, artifacts and lineage in ML Metadata."""


@inspect.command("runs")
@_store_options
def inspect_runs(location: MetadataLocation, as_json: bool) -> None:
    """Every pipeline run, newest first, with what each component did and how long it took."""
    index = _open(location)
    _answer(as_json, lambda: runs.list_runs(index), inspect_text.runs_text)


@inspect.command("artifacts")
@click.option("--run", help="Run id, id prefix, or position (1 = newest).")
@click.option("--component", help="Producing component, e.g. Trainer.")
@click.option("--type", "type_name", help="Artifact type, e.g. Model, ExampleStatistics.")
@_store_options
def inspect_artifacts(
    run: str | None,
    component: str | None,
    type_name: str | None,
    location: MetadataLocation,
    as_json: bool,
) -> None:
    """Artifacts with id, type, state, URI and key properties."""
    index = _open(location)

    def compute() -> list[dict]:
        run_id = runs.find_run(index, run)["run_id"] if run else None
        return artifacts.list_artifacts(
            index, run_id=run_id, component=component, type_name=type_name
        )

    _answer(as_json, compute, inspect_text.artifacts_text)


@inspect.command("show")
@click.argument("artifact_id")
@_store_options
def inspect_show(artifact_id: str, location: MetadataLocation, as_json: bool) -> None:
    """One artifact in human terms (statistics, schema, anomalies, evaluation, ...).

    ARTIFACT_ID: see `inspect artifacts`.
    """
    index = _open(location)
    _answer(
        as_json, lambda: artifacts.show(index, _artifact_id(artifact_id)), inspect_text.show_text
    )


@inspect.command("lineage")
@click.argument("artifact_id")
@_store_options
def inspect_lineage(artifact_id: str, location: MetadataLocation, as_json: bool) -> None:
    """Where an artifact came from, back to data, schema and code.

    ARTIFACT_ID: an artifact id, or 'pushed-model' for the latest pushed model.
    """
    index = _open(location)

    def compute() -> dict:
        target = (
            artifacts.latest_pushed_model(index)
            if artifact_id == "pushed-model"
            else _artifact_id(artifact_id)
        )
        tree = lineage.lineage(index, target)
        tree["edges"] = sorted(lineage.lineage_edges(tree))
        return tree

    _answer(as_json, compute, inspect_text.lineage_text)


@inspect.command("diff")
@click.argument("run_a")
@click.argument("run_b")
@_store_options
def inspect_diff(run_a: str, run_b: str, location: MetadataLocation, as_json: bool) -> None:
    """What changed between two runs: statistics, schema, hyperparameters, metrics, blessings.

    RUN_A, RUN_B: run ids, id prefixes or positions (1 = newest).
    """
    index = _open(location)
    _answer(as_json, lambda: run_diff.diff_runs(index, run_a, run_b), inspect_text.diff_text)


# ---- report ------------------------------------------------------------------------------------
@main.command("report", context_settings=CONTEXT_SETTINGS)
@click.argument("run", default="1")
@_store_location
@click.option(
    "--output",
    type=click.Path(path_type=Path),
    default=None,
    help="HTML file to write [default: <metadata folder>/reports/run-<id>.html; on a database "
    "server, <the run's output dir>/reports/].",
)
def report_command(run: str, location: MetadataLocation, output: Path | None) -> None:
    """Write a self-contained HTML report of a run.

    One HTML file with no scripts and no network requests. RUN: run id, prefix or position
    [default: 1, the newest].
    """
    index = _open(location)
    try:
        path = html_report.write_report(index, run, output)
    except NotFound as e:
        raise UserError(str(e)) from e
    click.echo(f"Report: {path}")


# ---- schema ------------------------------------------------------------------------------------
@main.group(context_settings=CONTEXT_SETTINGS)
def schema() -> None:
    """Compare the latest data with the curated schema; accept a change.

    `diff` compares the schema SchemaGen inferred from the latest run's data with the curated
    schema and shows the change `accept` would make; `accept` writes that change to the curated
    schema file, for review like any code change.
    """


def _schema_options(command):
    command = _store_location(command)
    command = click.option(
        "--schema",
        "curated_schema_file",
        type=click.Path(path_type=Path),
        default=None,
        help="The curated schema file [default: the profile's].",
    )(command)
    return _profile_option(command)


def _review(location: MetadataLocation, profile_dir: Path, curated_schema_file: Path | None):
    config = _load_profile(profile_dir)
    profile = config.profile
    index = _open(location)
    try:
        return schema_review.review(
            index,
            config.pipeline_name,
            curated_schema_file or config.curated_schema_file,
            model_columns=[*profile.model_features, profile.label.column],
        )
    except schema_review.SchemaReviewError as e:
        raise UserError(str(e)) from e


@schema.command("diff")
@_schema_options
def schema_diff(location: MetadataLocation, profile_dir: Path, curated_schema_file: Path | None):
    """Show how the latest data differs from the curated schema, and what `accept` would write."""
    click.echo(schema_text.diff_text(_review(location, profile_dir, curated_schema_file)))


@schema.command("accept")
@_schema_options
def schema_accept(
    location: MetadataLocation, profile_dir: Path, curated_schema_file: Path | None
) -> None:
    """Relax the curated schema to accept the latest data, and write it for review."""
    click.echo(schema_text.accept(_review(location, profile_dir, curated_schema_file)))


# ---- run-spec: a compiled Kubeflow spec, run here ----------------------------------------------
@main.command("run-spec", context_settings=CONTEXT_SETTINGS)
@click.argument("spec", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "--pipeline-root",
    type=click.Path(file_okay=False, path_type=Path),
    required=True,
    help="Local folder for the tasks' artifacts (the spec's own root is the cluster's).",
)
@click.option(
    "--logs-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="One log file per task [default: <pipeline-root>/task-logs].",
)
def run_spec(spec: Path, pipeline_root: Path, logs_dir: Path | None) -> None:
    """Run a compiled Kubeflow spec on this machine, task by task, as a KFP launcher would.

    SPEC: the .yaml or .pipeline_job.json that `--orchestrator kubeflow` wrote. Each task runs
    its own container command with this environment's Python, fed the inputs a KFP launcher
    would give it: a check that the compiled spec runs before it goes to a cluster. Resolver
    tasks resolve to nothing, as on a pipeline's first run.
    """
    from orchestration import kfp_spec_runner  # its tasks import TensorFlow, not this process

    logs_dir = logs_dir or pipeline_root / "task-logs"
    pipeline_spec = kfp_spec_runner.load_pipeline_spec(spec)
    tasks = kfp_spec_runner.task_order(pipeline_spec)
    width = max(len(t) for t in tasks)

    def progress(position: int, result: kfp_spec_runner.TaskResult) -> None:
        click.echo(
            f"[{position:>2}/{len(tasks)}] {result.name:<{width}}  {result.kind:<9} "
            f"{result.seconds:6.1f} s"
        )

    try:
        kfp_spec_runner.run_spec(pipeline_spec, pipeline_root, logs_dir, on_task_done=progress)
    except kfp_spec_runner.TaskFailed as e:
        click.echo(f"error: {e}", err=True)
        raise SystemExit(exit_codes.COMPONENT_FAILED) from e
    click.echo(f"All {len(tasks)} tasks ran. Artifacts: {pipeline_root}; task logs: {logs_dir}")


# ---- serve: the pushed model behind TF Serving's APIs -------------------------------------------
@main.command("serve", context_settings=CONTEXT_SETTINGS)
@_profile_option
@click.option(
    "--model-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    show_default="outputs/serving_model/<the profile's name>",
    help="The folder Pusher pushes version folders to (TF Serving's layout).",
)
@click.option(
    "--model-name",
    default=None,
    help="The model's name in the URLs [default: the --model-dir folder's name].",
)
@click.option(
    "--version",
    type=click.IntRange(min=1),
    default=None,
    help="Serve only this version [default: the latest, switching as new ones are pushed].",
)
@click.option("--rest-port", type=click.IntRange(1, 65535), default=8501, show_default=True)
@click.option("--grpc-port", type=click.IntRange(1, 65535), default=8500, show_default=True)
@click.option(
    "--host",
    default="127.0.0.1",
    show_default=True,
    help="Address to listen on; 0.0.0.0 opens it to the network.",
)
@click.option(
    "--poll-seconds",
    type=click.FloatRange(min=0.1),
    default=1.0,
    show_default=True,
    help="How often the model folder is checked for new versions (TF Serving's "
    "--file_system_poll_wait_seconds).",
)
@click.option(
    "--max-concurrent",
    type=click.IntRange(min=1),
    default=max(1, os.cpu_count() or 1),
    show_default="one per core",
    help="Inferences run at once; more requests wait.",
)
@click.option(
    "--max-in-flight",
    type=click.IntRange(min=1),
    default=128,
    show_default=True,
    help="Requests accepted at once, running or waiting; beyond it: 429.",
)
@click.option(
    "--request-timeout",
    type=click.FloatRange(min=0.1),
    default=30.0,
    show_default=True,
    help="Seconds a request may take, waiting included; beyond it: 504.",
)
@click.option(
    "--max-body-mb",
    type=click.FloatRange(min=0.001),
    default=16.0,
    show_default=True,
    help="Largest request body; larger: 413.",
)
@click.option(
    "--model-server-bin",
    default=None,
    metavar="PATH",
    help="A tensorflow_model_server to serve with [default: one on PATH, else the project's "
    "server].",
)
def serve_command(
    profile_dir: Path,
    model_dir: Path | None,
    model_name: str | None,
    version: int | None,
    rest_port: int,
    grpc_port: int,
    host: str,
    poll_seconds: float,
    max_concurrent: int,
    max_in_flight: int,
    request_timeout: float,
    max_body_mb: float,
    model_server_bin: str | None,
) -> None:
    """Serve the pushed model with TensorFlow Serving's REST and gRPC APIs.

    REST: GET /v1/models/NAME[/versions/V][/metadata]; POST .../NAME[/versions/V]:predict with
    {"instances": [...]} (rows) or {"inputs": {...}} (columns), as raw feature values or
    {"b64": serialized tf.Example}; :classify and :regress with {"examples": [...]}
    ("signature_name": "classification" / "regression"). New versions are picked up while
    serving. SIGTERM or Ctrl-C stops it after answering the requests in flight.
    """
    if rest_port == grpc_port:
        raise UserError(f"--rest-port and --grpc-port are both {rest_port}; give two ports.")
    quiet_libraries()
    from deployment import serve  # TensorFlow: loaded for this command only
    from serving.rest_api import Limits

    if model_dir is None:
        pipeline_name = _load_profile(profile_dir).pipeline_name
        model_dir = DEFAULTS.output_dir / "serving_model" / pipeline_name
    model_dir = model_dir.resolve()
    settings = serve.ServeSettings(
        model_dir=model_dir,
        model_name=model_name or model_dir.name,
        version=version,
        host=host,
        rest_port=rest_port,
        grpc_port=grpc_port,
        poll_seconds=poll_seconds,
        limits=Limits(
            max_concurrent=max_concurrent,
            max_in_flight=max_in_flight,
            request_timeout=request_timeout,
            max_body_bytes=int(max_body_mb * 1024 * 1024),
        ),
        binary=model_server_bin,
        log_path=serve.default_log_path(model_dir, DEFAULTS.output_dir),
    )
    try:
        serve.serve(settings, click.get_text_stream("stdout"))
    except (serve.ServeError, FileNotFoundError) as e:
        raise UserError(str(e)) from e


# ---- models: the pushed versions, and rollback --------------------------------------------------
@main.group("models", invoke_without_command=True, context_settings=CONTEXT_SETTINGS)
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of text.")
@_store_location
@click.pass_context
def models(ctx: click.Context, location: MetadataLocation, as_json: bool) -> None:
    """Every pushed model version, from ML Metadata: when, by which run, its metrics and blessings.

    `*` marks the version served: the highest on disk, which TF Serving (and `serve`) serves.
    `models rollback VERSION` serves an earlier blessed version again.
    """
    ctx.obj = location
    if ctx.invoked_subcommand is not None:
        return
    from deployment import model_versions  # reads TFMA's evaluation files

    index = _open(location)
    _answer(as_json, lambda: model_versions.pushed_versions(index), models_text.versions_text)


@models.command("rollback")
@click.argument("version", type=int)
@functools.partial(
    _metadata_uri_options, help=_METADATA_URI_HELP + " [default: the one `models` was given]"
)
@click.pass_obj
def models_rollback(
    models_location: MetadataLocation,
    version: int,
    metadata_uri: str | None,
    metadata_password_file: Path | None,
) -> None:
    """Serve blessed VERSION again: re-pushed as the newest version, recorded in ML Metadata.

    Nothing is deleted or renamed: the newer versions stay on disk and in the record. A version
    that either the Evaluator or the InfraValidator did not bless is refused.
    """
    location = _metadata_location(metadata_uri, metadata_password_file, None) or models_location
    from deployment import rollback

    quiet_libraries()
    try:
        record = rollback.rollback(location, version)
    except (NotFound, UnusableStore, rollback.RollbackRefused) as e:
        raise UserError(str(e)) from e
    click.echo(models_text.rollback_text(record))


# ---- init: a profile for a CSV (cli/init_command.py) --------------------------------------------
main.add_command(init)

"""`serve` and `models [rollback VERSION]`: the pushed model behind TF Serving's APIs, the pushed
versions, and serving an earlier one again (the work is in deployment/)."""

from __future__ import annotations

import functools
import os
from pathlib import Path

import click

from cli import models_text
from cli.options import (
    CONTEXT_SETTINGS,
    METADATA_URI_HELP,
    answer,
    load_config,
    metadata_location_of,
    metadata_uri_options,
    open_store,
    profile_option,
    store_location,
)
from cli.user_errors import UserError, quiet_libraries
from metadata.store import NotFound, UnusableStore
from pipeline.config import DEFAULT_OUTPUT_DIR
from pipeline.metadata_location import MetadataLocation


@click.command("serve", context_settings=CONTEXT_SETTINGS)
@profile_option
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
@click.option(
    "--rest-port",
    type=click.IntRange(1, 65535),
    default=8501,
    show_default=True,
    help="Port for TF Serving's REST API (HTTP/JSON).",
)
@click.option(
    "--grpc-port",
    type=click.IntRange(1, 65535),
    default=8500,
    show_default=True,
    help="Port for TF Serving's gRPC API (PredictionService, ModelService).",
)
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
    "--workers",
    type=click.IntRange(min=1),
    default=None,
    show_default="one per core, at most 8",
    help="Server processes sharing the two ports, each with its own copy of the model.",
)
@click.option(
    "--batching/--no-batching",
    default=True,
    show_default=True,
    help="Run concurrent requests to one signature as one call to the model (TF Serving's "
    "--enable_batching).",
)
@click.option(
    "--max-batch-size",
    type=click.IntRange(min=1),
    default=64,
    show_default=True,
    help="Rows in one call to the model; a larger request runs alone.",
)
@click.option(
    "--batch-timeout-micros",
    type=click.IntRange(min=0),
    default=0,
    show_default=True,
    help="How long a batch waits to fill. 0: it takes the requests that arrived while the "
    "model was busy, adding no wait.",
)
@click.option(
    "--num-batch-threads",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    help="Calls to the model running at once, per worker (requests arriving meanwhile form the next batch).",
)
@click.option(
    "--max-enqueued-batches",
    type=click.IntRange(min=1),
    default=64,
    show_default=True,
    help="Full batches' worth of rows that may wait for the model, per worker; a request "
    "beyond that gets 503 (retry later), as in TF Serving.",
)
@click.option(
    "--max-concurrent",
    type=click.IntRange(min=1),
    default=max(1, os.cpu_count() or 1),
    show_default="one per core",
    help="Threads per worker for requests that block: :classify, :regress, status, and all "
    "REST requests in front of a tensorflow_model_server.",
)
@click.option(
    "--max-in-flight",
    type=click.IntRange(min=1),
    default=128,
    show_default=True,
    help="Requests accepted at once per worker, running or waiting; beyond it: 429.",
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
    "--log-sample-rate",
    type=click.FloatRange(0.0, 1.0),
    default=1.0,
    show_default=True,
    help="Share of requests logged, with their answers, as TF Serving's PredictionLog "
    "TFRecords; 0: none.",
)
@click.option(
    "--log-max-mb",
    type=click.FloatRange(min=1.0),
    default=1024.0,
    show_default=True,
    help="Disk the request log may take; the oldest files are deleted first.",
)
@click.option(
    "--request-log-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    show_default="<output dir>/monitoring/<model name>",
    help="Where the request log goes.",
)
@click.option(
    "--model-server-bin",
    default=None,
    metavar="PATH",
    help="A tensorflow_model_server to serve with [default: one on PATH, else the project's "
    "server]. Not with a release (it cannot split traffic).",
)
@functools.partial(
    metadata_uri_options,
    help=METADATA_URI_HELP + " Versions are released by the profile's `release:` policy, "
    "recorded here [default: <output dir>/metadata.db when it exists; without a store, the "
    "latest version is served].",
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
    workers: int | None,
    batching: bool,
    max_batch_size: int,
    batch_timeout_micros: int,
    num_batch_threads: int,
    max_enqueued_batches: int,
    max_concurrent: int,
    max_in_flight: int,
    request_timeout: float,
    max_body_mb: float,
    log_sample_rate: float,
    log_max_mb: float,
    request_log_dir: Path | None,
    model_server_bin: str | None,
    metadata_uri: str | None,
    metadata_password_file: Path | None,
) -> None:
    """Serve the pushed model with TensorFlow Serving's REST and gRPC APIs.

    REST: GET /v1/models/NAME[/versions/V][/metadata]; POST .../NAME[/versions/V]:predict with
    {"instances": [...]} (rows) or {"inputs": {...}} (columns), as raw feature values or
    {"b64": serialized tf.Example}; :classify and :regress with {"examples": [...]}
    ("signature_name": "classification" / "regression"). New versions are picked up while
    serving. Concurrent requests are batched; several worker processes share the ports.
    SIGTERM or Ctrl-C stops it after answering the requests in flight.

    With the model's ML Metadata store, each pushed version goes out as the profile's `release:`
    says (approval, all at once, canary or shadow, the guard), its state recorded there; the
    stable and candidate versions are also at .../NAME/labels/stable and .../labels/canary, and
    a client that sends an X-Routing-Key header always gets the same one of the two.
    """
    if rest_port == grpc_port:
        raise UserError(f"--rest-port and --grpc-port are both {rest_port}; give two ports.")
    quiet_libraries()
    from deployment import serve  # TensorFlow: loaded for this command only
    from serving import workers as serving_workers
    from serving.batching import BatchingOptions
    from serving.request_log import RequestLogOptions
    from serving.rest_api import Limits

    config = load_config(profile_dir)
    if model_dir is None:
        model_dir = config.serving_model_dir  # under the default output dir
    model_dir = model_dir.resolve()
    name = model_name or model_dir.name
    output_dir = serve.output_dir_of(model_dir, DEFAULT_OUTPUT_DIR)
    request_log = (request_log_dir or output_dir / "monitoring" / name).resolve()
    settings = serve.ServeSettings(
        model_dir=model_dir,
        model_name=name,
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
        batching=BatchingOptions(
            enabled=batching,
            max_batch_size=max_batch_size,
            batch_timeout_micros=batch_timeout_micros,
            num_batch_threads=num_batch_threads,
            max_enqueued_batches=max_enqueued_batches,
        ),
        workers=workers or serving_workers.default_count(),
        request_log=RequestLogOptions(
            directory=str(request_log),
            sample_rate=log_sample_rate,
            max_mb=log_max_mb,
        ),
        binary=model_server_bin,
        log_path=serve.default_log_path(model_dir, DEFAULT_OUTPUT_DIR),
    )
    # The store of the output dir the model was pushed in; a folder elsewhere has none unless
    # --metadata-uri names one.
    pushed_here = model_dir.parent.name == "serving_model"
    location = metadata_location_of(
        metadata_uri, metadata_password_file, output_dir / "metadata.db" if pushed_here else None
    )
    controller = None
    if (
        version is None
        and location is not None
        and (not location.is_sqlite or location.path.is_file())
    ):
        from release.controller import ControllerSettings, ReleaseController

        controller = ReleaseController(
            ControllerSettings(
                model_dir=model_dir,
                model_name=name,
                location=location,
                profile=config.profile,
                state_dir=output_dir / "release" / name,
                request_log_dir=str(request_log) if log_sample_rate > 0 else None,
                poll_seconds=poll_seconds,
            )
        )
    elif metadata_uri is not None:
        raise UserError(
            "--metadata-uri: a release cannot run with --version, which pins one version; "
            "leave one of them out."
        )
    try:
        serve.serve(settings, click.get_text_stream("stdout"), controller)
    except (serve.ServeError, FileNotFoundError, NotFound, UnusableStore) as e:
        raise UserError(str(e)) from e


# ---- models: the pushed versions, and rollback --------------------------------------------------
@click.group("models", invoke_without_command=True, context_settings=CONTEXT_SETTINGS)
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of text.")
@store_location
@click.pass_context
def models(ctx: click.Context, location: MetadataLocation, as_json: bool) -> None:
    """Every pushed model version, from ML Metadata: when, by which run, its metrics and
    blessings, its release state and share of traffic, and its approvals.

    `*` marks the versions served: under a release, the stable one and a canary; else the
    highest on disk, which TF Serving (and `serve`) serves. `models approve` and `models reject`
    decide on a version awaiting approval; `models rollback VERSION` serves an earlier blessed
    version again.
    """
    ctx.obj = location
    if ctx.invoked_subcommand is not None:
        return
    from deployment import model_versions  # reads TFMA's evaluation files
    from release import states

    index = open_store(location)
    answer(
        as_json,
        lambda: states.annotate(index.store, model_versions.pushed_versions(index)),
        models_text.versions_text,
    )


def subcommand_store(command):
    """A `models` subcommand's store: its own --metadata-uri, else the one `models` was given;
    passed as `location`."""

    @click.pass_obj
    @functools.wraps(command)
    def with_location(models_location, *args, metadata_uri, metadata_password_file, **kwargs):
        location = metadata_location_of(metadata_uri, metadata_password_file, None)
        return command(*args, location=location or models_location, **kwargs)

    return metadata_uri_options(
        with_location, METADATA_URI_HELP + " [default: the one `models` was given]"
    )


def _writable_store(location: MetadataLocation):
    """The store, opened to record a decision; a missing or unusable one is the user's."""
    from metadata.store import open_store as open_metadata

    if location.is_sqlite and not location.path.is_file():
        raise UserError(f"no ML Metadata store at {location.path} (run the pipeline first)")
    quiet_libraries()
    try:
        return open_metadata(location, writable=True)
    except (NotFound, UnusableStore) as e:
        raise UserError(str(e)) from e


@models.command("approve")
@click.argument("version", type=int)
@click.option("--by", required=True, help="Who approves (recorded in ML Metadata).")
@click.option("--note", default="", help="Why, or what was checked.")
@click.option(
    "--strategy",
    type=click.Choice(["all_at_once", "canary", "shadow"]),
    default=None,
    help="Release it this way instead of the profile's release.strategy (e.g. a shadow first "
    "for a riskier change).",
)
@subcommand_store
def models_approve(
    location: MetadataLocation, version: int, by: str, note: str, strategy: str | None
) -> None:
    """Approve VERSION (awaiting approval under `release.approval: manual`): `serve` then
    releases it, as a canary, a shadow or at once, as the profile's release policy (or
    --strategy) says."""
    from deployment import model_versions
    from metadata.store import StoreIndex
    from release import states

    if not by.strip():
        raise UserError("--by: give who approves (a name, recorded in ML Metadata).")
    store = _writable_store(location)
    try:
        change = states.approve(
            store,
            str(location),
            lambda v: model_versions.version_record(StoreIndex(store, location), v),
            version,
            by.strip(),
            note,
            strategy,
        )
    except (states.ReleaseRefused, NotFound) as e:
        raise UserError(str(e)) from e
    click.echo(models_text.decision_text(version, change))


@models.command("reject")
@click.argument("version", type=int)
@click.option("--by", required=True, help="Who rejects (recorded in ML Metadata).")
@click.option("--note", required=True, help="Why (recorded in ML Metadata).")
@subcommand_store
def models_reject(location: MetadataLocation, version: int, by: str, note: str) -> None:
    """Reject VERSION: it is never served under a release; a canary or shadow of it stops at
    `serve`'s next turn."""
    from release import states

    if not by.strip() or not note.strip():
        raise UserError("--by and --note: give who rejects and why (both recorded).")
    store = _writable_store(location)
    try:
        change = states.reject(store, str(location), version, by.strip(), note)
    except states.ReleaseRefused as e:
        raise UserError(str(e)) from e
    click.echo(models_text.decision_text(version, change))


@models.command("rollback")
@click.argument("version", type=int)
@subcommand_store
def models_rollback(location: MetadataLocation, version: int) -> None:
    """Serve blessed VERSION again: re-pushed as the newest version, recorded in ML Metadata.

    Nothing is deleted or renamed: the newer versions stay on disk and in the record. A version
    that either the Evaluator or the InfraValidator did not bless is refused.
    """
    from deployment import rollback

    quiet_libraries()
    try:
        record = rollback.rollback(location, version)
    except (NotFound, UnusableStore, rollback.RollbackRefused) as e:
        raise UserError(str(e)) from e
    click.echo(models_text.rollback_text(record))

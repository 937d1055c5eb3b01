"""`watch`: start a run when a new span lands, and (with --monitor) when `monitor` raises an alert
(the loop is orchestration/watch.py)."""

from __future__ import annotations

import functools
from pathlib import Path

import click

from cli.options import (
    CONTEXT_SETTINGS,
    METADATA_URI_HELP,
    load_config,
    metadata_location_of,
    metadata_uri_options,
    profile_option,
)
from cli.user_errors import UserError
from pipeline.config import DEFAULT_OUTPUT_DIR


def _duration(text: str, option: str) -> float:
    from monitoring.monitor import duration_seconds

    seconds = duration_seconds(text)
    if not seconds:
        raise UserError(f"{option}: {text!r} is not a duration such as 90s, 15m or 1h")
    return seconds


@click.command("watch", context_settings={**CONTEXT_SETTINGS, "ignore_unknown_options": True})
@profile_option
@click.option(
    "--data-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    show_default="the profile's",
    help="Folder with labeled/ (watched for new spans) and unlabeled/.",
)
@click.option(
    "--output-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=DEFAULT_OUTPUT_DIR,
    show_default=True,
    help="The runs' output directory (its run lock keeps them one at a time).",
)
@functools.partial(
    metadata_uri_options, help=METADATA_URI_HELP + " [default: <output-dir>/metadata.db]"
)
@click.option(
    "--poll-seconds",
    type=click.FloatRange(min=0.1),
    default=10.0,
    show_default=True,
    help="How often the data folder is looked at.",
)
@click.option(
    "--settle-seconds",
    type=click.FloatRange(min=0),
    default=5.0,
    show_default=True,
    help="A new span's files must be unchanged this long before a run reads them.",
)
@click.option(
    "--monitor",
    "monitor_every",
    default=None,
    metavar="EVERY",
    help="Also run `monitor` on the last EVERY of served traffic (15m, 1h, ...) every EVERY, "
    "and start a run when it raises an alert.",
)
@click.argument("run_args", nargs=-1, type=click.UNPROCESSED)
def watch_command(
    profile_dir: Path,
    data_dir: Path | None,
    output_dir: Path,
    metadata_uri: str | None,
    metadata_password_file: Path | None,
    poll_seconds: float,
    settle_seconds: float,
    monitor_every: str | None,
    run_args: tuple[str, ...],
) -> None:
    """Keep the pipeline current: run it when a new span lands (and on a monitoring alert).

    Runs are `python run_local.py` with the profile, data, output and store given here plus
    RUN_ARGS (run options, after `--`). One run at a time: watch waits for its run, and for any
    other run holding the output directory. A span counts as done once a run's ExampleGen read
    it, so data the gate refused is not run again until a newer span lands. Ctrl-C or SIGTERM
    stops watch, and a run under way with it.
    """
    from orchestration import watch

    settings = {"output_dir": output_dir.resolve()}
    if data_dir is not None:
        settings["data_dir"] = data_dir.resolve()
    location = metadata_location_of(metadata_uri, metadata_password_file, None)
    config = load_config(profile_dir, **settings, metadata=location)
    common = [f"--profile={profile_dir}", f"--output-dir={config.output_dir}"]
    if metadata_uri:
        common.append(f"--metadata-uri={metadata_uri}")
    if metadata_password_file:
        common.append(f"--metadata-password-file={metadata_password_file}")
    monitor_args = None
    every = 900.0
    if monitor_every:
        every = _duration(monitor_every, "--monitor")
        monitor_args = (
            *common[:1],
            *common[2:],
            f"--since={every:.0f}s",
            f"--request-log-dir={config.output_dir / 'monitoring' / config.pipeline_name}",
        )
    code = watch.Watcher(
        watch.WatchSettings(
            labeled_dir=config.labeled_data_dir,
            span_pattern=config.span_pattern,
            output_dir=config.output_dir,
            metadata=config.metadata_location,
            run_args=(*common, f"--data-dir={config.data_dir}", *run_args),
            monitor_args=monitor_args,
            poll_seconds=poll_seconds,
            settle_seconds=settle_seconds,
            monitor_every_seconds=every,
        ),
        watch.say_with_time,
    ).watch()
    raise SystemExit(code)

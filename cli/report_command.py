"""`report`: a run's self-contained HTML report, written to a file (cli/report.py writes it)."""

from __future__ import annotations

from pathlib import Path

import click

from cli import report as html_report
from cli.options import CONTEXT_SETTINGS, open_store, store_location
from cli.user_errors import UserError
from metadata.store import NotFound
from pipeline.metadata_location import MetadataLocation


@click.command("report", context_settings=CONTEXT_SETTINGS)
@click.argument("run", default="1")
@store_location
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
    index = open_store(location)
    try:
        path = html_report.write_report(index, run, output)
    except NotFound as e:
        raise UserError(str(e)) from e
    click.echo(f"Report: {path}")

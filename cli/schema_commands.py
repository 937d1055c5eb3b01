"""`schema diff|accept`: the latest data against the profile's curated schema, and accepting a
change into it (metadata/schema_review.py reviews, cli/schema_text.py words it)."""

from __future__ import annotations

from pathlib import Path

import click

from cli import schema_text
from cli.options import CONTEXT_SETTINGS, load_config, open_store, profile_option, store_location
from cli.user_errors import UserError
from metadata import schema_review
from pipeline.metadata_location import MetadataLocation


@click.group(context_settings=CONTEXT_SETTINGS)
def schema() -> None:
    """Compare the latest data with the curated schema; accept a change.

    `diff` compares the schema SchemaGen inferred from the latest run's data with the curated
    schema and shows the change `accept` would make; `accept` writes that change to the curated
    schema file, for review like any code change.
    """


def _schema_options(command):
    command = store_location(command)
    command = click.option(
        "--schema",
        "curated_schema_file",
        type=click.Path(path_type=Path),
        default=None,
        help="The curated schema file [default: the profile's].",
    )(command)
    return profile_option(command)


def _review(location: MetadataLocation, profile_dir: Path, curated_schema_file: Path | None):
    config = load_config(profile_dir)
    profile = config.profile
    index = open_store(location)
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

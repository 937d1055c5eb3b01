"""What the commands share: the default profile and locations, the settings' options, the store.

The command line chooses the default profile here, once (`DEFAULT_PROFILE_DIR`); the default
output directory and ML Metadata store are PipelineConfig's own (pipeline/config.py
`DEFAULT_OUTPUT_DIR`). An option of a setting that the profile gives defaults to None, "the
profile's"; an option of another setting takes PipelineConfig's field default. Importing this
module reads no file: --help reads the default profile only to show its values. A value out of
range is reported by its option name (`load_config`); the store options become one
`MetadataLocation` (`store_location`).
"""

from __future__ import annotations

import dataclasses
import functools
import json
import os
import typing
from pathlib import Path
from typing import Any

import click

from cli.user_errors import UserError, quiet_libraries
from components import profile as profiles
from components.profile import ProfileError
from metadata.store import NotFound, StoreIndex, UnusableStore
from pipeline import metadata_location
from pipeline.config import (
    DEFAULT_OUTPUT_DIR,
    PROFILE_SETTINGS,
    PROJECT_ROOT,
    ConfigError,
    PipelineConfig,
    metadata_path_in,
    profile_settings,
)
from pipeline.metadata_location import MetadataLocation, MetadataUriError

# The default profile: the taxi data this project ships (profiles/taxi/profile.yaml).
DEFAULT_PROFILE_DIR = PROJECT_ROOT / "profiles" / "taxi"
# Where readers look when not told: the store a run with the default --output-dir writes.
DEFAULT_METADATA_PATH = metadata_path_in(DEFAULT_OUTPUT_DIR)

CONTEXT_SETTINGS = {"help_option_names": ["-h", "--help"], "max_content_width": 100}

# Config fields whose option is not simply `--<field-name>`.
_OPTION_OF_SETTING = {"curated_schema_file": "--schema", "extra_beam_args": "--beam-arg"}
_FIELDS = {field.name: field for field in dataclasses.fields(PipelineConfig)}


def option_of(setting: str) -> str:
    """The command-line option of PipelineConfig field `setting`."""
    return _OPTION_OF_SETTING.get(setting, "--" + setting.replace("_", "-"))


def field_default(setting: str) -> Any:
    """PipelineConfig's default for `setting` (one a profile does not give)."""
    return _FIELDS[setting].default


def load_config(profile_dir: Path, **settings: Any) -> PipelineConfig:
    """The config of the profile in `profile_dir`, with `settings` given on the command line
    overriding the profile's; a bad profile or a value out of range is the user's to fix."""
    try:
        return PipelineConfig.from_profile(profile_dir, **settings)
    except ProfileError as e:
        raise UserError(str(e)) from e
    except ConfigError as e:
        raise UserError(f"{option_of(e.setting)} {e.problem}.") from e


# ---- options of PipelineConfig settings --------------------------------------------------------
@functools.cache
def _default_profile_settings() -> dict[str, Any] | None:
    """The default profile's settings, shown by --help; None if it cannot be read."""
    try:
        return profile_settings(DEFAULT_PROFILE_DIR, profiles.load(DEFAULT_PROFILE_DIR))
    except ProfileError:
        return None


class _ProfileSettingOption(click.Option):
    """An option whose default (None) is the profile's value; --help shows the default
    profile's, read when the help is shown."""

    def get_help_extra(self, ctx: click.Context) -> Any:
        extra = super().get_help_extra(ctx)
        shown = _default_profile_settings()
        extra["default"] = (
            f"(the profile's; {DEFAULT_PROFILE_DIR.name}: {shown[self.name]})"
            if shown is not None
            else "(the profile's)"
        )
        return extra


@functools.cache
def _field_types() -> dict[str, Any]:
    return typing.get_type_hints(PipelineConfig)


def setting(flag: str, help: str, field: str | None = None, **options: Any):
    """An option for a PipelineConfig field, its type taken from the field. A setting the profile
    gives defaults to None (the profile's value); any other to the field's default."""
    name = field or flag.lstrip("-").replace("-", "_")
    kind = _field_types()[name]
    click_type = click.Path(path_type=Path) if kind is Path else kind
    if name in PROFILE_SETTINGS:
        return click.option(
            flag,
            name,
            cls=_ProfileSettingOption,
            type=click_type,
            default=None,
            help=help,
            **options,
        )
    return click.option(
        flag,
        name,
        type=click_type,
        default=field_default(name),
        show_default=True,
        help=help,
        **options,
    )


def parallelism_option(help: str):
    """--parallelism N: how many components a run (or a replay) runs at once."""
    return click.option(
        "--parallelism", type=click.IntRange(min=1), default=None, metavar="N", help=help
    )


def profile_option(command):
    return click.option(
        "--profile",
        "profile_dir",
        type=click.Path(path_type=Path),
        default=DEFAULT_PROFILE_DIR,
        show_default=DEFAULT_PROFILE_DIR.relative_to(PROJECT_ROOT).as_posix(),
        metavar="DIR",
        help="Dataset profile: a folder with profile.yaml (data, label and task, feature kinds, "
        "thresholds, budgets). `init` writes one for a CSV.",
    )(command)


# ---- the ML Metadata store ---------------------------------------------------------------------
METADATA_URI_HELP = (
    "ML Metadata store: sqlite:///PATH (or a plain path), mysql://USER@HOST:PORT/DATABASE or "
    "postgresql://USER@HOST:PORT/DATABASE; a team shares one database server. Give the password "
    f"in {metadata_location.PASSWORD_ENV_VAR} or --metadata-password-file rather than in the URI "
    "(`ps` shows command lines)."
)


def metadata_location_of(
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


def metadata_uri_options(command, help: str):
    """--metadata-uri and --metadata-password-file, given to the command as they are."""
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


def store_location(command):
    """The reader's store options (--metadata-uri, --metadata-password-file), given to the
    command as one `location`."""

    @functools.wraps(command)
    def with_location(*args, metadata_uri, metadata_password_file, **kwargs):
        location = metadata_location_of(metadata_uri, metadata_password_file, DEFAULT_METADATA_PATH)
        return command(*args, location=location, **kwargs)

    return metadata_uri_options(
        with_location, METADATA_URI_HELP + f" [default: {DEFAULT_METADATA_PATH}]"
    )


def store_options(command):
    """The store options and --json (`as_json`)."""
    command = click.option("--json", "as_json", is_flag=True, help="Print JSON instead of text.")(
        command
    )
    return store_location(command)


def open_store(location: MetadataLocation) -> StoreIndex:
    """The store at `location`, opened for reading; a missing or unusable one is the user's."""
    quiet_libraries()
    try:
        return StoreIndex.open(location)
    except (NotFound, UnusableStore) as e:
        raise UserError(str(e)) from e


def answer(as_json: bool, compute, as_text) -> None:
    """Prints what `compute()` returns, as JSON or as text; a missing id or run is a UserError."""
    try:
        data = compute()
    except NotFound as e:
        raise UserError(str(e)) from e
    click.echo(json.dumps(data, indent=2, default=str) if as_json else as_text(data))

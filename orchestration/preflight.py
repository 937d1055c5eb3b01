"""Checks that run before the pipeline starts, so that bad settings fail in one clear sentence."""

from __future__ import annotations

import difflib
import importlib
import itertools
import logging
import tempfile
import traceback
from collections.abc import Callable
from pathlib import Path

from components import profile as profiles
from metadata import connection_retry
from metadata.store import ServerUnreachable, UnusableStore, check_sqlite_store, connect_server
from pipeline.config import PipelineConfig


class SetupError(Exception):
    """A problem with the inputs or settings that the user must fix before a run can start."""


def check_output_dir(output_dir: Path) -> None:
    try:
        output_dir.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=output_dir, prefix=".write-check-"):
            pass
    except OSError as e:
        raise SetupError(
            f"Cannot write to the output directory {output_dir} ({e.strerror or e}). "
            "Choose a writable directory with --output-dir, or fix its permissions."
        ) from e


def _check_span_folder(folder: Path, role: str, span_pattern: str) -> None:
    """The folder exists and matches the span layout; the files themselves are checked by
    ExampleGen, so that ML Metadata records a bad file as ExampleGen's failure."""
    if not folder.is_dir():
        raise SetupError(
            f"The {role} data folder {folder} does not exist. A data directory needs "
            "'labeled/' (CSV files with the label column) and 'unlabeled/' (CSV files to score), "
            f"each with one folder per span matching '{span_pattern}'; point --data-dir at one, "
            "or run `python scripts/prepare_taxi_data.py` to rebuild data/."
        )
    if not any(folder.glob(span_pattern.replace("{SPAN}", "*"))):
        loose = sorted(p.name for p in folder.glob("*.csv"))
        hint = (
            f" It holds {', '.join(loose)} directly: move the file(s) into a span folder, "
            f"e.g. {folder / 'span-1'}/."
            if loose
            else ""
        )
        raise SetupError(
            f"The {role} data folder {folder} has no file matching the span pattern "
            f"'{span_pattern}' (one folder per batch, e.g. span-1/, span-2/).{hint}"
        )


def check_data_dir(config: PipelineConfig) -> None:
    if not config.data_dir.is_dir():
        raise SetupError(
            f"The data directory {config.data_dir} does not exist. Point --data-dir at a folder "
            "with 'labeled/' and 'unlabeled/' CSV folders, or run "
            "`python scripts/prepare_taxi_data.py` to rebuild data/."
        )
    _check_span_folder(config.labeled_data_dir, "labeled", config.span_pattern)
    _check_span_folder(config.unlabeled_data_dir, "unlabeled", config.span_pattern)


def check_profile_columns(config: PipelineConfig) -> None:
    """Every column the profile names is a column of the curated schema, so a misspelt or
    renamed column in the profile stops the run before Transform. (A column the data lacks is
    the data gate's to report: the schema check names it, with every other finding.)"""
    from google.protobuf import text_format
    from tensorflow_metadata.proto.v0 import schema_pb2

    schema = text_format.Parse(config.curated_schema_file.read_text(), schema_pb2.Schema())
    columns = sorted(f.name for f in schema.feature)
    profile = config.profile
    named = [(name, "features") for name in profile.features]
    named.append((profile.label.column, "label.column"))
    rule = profile.label.positive_when
    if rule and rule.times_column:
        named.append((rule.times_column, "label.positive_when.times_column"))
    for column, key in named:
        if column in columns:
            continue
        close = difflib.get_close_matches(column, columns, n=1)
        hint = f" (it has {close[0]!r})" if close else ""
        raise SetupError(
            f"The profile {profiles.profile_file(config.profile_dir)} names the column "
            f"{column!r} under `{key}`, but the curated schema {config.curated_schema_file} has "
            f"no such column{hint}. Fix the name in the profile, or add the column to the schema."
        )


def check_user_code(config: PipelineConfig) -> None:
    """Imports every user function the pipeline will call, as the components will."""
    for setting, dotted_path in (
        ("preprocessing_fn", config.preprocessing_fn),
        ("tuner_fn", config.tuner_fn),
        ("run_fn", config.run_fn),
    ):
        module_name, _, function_name = dotted_path.rpartition(".")
        try:
            module = importlib.import_module(module_name)
        except Exception as e:  # noqa: BLE001 - any import-time error is the user's to see
            raise SetupError(
                f"The module {module_name} (the {setting} '{dotted_path}') fails to import: "
                f"{type(e).__name__}: {e}{_where(e)}. Fix the module; nothing was run."
            ) from e
        if not callable(getattr(module, function_name, None)):
            raise SetupError(
                f"The module {module_name} has no function {function_name} (the {setting} "
                f"'{dotted_path}')."
            )


def _where(error: Exception) -> str:
    """' (at file, line N)' for the innermost frame of an import error."""
    if isinstance(error, SyntaxError) and error.filename:
        return f" (at {error.filename}, line {error.lineno})"
    frames = traceback.extract_tb(error.__traceback__)
    if not frames:
        return ""
    return f" (at {frames[-1].filename}, line {frames[-1].lineno})"


def check_curated_schema(schema_file: Path) -> None:
    from google.protobuf import text_format
    from tensorflow_metadata.proto.v0 import schema_pb2

    try:
        text_format.Parse(schema_file.read_text(), schema_pb2.Schema())
    except OSError as e:
        raise SetupError(f"Cannot read the curated schema {schema_file}: {e}.") from e
    except text_format.ParseError as e:
        raise SetupError(
            f"The curated schema {schema_file} is not a valid Schema text proto: {e}."
        ) from e


def check_metadata_store(
    config: PipelineConfig, say: Callable[[str], None] = logging.warning
) -> None:
    """The run's ML Metadata store is one this environment can write: a SQLite file (or none yet),
    or a server database that accepts the login."""
    location = config.metadata_location
    if location.is_sqlite:
        try:
            check_sqlite_store(location.path, writable=True)
        except UnusableStore as e:
            raise SetupError(str(e)) from e
        return
    # A server that is starting or restarting is waited for (--metadata-retry-seconds).
    seconds = config.metadata_retry_seconds
    for attempt, _ in enumerate(itertools.chain([None], connection_retry.back_off(seconds))):
        try:
            connect_server(location)
            return
        except ServerUnreachable as e:
            unreachable = e
            if attempt == 0 and seconds > 0:
                say(f"waiting: {e} Waiting up to {seconds:g} s for it (--metadata-retry-seconds).")
        except UnusableStore as e:
            raise SetupError(str(e)) from e
    waited = f" (waited {seconds:g} s, --metadata-retry-seconds)" if seconds > 0 else ""
    raise SetupError(f"{unreachable}{waited}") from unreachable


def check_beam_runner(config: PipelineConfig) -> None:
    """A runner other than the DirectRunner (`--beam-arg=--runner=...`) has what it needs to start
    here: its job server jar or service, its cloud project and credentials."""
    from components import beam_runner

    problem = beam_runner.runner_problem(config.extra_beam_args)
    if problem:
        raise SetupError(problem[0].upper() + problem[1:] + ".")


def run_all(config: PipelineConfig, say: Callable[[str], None] = logging.warning) -> None:
    """Every pre-run check; `say` tells the person waiting what the checks wait for."""
    check_output_dir(config.output_dir)
    check_beam_runner(config)
    check_metadata_store(config, say)
    check_data_dir(config)
    check_curated_schema(config.curated_schema_file)
    check_profile_columns(config)
    check_user_code(config)

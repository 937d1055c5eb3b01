"""`inspect`: query runs, executions, artifacts and lineage in ML Metadata, as text or JSON.

The readers are in metadata/, the text in cli/inspect_text.py; this module is the commands and
their arguments.
"""

from __future__ import annotations

import click

from cli import inspect_text
from cli.options import CONTEXT_SETTINGS, answer, open_store, store_options
from cli.user_errors import UserError
from metadata import artifacts, lineage, run_diff, runs
from pipeline.metadata_location import MetadataLocation


def _artifact_id(value: str) -> int:
    if not value.isdigit():
        raise UserError(
            f"artifact id must be a number, got {value!r}; `inspect artifacts` lists them"
        )
    return int(value)


@click.group(context_settings=CONTEXT_SETTINGS)
def inspect() -> None:
    """Query runs, executions, artifacts and lineage in ML Metadata."""


@inspect.command("runs")
@store_options
def inspect_runs(location: MetadataLocation, as_json: bool) -> None:
    """Every pipeline run, newest first, with what each component did and how long it took."""
    index = open_store(location)
    answer(as_json, lambda: runs.list_runs(index), inspect_text.runs_text)


@inspect.command("artifacts")
@click.option("--run", help="Run id, id prefix, or position (1 = newest).")
@click.option("--component", help="Producing component, e.g. Trainer.")
@click.option("--type", "type_name", help="Artifact type, e.g. Model, ExampleStatistics.")
@store_options
def inspect_artifacts(
    run: str | None,
    component: str | None,
    type_name: str | None,
    location: MetadataLocation,
    as_json: bool,
) -> None:
    """Artifacts with id, type, state, URI and key properties."""
    index = open_store(location)

    def compute() -> list[dict]:
        run_id = runs.find_run(index, run)["run_id"] if run else None
        return artifacts.list_artifacts(
            index, run_id=run_id, component=component, type_name=type_name
        )

    answer(as_json, compute, inspect_text.artifacts_text)


@inspect.command("show")
@click.argument("artifact_id")
@store_options
def inspect_show(artifact_id: str, location: MetadataLocation, as_json: bool) -> None:
    """One artifact in human terms (statistics, schema, anomalies, evaluation, ...).

    ARTIFACT_ID: see `inspect artifacts`.
    """
    index = open_store(location)
    answer(
        as_json, lambda: artifacts.show(index, _artifact_id(artifact_id)), inspect_text.show_text
    )


@inspect.command("monitoring")
@click.option("--limit", type=click.IntRange(min=1), default=20, show_default=True)
@store_options
def inspect_monitoring(limit: int, location: MetadataLocation, as_json: bool) -> None:
    """`monitor`'s checks of the served traffic, newest first: window, versions, verdict,
    findings."""
    from deployment import model_versions

    index = open_store(location)
    answer(
        as_json,
        lambda: model_versions.monitoring_checks(index)[:limit],
        inspect_text.monitoring_text,
    )


@inspect.command("lineage")
@click.argument("artifact_id")
@store_options
def inspect_lineage(artifact_id: str, location: MetadataLocation, as_json: bool) -> None:
    """Where an artifact came from, back to data, schema and code.

    ARTIFACT_ID: an artifact id, or 'pushed-model' for the latest pushed model.
    """
    index = open_store(location)

    def compute() -> dict:
        target = (
            artifacts.latest_pushed_model(index)
            if artifact_id == "pushed-model"
            else _artifact_id(artifact_id)
        )
        tree = lineage.lineage(index, target)
        tree["edges"] = sorted(lineage.lineage_edges(tree))
        return tree

    answer(as_json, compute, inspect_text.lineage_text)


@inspect.command("diff")
@click.argument("run_a")
@click.argument("run_b")
@store_options
def inspect_diff(run_a: str, run_b: str, location: MetadataLocation, as_json: bool) -> None:
    """What changed between two runs: statistics, schema, hyperparameters, metrics, blessings.

    RUN_A, RUN_B: run ids, id prefixes or positions (1 = newest).
    """
    index = open_store(location)
    answer(as_json, lambda: run_diff.diff_runs(index, run_a, run_b), inspect_text.diff_text)

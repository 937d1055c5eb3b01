"""`python run_local.py init`: a ready-to-run profile folder from a CSV and its label column.

The logic is the profiling/ package (the flow is profiling/init.py); this module is the command
and what it prints: the decisions, what to review, and the command that runs the new profile.
"""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import TYPE_CHECKING

import click

from cli.options import CONTEXT_SETTINGS
from cli.user_errors import UserError, quiet_libraries
from components.profile import TASKS

if TYPE_CHECKING:
    from profiling.report import InitReport

TASK_CHOICES = ("auto", *TASKS)


@click.command("init", context_settings=CONTEXT_SETTINGS)
@click.option(
    "--csv",
    "csv_path",
    type=click.Path(path_type=Path),
    required=True,
    metavar="FILE",
    help="The CSV to learn from: comma-separated, UTF-8, a header row naming the columns.",
)
@click.option(
    "--label",
    required=True,
    metavar="COLUMN",
    help="The column to predict, as the header names it (rows without a value are left out).",
)
@click.option(
    "--out",
    "out_dir",
    type=click.Path(path_type=Path),
    required=True,
    metavar="DIR",
    help="The new profile folder (must not exist, or be empty): profile.yaml, schema.pbtxt, data/.",
)
@click.option(
    "--task",
    type=click.Choice(TASK_CHOICES, case_sensitive=False),
    default="auto",
    show_default=True,
    help="auto: text or few whole numbers are classes (binary with two), other numbers regression.",
)
@click.option(
    "--seed",
    type=int,
    default=42,
    show_default=True,
    help="Seed of the shuffle that holds out 10% of the rows as the batch to score.",
)
def init(csv_path: Path, label: str, out_dir: Path, task: str, seed: int) -> None:
    """Turn a CSV into a profile folder ready to run: the label and task, each column's kind
    (each with its reason), a curated schema, and the data as span 1 (labeled) plus a held-out
    batch to score (unlabeled). Review what it prints, then run the command it ends with."""
    quiet_libraries()
    # pandas and TFDV (through profiling/) take seconds to import: loaded for this command only,
    # so the rest of the CLI starts fast.
    from profiling.init import init_profile
    from profiling.report import InitError

    try:
        report = init_profile(csv_path, label, out_dir, task=task.lower(), seed=seed)
    except InitError as e:
        raise UserError(str(e)) from e
    click.echo(report_text(report))


def report_text(report: InitReport) -> str:
    """What init decided and what to review, for people; ends with the command to run."""
    columns = report.columns
    width = min(28, max(len(c.name) for c in columns)) + 2
    labeled_file = report.labeled_file.relative_to(report.out_dir)
    unlabeled_file = report.unlabeled_file.relative_to(report.out_dir)
    lines = [
        f"Profile {report.name!r} written to {report.out_dir}",
        f"Data:     {report.rows_read} rows read from {report.csv_path}"
        + (
            f"; {report.rows_without_label} without a label left out"
            if report.rows_without_label
            else ""
        ),
        f"          {report.labeled_rows} labeled rows -> {labeled_file}",
        f"          {report.unlabeled_rows} held out, without the label, as the batch to score "
        f"-> {unlabeled_file}",
        f"Label:    {report.label!r}: {report.task} ({report.task_why})",
    ]
    if report.classes:
        classes = ", ".join(report.classes[:12]) + (" ..." if len(report.classes) > 12 else "")
        lines.append(f"          classes {classes}")
    if report.positive_class is not None:
        lines.append(f"          positive class: {report.positive_class!r} (the second)")
    lines.append("Columns:")
    for column in columns:
        detail = f" (max {column.max})" if column.max is not None else ""
        lines.append(f"  {column.name:<{width}}{column.kind}{detail}: {column.why}")
    drift = ", ".join(f"{name} {value}" for name, value in report.drift.items()) or "none"
    training = report.training
    lines += [
        f"Slices:   {', '.join(report.slices) or 'none'}",
        f"Drift:    {drift}",
        f"Training: batch {training['batch_size']}, {training['train_steps']} steps"
        + (" with early stopping" if training.get("early_stopping") else "")
        + f", {training['tuner_trials']} tuner trials"
        + (", balanced class weights" if training.get("class_weights") == "balanced" else "")
        + (" (a small dataset)" if report.small_data else ""),
        "",
        "What to review (profile.yaml and schema.pbtxt) before the first run:",
        *(f"  - {item}" for item in report.review),
        "",
        "Next:",
        f"  python run_local.py --profile {shlex.quote(str(report.out_dir))}",
    ]
    return "\n".join(lines)

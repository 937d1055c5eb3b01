"""The profile folder: built beside `out_dir` (the split CSVs, schema.pbtxt, profile.yaml), checked,
then renamed into place at the end, so bad input leaves nothing behind.
"""

from __future__ import annotations

import csv
import os
import shutil
import tempfile
from pathlib import Path

import pandas as pd

from components import profile as profiles
from profiling.csv_input import check_out_dir
from profiling.profile_writer import assert_profile_loads, profile_text
from profiling.report import SCHEMA_FILE, InitError, InitReport
from profiling.review import review
from profiling.schema_writer import curated_schema, example_statistics, schema_text
from profiling.task import Task
from profiling.value_types import ValueType


def build_folder(
    report: InitReport,
    labeled_split: pd.DataFrame,
    unlabeled_split: pd.DataFrame,
    chosen: Task,
    types: dict[str, ValueType],
    split_notes: list[str],
) -> None:
    """Writes everything into a hidden sibling folder, checks it, then renames it into place."""
    out_dir = report.out_dir
    created_parents = _make_parents(out_dir.parent)
    staging = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.init-", dir=out_dir.parent))
    try:
        labeled_file = staging / report.labeled_file.relative_to(out_dir)
        unlabeled_file = staging / report.unlabeled_file.relative_to(out_dir)
        _write_csv(labeled_split, labeled_file)
        _write_csv(unlabeled_split, unlabeled_file)
        statistics = example_statistics(labeled_file)
        schema, string_domains = curated_schema(statistics, report, chosen, types)
        (staging / SCHEMA_FILE).write_text(schema_text(schema, report))
        report.review = review(report, schema, string_domains, split_notes)
        (staging / profiles.PROFILE_FILE_NAME).write_text(profile_text(report, labeled_split))
        assert_profile_loads(staging, report)
        if out_dir.is_dir():
            check_out_dir(out_dir)  # still empty? another process may have written meanwhile
        try:
            os.rename(staging, out_dir)  # replaces an empty folder; never a non-empty one
        except OSError as e:
            raise InitError(f"cannot create --out {out_dir}: {e.strerror}") from e
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        for parent in reversed(created_parents):
            try:
                parent.rmdir()
            except OSError:
                break
        raise


def _make_parents(folder: Path) -> list[Path]:
    """Creates `folder` and its missing parents; returns those it created, outermost first."""
    missing = []
    current = folder.absolute()
    while not current.exists():
        missing.append(current)
        current = current.parent
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise InitError(f"cannot create the folder {folder} for --out: {e.strerror}") from e
    return list(reversed(missing))


def _write_csv(frame: pd.DataFrame, path: Path) -> None:
    """The header verbatim, values as read, missing values as empty cells."""
    path.parent.mkdir(parents=True)
    with path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f, lineterminator="\n")
        writer.writerow(frame.columns)
        writer.writerows(frame.fillna("").itertuples(index=False, name=None))

"""What `init` decides, as its steps hand it on and the command line prints it: the InitReport
with a ColumnChoice per column; InitError for input init cannot use; and the folder layout and
thresholds that more than one step uses.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

DATA_DIR = "data"
SCHEMA_FILE = "schema.pbtxt"
SPAN_FOLDER = "span-1"
DATA_FILE = "data.csv"

MOSTLY_EMPTY = 0.95  # a column missing in more than this share of rows is ignored
MAX_SLICE_VALUES = 12  # more values: per-slice metrics rest on too few examples each
CATEGORICAL_DRIFT = 0.1
SMALL_DATA_ROWS = 5000
MARGIN_OVER_TRIVIAL = 0.05
TRAIN_SHARE = 3 / 4  # ExampleGen's train split: 3 of 4 hash buckets (pipeline/config.py)
# A label whose rarest class has less than this fraction of an even share of the rows (1/classes)
# gets balanced class weights: binary under 25%, ten classes under 5%.
IMBALANCED_SHARE = 0.5


class InitError(ValueError):
    """Input `init` cannot use; the message names the file or column and what to do."""


@dataclass(frozen=True)
class ColumnChoice:
    """What init made of one column: its kind, the reason, and the figures behind it."""

    name: str
    kind: str
    why: str
    value_type: str
    distinct: int
    missing: int
    max: int | None = None
    top_k: int | None = None  # vocabulary: values kept; text: words kept
    max_tokens: int | None = None  # text
    format: str | None = None  # datetime
    parts: list[str] | None = None  # datetime


@dataclass
class InitReport:
    """What init decided, for the command line to print."""

    csv_path: Path
    out_dir: Path
    name: str
    label: str
    task: str
    task_why: str
    classes: list[str] | None
    positive_class: str | None
    rows_read: int
    rows_without_label: int
    labeled_rows: int
    unlabeled_rows: int
    columns: list[ColumnChoice]
    slices: list[str]
    drift: dict[str, float]
    training: dict[str, int | str | bool]
    model: dict[str, int | float | bool]
    small_data: bool
    # Columns of dates in a format Transform does not read, and how to have them read.
    date_notes: list[str] = field(default_factory=list)
    review: list[str] = field(default_factory=list)  # filled in once the schema is made

    @property
    def labeled_file(self) -> Path:
        return self.out_dir / DATA_DIR / "labeled" / SPAN_FOLDER / DATA_FILE

    @property
    def unlabeled_file(self) -> Path:
        return self.out_dir / DATA_DIR / "unlabeled" / SPAN_FOLDER / DATA_FILE

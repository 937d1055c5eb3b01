"""Rebuilds data/ from the Chicago taxi CSV that ships inside the `tfx` package.

Every 15th row (by position) is held out, without its label column, as the batch BulkInferrer
scores; all other rows, with the label, are the training and evaluation data. Rows are copied
byte for byte, so the output is identical on every run.

    python scripts/prepare_taxi_data.py [--data-dir data]
"""

from __future__ import annotations

import argparse
import csv
import importlib.util
from pathlib import Path

LABEL_COLUMN = "tips"
HOLDOUT_EVERY = 15


def shipped_taxi_csv() -> Path:
    """Path of the taxi data inside the installed tfx package."""
    spec = importlib.util.find_spec("tfx")
    if spec is None or spec.origin is None:
        raise SystemExit("error: the tfx package is not installed; run `make setup` first.")
    return Path(spec.origin).parent / "examples/chicago_taxi_pipeline/data/simple/data.csv"


def split(source: Path, data_dir: Path) -> tuple[int, int]:
    """Writes labeled/taxi.csv and unlabeled/taxi.csv; returns their row counts."""
    labeled_path = data_dir / "labeled" / "taxi.csv"
    unlabeled_path = data_dir / "unlabeled" / "taxi.csv"
    labeled_path.parent.mkdir(parents=True, exist_ok=True)
    unlabeled_path.parent.mkdir(parents=True, exist_ok=True)
    with source.open(newline="") as f:
        rows = list(csv.reader(f))
    header, body = rows[0], rows[1:]
    label_index = header.index(LABEL_COLUMN)

    def without_label(row: list[str]) -> list[str]:
        return row[:label_index] + row[label_index + 1 :]

    labeled = [row for i, row in enumerate(body) if i % HOLDOUT_EVERY != 0]
    unlabeled = [without_label(row) for i, row in enumerate(body) if i % HOLDOUT_EVERY == 0]
    for path, head, data in (
        (labeled_path, header, labeled),
        (unlabeled_path, without_label(header), unlabeled),
    ):
        with path.open("w", newline="") as f:
            writer = csv.writer(f, lineterminator="\n")
            writer.writerow(head)
            writer.writerows(data)
    return len(labeled), len(unlabeled)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--data-dir", type=Path, default=Path(__file__).resolve().parent.parent / "data"
    )
    args = parser.parse_args()
    n_labeled, n_unlabeled = split(shipped_taxi_csv(), args.data_dir)
    print(f"wrote {n_labeled} labeled rows and {n_unlabeled} unlabeled rows under {args.data_dir}")


if __name__ == "__main__":
    main()

"""Rebuilds data/ from the Chicago taxi CSV that ships inside the `tfx` package.

Every 15th row (by position) is held out, without its label column, as the batch BulkInferrer
scores (`unlabeled/span-1/`); all other rows, with the label, are the training and evaluation
data, cut into two spans (batches) by position: the first half is `labeled/span-1/`, the rest
`labeled/span-2/`. Rows are copied byte for byte, so the output is identical on every run.

    python scripts/prepare_taxi_data.py [--data-dir data]
"""

from __future__ import annotations

import argparse
import csv
import importlib.util
import shutil
from pathlib import Path

LABEL_COLUMN = "tips"
HOLDOUT_EVERY = 15
LABELED_SPANS = 2
FILE_NAME = "taxi.csv"


def shipped_taxi_csv() -> Path:
    """Path of the taxi data inside the installed tfx package."""
    spec = importlib.util.find_spec("tfx")
    if spec is None or spec.origin is None:
        raise SystemExit("error: the tfx package is not installed; run `make setup` first.")
    return Path(spec.origin).parent / "examples/chicago_taxi_pipeline/data/simple/data.csv"


def write_csv(path: Path, header: list[str], rows: list[list[str]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as f:
        writer = csv.writer(f, lineterminator="\n")
        writer.writerow(header)
        writer.writerows(rows)


def split(source: Path, data_dir: Path) -> dict[str, int]:
    """Writes labeled/span-N/taxi.csv and unlabeled/span-1/taxi.csv; returns row counts by file."""
    with source.open(newline="") as f:
        rows = list(csv.reader(f))
    header, body = rows[0], rows[1:]
    label_index = header.index(LABEL_COLUMN)

    def without_label(row: list[str]) -> list[str]:
        return row[:label_index] + row[label_index + 1 :]

    labeled = [row for i, row in enumerate(body) if i % HOLDOUT_EVERY != 0]
    unlabeled = [without_label(row) for i, row in enumerate(body) if i % HOLDOUT_EVERY == 0]
    for role in ("labeled", "unlabeled"):
        if (data_dir / role).exists():
            shutil.rmtree(data_dir / role)
    counts = {}
    span_size = -(-len(labeled) // LABELED_SPANS)
    for span in range(1, LABELED_SPANS + 1):
        path = data_dir / "labeled" / f"span-{span}" / FILE_NAME
        span_rows = labeled[(span - 1) * span_size : span * span_size]
        write_csv(path, header, span_rows)
        counts[str(path.relative_to(data_dir))] = len(span_rows)
    path = data_dir / "unlabeled" / "span-1" / FILE_NAME
    write_csv(path, without_label(header), unlabeled)
    counts[str(path.relative_to(data_dir))] = len(unlabeled)
    return counts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--data-dir", type=Path, default=Path(__file__).resolve().parent.parent / "data"
    )
    args = parser.parse_args()
    for path, count in split(shipped_taxi_csv(), args.data_dir).items():
        print(f"wrote {count} rows to {args.data_dir / path}")


if __name__ == "__main__":
    main()

"""Deterministic synthetic taxi data for benchmarks, at any size, from the shipped data.

    python bench/generate_data.py --rows N --out DIR [--seed 42] [--spans 2] [--unlabeled-rows M]

writes the layout `run_local.py --data-dir DIR` reads:

    DIR/labeled/span-1/taxi.csv ... DIR/labeled/span-K/taxi.csv   (N rows in total, split evenly)
    DIR/unlabeled/span-1/taxi.csv                                   (M rows, default N/14, <= 100k)

How rows are made: every output row is a shipped row drawn at random (with replacement); labeled
rows come from the shipped labeled spans, unlabeled rows from all shipped rows (labeled and
unlabeled) without the `tips` column. Categorical and integer columns (ids, hours, payment type,
company, ...) are copied unchanged from the drawn row. Continuous columns get small noise:

- fare and tips are multiplied by the same per-row factor (log-normal, sigma 0.05), so tips/fare
  and hence the label (tips > 20% of fare) are kept; where rounding to cents would flip the label
  of a row on the threshold, its tips move by one cent so that every row keeps its label;
- trip_miles and trip_seconds get their own factor each (same distribution);
- coordinates move by a few hundred metres (normal noise, sigma 0.002 degrees).

Every noisy value is clipped into the curated schema's domain (read from schema.pbtxt: float and
int domains), and an empty cell stays empty. Every span is drawn from the same distribution, so
the pipeline's drift check between the latest span and the previous one passes.

Determinism: each chunk of rows has its own random stream seeded by (seed, file, chunk index), and
values are formatted with fixed precision, so the same arguments give byte-identical files.
Rows are produced and written CHUNK_ROWS at a time: memory stays flat whatever N is.
"""

from __future__ import annotations

import argparse
import csv
import math
import os
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from cli.options import DEFAULT_PROFILE_DIR
from components import profile as profiles

# The taxi profile's label rule: tips > BIG_TIP_FRACTION * fare.
BIG_TIP_FRACTION = profiles.load(DEFAULT_PROFILE_DIR).label.positive_when.greater_than

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_SOURCE = PROJECT_ROOT / "data"
DEFAULT_SCHEMA = PROJECT_ROOT / "schema" / "schema.pbtxt"
LABEL = "tips"
CHUNK_ROWS = 50_000
UNLABELED_FRACTION = 14  # default M = N / 14, the shipped labeled:unlabeled ratio
MAX_DEFAULT_UNLABELED_ROWS = 100_000

# Noise, and how each continuous column is printed.
PRICE_COLUMNS = ("fare", "tips")  # share one factor per row
SCALED_COLUMNS = ("trip_miles", "trip_seconds")  # one factor each
COORDINATE_COLUMNS = (
    "pickup_latitude",
    "pickup_longitude",
    "dropoff_latitude",
    "dropoff_longitude",
)
SCALE_SIGMA = 0.05  # log-normal factor: about +-5%
COORDINATE_SIGMA = 0.002  # degrees: about 200 m
DECIMALS = {
    "fare": 2,
    "tips": 2,
    "trip_miles": 2,
    "trip_seconds": 0,  # an INT column
    **{c: 6 for c in COORDINATE_COLUMNS},
}
NOISY_COLUMNS = tuple(DECIMALS)

# File ids in the seed of each chunk's random stream.
LABELED_FILE = 0
UNLABELED_FILE = 1


@dataclass(frozen=True)
class Pool:
    """Source rows to draw from: text cells of copied columns, floats (NaN = empty) of noisy ones."""

    header: list[str]
    text: dict[str, np.ndarray]  # column -> object array of CSV-ready cells
    numbers: dict[str, np.ndarray]  # column -> float64 array, NaN where the cell is empty

    @property
    def size(self) -> int:
        column = self.header[0]
        return len(self.text[column] if column in self.text else self.numbers[column])


def schema_bounds(schema_path: Path) -> dict[str, tuple[float, float]]:
    """(min, max) of each noisy column from the schema's float/int domains (+-inf if unset)."""
    from google.protobuf import text_format
    from tensorflow_metadata.proto.v0 import schema_pb2

    schema = text_format.Parse(schema_path.read_text(), schema_pb2.Schema())
    bounds = {}
    for feature in schema.feature:
        if feature.name not in NOISY_COLUMNS:
            continue
        domain = feature.float_domain if feature.HasField("float_domain") else feature.int_domain
        low = domain.min if domain.HasField("min") else -math.inf
        high = domain.max if domain.HasField("max") else math.inf
        bounds[feature.name] = (float(low), float(high))
    missing = set(NOISY_COLUMNS) - set(bounds)
    if missing:
        raise SystemExit(f"error: {schema_path} has no feature(s) {', '.join(sorted(missing))}")
    return bounds


def _csv_cell(value: str) -> str:
    """The cell as it must appear in a CSV line (quoted only when needed)."""
    if any(ch in value for ch in ',"\n\r'):
        return '"' + value.replace('"', '""') + '"'
    return value


def read_rows(files: list[Path]) -> tuple[list[str], list[list[str]]]:
    """Header and rows of CSV files that must all have the same header."""
    header: list[str] | None = None
    rows: list[list[str]] = []
    for path in files:
        with path.open(newline="", encoding="utf-8") as f:
            reader = csv.reader(f)
            file_header = next(reader)
            if header is None:
                header = file_header
            elif file_header != header:
                raise SystemExit(f"error: {path} has a different header than {files[0]}")
            rows.extend(row for row in reader if row)
    if header is None or not rows:
        raise SystemExit(f"error: no rows in {', '.join(map(str, files)) or 'no files'}")
    return header, rows


def make_pool(header: list[str], rows: list[list[str]], columns: list[str]) -> Pool:
    """The pool of `columns` (a subset of `header`, in output order) over `rows`."""
    position = {name: i for i, name in enumerate(header)}
    text, numbers = {}, {}
    for name in columns:
        cells = [row[position[name]] for row in rows]
        if name in NOISY_COLUMNS:
            numbers[name] = np.array([float(c) if c else np.nan for c in cells], dtype=np.float64)
        else:
            text[name] = np.array([_csv_cell(c) for c in cells], dtype=object)
    return Pool(header=list(columns), text=text, numbers=numbers)


def _format(values: np.ndarray, decimals: int) -> list[str]:
    template = f"{{:.{decimals}f}}"
    return ["" if v != v else template.format(v) for v in values.tolist()]


def big_tip(tips: np.ndarray, fare: np.ndarray) -> np.ndarray:
    """The label as Transform computes it, in float32: tips > BIG_TIP_FRACTION * fare."""
    return tips.astype(np.float32) > fare.astype(np.float32) * np.float32(BIG_TIP_FRACTION)


def keep_label(
    tips: np.ndarray, fare: np.ndarray, new_tips: np.ndarray, new_fare: np.ndarray
) -> np.ndarray:
    """`new_tips`, moved by one cent where rounding to cents flipped the label.

    Scaling tips and fare by one factor keeps tips/fare, but rounding both to cents flips rows
    that sit on the threshold (a 20% tip is common). One cent up (or down) restores the label:
    rounding moves tips by at most half a cent and BIG_TIP_FRACTION * fare by less than that.
    """
    was, now = big_tip(tips, fare), big_tip(new_tips, new_fare)
    fixed = new_tips + np.where(was & ~now, 0.01, 0.0) - np.where(now & ~was, 0.01, 0.0)
    fixed = np.round(fixed, DECIMALS[LABEL])
    if not np.array_equal(big_tip(fixed, new_fare), was):
        raise RuntimeError("could not keep the label of every row; this is a bug")
    return fixed


def generate_chunk(
    pool: Pool, rows: int, rng: np.random.Generator, bounds: dict[str, tuple[float, float]]
) -> str:
    """`rows` CSV lines (without header) drawn from `pool` with noise, as one string."""
    picks = rng.integers(0, pool.size, size=rows)
    noisy: dict[str, np.ndarray] = {}
    price_factor = np.exp(rng.normal(0.0, SCALE_SIGMA, size=rows))
    for name in PRICE_COLUMNS:
        if name in pool.numbers:
            noisy[name] = pool.numbers[name][picks] * price_factor
    for name in SCALED_COLUMNS:
        noisy[name] = pool.numbers[name][picks] * np.exp(rng.normal(0.0, SCALE_SIGMA, size=rows))
    for name in COORDINATE_COLUMNS:
        noisy[name] = pool.numbers[name][picks] + rng.normal(0.0, COORDINATE_SIGMA, size=rows)

    for name, values in noisy.items():
        low, high = bounds[name]
        # Round first so that printing cannot push a value past a bound; NaN stays NaN.
        noisy[name] = np.clip(np.round(values, DECIMALS[name]), low, high) + 0.0  # no -0.0
    if LABEL in noisy:
        noisy[LABEL] = keep_label(
            pool.numbers[LABEL][picks], pool.numbers["fare"][picks], noisy[LABEL], noisy["fare"]
        )

    cells = []
    for name in pool.header:
        if name in noisy:
            cells.append(_format(noisy[name], DECIMALS[name]))
        else:
            cells.append(pool.text[name][picks].tolist())
    return "\n".join(map(",".join, zip(*cells, strict=True))) + "\n"


def write_file(
    path: Path,
    pool: Pool,
    rows: int,
    seed: int,
    file_id: int,
    span: int,
    bounds: dict[str, tuple[float, float]],
) -> None:
    """Writes `rows` rows to `path` chunk by chunk (via a temporary file, then renamed)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    with partial.open("w", newline="", encoding="utf-8") as f:
        f.write(",".join(pool.header) + "\n")
        for chunk, start in enumerate(range(0, rows, CHUNK_ROWS)):
            rng = np.random.default_rng([seed, file_id, span, chunk])
            f.write(generate_chunk(pool, min(CHUNK_ROWS, rows - start), rng, bounds))
    os.replace(partial, path)


def split_evenly(total: int, parts: int) -> list[int]:
    """`total` as `parts` near-equal counts; the first ones take the remainder."""
    base, extra = divmod(total, parts)
    return [base + (1 if i < extra else 0) for i in range(parts)]


def default_unlabeled_rows(rows: int) -> int:
    return max(1, min(MAX_DEFAULT_UNLABELED_ROWS, rows // UNLABELED_FRACTION))


def generate(
    rows: int,
    out: Path,
    seed: int = 42,
    spans: int = 2,
    unlabeled_rows: int | None = None,
    source: Path = DEFAULT_SOURCE,
    schema: Path = DEFAULT_SCHEMA,
) -> dict[str, int]:
    """Writes the data set; returns rows written per file (relative path -> rows)."""
    unlabeled_rows = default_unlabeled_rows(rows) if unlabeled_rows is None else unlabeled_rows
    bounds = schema_bounds(schema)
    labeled_header, labeled_rows = read_rows(sorted(source.glob("labeled/*/*.csv")))
    unlabeled_files = sorted(source.glob("unlabeled/*/*.csv"))
    if LABEL not in labeled_header:
        raise SystemExit(f"error: the labeled data in {source} has no '{LABEL}' column")
    features = [name for name in labeled_header if name != LABEL]
    # The batch to score draws from every shipped row, without the label.
    batch_rows = [[row[labeled_header.index(n)] for n in features] for row in labeled_rows]
    if unlabeled_files:
        unlabeled_header, extra_rows = read_rows(unlabeled_files)
        if sorted(unlabeled_header) != sorted(features):
            raise SystemExit(f"error: {unlabeled_files[0]} has other columns than the labeled data")
        batch_rows += [[row[unlabeled_header.index(n)] for n in features] for row in extra_rows]

    labeled = make_pool(labeled_header, labeled_rows, labeled_header)
    unlabeled = make_pool(features, batch_rows, features)
    del labeled_rows, batch_rows

    written = {}
    for span, count in enumerate(split_evenly(rows, spans), start=1):
        relative = f"labeled/span-{span}/taxi.csv"
        write_file(out / relative, labeled, count, seed, LABELED_FILE, span, bounds)
        written[relative] = count
    relative = "unlabeled/span-1/taxi.csv"
    write_file(out / relative, unlabeled, unlabeled_rows, seed, UNLABELED_FILE, 1, bounds)
    written[relative] = unlabeled_rows
    return written


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Write deterministic synthetic taxi spans (labeled/span-1..K, "
        "unlabeled/span-1) resampled with noise from the shipped data.",
    )
    parser.add_argument("--rows", type=int, required=True, help="labeled rows in total")
    parser.add_argument("--out", type=Path, required=True, help="data folder to write")
    parser.add_argument("--seed", type=int, default=42, help="random seed (default: %(default)s)")
    parser.add_argument(
        "--spans", type=int, default=2, help="labeled spans to split the rows into (default: 2)"
    )
    parser.add_argument(
        "--unlabeled-rows",
        type=int,
        default=None,
        metavar="M",
        help=f"rows of the batch to score (default: rows/{UNLABELED_FRACTION}, "
        f"at most {MAX_DEFAULT_UNLABELED_ROWS:,})",
    )
    parser.add_argument(
        "--source",
        type=Path,
        default=DEFAULT_SOURCE,
        help="data folder to resample from (default: %(default)s)",
    )
    parser.add_argument(
        "--schema",
        type=Path,
        default=DEFAULT_SCHEMA,
        help="curated schema whose domains bound the values (default: %(default)s)",
    )
    parser.add_argument(
        "--overwrite",
        action="store_true",
        help="replace DIR/labeled and DIR/unlabeled if they exist (otherwise refuse)",
    )
    args = parser.parse_args(argv)
    if args.spans < 1 or args.rows < args.spans:
        parser.error("--spans must be at least 1 and --rows at least --spans")
    if args.unlabeled_rows is not None and args.unlabeled_rows < 1:
        parser.error("--unlabeled-rows must be at least 1")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    existing = [args.out / d for d in ("labeled", "unlabeled") if (args.out / d).exists()]
    if existing and not args.overwrite:
        print(
            f"error: {', '.join(map(str, existing))} already exist(s); pass --overwrite to "
            "replace, or choose another --out",
            file=sys.stderr,
        )
        return 2
    for folder in existing:
        shutil.rmtree(folder)
    started = time.perf_counter()
    written = generate(
        args.rows,
        args.out,
        seed=args.seed,
        spans=args.spans,
        unlabeled_rows=args.unlabeled_rows,
        source=args.source,
        schema=args.schema,
    )
    elapsed = time.perf_counter() - started
    print(
        f"Wrote {sum(written.values()):,} rows, labeled and unlabeled (seed {args.seed}) in {elapsed:.1f} s:"
    )
    for relative, count in written.items():
        print(f"  {args.out / relative}: {count:,} rows")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Random CSV files with awkward cells: the vectorized conversion against TFX's, in process.

    python bench/ingestion_fuzz.py [--cases 200] [--seed 0]

TFX's side is TFX's own code without Beam: tfx_bsl's csv reader and ColumnTypeInferrer, then
`_ParsedCsvToTfExample.process`, serialized deterministically (what `_PartitionFn` hashes).
"""

from __future__ import annotations

import argparse
import collections
import os
import random
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tfx.components.example_gen.csv_example_gen import executor as csv_executor  # noqa: E402
from tfx_bsl.coders import csv_decoder  # noqa: E402

from components.span_example_gen import fast_csv  # noqa: E402

TOKENS = {
    "int": [
        "0",
        "7",
        "-3",
        "007",
        "-0",
        "123456789012345678",
        "9223372036854775807",
        "-9223372036854775808",
        "42",
        "1700000000",
    ],
    "odd_int": [
        "+5",
        " 5",
        "5 ",
        "1_000",
        "9223372036854775808",
        "99999999999999999999",
        "\u0665",
        "0x10",
        "1e3",
    ],
    "float": [
        "1.5",
        "-0.0",
        "0.1",
        "27.05",
        ".5",
        "5.",
        "3.4028235677973366e38",
        "1e-46",
        "123456789.123456789123",
        "-87.648787952",
        "41.836150155",
        "1e39",
        "0.30000000000000004",
    ],
    "odd_float": [
        "nan",
        "-nan",
        "inf",
        "-Infinity",
        " 1.5",
        "1_0.5",
        "1E5",
        "+2.5",
        "NaN",
        "3.40282357e38",
        "340282356779733661637539395458142568448",
    ],
    "string": [
        "Cash",
        "Credit Card",
        "Taxi Affiliation Services",
        "x",
        " ",
        "a b",
        "caf\u00e9",
        "\u65e5\u672c",
        "-",
        "N/A",
        "NULL",
        "null",
        "True",
        "'q'",
        "a;b",
        "\t",
    ],
}


def random_file(
    rng: random.Random, columns: list[tuple[str, list[str], float]], rows: int, crlf: bool
) -> str:
    end = "\r\n" if crlf else "\n"
    lines = [",".join(name for name, _, _ in columns)]
    for _ in range(rows):
        if rng.random() < 0.02:
            lines.append("")  # a blank line
            continue
        lines.append(
            ",".join(
                "" if rng.random() < missing else rng.choice(pool) for _, pool, missing in columns
            )
        )
    text = end.join(lines)
    if rng.random() < 0.7:
        text += end
    return text


def tfx_examples(files: list[str]) -> collections.Counter:
    names = fast_csv.column_names(files)
    reader = csv_decoder.ParseCSVLine(delimiter=",")
    reader.setup()
    rows = []
    for path in files:
        with open(path, "rb") as f:
            f.readline()
            for line in f:
                cells, _ = next(reader.process(line.decode("utf-8")))
                rows.append(cells)
    inferrer = csv_decoder.ColumnTypeInferrer(names, skip_blank_lines=True)
    accumulator = inferrer.create_accumulator()
    for cells in rows:
        accumulator = inferrer.add_input(accumulator, cells)
    infos = inferrer.extract_output(accumulator)
    to_example = csv_executor._ParsedCsvToTfExample()  # noqa: SLF001
    out = collections.Counter()
    for cells in rows:
        for example in to_example.process(cells, infos):
            out[example.SerializeToString(deterministic=True)] += 1
    return out


def fast_examples(files: list[str], range_bytes: int) -> collections.Counter:
    names = fast_csv.column_names(files)
    ranges = [r for path in files for r in fast_csv.file_ranges(path, range_bytes)]
    types = fast_csv.merge_types(
        [fast_csv.infer_types(fast_csv._read_range(r, names), names) for r in ranges], names
    )
    out = collections.Counter()
    for r in ranges:
        for batch in fast_csv._read_range(r, names):
            out.update(fast_csv.encode_batch(batch, types))
    return out


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--cases", type=int, default=200)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    failures = 0
    checked = 0
    with tempfile.TemporaryDirectory() as tmp:
        for case in range(args.cases):
            n_columns = rng.randint(1, 8)
            columns = []
            for index in range(n_columns):
                kinds = rng.sample(list(TOKENS), rng.randint(1, 2))
                if rng.random() < 0.7:  # mostly well-typed columns with a rare odd cell
                    kinds = [kinds[0]]
                pool = [token for kind in kinds for token in TOKENS[kind]]
                if rng.random() < 0.3:
                    pool += TOKENS[rng.choice(["odd_int", "odd_float"])][:1]
                missing = rng.choice([0.0, 0.1, 0.5, 1.0])
                columns.append((f"c{index}_{rng.choice(['a', 'B', 'z', 'é'])}", pool, missing))
            names = [c[0] for c in columns]
            if len(set(names)) != len(names):
                continue
            files = []
            for number in range(rng.randint(1, 3)):
                path = os.path.join(tmp, f"case{case}_{number}.csv")
                with open(path, "w", encoding="utf-8", newline="") as f:
                    f.write(random_file(rng, columns, rng.randint(1, 400), rng.random() < 0.3))
                files.append(path)
            problems = [p for p in map(fast_csv.fast_path_problem, files) if p]
            if problems:
                print(f"case {case}: not on the fast path: {problems}")
                continue
            try:
                expected = tfx_examples(files)
            except ValueError as e:  # TFX refuses the file (e.g. a whitespace-only line)
                print(f"case {case}: TFX refuses: {e}"[:200])
                continue
            got = fast_examples(files, rng.choice([200, 2000, 1 << 20]))
            checked += 1
            if got != expected:
                failures += 1
                print(f"case {case}: DIFFERENT ({sum(expected.values())} rows) {files}")
                print("  only TFX:", list(expected - got)[:2])
                print("  only fast:", list(got - expected)[:2])
    print(f"{checked} cases compared, {failures} different")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())

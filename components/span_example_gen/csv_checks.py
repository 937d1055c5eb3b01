"""File-level checks of a span's CSV files, before any of it is parsed by Beam.

Problems that would otherwise surface as a Beam stack trace deep inside ExampleGen (or worse,
silently drop rows) are reported here in one sentence that names the file, the line and what to
do. Content problems (a missing column, a wrong type, out-of-range values) are not errors here:
they reach ExampleValidator and the data gate, which explain them against the curated schema.
"""

from __future__ import annotations

import csv
import io

import tensorflow as tf

MAX_REPORTED_PROBLEMS = 5


class InvalidInputData(ValueError):
    """Input files that cannot be read as CSV; the message says which file, where, and what to do."""


def _first_non_utf8(line: bytes) -> tuple[int, bytes]:
    try:
        line.decode("utf-8")
    except UnicodeDecodeError as e:
        return e.start, line[e.start : e.start + 4]
    raise AssertionError("line decodes")


def check_csv_file(path: str) -> list[str]:
    """Problems that make `path` unreadable as a CSV file with a header; empty when fine.

    Reads the whole file once, as TFX's CSV reader would: records may span lines inside quotes.
    """
    problems: list[str] = []
    with tf.io.gfile.GFile(path, "rb") as f:
        data = f.read()
    if not data:
        return [f"{path} is empty (0 bytes): a CSV file needs a header row and data rows."]
    lines = data.splitlines(keepends=True)
    header_fields = None
    record_lines: list[str] = []
    record_start = 0
    quotes = 0
    data_rows = 0
    for number, raw in enumerate(lines, start=1):
        try:
            line = raw.decode("utf-8")
        except UnicodeDecodeError:
            offset, sample = _first_non_utf8(raw)
            problems.append(
                f"{path}, line {number}, column {offset + 1}: bytes that are not UTF-8 text "
                f"({sample!r}); save the file as UTF-8"
            )
            if len(problems) >= MAX_REPORTED_PROBLEMS:
                break
            continue
        if not record_lines:
            record_start = number
        record_lines.append(line)
        quotes += line.count('"')
        if quotes % 2:
            continue  # inside a quoted field that continues on the next line
        record = "".join(record_lines)
        record_lines, quotes = [], 0
        if not record.strip():
            continue
        if header_fields is None:
            header_fields = _fields(record)
            problems.extend(_header_problems(path, header_fields))
            continue
        data_rows += 1
        # Fast path for the common row without quotes: fields = commas + 1.
        n_fields = record.count(",") + 1 if '"' not in record else len(_fields(record))
        if n_fields != len(header_fields):
            problems.append(
                f"{path}, line {record_start}: {n_fields} fields, but the header has "
                f"{len(header_fields)}; fix the row (a stray comma or quote?) or remove it"
            )
        if len(problems) >= MAX_REPORTED_PROBLEMS:
            break
    if record_lines and len(problems) < MAX_REPORTED_PROBLEMS:
        problems.append(
            f"{path}, line {record_start}: a quoted field opened here is never closed "
            "(unterminated quote); close the quote or remove the row"
        )
    if header_fields is not None and data_rows == 0 and not problems:
        problems.append(f"{path} has a header row but no data rows; add the span's rows.")
    return problems


def _fields(record: str) -> list[str]:
    return next(csv.reader(io.StringIO(record)))


def _header_problems(path: str, fields: list[str]) -> list[str]:
    problems = []
    if any(not name.strip() for name in fields):
        problems.append(f"{path}, line 1: the header has an empty column name; name every column")
    duplicates = sorted({name for name in fields if fields.count(name) > 1})
    if duplicates:
        problems.append(f"{path}, line 1: the header repeats column(s) {', '.join(duplicates)}")
    return problems


def check_span_files(files: list[str]) -> None:
    """Raises InvalidInputData listing every problem of every file (up to a few per file)."""
    problems = [problem for path in files for problem in check_csv_file(path)]
    if problems:
        raise InvalidInputData(
            "The input data cannot be read:\n  - "
            + "\n  - ".join(problems)
            + "\nFix the file(s) and re-run; nothing was ingested."
        )

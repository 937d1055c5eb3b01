"""Reading the CSV for `init`, and checking the input before anything is written: the file is
UTF-8 CSV text with a usable header and data rows, the label column exists and varies, and the
--out folder is new or empty. Bad input raises InitError naming the file or column and what to do.
"""

from __future__ import annotations

import csv
import difflib
from pathlib import Path

import pandas as pd

from profiling.report import InitError

# How much of the file to look at for binary content (NUL bytes never occur in CSV text).
SNIFF_BYTES = 64 * 1024


def read_csv(csv_path: Path) -> pd.DataFrame:
    """Every cell as text (missing: NaN), header names verbatim; InitError if it is not a CSV."""
    if not csv_path.exists():
        raise InitError(f"--csv {csv_path}: no such file")
    if not csv_path.is_file():
        raise InitError(f"--csv {csv_path} is not a file; give the CSV file itself")
    if csv_path.stat().st_size == 0:
        raise InitError(f"{csv_path} is empty (0 bytes): a CSV needs a header row and data rows")
    with csv_path.open("rb") as f:
        start = f.read(SNIFF_BYTES)
    if not start.strip() and csv_path.stat().st_size <= SNIFF_BYTES:
        raise InitError(f"{csv_path} is blank: a CSV needs a header row and data rows")
    if b"\x00" in start:
        kind = " (it looks like a zip archive or an Excel workbook)" if start[:2] == b"PK" else ""
        raise InitError(
            f"{csv_path} is not a CSV text file: it holds binary data{kind}. Export the table as "
            "CSV (comma-separated, UTF-8) and give that file."
        )
    header = _header(csv_path)
    try:
        # All cells as text: types are decided the way TFX's CSV reader decides them (see
        # column_type), not by pandas, and values are written back exactly as they were.
        frame = pd.read_csv(csv_path, dtype=str, encoding="utf-8-sig", skip_blank_lines=True)
    except UnicodeDecodeError as e:
        raise InitError(
            f"{csv_path}, {_first_non_utf8(csv_path)}: bytes that are not UTF-8 text; save the "
            "file as UTF-8 CSV"
        ) from e
    except pd.errors.EmptyDataError as e:
        raise InitError(f"{csv_path} has no header row: it is blank") from e
    except pd.errors.ParserError as e:
        raise InitError(f"{csv_path} cannot be read as CSV: {_first_line(str(e))}") from e
    if len(frame.columns) < 2:
        raise InitError(
            f"{csv_path} has only one column ({(header or list(frame.columns))[0]!r}): "
            f"init needs comma-separated columns, a label and at least one feature"
            f"{_separator_hint(header)}"
        )
    if frame.empty:
        raise InitError(
            f"{csv_path} has a header row but no data rows; give a CSV with rows to learn from"
        )
    return frame


def _header(csv_path: Path) -> list[str]:
    """The header's names as written, checked for what TFX's CSV reader cannot take."""
    with csv_path.open("rb") as f:
        first_line = f.readline()
    try:
        # The first line only: a header name cannot span lines (checked below).
        header = next(csv.reader([first_line.decode("utf-8-sig")]), [])
    except UnicodeDecodeError as e:
        raise InitError(
            f"{csv_path}, line 1, column {e.start + 1}: bytes that are not UTF-8 text; save the "
            "file as UTF-8 CSV"
        ) from e
    except csv.Error as e:
        raise InitError(f"{csv_path} cannot be read as CSV: {e}") from e
    for position, name in enumerate(header, start=1):
        if not name.strip():
            raise InitError(
                f"{csv_path}: column {position} of the header has no name; name every column "
                "(or remove the unnamed one, such as an index a spreadsheet added)"
            )
        if any(c in name for c in ',"\r\n'):
            # TFX's CsvExampleGen splits the header line at every comma and does not unquote it.
            raise InitError(
                f"{csv_path}: the column name {name!r} holds a comma, quote or line break, which "
                "TFX's CSV reader cannot take in a header; rename the column"
            )
        if name != name.strip():
            raise InitError(
                f"{csv_path}: the column name {name!r} starts or ends with a space; remove the "
                "space(s) in the header (TFX's CSV reader drops them at the ends of the header "
                "line, and they are easy to miss in the profile)"
            )
    repeated = sorted({name for name in header if header.count(name) > 1})
    if repeated:
        raise InitError(
            f"{csv_path}: the header repeats the column name(s) {', '.join(map(repr, repeated))};"
            " give every column its own name"
        )
    return header


def _first_non_utf8(csv_path: Path) -> str:
    """Where the first bytes that are not UTF-8 are: 'line N, column M (bytes)'."""
    with csv_path.open("rb") as f:
        for number, line in enumerate(f, start=1):
            try:
                line.decode("utf-8")
            except UnicodeDecodeError as e:
                return f"line {number}, column {e.start + 1} ({line[e.start : e.start + 4]!r})"
    return "somewhere"


def _first_line(text: str) -> str:
    return text.strip().splitlines()[0] if text.strip() else text


def _separator_hint(header: list[str]) -> str:
    for separator, name in ((";", "semicolons"), ("\t", "tabs"), ("|", "pipes")):
        if header and separator in header[0]:
            return f" (its header looks separated by {name}: save it with commas)"
    return ""


def check_label_column(frame: pd.DataFrame, label: str, csv_path: Path) -> None:
    if label not in frame.columns:
        columns = list(frame.columns)
        lower = {c.lower(): c for c in columns}
        close = [lower[label.lower()]] if label.lower() in lower else []
        close = close or difflib.get_close_matches(label, columns, n=1, cutoff=0.6)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        shown = ", ".join(map(repr, columns[:30])) + (" ..." if len(columns) > 30 else "")
        raise InitError(
            f"--label {label!r} is not a column of {csv_path}.{hint} Its columns: {shown}"
        )
    values = frame[label].dropna()
    if values.empty:
        raise InitError(
            f"{csv_path}: the label column {label!r} is empty in every row; give the column "
            "that holds what to predict"
        )
    if values.nunique() == 1:
        raise InitError(
            f"{csv_path}: the label column {label!r} has only one value ({values.iloc[0]!r}) in "
            f"its {len(values)} labeled rows: there is nothing to learn. Give a label with at "
            "least two values."
        )


def check_out_dir(out_dir: Path) -> None:
    if out_dir.exists() and not out_dir.is_dir():
        raise InitError(f"--out {out_dir} is a file; give a folder for the new profile")
    if out_dir.is_dir() and any(out_dir.iterdir()):
        raise InitError(
            f"--out {out_dir} already exists and is not empty; give a new folder (init never "
            "overwrites a profile)"
        )

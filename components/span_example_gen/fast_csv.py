"""A vectorized CSV-to-tf.Example conversion, byte for byte what TFX's CsvExampleGen produces.

TFX 1.16's `_CsvToExample` (tfx/components/example_gen/csv_example_gen/executor.py) parses every
line with Python's `csv` module (tfx_bsl's `ParseCSVLine`), infers each column's type over all
rows of the split (tfx_bsl's `ColumnTypeInferrer`) and builds each tf.Example cell by cell in a
Python DoFn (`_ParsedCsvToTfExample`): about 120-150 s per million rows on the DirectRunner. This
module does the same work on whole blocks of rows: pyarrow's C++ CSV reader splits the rows,
Arrow compute kernels and numpy infer the types and convert the values, and the protobuf wire
format of every example is assembled column by column. The result is the example's
*deterministic* serialization (map entries sorted by feature name), the bytes TFX's
`_PartitionFn` hashes to split train from eval, so the split of every row is TFX's own. (The bytes
TFX writes are `SerializeToString()` without `deterministic`, whose map order protobuf's C++ map
randomizes per message: the same example, in an order that changes from run to run.)

What TFX emits, and so this module: a column is INT when every non-empty cell parses as
`int(cell)` within int64, else FLOAT when every one parses as `float(cell)`, else STRING; a column
with no non-empty cell has no type (an empty `Feature`). An empty cell is an empty list of the
column's type (`int64_list {}`, ...). FLOAT values are Python floats stored as float32 (protobuf's
conversion); STRING values are the cell's bytes as they are (spaces included).

Only files whose parsing cannot differ from Python's `csv` module take this path (`fast_path_problem`:
no quote character, no NUL byte, no carriage return outside a CRLF line ending, no line longer
than the `csv` module's field size limit); a span with any other file is read by TFX's own
transform. Cells the vectorized parsers are not sure of (anything but plain decimal numbers) are
typed and converted with Python's `int`/`float` and protobuf, as TFX does.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable, Iterator
from typing import NamedTuple

import apache_beam as beam
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pa_csv
import tensorflow as tf
from tfx.utils import io_utils
from tfx_bsl.coders import csv_decoder

from components import tfx_private

ColumnType = csv_decoder.ColumnType
UNKNOWN, INT, FLOAT, STRING = (
    ColumnType.UNKNOWN,
    ColumnType.INT,
    ColumnType.FLOAT,
    ColumnType.STRING,
)


def _infer_value_type(cell: bytes) -> ColumnType:
    """TFX's own type of one cell, for the cells the vectorized checks below leave undecided
    (components/tfx_private.py)."""
    return tfx_private.infer_csv_value_type(cell)


# A range of a file, of this many bytes at most, is one Beam element.
RANGE_BYTES = 32 * 2**20
# Rows converted at once inside a range (bounds the memory of one conversion).
BATCH_ROWS = 65536
_CHECK_BLOCK_BYTES = 64 * 2**20

# Cells whose type and value the vectorized path decides: plain decimal integers of at most 18
# digits (always within int64, parsed alike by Arrow and by Python's `int`) and plain decimal
# fractions (Arrow's and Python's `float` both round them correctly to the nearest double).
# Everything else non-empty (a sign '+', spaces, '_', exponents, 'nan', long integers, text) is
# decided by Python, cell value by cell value, exactly as TFX decides it.
_SIMPLE_INT = r"^-?[0-9]{1,18}$"
_SIMPLE_FRACTION = r"^-?(?:[0-9]+\.[0-9]*|\.[0-9]+)$"
_FLT_MAX = float(np.finfo(np.float32).max)


def fast_path_problem(path: str) -> str | None:
    """Why `path` must be read by TFX's own transform, or None when this module reads it exactly.

    Without quotes, every line feed ends a record and every comma ends a field, for Python's
    `csv` module as for Arrow's reader. The checks run on the raw bytes, a block at a time.
    """
    limit = csv.field_size_limit()
    with tf.io.gfile.GFile(path, "rb") as f:
        if not f.readline().strip():
            return "the first line is blank"
        f.seek(0)  # the header too: TFX reads it with its own split on commas
        offset = 0  # of the block, from the start of the file
        line_start = 0  # of the line the block continues
        pending_cr = False  # the previous block ended with a carriage return
        while block := f.read(_CHECK_BLOCK_BYTES):
            if pending_cr and block[:1] != b"\n":
                return "carriage returns outside CRLF line endings"
            if b'"' in block:
                return "quoted fields"
            if b"\x00" in block:
                return "NUL bytes"
            data = np.frombuffer(block, dtype=np.uint8)
            carriage_returns = np.flatnonzero(data == 13)
            pending_cr = bool(carriage_returns.size) and carriage_returns[-1] == data.size - 1
            inner = carriage_returns[:-1] if pending_cr else carriage_returns
            if inner.size and not np.all(data[inner + 1] == 10):
                return "carriage returns outside CRLF line endings"
            line_feeds = np.flatnonzero(data == 10) + offset
            if line_feeds.size:
                starts = np.concatenate(([line_start], line_feeds[:-1] + 1))
                if int(np.max(line_feeds - starts)) > limit:
                    return "lines longer than the csv module's field size limit"
                line_start = int(line_feeds[-1]) + 1
            offset += data.size
            if offset - line_start > limit:
                return "lines longer than the csv module's field size limit"
        if pending_cr:
            return "carriage returns outside CRLF line endings"
    return None


def column_names(files: list[str]) -> list[str]:
    """The span's column names as TFX reads them (its `load_csv_column_names`: the first line,
    stripped, split on commas); every file must have the same header, as TFX requires."""
    names = io_utils.load_csv_column_names(files[0])
    for path in files[1:]:
        if io_utils.load_csv_column_names(path) != names:
            # TFX's own error for this case (`_CsvToExample.expand`).
            raise RuntimeError(f"Files in same split {files} have different header.")
    return names


class FileRange(NamedTuple):
    """Bytes [start, end) of a file: whole lines of its data rows (the header excluded)."""

    path: str
    start: int
    end: int


def file_ranges(path: str, range_bytes: int = RANGE_BYTES) -> list[FileRange]:
    """Splits a file's data rows (after its first line) into ranges that end at line feeds."""
    size = tf.io.gfile.stat(path).length
    ranges = []
    with tf.io.gfile.GFile(path, "rb") as f:
        start = len(f.readline())
        while start < size:
            end = start + range_bytes
            if end >= size:
                end = size
            else:
                f.seek(end)
                end += len(f.readline())  # to just after the next line feed
            ranges.append(FileRange(path, start, end))
            start = end
    return ranges


def _read_range(file_range: FileRange, names: list[str]) -> Iterator[pa.RecordBatch]:
    """The range's rows as RecordBatches of string columns, cells as they are in the file."""
    with tf.io.gfile.GFile(file_range.path, "rb") as f:
        f.seek(file_range.start)
        data = f.read(file_range.end - file_range.start)
    if not data:
        return
    table = pa_csv.read_csv(
        pa.BufferReader(data),
        read_options=pa_csv.ReadOptions(column_names=names, use_threads=False),
        # No quotes in the file (fast_path_problem); blank lines are skipped, as TFX does.
        parse_options=pa_csv.ParseOptions(delimiter=",", quote_char=False, ignore_empty_lines=True),
        convert_options=pa_csv.ConvertOptions(
            column_types={name: pa.string() for name in names},
            strings_can_be_null=False,
            quoted_strings_can_be_null=False,
        ),
    )
    del data
    yield from table.combine_chunks().to_batches(max_chunksize=BATCH_ROWS)


def _column_type(column: pa.Array, known: ColumnType) -> ColumnType:
    """The highest type of any cell of `column`, at least `known` (TFX's type order)."""
    if known == STRING:
        return STRING
    present = pc.not_equal(pc.binary_length(column), 0)
    if not pc.any(present).as_py():
        return known
    result = max(known, INT)
    is_int = pc.match_substring_regex(column, _SIMPLE_INT)
    undecided = pc.and_(present, pc.invert(is_int))
    if not pc.any(undecided).as_py():
        return result
    is_fraction = pc.match_substring_regex(column, _SIMPLE_FRACTION)
    if pc.any(pc.and_(undecided, is_fraction)).as_py():
        result = max(result, FLOAT)
    others = pc.filter(column, pc.and_(undecided, pc.invert(is_fraction)))
    for value in pc.unique(others).to_pylist():
        result = max(result, _infer_value_type(value.encode()))
        if result == STRING:
            break
    return result


def infer_types(
    batches: Iterable[pa.RecordBatch], names: list[str], known: dict[str, int] | None = None
) -> dict[str, int]:
    """Column name -> ColumnType (as int) over all rows of `batches`, as ColumnTypeInferrer."""
    types = {name: int((known or {}).get(name, UNKNOWN)) for name in names}
    for batch in batches:
        for name, column in zip(names, batch.columns, strict=True):
            types[name] = int(_column_type(column, ColumnType(types[name])))
    return types


def merge_types(accumulated: Iterable[dict[str, int]], names: list[str]) -> dict[str, int]:
    result = {name: int(UNKNOWN) for name in names}
    for types in accumulated:
        for name, value in types.items():
            result[name] = max(result[name], value)
    return result


# ---- The protobuf wire format ----------------------------------------------------------------
# tf.Example {features (1): Features {feature (1): map<string, Feature>}}; a map entry is a
# message {key (1): string, value (2): Feature}; Feature is one of bytes_list (1), float_list (2),
# int64_list (3), each a message with `value` (1; float and int64 packed).


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _length_delimited(field_tag: int, payload: bytes) -> bytes:
    return bytes([field_tag]) + _varint(len(payload)) + payload


def _varint_sizes(values: np.ndarray) -> np.ndarray:
    """Bytes of the varint of each uint64 value (1 to 10)."""
    sizes = np.ones(values.shape, dtype=np.int64)
    for shift in range(7, 64, 7):
        sizes += values >= (np.uint64(1) << np.uint64(shift))
    return sizes


def _varints(values: np.ndarray) -> pa.Array:
    """The varint encoding of each uint64 value, as a binary array."""
    sizes = _varint_sizes(values)
    offsets = np.zeros(values.size + 1, dtype=np.int32)
    np.cumsum(sizes, out=offsets[1:])
    buffer = np.empty(int(offsets[-1]), dtype=np.uint8)
    starts = offsets[:-1]
    remaining = values.copy()
    for index in range(10):
        rows = np.flatnonzero(sizes > index)
        if not rows.size:
            break
        more = (sizes[rows] > index + 1).astype(np.uint8) << 7
        buffer[starts[rows] + index] = (remaining[rows] & np.uint64(0x7F)).astype(np.uint8) | more
        remaining >>= np.uint64(7)
    return pa.Array.from_buffers(
        pa.binary(), values.size, [None, pa.py_buffer(offsets), pa.py_buffer(buffer)]
    )


def _fixed_width(data: np.ndarray, width: int) -> pa.Array:
    rows = data.size * data.itemsize // width
    offsets = np.arange(0, (rows + 1) * width, width, dtype=np.int32)
    return pa.Array.from_buffers(
        pa.binary(), rows, [None, pa.py_buffer(offsets), pa.py_buffer(np.ascontiguousarray(data))]
    )


def _scalar(value: bytes) -> pa.Scalar:
    return pa.scalar(value, type=pa.binary())


def _join(*parts) -> pa.Array:
    return pc.binary_join_element_wise(*parts, _scalar(b""))


def _entry(key: bytes, feature: bytes) -> bytes:
    """One map entry of Features, whole."""
    return _length_delimited(0x0A, _length_delimited(0x0A, key) + _length_delimited(0x12, feature))


def _present_and_values(column: pa.Array) -> tuple[np.ndarray, pa.Array]:
    present = pc.not_equal(pc.binary_length(column), 0)
    return present.to_numpy(zero_copy_only=False), present


def _int_entries(key: bytes, column: pa.Array) -> pa.Array:
    present_np, present = _present_and_values(column)
    simple = pc.match_substring_regex(column, _SIMPLE_INT).to_numpy(zero_copy_only=False)
    values = np.zeros(len(column), dtype=np.int64)
    simple_rows = np.flatnonzero(simple)
    if simple_rows.size:
        values[simple_rows] = pc.cast(pc.take(column, simple_rows), pa.int64()).to_numpy()
    for row in np.flatnonzero(present_np & ~simple):  # as TFX's `_int_handler`: int(cell)
        values[row] = int(column[row].as_py().encode())
    encoded = values.view(np.uint64)
    sizes = _varint_sizes(encoded)
    # The entry's bytes before the varint depend only on the varint's size (1 to 10).
    prefixes = pa.array(
        [
            _entry(key, b"\x1a" + bytes([size + 2, 0x0A, size]) + b"\x00" * size)[:-size]
            for size in range(1, 11)
        ],
        pa.binary(),
    )
    present_entries = _join(pc.take(prefixes, pa.array(sizes - 1)), _varints(encoded))
    return pc.if_else(present, present_entries, _scalar(_entry(key, b"\x1a\x00")))


def _float_entries(key: bytes, column: pa.Array) -> pa.Array:
    present_np, present = _present_and_values(column)
    simple = pc.or_(
        pc.match_substring_regex(column, _SIMPLE_INT),
        pc.match_substring_regex(column, _SIMPLE_FRACTION),
    ).to_numpy(zero_copy_only=False)
    doubles = np.zeros(len(column), dtype=np.float64)
    simple_rows = np.flatnonzero(simple)
    if simple_rows.size:
        doubles[simple_rows] = pc.cast(pc.take(column, simple_rows), pa.float64()).to_numpy()
    floats = doubles.astype(np.float32)
    # Python floats the vectorized path is unsure of go through protobuf's own conversion (it
    # differs from a plain cast just above the float32 range).
    other_rows = np.flatnonzero(present_np & ~simple)
    doubles[other_rows] = [float(column[int(row)].as_py().encode()) for row in other_rows]
    unsure = np.flatnonzero(
        (present_np & ~simple) | (np.isfinite(doubles) & (np.abs(doubles) > _FLT_MAX))
    )
    for row in unsure:
        serialized = tf.train.FloatList(value=[float(doubles[row])]).SerializeToString()
        floats[row] = np.frombuffer(serialized[2:6], dtype=np.float32)[0]
    prefix = _entry(key, b"\x12\x06\x0a\x04" + b"\x00" * 4)[:-4]
    present_entries = _join(_scalar(prefix), _fixed_width(floats.view(np.uint8), 4))
    return pc.if_else(present, present_entries, _scalar(_entry(key, b"\x12\x00")))


def _string_entries(key: bytes, column: pa.Array) -> pa.Array:
    _, present = _present_and_values(column)
    cells = column.cast(pa.binary())
    lengths = pc.binary_length(cells).to_numpy(zero_copy_only=False).astype(np.uint64)
    bytes_list = 1 + _varint_sizes(lengths).astype(np.uint64) + lengths  # BytesList {value}
    feature = 1 + _varint_sizes(bytes_list).astype(np.uint64) + bytes_list  # Feature {bytes_list}
    key_field = _length_delimited(0x0A, key)
    body = len(key_field) + 1 + _varint_sizes(feature).astype(np.uint64) + feature
    present_entries = _join(
        _scalar(b"\x0a"),
        _varints(body),
        _scalar(key_field + b"\x12"),
        _varints(feature),
        _scalar(b"\x0a"),
        _varints(bytes_list),
        _scalar(b"\x0a"),
        _varints(lengths),
        cells,
    )
    return pc.if_else(present, present_entries, _scalar(_entry(key, b"\x0a\x00")))


def encode_batch(batch: pa.RecordBatch, types: dict[str, int]) -> list[bytes]:
    """The deterministic serialization of the tf.Example TFX builds from each row of `batch`."""
    entries = []
    # Deterministic serialization orders map entries by key, compared as bytes.
    for name in sorted(batch.schema.names, key=lambda n: n.encode()):
        column, key = batch.column(name), name.encode()
        column_type = types[name]
        if column_type == INT:
            entries.append(_int_entries(key, column))
        elif column_type == FLOAT:
            entries.append(_float_entries(key, column))
        elif column_type == STRING:
            entries.append(_string_entries(key, column))
        else:  # no value anywhere in the column: an empty Feature
            entries.append(_scalar(_entry(key, b"")))
    if all(isinstance(entry, pa.Scalar) for entry in entries):
        features = pa.array([b"".join(e.as_py() for e in entries)] * batch.num_rows, pa.binary())
    else:
        features = _join(*entries)
    sizes = pc.binary_length(features).to_numpy(zero_copy_only=False).astype(np.uint64)
    examples = _join(_scalar(b"\x0a"), _varints(sizes), features)
    return examples.to_pylist()


# ---- Beam -----------------------------------------------------------------------------------


class _InferRangeTypes(beam.DoFn):
    def __init__(self, names: list[str]):
        self._names = names

    def process(self, element: tuple[str, int, int]) -> Iterator[dict[str, int]]:
        yield infer_types(_read_range(FileRange(*element), self._names), self._names)


class _MergeTypes(beam.CombineFn):
    def __init__(self, names: list[str]):
        self._names = names

    def create_accumulator(self) -> dict[str, int]:
        return merge_types([], self._names)

    def add_input(self, accumulator, types):
        return merge_types([accumulator, types], self._names)

    def merge_accumulators(self, accumulators):
        return merge_types(accumulators, self._names)

    def extract_output(self, accumulator):
        return accumulator


class _EncodeRange(beam.DoFn):
    def __init__(self, names: list[str]):
        self._names = names

    def process(self, element: tuple[str, int, int], types: dict[str, int]) -> Iterator[bytes]:
        for batch in _read_range(FileRange(*element), self._names):
            yield from encode_batch(batch, types)


class CsvToSerializedExamples(beam.PTransform):
    """The files of one split (a span) -> serialized tf.Examples, TFX's `_CsvToExample` in
    content; column types are inferred over all of the files, as TFX does per split."""

    def __init__(self, files: list[str], range_bytes: int = RANGE_BYTES):
        super().__init__()
        self._files = list(files)
        self._range_bytes = range_bytes

    def expand(self, pipeline: beam.Pipeline) -> beam.PCollection:
        names = column_names(self._files)
        # Plain tuples: Beam would give a NamedTuple a schema coder of its own making.
        ranges = [tuple(r) for path in self._files for r in file_ranges(path, self._range_bytes)]
        file_ranges_pc = pipeline | "Ranges" >> beam.Create(ranges, reshuffle=len(ranges) > 1)
        types = beam.pvalue.AsSingleton(
            file_ranges_pc
            | "InferTypes" >> beam.ParDo(_InferRangeTypes(names))
            | "MergeTypes" >> beam.CombineGlobally(_MergeTypes(names))
        )
        return file_ranges_pc | "ToExamples" >> beam.ParDo(
            _EncodeRange(names), types
        ).with_output_types(bytes)

"""Protocol buffers' wire format, written and read directly, for the two messages the server
writes per request on its hot path: tf.Examples built from JSON rows (serving/tf_examples.py) and
the request log's PredictionLogs (serving/request_log.py). Building protobuf messages in Python
costs several times more; tests compare what these write with what protobuf builds.
(https://protobuf.dev/programming-guides/encoding/)
"""

from __future__ import annotations

from collections.abc import Iterator

_SMALL_VARINTS = [bytes((n,)) for n in range(128)]


def varint(n: int) -> bytes:
    """A non-negative integer as a base-128 varint (a negative int64 is given as n + 2**64)."""
    if n < 128:
        return _SMALL_VARINTS[n]
    out = bytearray()
    while n > 0x7F:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def length_delimited(tag: bytes, payload: bytes) -> bytes:
    """A length-delimited field (bytes, string, message) under an already encoded tag."""
    return tag + varint(len(payload)) + payload


def field(number: int, payload: bytes) -> bytes:
    """A length-delimited field by its number."""
    return length_delimited(varint(number << 3 | 2), payload)


def read_varint(data: bytes, at: int) -> tuple[int, int]:
    """The varint at `at`, and where the next field starts."""
    value = shift = 0
    while True:
        byte = data[at]
        at += 1
        value |= (byte & 0x7F) << shift
        shift += 7
        if byte < 0x80:
            return value, at


def fields(data: bytes) -> Iterator[tuple[int, int, object]]:
    """The top-level fields of a serialized message: (number, wire type, int or bytes)."""
    at = 0
    while at < len(data):
        key, at = read_varint(data, at)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, at = read_varint(data, at)
        elif wire == 1:
            value, at = data[at : at + 8], at + 8
        elif wire == 2:
            size, at = read_varint(data, at)
            value, at = data[at : at + size], at + size
        elif wire == 5:
            value, at = data[at : at + 4], at + 4
        else:
            raise ValueError(f"wire type {wire} is not readable here")
        yield number, wire, value

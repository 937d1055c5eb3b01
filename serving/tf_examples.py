"""Raw feature values given as JSON, typed by the model's schema, into tf.Examples.

The schema is the one the model was trained on (the curated schema, which the Trainer writes into
the SavedModel as assets.extra/schema.pbtxt). Features the schema leaves out of the SERVING
environment (the label) are not expected. A feature the schema says every example has
(presence.min_fraction 1.0) must be given; null or [] gives it no value, which the schema allows
unless it sets value_count.min. A value is a scalar or a list; a BYTES feature also takes TF
Serving's {"b64": "..."} for raw bytes.

Every mistake is a RequestError naming the feature (and the row), for a 400 answer.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import math
import struct
from collections.abc import Mapping

import tensorflow as tf
from tensorflow_metadata.proto.v0 import schema_pb2

from serving.wire_format import length_delimited, varint

SERVING_ENVIRONMENT = "SERVING"
_KINDS = {schema_pb2.INT: "int", schema_pb2.FLOAT: "float", schema_pb2.BYTES: "bytes"}
_KIND_WORDS = {"int": "an integer", "float": "a number", "bytes": "a string"}


class RequestError(ValueError):
    """A request that cannot be turned into model inputs; the message names the field."""


@dataclasses.dataclass(frozen=True)
class FeatureSpec:
    name: str
    kind: str  # int, float or bytes
    required: bool  # the key must be given (presence.min_fraction 1.0)
    min_values: int  # at least this many values (value_count.min)
    max_values: int | None  # at most this many values (value_count.max), when the schema says


def _in_serving(feature: schema_pb2.Feature, schema: schema_pb2.Schema) -> bool:
    """TFDV's reading of environments: a feature's own list, else the schema's default."""
    if feature.in_environment:
        return SERVING_ENVIRONMENT in feature.in_environment
    if SERVING_ENVIRONMENT in feature.not_in_environment:
        return False
    return not schema.default_environment or SERVING_ENVIRONMENT in schema.default_environment


def serving_features(schema: schema_pb2.Schema) -> dict[str, FeatureSpec]:
    """The features a serving request gives, by name, as the schema types them."""
    specs = {}
    for feature in schema.feature:
        if not _in_serving(feature, schema) or feature.type not in _KINDS:
            continue
        presence = feature.presence
        specs[feature.name] = FeatureSpec(
            name=feature.name,
            kind=_KINDS[feature.type],
            required=presence.HasField("min_fraction") and presence.min_fraction >= 1.0,
            min_values=feature.value_count.min,
            max_values=feature.value_count.max if feature.value_count.HasField("max") else None,
        )
    return specs


def _wrong_type(value, spec: FeatureSpec, where: str) -> RequestError:
    return RequestError(
        f"{where}: feature {spec.name!r} must be {_KIND_WORDS[spec.kind]} ({spec.kind.upper()} "
        f"in the model's schema), got {type(value).__name__} {value!r}"
    )


def _typed(value, spec: FeatureSpec, where: str):
    """One value as the schema's type, or a RequestError saying what was expected."""
    kind, kind_of_value = spec.kind, type(value)
    if kind == "float":
        if kind_of_value is float:
            return value
        if kind_of_value is int:
            return float(value)
        raise _wrong_type(value, spec, where)
    if kind == "int":
        if kind_of_value is float and value.is_integer():
            value = int(value)
        elif kind_of_value is not int:
            raise _wrong_type(value, spec, where)
        if not _INT64_MIN <= value <= _INT64_MAX:
            raise RequestError(
                f"{where}: feature {spec.name!r}: {value} is out of the range of a 64-bit integer "
                "(INT in the model's schema)"
            )
        return value
    if kind_of_value is str:
        try:
            return value.encode()
        except UnicodeEncodeError:  # a lone surrogate, such as "\ud800" in the JSON
            raise RequestError(
                f"{where}: feature {spec.name!r}: the string is not valid Unicode (it holds an "
                'unpaired surrogate); send the bytes as {"b64": "..."}'
            ) from None
    if isinstance(value, Mapping) and set(value) == {"b64"} and isinstance(value["b64"], str):
        try:
            return base64.b64decode(value["b64"], validate=True)
        except (binascii.Error, ValueError):  # ValueError: not ASCII
            raise RequestError(
                f"{where}: feature {spec.name!r}: 'b64' is not valid base64"
            ) from None
    raise _wrong_type(value, spec, where)


# -- the tf.Example wire format, written directly --------------------------------------------
#
# Building tf.train.Example messages in Python and serializing them cost about 80 us per row of
# 17 features, more than the model's own call on 64 rows. The format is small and stable
# (tensorflow/core/example/example.proto, feature.proto), so rows are written as bytes:
#   Example   { Features features = 1; }
#   Features  { map<string, Feature> feature = 1; }  (each entry: key = 1, value = 2)
#   Feature   { oneof kind { BytesList bytes_list = 1; FloatList float_list = 2;
#                            Int64List int64_list = 3; } }
#   BytesList { repeated bytes value = 1; }  FloatList / Int64List { packed value = 1; }
# tests/test_serving_units.py parses what this writes and compares it with the messages.

_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1
_pack_float = struct.Struct("<f").pack
_KIND_TAGS = {"bytes": b"\x0a", "float": b"\x12", "int": b"\x1a"}


def _float_list(values: list[float]) -> bytes:
    return length_delimited(b"\x0a", b"".join([_one_float(v) for v in values])) if values else b""


def _one_float(value: float) -> bytes:
    try:
        return _pack_float(value)
    except OverflowError:  # beyond float32: infinity, as protobuf's float fields store it
        return _pack_float(math.copysign(math.inf, value))


def _int64_list(values: list[int]) -> bytes:
    if not values:
        return b""
    packed = b"".join([varint(v & 0xFFFFFFFFFFFFFFFF) for v in values])
    return length_delimited(b"\x0a", packed)


def _bytes_list(values: list[bytes]) -> bytes:
    return b"".join([length_delimited(b"\x0a", v) for v in values])


_LIST_WRITERS = {"bytes": _bytes_list, "float": _float_list, "int": _int64_list}


class _FeatureWriter:
    """One feature's map entry in the Features message, with the parts that do not depend on the
    value computed once."""

    def __init__(self, spec: FeatureSpec):
        self.spec = spec
        key = spec.name.encode()
        self._key = length_delimited(b"\x0a", key)
        self._kind_tag = _KIND_TAGS[spec.kind]
        self._write_list = _LIST_WRITERS[spec.kind]
        self.empty = self._entry(b"")  # present with no value, as in the training data
        # A single value, the commonest case, is a constant prefix and the value's bytes: four
        # for a float, one to ten for an integer's varint.
        self._one_float_prefix = self._entry(b"\x0a\x04" + bytes(4))[:-4]
        self._one_int_prefixes = [b""] + [
            self._entry(b"\x0a" + bytes((size,)) + bytes(size))[:-size] for size in range(1, 11)
        ]

    def _entry(self, list_payload: bytes) -> bytes:
        feature = length_delimited(self._kind_tag, list_payload)
        return length_delimited(b"\x0a", self._key + length_delimited(b"\x12", feature))

    def entry(self, value, where: str) -> bytes:
        spec = self.spec
        if value is None:
            values = ()
        elif type(value) is list:
            values = value
        elif spec.min_values <= 1 and (spec.max_values is None or spec.max_values >= 1):
            kind = spec.kind
            if kind == "float":
                return self._one_float_prefix + _one_float(_typed(value, spec, where))
            if kind == "int":
                encoded = varint(_typed(value, spec, where) & 0xFFFFFFFFFFFFFFFF)
                return self._one_int_prefixes[len(encoded)] + encoded
            values = (value,)
        else:
            values = (value,)
        count = len(values)
        if count < spec.min_values:
            raise RequestError(
                f"{where}: feature {spec.name!r} needs at least {spec.min_values} value(s), got "
                f"{count}"
            )
        if spec.max_values is not None and count > spec.max_values:
            raise RequestError(
                f"{where}: feature {spec.name!r} takes at most {spec.max_values} value(s), got "
                f"{count}"
            )
        if not count:
            return self.empty
        return self._entry(self._write_list([_typed(v, spec, where) for v in values]))


class ExampleWriter:
    """JSON objects of raw feature values, checked against the model's schema, as serialized
    tf.Examples: what a signature that parses examples takes."""

    def __init__(self, specs: Mapping[str, FeatureSpec]):
        self.specs = specs
        self._writers = [_FeatureWriter(spec) for spec in specs.values()]
        self._names = frozenset(specs)

    def serialize(self, features, where: str) -> bytes:
        """One serialized tf.Example, or a RequestError naming the feature and `where`."""
        if not isinstance(features, Mapping):
            raise RequestError(
                f"{where}: expected an object of feature values, got {type(features).__name__}"
            )
        if not self._names.issuperset(features):
            unknown = sorted(set(features) - self._names)
            raise RequestError(
                f"{where}: unknown feature {unknown[0]!r}: the model takes {sorted(self.specs)}"
                + (f" (and {len(unknown) - 1} more unknown)" if len(unknown) > 1 else "")
            )
        entries = []
        for writer in self._writers:
            name = writer.spec.name
            if name in features:
                entries.append(writer.entry(features[name], where))
            elif writer.spec.required:
                raise RequestError(
                    f"{where}: missing feature {name!r}, which the model's schema says every "
                    "example has (give null for no value)"
                )
        return length_delimited(b"\x0a", b"".join(entries)) if entries else b""


def to_example(features, specs: Mapping[str, FeatureSpec], where: str) -> tf.train.Example:
    """One tf.Example from one JSON object of feature values."""
    return tf.train.Example.FromString(ExampleWriter(specs).serialize(features, where))


def merged_with_context(context: Mapping | None, example, where: str) -> Mapping:
    """A classify/regress example with the request's context features (the example wins)."""
    if context is None:
        return example
    if not isinstance(example, Mapping):
        raise RequestError(
            f"{where}: expected an object of feature values, got {type(example).__name__}"
        )
    return {**context, **example}

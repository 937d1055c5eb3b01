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
from collections.abc import Mapping

import tensorflow as tf
from tensorflow_metadata.proto.v0 import schema_pb2

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


def _typed(value, spec: FeatureSpec, where: str):
    """One value as the schema's type, or a RequestError saying what was expected."""
    wrong = RequestError(
        f"{where}: feature {spec.name!r} must be {_KIND_WORDS[spec.kind]} ({spec.kind.upper()} "
        f"in the model's schema), got {type(value).__name__} {value!r}"
    )
    if spec.kind == "bytes":
        if isinstance(value, str):
            return value.encode()
        if isinstance(value, Mapping) and set(value) == {"b64"} and isinstance(value["b64"], str):
            try:
                return base64.b64decode(value["b64"], validate=True)
            except binascii.Error:
                raise RequestError(
                    f"{where}: feature {spec.name!r}: 'b64' is not valid base64"
                ) from None
        raise wrong
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise wrong
    if spec.kind == "int":
        if isinstance(value, float) and not value.is_integer():
            raise wrong
        return int(value)
    return float(value)


def to_example(features, specs: Mapping[str, FeatureSpec], where: str) -> tf.train.Example:
    """One tf.Example from one JSON object of feature values."""
    if not isinstance(features, Mapping):
        raise RequestError(
            f"{where}: expected an object of feature values, got {type(features).__name__}"
        )
    unknown = sorted(set(features) - set(specs))
    if unknown:
        raise RequestError(
            f"{where}: unknown feature {unknown[0]!r}: the model takes {sorted(specs)}"
            + (f" (and {len(unknown) - 1} more unknown)" if len(unknown) > 1 else "")
        )
    example = tf.train.Example()
    for name, spec in specs.items():
        if name not in features:
            if spec.required:
                raise RequestError(
                    f"{where}: missing feature {name!r}, which the model's schema says every "
                    "example has (give null for no value)"
                )
            continue
        value = features[name]
        values = [] if value is None else (list(value) if isinstance(value, list) else [value])
        if len(values) < spec.min_values:
            raise RequestError(
                f"{where}: feature {name!r} needs at least {spec.min_values} value(s), got "
                f"{len(values)}"
            )
        if spec.max_values is not None and len(values) > spec.max_values:
            raise RequestError(
                f"{where}: feature {name!r} takes at most {spec.max_values} value(s), got "
                f"{len(values)}"
            )
        typed = [_typed(v, spec, where) for v in values]
        kind_list = {"bytes": "bytes_list", "int": "int64_list", "float": "float_list"}[spec.kind]
        values_of_kind = getattr(example.features.feature[name], kind_list)
        values_of_kind.SetInParent()  # present even with no value, as in the training data
        values_of_kind.value.extend(typed)
    return example


def merged_with_context(context: Mapping | None, example, where: str) -> Mapping:
    """A classify/regress example with the request's context features (the example wins)."""
    if context is None:
        return example
    if not isinstance(example, Mapping):
        raise RequestError(
            f"{where}: expected an object of feature values, got {type(example).__name__}"
        )
    return {**context, **example}

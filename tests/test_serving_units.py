"""The serving layer's rules, in-process: JSON values typed by a schema, the request limits, and
version folders loaded only once complete."""

from __future__ import annotations

import asyncio
import base64
import time

import grpc
import pytest
from google.protobuf import text_format
from tensorflow_metadata.proto.v0 import schema_pb2

from serving import rest_api, tf_examples
from serving.grpc_services import ServingError
from serving.repository import ModelRepository, State
from tests.fixtures import models

SCHEMA = text_format.Parse(
    """
    feature { name: "fare" type: FLOAT value_count { min: 1 max: 1 }
              presence { min_fraction: 1.0 } }
    feature { name: "hour" type: INT value_count { max: 1 } presence { min_fraction: 1.0 } }
    feature { name: "company" type: BYTES presence { min_fraction: 0.5 } }
    feature { name: "tips" type: FLOAT not_in_environment: "SERVING" }
    default_environment: "TRAINING"
    default_environment: "SERVING"
    """,
    schema_pb2.Schema(),
)
SPECS = tf_examples.serving_features(SCHEMA)


def test_the_label_is_not_a_serving_feature_and_presence_sets_what_is_required():
    assert sorted(SPECS) == ["company", "fare", "hour"]
    assert (SPECS["fare"].required, SPECS["fare"].min_values) == (True, 1)
    assert (SPECS["hour"].required, SPECS["hour"].min_values) == (True, 0)
    assert SPECS["company"].required is False


def test_values_become_the_schemas_types():
    example = tf_examples.to_example(
        {"fare": 12, "hour": 7.0, "company": {"b64": base64.b64encode(b"\xff").decode()}},
        SPECS,
        "row",
    )
    features = example.features.feature
    assert list(features["fare"].float_list.value) == [12.0]
    assert list(features["hour"].int64_list.value) == [7]
    assert list(features["company"].bytes_list.value) == [b"\xff"]
    no_hour = tf_examples.to_example({"fare": 1.5, "hour": None}, SPECS, "row")
    assert no_hour.features.feature["hour"].HasField("int64_list")  # present, with no value
    assert "company" not in no_hour.features.feature


@pytest.mark.parametrize(
    ("row", "message"),
    [
        ({"hour": 1}, "row: missing feature 'fare'"),
        ({"fare": None, "hour": 1}, "feature 'fare' needs at least 1 value(s), got 0"),
        ({"fare": [1.0, 2.0], "hour": 1}, "feature 'fare' takes at most 1 value(s), got 2"),
        ({"fare": "1.5", "hour": 1}, "feature 'fare' must be a number (FLOAT"),
        ({"fare": 1.0, "hour": 7.5}, "feature 'hour' must be an integer (INT"),
        ({"fare": 1.0, "hour": True}, "feature 'hour' must be an integer"),
        ({"fare": 1.0, "hour": 1, "company": 3}, "feature 'company' must be a string (BYTES"),
        ({"fare": 1.0, "hour": 1, "company": {"b64": "%%"}}, "'b64' is not valid base64"),
        ({"fare": 1.0, "hour": 1, "tips": 2.0}, "unknown feature 'tips': the model takes"),
        (["not", "an", "object"], "row: expected an object of feature values, got list"),
    ],
)
def test_each_mistake_names_the_feature(row, message):
    with pytest.raises(tf_examples.RequestError) as raised:
        tf_examples.to_example(row, SPECS, "row")
    assert message in str(raised.value)


def _api(**limits) -> rest_api.RestApi:
    return rest_api.RestApi(backend=None, limits=rest_api.Limits(**limits))


def test_a_request_past_its_deadline_gets_deadline_exceeded():
    api = _api(max_concurrent=1, request_timeout=0.3)

    async def ask():
        return await api.run(lambda: time.sleep(1.5), time.monotonic())

    with pytest.raises(ServingError) as raised:
        asyncio.run(ask())
    assert raised.value.code == grpc.StatusCode.DEADLINE_EXCEEDED
    assert rest_api.HTTP_STATUS[raised.value.code] == 504
    assert api.in_flight == 0
    api.shutdown()


def test_requests_past_the_in_flight_limit_get_resource_exhausted():
    api = _api(max_concurrent=1, max_in_flight=2, request_timeout=10)

    async def ask_three():
        started = time.monotonic()
        return await asyncio.gather(
            *(api.run(lambda: time.sleep(0.3) or "answered", started) for _ in range(3)),
            return_exceptions=True,
        )

    answers = asyncio.run(ask_three())
    assert answers[:2] == ["answered", "answered"]
    assert isinstance(answers[2], ServingError)
    assert answers[2].code == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert rest_api.HTTP_STATUS[answers[2].code] == 429
    api.shutdown()


def test_a_version_folder_is_loaded_only_once_its_files_stop_changing(tmp_path):
    base = tmp_path / "model"
    models.save_predict_model(base / "3")
    repository = ModelRepository("m", str(base))
    repository.scan()  # first sight: not loaded yet, the copy may still be going on
    with pytest.raises(LookupError):
        repository.get()
    (base / "3" / "extra.txt").write_text("still copying")
    repository.scan()  # changed since the last scan: still not loaded
    with pytest.raises(LookupError):
        repository.get()
    repository.scan()  # unchanged: loaded
    assert repository.get().version == 3
    assert [(v.version, v.state) for v in repository.statuses()] == [(3, State.AVAILABLE)]

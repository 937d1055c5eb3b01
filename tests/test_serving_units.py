"""The serving layer's rules, in-process: JSON values typed by a schema, the request limits, and
version folders loaded only once complete."""

from __future__ import annotations

import asyncio
import base64
import concurrent.futures
import json
import socket
import threading
import time

import grpc
import numpy as np
import pytest
import tensorflow as tf
from google.protobuf import text_format
from tensorflow_metadata.proto.v0 import schema_pb2

from serving import rest_api, tf_examples, warmup
from serving.batching import Batcher, BatchingOptions, QueueFull
from serving.grpc_services import ServingError
from serving.inference import Inference
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


# ---- tf.Examples written as bytes equal the protobuf messages --------------------------------
WIDE_SCHEMA = text_format.Parse(
    """
    feature { name: "f" type: FLOAT }
    feature { name: "i" type: INT }
    feature { name: "b" type: BYTES }
    """,
    schema_pb2.Schema(),
)
WIDE_SPECS = tf_examples.serving_features(WIDE_SCHEMA)


def _built_by_protobuf(row: dict) -> tf.train.Example:
    example = tf.train.Example()
    for name, value in row.items():
        values = [] if value is None else value if isinstance(value, list) else [value]
        feature = example.features.feature[name]
        if name == "f":
            feature.float_list.SetInParent()
            feature.float_list.value.extend(values)
        elif name == "i":
            feature.int64_list.SetInParent()
            feature.int64_list.value.extend(int(v) for v in values)
        else:
            feature.bytes_list.SetInParent()
            feature.bytes_list.value.extend(
                base64.b64decode(v["b64"]) if isinstance(v, dict) else v.encode() for v in values
            )
    return example


@pytest.mark.parametrize(
    "row",
    [
        {"f": 1.5, "i": 7, "b": "Flash Cab"},
        {"f": -0.0, "i": -1, "b": ""},
        {"f": 3, "i": 2.0, "b": "é€😀" * 50},  # an int as a float, a float as an int, long text
        {"f": 1e40, "i": 2**63 - 1, "b": {"b64": base64.b64encode(bytes(range(256))).decode()}},
        {"f": [0.1, 2.5, -1e-30], "i": [-(2**63), 0, 127, 128, 300], "b": ["a", "b" * 200]},
        {"f": None, "i": [], "b": None},
        {"i": 5},
        {},
    ],
)
def test_the_bytes_written_parse_to_the_example_protobuf_builds(row):
    written = tf_examples.ExampleWriter(WIDE_SPECS).serialize(row, "row")
    assert tf.train.Example.FromString(written) == _built_by_protobuf(row)


def test_an_integer_beyond_64_bits_is_a_request_error_not_a_crash():
    with pytest.raises(tf_examples.RequestError) as raised:
        tf_examples.ExampleWriter(WIDE_SPECS).serialize({"i": 2**63}, "instances[3]")
    assert "instances[3]: feature 'i': 9223372036854775808 is out of the range" in str(raised.value)


def test_a_body_nested_deeper_than_json_readers_go_is_a_bad_request():
    body = b'{"instances": ' + b"[" * 5000 + b"]" * 5000 + b"}"
    with pytest.raises(ServingError) as raised:
        rest_api._body_object(body)
    assert raised.value.code == grpc.StatusCode.INVALID_ARGUMENT
    assert "nests JSON arrays or objects too deeply" in raised.value.message
    # NaN and Infinity, which TF Serving takes, are still read (by the standard library).
    assert rest_api._body_object(b'{"instances": [NaN, Infinity]}')["instances"][1] == float("inf")


# ---- batching ----------------------------------------------------------------------------------
def _doubling(calls: list):
    """A runner that doubles its input `x`, recording the rows of each call."""

    def run(inputs):
        calls.append(len(inputs["x"]))
        if (inputs["x"] < 0).any():
            raise ValueError("negative input")
        return {"y": inputs["x"] * 2}

    return run


def _submit_all(batcher, runner, arrays, key="sig"):
    """Submits while the batch thread is held busy, so that the requests wait together."""
    gate = threading.Event()
    blocker = batcher.submit(
        "blocker", lambda _: gate.wait(5) and {"y": np.zeros(1)}, {"x": np.zeros(1)}
    )
    futures = [batcher.submit(key, runner, {"x": a}) for a in arrays]
    gate.set()
    blocker.result(5)
    return futures


def test_requests_waiting_together_run_as_one_call_and_each_gets_its_rows():
    batcher = Batcher(BatchingOptions(max_batch_size=8, num_batch_threads=1))
    calls: list[int] = []
    arrays = [np.array([1.0]), np.array([2.0, 3.0]), np.array([4.0]), np.array([5.0] * 5)]
    futures = _submit_all(batcher, _doubling(calls), arrays)
    results = [f.result(5)["y"].tolist() for f in futures]
    batcher.stop()
    assert results == [[2.0], [4.0, 6.0], [8.0], [10.0] * 5]
    assert calls == [4, 5]  # up to 8 rows: the first three requests, then the fourth


def test_a_request_with_bad_input_fails_alone_in_its_batch():
    batcher = Batcher(BatchingOptions(max_batch_size=8, num_batch_threads=1))
    calls: list[int] = []
    arrays = [np.array([1.0]), np.array([-1.0]), np.array([3.0])]
    futures = _submit_all(batcher, _doubling(calls), arrays)
    assert futures[0].result(5)["y"].tolist() == [2.0]
    with pytest.raises(ValueError, match="negative input"):
        futures[1].result(5)
    assert futures[2].result(5)["y"].tolist() == [6.0]
    batcher.stop()
    assert calls == [3, 1, 1, 1]  # the batch failed, then each request alone


def test_outputs_without_a_row_per_input_row_make_the_signature_run_unbatched():
    batcher = Batcher(BatchingOptions(max_batch_size=8, num_batch_threads=1))
    calls: list[int] = []

    def total(inputs):
        calls.append(len(inputs["x"]))
        return {"sum": np.array(inputs["x"].sum())}

    futures = _submit_all(batcher, total, [np.array([1.0]), np.array([2.0, 3.0])])
    assert [f.result(5)["sum"].tolist() for f in futures] == [1.0, 5.0]
    later = _submit_all(batcher, total, [np.array([4.0]), np.array([5.0])])
    assert [f.result(5)["sum"].tolist() for f in later] == [4.0, 5.0]
    batcher.stop()
    assert calls == [3, 1, 2, 1, 1]  # one try at a batch, then never again


def test_a_cancelled_request_leaves_its_queue_at_once_and_a_full_queue_refuses_more():
    batcher = Batcher(BatchingOptions(max_batch_size=2, max_enqueued_batches=2))
    calls: list[int] = []
    started, gate = threading.Event(), threading.Event()

    def blocking(_):
        started.set()
        gate.wait(5)
        return {"y": np.zeros(1)}

    blocker = batcher.submit("b", blocking, {"x": np.zeros(1)})
    assert started.wait(5)  # the batch thread is busy: what comes next waits
    waiting = [
        batcher.submit("sig", _doubling(calls), {"x": np.array([float(i)])}) for i in range(3)
    ]
    with pytest.raises(QueueFull, match="rows are waiting"):
        batcher.submit("sig", _doubling(calls), {"x": np.array([9.0, 9.0])})
    assert waiting[1].cancel()  # as a request past its deadline does
    # Its row no longer counts: the request refused a moment ago now fits.
    fits = batcher.submit("sig", _doubling(calls), {"x": np.array([9.0, 9.0])})
    gate.set()
    blocker.result(5)
    assert waiting[0].result(5)["y"].tolist() == [0.0]
    assert waiting[2].result(5)["y"].tolist() == [4.0]
    assert fits.result(5)["y"].tolist() == [18.0, 18.0]
    batcher.stop()
    assert calls == [2, 2]


def test_with_batching_off_each_request_is_its_own_call():
    batcher = Batcher(BatchingOptions(enabled=False))
    calls: list[int] = []
    futures = _submit_all(batcher, _doubling(calls), [np.array([1.0]), np.array([2.0])])
    assert [f.result(5)["y"].tolist() for f in futures] == [[2.0], [4.0]]
    batcher.stop()
    assert calls == [1, 1]


def test_a_real_model_batched_from_many_threads_answers_each_row_as_alone(tmp_path):
    models.save_predict_model(tmp_path / "m" / "1")
    repository = ModelRepository("m", str(tmp_path / "m"))
    repository.scan()
    repository.scan()
    inference = Inference(repository, BatchingOptions(max_batch_size=16))
    served = repository.get()

    def example(x: float) -> bytes:
        e = tf.train.Example()
        e.features.feature["x"].float_list.value.append(x)
        return e.SerializeToString()

    values = [i / 10 for i in range(-40, 40)]

    def ask(x: float) -> float:
        inputs = {"examples": np.array([example(x)], dtype=object)}
        return float(inference.run(served, "serving_default", inputs)["probabilities"][0][0])

    with concurrent.futures.ThreadPoolExecutor(16) as pool:
        answers = list(pool.map(ask, values))
    inference.stop()
    assert answers == pytest.approx([1 / (1 + np.exp(-x)) for x in values], rel=1e-6)
    assert inference.batcher.batches < len(values)  # some requests shared a call


# ---- warm-up requests --------------------------------------------------------------------------
def test_warmup_requests_are_replayed_before_a_version_is_available(tmp_path, caplog):
    version = models.save_predict_model(tmp_path / "m" / "1")
    example = tf.train.Example()
    example.features.feature["x"].float_list.value.append(0.5)
    path = warmup.write(
        str(version),
        {"serving_default": (warmup.PREDICT_METHOD, "examples")},
        [example.SerializeToString()] * 3,
        batch_sizes=(1, 64),
    )
    records = [
        warmup.prediction_log_pb2.PredictionLog.FromString(r)
        for r in tf.data.TFRecordDataset(path).as_numpy_iterator()
    ]
    assert [r.predict_log.request.inputs["examples"].tensor_shape.dim[0].size for r in records] == [
        1,
        3,
    ]
    repository = ModelRepository("m", str(tmp_path / "m"))
    with caplog.at_level("INFO", logger="serving"):
        repository.scan()
        repository.scan()
    assert repository.get().version == 1
    assert "Model m version 1: 2 warm-up requests replayed" in caplog.text


def test_a_warmup_request_the_version_cannot_answer_fails_its_load(tmp_path):
    version = models.save_predict_model(tmp_path / "m" / "1")
    warmup.write(str(version), {"classification": (warmup.CLASSIFY_METHOD, "inputs")}, [b""])
    repository = ModelRepository("m", str(tmp_path / "m"))
    repository.scan()
    repository.scan()
    (status,) = repository.statuses()
    assert status.state == State.END
    assert "WarmupError" in status.error and "'classification'" in status.error


def test_a_lone_request_runs_at_once_and_a_busy_batcher_declines():
    batcher = Batcher(BatchingOptions(max_batch_size=8))
    calls: list[int] = []
    runner = _doubling(calls)
    assert batcher.run_if_idle(runner, {"x": np.array([1.0])})["y"].tolist() == [2.0]
    gate = threading.Event()
    blocker = batcher.submit("b", lambda _: gate.wait(5) and {"y": np.zeros(1)}, {"x": np.zeros(1)})
    time.sleep(0.1)  # the batch thread has taken the blocker: a call is under way
    assert batcher.run_if_idle(runner, {"x": np.array([3.0])}) is None
    gate.set()
    blocker.result(5)
    batcher.stop()
    assert calls == [1]


# ---- the request log ---------------------------------------------------------------------------
def _logged(directory) -> list[tuple]:
    """(PredictionLog, RequestDetails) of every closed log file, oldest file first."""
    from tensorflow_serving.apis import prediction_log_pb2

    from serving import request_log

    records = []
    for path in sorted(directory.glob("requests-*.tfrecord"), key=lambda p: p.stat().st_mtime):
        for record in tf.data.TFRecordDataset(str(path)).as_numpy_iterator():
            records.append(
                (
                    prediction_log_pb2.PredictionLog.FromString(record),
                    request_log.read_details(record),
                )
            )
    return records


def test_logged_requests_are_prediction_logs_with_their_id_time_and_latency(tmp_path):
    from serving.request_log import RequestDetails, RequestLogger, RequestLogOptions

    logger = RequestLogger(RequestLogOptions(directory=str(tmp_path)), "taxi")
    inputs = {"examples": np.array([b"\x0a\x00", b""], dtype=object)}
    outputs = {"probabilities": np.array([[0.25], [0.75]], dtype=np.float32)}
    details = RequestDetails("req-1", 1_765_000_000_123_456, 1.5)
    logger.log_predict(details, 7, "serving_default", inputs, outputs)
    logger.stop()
    ((log, read),) = _logged(tmp_path)
    assert read == details
    assert log.log_metadata.model_spec.version.value == 7
    assert log.log_metadata.timestamp_secs == 1_765_000_000
    request, response = log.predict_log.request, log.predict_log.response
    assert request.model_spec.signature_name == "serving_default"
    assert tf.make_ndarray(request.inputs["examples"]).tolist() == [b"\x0a\x00", b""]
    assert tf.make_ndarray(response.outputs["probabilities"]).tolist() == [[0.25], [0.75]]
    counts = json.loads(next(tmp_path.glob(".counts-*.json")).read_text())
    assert (counts["logged"], counts["dropped"]) == (1, 0)


def test_sampling_rotation_and_the_disk_cap(tmp_path):
    from serving.request_log import RequestDetails, RequestLogger, RequestLogOptions

    options = RequestLogOptions(directory=str(tmp_path), sample_rate=0.5, file_mb=0.01, max_mb=0.03)
    logger = RequestLogger(options, "taxi", seed=3)
    big = {"examples": np.array([b"x" * 2000], dtype=object)}
    for i in range(200):
        logger.log_predict(RequestDetails(f"r{i}", i, 0.1), 1, "s", big, {"y": np.zeros((1, 1))})
    logger.stop()
    assert logger.logged + logger.sampled_out == 200
    assert 70 < logger.logged < 130  # about half
    files = list(tmp_path.glob("requests-*.tfrecord"))
    assert len(files) >= 2  # rotated by size, the oldest deleted for the cap
    assert sum(f.stat().st_size for f in files) <= 0.03 * 1024 * 1024
    kept = [d.request_id for _, d in _logged(tmp_path)]
    assert kept and kept == sorted(kept, key=lambda r: int(r[1:]))  # the newest kept, in order
    assert int(kept[0][1:]) > 0  # the first ones were deleted


def test_a_full_queue_drops_and_counts_without_blocking_the_request(tmp_path, monkeypatch):
    from serving import request_log
    from serving.request_log import RequestDetails, RequestLogger, RequestLogOptions

    release = threading.Event()
    slow = request_log.RequestLogger._record

    def held(self, entry):
        release.wait(10)
        return slow(self, entry)

    monkeypatch.setattr(request_log.RequestLogger, "_record", held)
    logger = RequestLogger(RequestLogOptions(directory=str(tmp_path), queue_size=5), "taxi")
    started = time.monotonic()
    for i in range(50):
        logger.log_predict(RequestDetails(f"r{i}", i, 0.1), 1, "s", {"x": np.zeros(1)}, {})
    assert time.monotonic() - started < 0.5  # the requests never waited for the writer
    release.set()
    logger.stop()
    assert logger.dropped >= 44 and logger.logged + logger.dropped == 50


def test_a_client_request_id_is_kept_when_usable():
    from serving.request_log import request_id_from

    assert request_id_from("order-42") == "order-42"
    for unusable in (None, "", "x" * 129, "bad\nid", "é"):
        made = request_id_from(unusable)
        assert len(made) == 32 and made != unusable


def test_a_rest_predict_written_as_bytes_parses_to_the_messages_protobuf_builds():
    from tensorflow_serving.apis import logging_pb2, predict_pb2, prediction_log_pb2
    from tensorflow_serving.config import logging_config_pb2

    from serving.request_log import predict_log_bytes

    inputs = {"examples": np.array([b"\x0a\x00", b"", "é".encode()], dtype=object)}
    outputs = {
        "probabilities": np.array([[0.25], [0.5], [1e-30]], dtype=np.float32),
        "classes": np.array([[0], [1], [2**40]], dtype=np.int64),
        "empty": np.zeros((3, 0), dtype=np.float32),
    }
    written = prediction_log_pb2.PredictionLog.FromString(
        predict_log_bytes("taxi", 1796573037, "serving_default", inputs, outputs, 0.25, 1765000000)
    )
    expected = prediction_log_pb2.PredictionLog()
    spec = expected.log_metadata.model_spec
    spec.name, spec.signature_name = "taxi", "serving_default"
    spec.version.value = 1796573037
    expected.log_metadata.sampling_config.CopyFrom(
        logging_config_pb2.SamplingConfig(sampling_rate=0.25)
    )
    expected.log_metadata.timestamp_secs = 1765000000
    request = predict_pb2.PredictRequest(model_spec=spec)
    request.inputs["examples"].CopyFrom(tf.make_tensor_proto(inputs["examples"]))
    response = predict_pb2.PredictResponse(model_spec=spec)
    for name, array in outputs.items():
        response.outputs[name].CopyFrom(tf.make_tensor_proto(array))
    expected.predict_log.request.CopyFrom(request)
    expected.predict_log.response.CopyFrom(response)
    assert isinstance(expected.log_metadata, logging_pb2.LogMetadata)
    # tf.make_tensor_proto writes numbers as tensor_content too: the same arrays either way.
    for name, array in outputs.items():
        got = tf.make_ndarray(written.predict_log.response.outputs[name])
        assert got.dtype == array.dtype and got.tolist() == array.tolist()
    got_inputs = tf.make_ndarray(written.predict_log.request.inputs["examples"]).tolist()
    assert got_inputs == list(inputs["examples"])
    assert written.log_metadata == expected.log_metadata
    assert written.predict_log.request.model_spec == request.model_spec
    assert written.predict_log.response.model_spec == response.model_spec
    assert written.predict_log.request.inputs["examples"] == request.inputs["examples"]


def test_a_port_a_server_just_left_is_free_at_once():
    """Connections a stopped server closed stay in TIME_WAIT for a minute; `serve` started again
    on its ports must not take that for another server listening (servers bind with
    SO_REUSEADDR, and so does the check)."""
    from deployment import serve

    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    client = socket.create_connection(("127.0.0.1", port))
    accepted, _ = listener.accept()
    accepted.close()  # the server closes first: its side of the connection is in TIME_WAIT
    client.recv(1)
    client.close()
    with pytest.raises(serve.ServeError, match=f"cannot listen on 127.0.0.1:{port}"):
        serve._port_free("127.0.0.1", port, "--rest-port")  # still listening: taken
    listener.close()
    serve._port_free("127.0.0.1", port, "--rest-port")

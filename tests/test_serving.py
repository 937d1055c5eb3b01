"""`serve` on the model the session's taxi run pushed (`e2e_runs`, hence the taxi-sample group).

Its version, copied to a model folder of its own, is the one the answers are checked on; the
reference for every answer is the SavedModel run in a fresh process with nothing but
TensorFlow, on tf.Examples built there from the same rows. The servers are real processes
(`run_local.py serve`) on free loopback ports; each is stopped by a signal, and none is left.
New versions, `models` and rollback are tested on the versions the session's runs push, in
test_release.py.
"""

from __future__ import annotations

import base64
import concurrent.futures
import http.client
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import psutil
import pytest
from google.protobuf import text_format
from tensorflow_metadata.proto.v0 import schema_pb2
from tensorflow_serving.apis import (
    classification_pb2,
    get_model_status_pb2,
    model_service_pb2_grpc,
    predict_pb2,
    prediction_service_pb2_grpc,
    regression_pb2,
)

from tests.conftest import (
    PIPELINE_NAME,
    PROJECT_ROOT,
    processes_of_this_session,
    read_rows,
    run_cli,
)
from tests.serving_helpers import Server

pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("taxi-sample")]

ROWS = 12  # rows of the unlabeled sample sent in each request
WORKERS = 2  # the servers' worker processes (serve's default is one per core)


def _servers_running() -> list[psutil.Process]:
    """This test process's model servers (another worker's InfraValidator or server is not
    ours), orphans included."""
    return processes_of_this_session("run_local.py serve", "serving.model_server")


@pytest.fixture(scope="module", autouse=True)
def no_server_left_running():
    yield
    deadline = time.time() + 15
    while _servers_running() and time.time() < deadline:
        time.sleep(0.2)
    assert _servers_running() == [], "a model server was left running"


# ---- the model a run pushed, and its answers computed with nothing but TensorFlow ----------------
@pytest.fixture(scope="module")
def pushed(e2e_runs, sample_data_dir, tmp_path_factory):
    """The session's first pushed version (the lowest number: test_release pushes more),
    copied into a model folder of its own (TF Serving's layout, <folder>/<PIPELINE_NAME>/
    <version>/, with no ML Metadata store: the latest version is served, as TF Serving does).
    The reference answers are computed from the version folder Pusher wrote."""
    assert e2e_runs["first"].returncode == 0, e2e_runs["first"].stderr
    model_dir = e2e_runs["output_dir"] / "serving_model" / PIPELINE_NAME
    version_dir = model_dir / str(min(int(p.name) for p in model_dir.iterdir() if p.name.isdigit()))
    model_dir = tmp_path_factory.mktemp("pushed") / PIPELINE_NAME
    shutil.copytree(version_dir, model_dir / version_dir.name)
    schema = text_format.Parse(
        (version_dir / "assets.extra" / "schema.pbtxt").read_text(), schema_pb2.Schema()
    )
    kinds = {f.name: schema_pb2.FeatureType.Name(f.type) for f in schema.feature}
    header, *rows = read_rows(sample_data_dir / "unlabeled" / "span-1" / "taxi.csv")
    typed_rows = []
    for row in rows[:ROWS]:
        typed = {}
        for column, cell in zip(header, row, strict=True):
            kind = kinds[column]
            typed[column] = (
                None
                if cell == ""
                else int(cell)
                if kind == "INT"
                else float(cell)
                if kind == "FLOAT"
                else cell
            )
        typed_rows.append(typed)
    return {
        "model_dir": model_dir,
        "version": int(version_dir.name),
        "rows": typed_rows,
        "kinds": kinds,
        "reference": _reference_outputs(version_dir, typed_rows, kinds),
    }


_REFERENCE = """
import json, sys
import tensorflow as tf

path, rows, kinds = sys.argv[1], json.loads(sys.argv[2]), json.loads(sys.argv[3])
examples = []
for row in rows:
    example = tf.train.Example()
    for name, value in row.items():
        feature = example.features.feature[name]
        values = [] if value is None else [value]
        if kinds[name] == "INT":
            feature.int64_list.value.extend(values)
        elif kinds[name] == "FLOAT":
            feature.float_list.value.extend(values)
        else:
            feature.bytes_list.value.extend(v.encode() for v in values)
    examples.append(example.SerializeToString())
model = tf.saved_model.load(path)
serialized = tf.constant(examples)
out = {
    "serialized": [e.hex() for e in examples],
    "probabilities": model.signatures["serving_default"](examples=serialized)["probabilities"]
    .numpy().tolist(),
    "scores": model.signatures["classification"](inputs=serialized)["scores"].numpy().tolist(),
    "regression": model.signatures["regression"](inputs=serialized)["outputs"].numpy().tolist(),
}
print(json.dumps(out))
"""


def _reference_outputs(version_dir: Path, rows: list[dict], kinds: dict) -> dict:
    result = subprocess.run(
        [sys.executable, "-c", _REFERENCE, str(version_dir), json.dumps(rows), json.dumps(kinds)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def server(pushed):
    running = Server(
        pushed["model_dir"], "--max-body-mb=0.05", "--max-concurrent=2", f"--workers={WORKERS}"
    )
    yield running
    if running.process.poll() is None:
        running.stop(signal.SIGKILL)


def _columns(rows: list[dict]) -> dict[str, list]:
    return {name: [row[name] for row in rows] for name in rows[0]}


# ---- REST answers equal the model's own ----------------------------------------------------------
def test_rest_predict_rows_and_columns_of_raw_features_equal_the_model(server, pushed):
    expected = pushed["reference"]["probabilities"]
    rows = server.post("predict", {"instances": pushed["rows"]})
    assert rows.status_code == 200, rows.text
    assert rows.json() == {"predictions": expected}
    columns = server.post("predict", {"inputs": _columns(pushed["rows"])})
    assert columns.status_code == 200, columns.text
    assert columns.json() == {"outputs": expected}
    pinned = server.post("predict", {"instances": pushed["rows"]}, version=pushed["version"])
    assert pinned.json() == {"predictions": expected}


def test_rest_predict_takes_base64_serialized_examples(server, pushed):
    encoded = [
        {"b64": base64.b64encode(bytes.fromhex(e)).decode()}
        for e in pushed["reference"]["serialized"]
    ]
    answer = server.post("predict", {"instances": encoded})
    assert answer.status_code == 200, answer.text
    assert answer.json() == {"predictions": pushed["reference"]["probabilities"]}
    named = server.post("predict", {"inputs": {"examples": encoded}})
    assert named.json() == {"outputs": pushed["reference"]["probabilities"]}


def test_rest_classify_and_regress_equal_the_model(server, pushed):
    reference = pushed["reference"]
    classified = server.post(
        "classify", {"signature_name": "classification", "examples": pushed["rows"]}
    )
    assert classified.status_code == 200, classified.text
    assert classified.json() == {
        "result": [[["0", s[0]], ["1", s[1]]] for s in reference["scores"]]
    }
    # The context's features apply to every example.
    context = {"company": pushed["rows"][0]["company"]}
    rest = [{k: v for k, v in row.items() if k != "company"} for row in pushed["rows"][:1]]
    with_context = server.post(
        "regress", {"signature_name": "regression", "context": context, "examples": rest}
    )
    # One row alone: the same value up to float rounding (a batch of one sums in another order).
    assert with_context.json()["result"] == [pytest.approx(reference["regression"][0][0], rel=1e-6)]
    regressed = server.post("regress", {"signature_name": "regression", "examples": pushed["rows"]})
    assert regressed.json() == {"result": [v[0] for v in reference["regression"]]}
    # serving_default is a predict signature: Classify refuses it, as TF Serving does.
    refused = server.post("classify", {"examples": pushed["rows"]})
    assert refused.status_code == 400
    assert "Expected classification signature method_name" in refused.json()["error"]


def test_rest_status_and_metadata(server, pushed):
    status = httpx.get(server.url).json()
    assert status == {
        "model_version_status": [
            {
                "version": str(pushed["version"]),
                "state": "AVAILABLE",
                "status": {"error_code": "OK", "error_message": ""},
            }
        ]
    }
    metadata = httpx.get(f"{server.url}/versions/{pushed['version']}/metadata").json()
    assert metadata["model_spec"]["version"] == str(pushed["version"])
    signatures = metadata["metadata"]["signature_def"]["signature_def"]
    assert signatures["serving_default"]["inputs"]["examples"]["dtype"] == "DT_STRING"
    assert signatures["classification"]["method_name"] == "tensorflow/serving/classify"
    assert signatures["regression"]["method_name"] == "tensorflow/serving/regress"


# ---- gRPC answers the same ----------------------------------------------------------------------
def test_grpc_predict_classify_regress_equal_the_model(server, pushed):
    import tensorflow as tf

    reference = pushed["reference"]
    examples = [tf.train.Example.FromString(bytes.fromhex(e)) for e in reference["serialized"]]
    stub = prediction_service_pb2_grpc.PredictionServiceStub(server.channel())
    predict = predict_pb2.PredictRequest()
    predict.model_spec.name = PIPELINE_NAME
    predict.inputs["examples"].CopyFrom(
        tf.make_tensor_proto([e.SerializeToString() for e in examples])
    )
    answer = stub.Predict(predict, timeout=30)
    assert tf.make_ndarray(answer.outputs["probabilities"]).tolist() == reference["probabilities"]
    assert answer.model_spec.version.value == pushed["version"]

    classify = classification_pb2.ClassificationRequest()
    classify.model_spec.name, classify.model_spec.signature_name = PIPELINE_NAME, "classification"
    classify.input.example_list.examples.extend(examples)
    scores = [
        [c.score for c in row.classes] for row in stub.Classify(classify).result.classifications
    ]
    assert scores == reference["scores"]

    regress = regression_pb2.RegressionRequest()
    regress.model_spec.name, regress.model_spec.signature_name = PIPELINE_NAME, "regression"
    regress.input.example_list.examples.extend(examples)
    values = [r.value for r in stub.Regress(regress).result.regressions]
    assert values == [v[0] for v in reference["regression"]]

    status = model_service_pb2_grpc.ModelServiceStub(server.channel()).GetModelStatus(
        get_model_status_pb2.GetModelStatusRequest(model_spec={"name": PIPELINE_NAME})
    )
    assert [(s.version, s.state) for s in status.model_version_status] == [
        (pushed["version"], get_model_status_pb2.ModelVersionStatus.AVAILABLE)
    ]


# ---- bad requests: a 4xx naming the field, and the server keeps serving -------------------------
def test_bad_requests_get_a_4xx_that_names_the_field_and_the_server_keeps_serving(server, pushed):
    row = pushed["rows"][0]
    missing = {k: v for k, v in row.items() if k != "trip_miles"}
    mistyped = {**row, "fare": "twelve dollars"}
    unknown = {**row, "tip_percent": 3}
    cases = {
        "unknown model": (
            httpx.post(
                server.url.replace(PIPELINE_NAME, "no-such-model") + ":predict",
                content=json.dumps({"instances": [row]}),
            ),
            404,
            "no-such-model",
        ),
        "unknown version": (server.post("predict", {"instances": [row]}, version=7), 404, "7"),
        "missing feature": (
            server.post("predict", {"instances": [row, missing]}),
            400,
            "instances[1]: missing feature 'trip_miles'",
        ),
        "mistyped feature": (
            server.post("predict", {"instances": [mistyped]}),
            400,
            "feature 'fare' must be a number",
        ),
        "unknown feature": (
            server.post("classify", {"signature_name": "classification", "examples": [unknown]}),
            400,
            "unknown feature 'tip_percent'",
        ),
        "malformed JSON": (
            server.post("predict", '{"instances": [{"fare": 1.0,'),
            400,
            "Malformed JSON",
        ),
        "neither format": (server.post("predict", {"rows": [row]}), 400, "'rows'"),
        "nested 5,000 deep": (
            server.post("predict", '{"instances": ' + "[" * 5000 + "]" * 5000 + "}"),
            400,
            "nests JSON arrays or objects too deeply",
        ),
        "version beyond 64 bits": (
            httpx.get(f"{server.url}/versions/99999999999999999999999"),
            400,
            "Version 99999999999999999999999 is out of range",
        ),
        "integer beyond 64 bits": (
            server.post("predict", {"instances": [{**row, "trip_seconds": 2**64}]}),
            400,
            "feature 'trip_seconds': 18446744073709551616 is out of the range",
        ),
        "oversized body": (
            server.post("predict", {"instances": [row] * 200}),
            413,
            "over the limit of 52428 bytes",
        ),
    }
    for case, (answer, code, named) in cases.items():
        assert answer.status_code == code, (case, answer.text)
        error = answer.json()["error"]
        assert named in error, (case, error)
    still = server.post("predict", {"instances": pushed["rows"]})
    assert still.status_code == 200
    assert still.json() == {"predictions": pushed["reference"]["probabilities"]}


def _mutations(value, rng: random.Random):
    """`value` with one part replaced by something a careless or hostile client might send."""
    odd = [
        None,
        True,
        -1,
        2**70,
        -(2**70),
        1e308,
        -0.0,
        "",
        "é" * 3,
        "\x00",
        [],
        {},
        [[[1]]],
        {"b64": "%%"},
        {"b64": 5},
        {"b64": "aGk="},
        [None],
        ["a", 1],
        {"": 1},
        "NaN",
    ]
    if isinstance(value, dict) and value and rng.random() < 0.8:
        key = rng.choice(list(value))
        return {**value, key: _mutations(value[key], rng)}
    if isinstance(value, list) and value and rng.random() < 0.8:
        i = rng.randrange(len(value))
        return value[:i] + [_mutations(value[i], rng)] + value[i + 1 :]
    return rng.choice(odd)


def test_fuzzed_requests_get_an_answer_or_a_4xx_never_a_5xx(server, pushed):
    """Valid requests of every kind, each with one part replaced (types, sizes, nesting, bad
    base64, huge numbers), and byte-level damage to the JSON: every answer is a 200 or a 4xx with
    an error that says something."""
    rng = random.Random(20261206)
    row = pushed["rows"][0]
    valid = [
        ("predict", {"instances": [row, pushed["rows"][1]]}),
        ("predict", {"inputs": _columns(pushed["rows"][:2])}),
        ("predict", {"signature_name": "serving_default", "instances": [{"b64": "aGk="}]}),
        ("classify", {"signature_name": "classification", "examples": [row], "context": {}}),
        ("regress", {"signature_name": "regression", "examples": [row]}),
    ]
    seen: dict[int, int] = {}
    with httpx.Client(timeout=60) as client:
        for i in range(400):
            verb, body = valid[i % len(valid)]
            text = json.dumps(_mutations(body, rng), allow_nan=True)
            if i % 4 == 3:  # damage the text itself
                cut = rng.randrange(len(text))
                text = (
                    text[:cut]
                    + rng.choice(["", "}", "[", "\\", "\ud800", "1e999"])
                    + text[cut + 1 :]
                )
            answer = client.post(
                f"{server.url}:{verb}", content=text.encode("utf-8", "surrogatepass")
            )
            seen[answer.status_code] = seen.get(answer.status_code, 0) + 1
            assert answer.status_code < 500, (text[:300], answer.text)
            if answer.status_code != 200:
                assert len(answer.json()["error"]) > 10, (text[:300], answer.text)
    assert seen.get(200) and seen.get(400), seen  # the fuzzing reached both outcomes


def test_concurrent_requests_batched_together_get_each_their_own_answers(server, pushed):
    """Rows asked one per request from many clients at once are batched with each other on
    the server; every client gets its own row's answer."""
    reference = pushed["reference"]["probabilities"]

    def ask(i: int) -> list:
        row = pushed["rows"][i % ROWS]
        answer = httpx.post(f"{server.url}:predict", json={"instances": [row]}, timeout=60)
        assert answer.status_code == 200, answer.text
        return answer.json()["predictions"][0]

    with concurrent.futures.ThreadPoolExecutor(24) as pool:
        answers = list(pool.map(ask, range(96)))
    for i, answer in enumerate(answers):
        # Batched with other rows, a row's sums may run in another order: equal to float rounding.
        assert answer == pytest.approx(reference[i % ROWS], rel=1e-5), i


def test_the_pushed_model_carries_warmup_requests_that_every_worker_replays(server, pushed):
    import tensorflow as tf

    from serving import warmup

    warmup_file = pushed["model_dir"] / str(pushed["version"]) / warmup.WARMUP_ASSET
    records = [
        warmup.prediction_log_pb2.PredictionLog.FromString(r)
        for r in tf.data.TFRecordDataset(str(warmup_file)).as_numpy_iterator()
    ]
    kinds = [r.WhichOneof("log_type") for r in records]
    assert kinds == ["predict_log"] * 2 + ["classify_log"] * 2 + ["regress_log"] * 2
    console = "".join(server.console)
    for worker in range(1, WORKERS + 1):
        assert f"worker {worker}: Model {PIPELINE_NAME} version {pushed['version']}: 6 warm-up" in (
            console
        )


def _workers_of(server: Server) -> list[psutil.Process]:
    return [
        p
        for p in psutil.Process(server.process.pid).children()
        if "serving.model_server" in " ".join(p.cmdline())
    ]


def test_a_worker_that_dies_is_started_again_while_the_others_answer(server, pushed):
    workers = _workers_of(server)
    assert len(workers) == WORKERS
    workers[0].kill()  # as the OOM killer would
    psutil.wait_procs(workers[:1], timeout=10)
    # Once it is gone (a connection queued on it in the instant it died is reset), new
    # connections go to the workers still listening.
    for _ in range(10):
        assert server.post("predict", {"instances": pushed["rows"]}).status_code == 200
    deadline = time.time() + 120
    while time.time() < deadline and len(_workers_of(server)) < WORKERS:
        time.sleep(0.5)
    while time.time() < deadline and "".join(server.console).count("is AVAILABLE") <= WORKERS:
        time.sleep(0.5)
    console = "".join(server.console)
    assert "exited with code -9; starting it again" in console, console
    assert console.count("is AVAILABLE") == WORKERS + 1, console
    assert {p.pid for p in _workers_of(server)} != {p.pid for p in workers}


SENT_WITH_IDS: dict[str, dict] = {}  # request id -> what was sent, for the request-log test


def test_every_answer_carries_a_request_id_the_clients_own_when_given(server, pushed):
    import tensorflow as tf

    rows = pushed["rows"][:3]
    answer = httpx.post(
        f"{server.url}:predict", json={"instances": rows}, headers={"X-Request-Id": "rest-7"}
    )
    assert answer.headers["X-Request-Id"] == "rest-7"
    SENT_WITH_IDS["rest-7"] = {"kind": "predict_log", "rows": rows}
    classified = httpx.post(
        f"{server.url}:classify",
        json={"signature_name": "classification", "examples": rows[:1]},
        headers={"X-Request-Id": "rest-8"},
    )
    assert classified.status_code == 200 and classified.headers["X-Request-Id"] == "rest-8"
    SENT_WITH_IDS["rest-8"] = {"kind": "classify_log", "rows": rows[:1]}
    refused = server.post("predict", {"rows": []})  # errors carry one too, a new one
    assert refused.status_code == 400 and len(refused.headers["X-Request-Id"]) == 32

    stub = prediction_service_pb2_grpc.PredictionServiceStub(server.channel())
    request = predict_pb2.PredictRequest()
    request.model_spec.name = PIPELINE_NAME
    serialized = [bytes.fromhex(e) for e in pushed["reference"]["serialized"][:2]]
    request.inputs["examples"].CopyFrom(tf.make_tensor_proto(serialized))
    _, call = stub.Predict.with_call(request, metadata=(("x-request-id", "grpc-9"),), timeout=30)
    assert dict(call.initial_metadata())["x-request-id"] == "grpc-9"
    SENT_WITH_IDS["grpc-9"] = {"kind": "predict_log", "serialized": serialized}


def test_sigterm_stops_the_server_gracefully(server):
    code, out, err = server.stop(signal.SIGTERM)
    assert code == 0, err
    assert out.rstrip().endswith("Stopped."), out
    assert "Traceback" not in out + err


def test_the_answered_requests_are_in_the_request_log_as_prediction_logs(server, pushed):
    """After the server stopped (its files closed): every worker's log, TF Serving's
    PredictionLogs, holds the requests sent with ids, as sent, with the version that answered;
    nothing was dropped."""
    import tensorflow as tf
    from tensorflow_serving.apis import prediction_log_pb2

    from serving import request_log

    assert server.process.poll() is not None, "the SIGTERM test stops the server first"
    assert not list(server.request_log.glob("*.open")), "a log file was left open"
    found = {}
    total = 0
    for path in server.request_log.glob("requests-*.tfrecord"):
        records, _ = request_log.read_records(str(path))  # the killed worker's may be cut short
        for record in records:
            total += 1
            details = request_log.read_details(record)
            assert details.latency_ms > 0 and details.time_micros > 1.7e15
            found[details.request_id] = prediction_log_pb2.PredictionLog.FromString(record)
    counts = [json.loads(p.read_text()) for p in server.request_log.glob(".counts-*.json")]
    assert len(counts) >= WORKERS  # the killed worker's, its successor's and the other's
    # Each worker's counts file says what it logged (the killed worker's, what it had when last
    # written): the files hold at least that, and nothing was dropped.
    assert sum(c["logged"] for c in counts) <= total and sum(c["dropped"] for c in counts) == 0
    assert total >= 96 + len(SENT_WITH_IDS)  # the concurrent test's 96 requests, and these
    for request_id, sent in SENT_WITH_IDS.items():
        logged = found[request_id]
        assert logged.WhichOneof("log_type") == sent["kind"], request_id
        assert logged.log_metadata.model_spec.version.value == pushed["version"]
        if sent["kind"] == "classify_log":
            examples = logged.classify_log.request.input.example_list.examples
            assert len(examples) == len(sent["rows"])
            assert len(logged.classify_log.response.result.classifications) == len(sent["rows"])
            continue
        request = logged.predict_log.request
        examples = [
            tf.train.Example.FromString(e) for e in tf.make_ndarray(request.inputs["examples"])
        ]
        if "serialized" in sent:
            assert examples == [tf.train.Example.FromString(e) for e in sent["serialized"]]
        else:
            assert len(examples) == len(sent["rows"])
            fare = [e.features.feature["fare"].float_list.value[0] for e in examples]
            assert fare == pytest.approx([r["fare"] for r in sent["rows"]])
        scores = tf.make_ndarray(logged.predict_log.response.outputs["probabilities"])
        assert scores.shape == (len(examples), 1)


def test_serve_uses_a_tensorflow_model_server_on_path_with_the_same_answers(pushed, tmp_path):
    """A `tensorflow_model_server` on PATH serves gRPC (here a stand-in that runs the project's
    gRPC server in its own process, as the binary would), REST goes through it."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    fake = bin_dir / "tensorflow_model_server"
    fake.write_text(
        f'#!/bin/sh\ncd "{PROJECT_ROOT}" && exec "{sys.executable}" -m serving.model_server "$@"\n'
    )
    fake.chmod(0o755)
    env = {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}"}
    server = Server(pushed["model_dir"], env=env)
    try:
        answer = server.post("predict", {"instances": pushed["rows"]})
        assert answer.json() == {"predictions": pushed["reference"]["probabilities"]}
        bad = server.post("predict", {"instances": [{**pushed["rows"][0], "fare": "x"}]})
        assert bad.status_code == 400 and "feature 'fare'" in bad.json()["error"]
    finally:
        code, out, err = server.stop(signal.SIGINT)
    assert code == 0, err
    assert f"Serving with {fake}" in out


def test_the_limits_hold_under_load_and_no_worker_outlives_a_killed_server(pushed):
    """32 clients at once with requests large enough to queue: beyond --max-in-flight they get
    429, past --request-timeout 504, an oversized body 413; the server answers normally after.
    Then the server itself is killed (SIGKILL, no chance to clean up): its workers stop too."""
    server = Server(
        pushed["model_dir"],
        f"--workers={WORKERS}",
        "--max-in-flight=6",
        "--request-timeout=0.1",
        "--max-body-mb=0.5",
    )
    big = json.dumps({"instances": pushed["rows"] * 60})  # 720 rows, about 330 KB
    assert 300_000 < len(big) < 500_000
    oversized = json.dumps({"instances": pushed["rows"] * 120})
    codes: list[int] = []

    def client(i: int) -> None:
        with httpx.Client(timeout=60) as http:
            for _ in range(4):
                body = oversized if i == 0 else big
                answer = http.post(f"{server.url}:predict", content=body)
                if answer.status_code != 200:
                    assert answer.json()["error"], answer.text
                codes.append(answer.status_code)

    try:
        with concurrent.futures.ThreadPoolExecutor(32) as pool:
            list(pool.map(client, range(32)))
        # 503 is the batch queue full (more rows waiting than --max-enqueued-batches hold), the
        # other answer to overload, as in TF Serving; every request gets an answer.
        assert set(codes) <= {200, 413, 429, 503, 504}, sorted(set(codes))
        assert {413, 429, 504} <= set(codes), sorted(set(codes))
        after = server.post("predict", {"instances": pushed["rows"]})
        assert after.json() == {"predictions": pushed["reference"]["probabilities"]}
        _an_oversized_body_is_refused_on_a_connection_that_stays_open(server, oversized)
        _a_body_slower_than_the_timeout_gets_504(server, big)
        workers = _workers_of(server)
        assert len(workers) == WORKERS
    finally:
        server.stop(signal.SIGKILL)
    gone, alive = psutil.wait_procs(workers, timeout=30)
    assert alive == [], "a worker outlived the killed server"


def _an_oversized_body_is_refused_on_a_connection_that_stays_open(server, oversized: str):
    """Up to twice the limit, the server reads the body to the end before refusing it: closing
    with the body unread would reset the connection, and the client might not see the 413."""
    connection = http.client.HTTPConnection("127.0.0.1", server.rest_port, timeout=30)
    try:
        connection.request("POST", f"{server.path}:predict", oversized)
        refused = connection.getresponse()
        assert refused.status == 413 and b"serve --max-body-mb" in refused.read()
        opened = connection.sock
        connection.request("GET", server.path)
        answer = connection.getresponse()
        assert answer.status == 200 and json.loads(answer.read())
        assert connection.sock is opened, "the connection was closed after the 413"
    finally:
        connection.close()


def _a_body_slower_than_the_timeout_gets_504(server, body: str):
    """A body that takes longer to arrive than --request-timeout is answered, not cut off."""
    data = body.encode()
    with socket.create_connection(("127.0.0.1", server.rest_port), timeout=30) as sock:
        sock.sendall(
            f"POST {server.path}:predict HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n"
            f"Content-Length: {len(data)}\r\n\r\n".encode()
            + data[:1000]
        )
        time.sleep(0.5)  # five times the server's --request-timeout
        sock.sendall(data[1000:])
        answer = sock.makefile("rb").read()
    head, _, content = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 504"), answer[:300]
    assert b"took longer than 0.1 s to arrive" in content, content


def test_serve_refuses_a_folder_without_versions(tmp_path):
    result = run_cli("serve", f"--model-dir={tmp_path}", timeout=120)
    assert result.returncode == 2
    assert f"--model-dir: {tmp_path} holds no version folder" in result.stderr

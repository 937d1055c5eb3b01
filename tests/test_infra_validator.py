"""InfraValidator without Docker: a real model server process loads and queries the model."""

from __future__ import annotations

import ipaddress
import json
import math
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import psutil
import pytest
from tfx.components.infra_validator import request_builder
from tfx.components.infra_validator.model_server_clients import tensorflow_serving_client
from tfx.dsl.components.base import base_executor
from tfx.proto import infra_validator_pb2
from tfx.types import standard_artifacts

from components.infra_validator import executor as iv_executor
from components.infra_validator import runner as iv_runner
from components.infra_validator.runner import LocalProcessRunner
from tests.conftest import processes_of_this_session, taxi_config
from tests.fixtures import models

FIXTURES = Path(__file__).parent / "fixtures"
MODEL_NAME = "taxi-tips"


def _server_processes() -> list[psutil.Process]:
    """Model server processes started from this test process (a real one or a fake from
    tests/fixtures), orphans included; not those of tests another worker runs."""
    return processes_of_this_session("serving.model_server", "fixtures/")


def _is_loopback(ip: str) -> bool:
    address = ipaddress.ip_address(ip)
    return (getattr(address, "ipv4_mapped", None) or address).is_loopback


def fake_server_binary(tmp_path: Path, fixture: str) -> str:
    """An executable that runs a fake model server from tests/fixtures with this interpreter."""
    script = tmp_path / fixture.replace(".py", "")
    script.write_text(f'#!/bin/sh\nexec "{sys.executable}" "{FIXTURES / fixture}" "$@"\n')
    script.chmod(0o755)
    return str(script)


@pytest.fixture(autouse=True)
def no_server_left_behind():
    yield
    deadline = time.time() + 10
    while _server_processes() and time.time() < deadline:
        time.sleep(0.2)
    assert not _server_processes(), "a model server process was left running"


def _run_executor(
    tmp_path: Path,
    model_uri: Path,
    examples=None,
    binary=None,
    timeout=30.0,
    max_loading=60,
    num_tries=1,
    signature_names=("serving_default",),
):
    blessing = standard_artifacts.InfraBlessing()
    blessing.uri = str(tmp_path / "blessing")
    os.makedirs(blessing.uri, exist_ok=True)
    exec_properties = {
        "serving_spec": json.dumps(
            {"tensorflow_serving": {"tags": ["latest"]}, "model_name": MODEL_NAME}
        ),
        "validation_spec": json.dumps(
            {"max_loading_time_seconds": max_loading, "num_tries": num_tries}
        ),
        "model_server_binary": binary,
        "request_timeout_seconds": timeout,
    }
    inputs = {"model": [models.model_artifact(model_uri)]}
    if examples is not None:
        inputs["examples"] = [examples]
        exec_properties["request_spec"] = json.dumps(
            {
                "tensorflow_serving": {"signature_names": list(signature_names)},
                "split_name": "eval",
                "num_examples": 3,
            }
        )
    context = base_executor.BaseExecutor.Context(tmp_dir=str(tmp_path / "tmp") + "/", unique_id="1")
    iv_executor.Executor(context).Do(inputs, {"blessing": [blessing]}, exec_properties)
    return blessing


@pytest.fixture
def pid_file(tmp_path, monkeypatch) -> Path:
    """Where the fake model servers record their pids."""
    path = tmp_path / "pids"
    monkeypatch.setenv("FAKE_SERVER_PID_FILE", str(path))
    return path


@pytest.fixture
def examples(tmp_path) -> standard_artifacts.Examples:
    return models.write_examples(tmp_path / "examples", [0.5, -1.0, 2.0, 0.0])


@pytest.mark.servers
def test_good_model_is_blessed_after_real_queries(tmp_path, examples):
    models.save_predict_model(tmp_path / "model" / "Format-Serving")
    blessing = _run_executor(tmp_path, tmp_path / "model", examples)
    assert blessing.get_int_custom_property("blessed") == 1
    reason = blessing.get_string_custom_property("reason")
    assert "answered 3 requests" in reason and "project model server" in reason
    assert (Path(blessing.uri) / "INFRA_BLESSED").exists()


@pytest.mark.servers
def test_a_server_that_dies_while_another_process_holds_its_port_fails_the_attempt_at_once(
    tmp_path, examples, monkeypatch
):
    """Between picking a free port and binding it, another process may take the port: the
    connection check then reaches that process, while the model server has exited. The attempt
    fails with the server's own reason as soon as it exits, not at the loading deadline (seen in
    a run: 120 s lost before the retry)."""
    models.save_predict_model(tmp_path / "model" / "Format-Serving")
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        monkeypatch.setattr(
            iv_runner.portpicker, "pick_unused_port", lambda: taken.getsockname()[1]
        )
        blessing = _run_executor(tmp_path, tmp_path / "model", examples, max_loading=120)
    assert blessing.get_int_custom_property("blessed") == 0
    reason = blessing.get_string_custom_property("reason")
    assert "The model server exited with code 1 before it was ready" in reason, reason
    assert "Failed to bind to address 127.0.0.1" in reason, reason


@pytest.mark.servers
def test_load_only_mode_without_examples(tmp_path):
    models.save_predict_model(tmp_path / "model" / "Format-Serving")
    blessing = _run_executor(tmp_path, tmp_path / "model")
    assert blessing.get_int_custom_property("blessed") == 1
    assert "LOAD_ONLY" in blessing.get_string_custom_property("reason")


@pytest.mark.servers
def test_model_that_does_not_load_is_not_blessed_with_the_load_error(tmp_path, examples):
    models.save_model_missing_its_variables(tmp_path / "model" / "Format-Serving")
    blessing = _run_executor(tmp_path, tmp_path / "model", examples, max_loading=60)
    assert blessing.get_int_custom_property("blessed") == 0
    reason = blessing.get_string_custom_property("reason")
    assert "the model did not load" in reason and "variables" in reason
    assert (Path(blessing.uri) / "INFRA_NOT_BLESSED").exists()


@pytest.mark.servers
def test_signature_that_rejects_the_requests_is_not_blessed(tmp_path, examples):
    models.save_predict_model(
        tmp_path / "model" / "Format-Serving", required_feature="label_only_in_training"
    )
    blessing = _run_executor(tmp_path, tmp_path / "model", examples)
    assert blessing.get_int_custom_property("blessed") == 0
    reason = blessing.get_string_custom_property("reason")
    assert "INVALID_ARGUMENT" in reason and "label_only_in_training" in reason


def test_missing_signature_is_not_blessed(tmp_path, examples):
    models.save_predict_model(tmp_path / "model" / "Format-Serving")
    blessing = _run_executor(
        tmp_path, tmp_path / "model", examples, signature_names=("no_such_signature",)
    )
    assert blessing.get_int_custom_property("blessed") == 0
    assert "no_such_signature" in blessing.get_string_custom_property("reason")


@pytest.mark.servers
def test_hung_server_is_killed_after_the_loading_deadline_with_bounded_retries(
    tmp_path, examples, pid_file
):
    models.save_predict_model(tmp_path / "model" / "Format-Serving")
    started = time.monotonic()
    blessing = _run_executor(
        tmp_path,
        tmp_path / "model",
        examples,
        binary=fake_server_binary(tmp_path, "hung_model_server.py"),
        max_loading=2,
        num_tries=2,
    )
    assert time.monotonic() - started < 30
    assert blessing.get_int_custom_property("blessed") == 0
    assert "did not accept connections" in blessing.get_string_custom_property("reason")
    pids = [int(p) for p in pid_file.read_text().split()]
    assert len(pids) == 2  # one server per attempt, no more
    assert not any(
        psutil.pid_exists(p) and psutil.Process(p).status() != psutil.STATUS_ZOMBIE for p in pids
    )


@pytest.mark.servers
def test_request_that_never_returns_times_out(tmp_path, examples, pid_file):
    models.save_predict_model(tmp_path / "model" / "Format-Serving")
    blessing = _run_executor(
        tmp_path,
        tmp_path / "model",
        examples,
        binary=fake_server_binary(tmp_path, "slow_model_server.py"),
        timeout=1.0,
        num_tries=1,
    )
    assert blessing.get_int_custom_property("blessed") == 0
    assert "DEADLINE_EXCEEDED" in blessing.get_string_custom_property("reason")


def test_configured_binary_that_does_not_exist_is_named(tmp_path, examples):
    models.save_predict_model(tmp_path / "model" / "Format-Serving")
    with pytest.raises(FileNotFoundError, match="no-such-tensorflow_model_server"):
        _run_executor(
            tmp_path, tmp_path / "model", examples, binary="/opt/no-such-tensorflow_model_server"
        )


@pytest.mark.servers
def test_project_server_listens_on_loopback_only_and_speaks_tf_serving_to_tfx_client(
    tmp_path, examples
):
    """TFX's own, unmodified request builder and TF Serving client against the project server."""
    models.save_classify_regress_model(tmp_path / "serving" / MODEL_NAME / "1")
    model = models.model_artifact(tmp_path / "model-artifact")
    os.makedirs(model.uri)
    os.symlink(tmp_path / "serving" / MODEL_NAME / "1", os.path.join(model.uri, "Format-Serving"))
    spec = infra_validator_pb2.RequestSpec(
        tensorflow_serving=infra_validator_pb2.TensorFlowServingRequestSpec(
            signature_names=["classify", "regress", "serving_default"]
        ),
        split_name="eval",
        num_examples=2,
    )
    requests = request_builder.build_requests(MODEL_NAME, model, examples, spec)
    assert {type(r).__name__ for r in requests} == {
        "ClassificationRequest",
        "RegressionRequest",
        "PredictRequest",
    }

    runner = LocalProcessRunner(str(tmp_path / "serving" / MODEL_NAME), MODEL_NAME, binary=None)
    try:
        runner.Start()
        runner.WaitUntilRunning(time.time() + 60)
        listening = [
            c.laddr
            for c in psutil.Process(runner.pid).net_connections()
            if c.status == psutil.CONN_LISTEN
        ]
        assert listening and all(_is_loopback(addr.ip) for addr in listening), listening
        client = tensorflow_serving_client.TensorFlowServingClient(runner.GetEndpoint(), MODEL_NAME)
        client.WaitUntilModelLoaded(time.time() + 60, polling_interval_sec=0.5)
        client.SendRequests(requests)  # raises on any RPC error
        classify = next(r for r in requests if type(r).__name__ == "ClassificationRequest")
        response = client._prediction_service.Classify(classify)  # noqa: SLF001 - inspect an answer
        examples_sent = classify.input.example_list.examples
        assert len(response.result.classifications) == len(examples_sent)
        x = examples_sent[0].features.feature[models.FEATURE].float_list.value[0]
        top = response.result.classifications[0].classes
        assert [c.label for c in top] == ["0", "1"]
        assert top[1].score == pytest.approx(1 / (1 + math.exp(-x)), rel=1e-5)
    finally:
        runner.Stop()


STOP_ON_SIGNAL = textwrap.dedent(
    """
    import sys, tempfile
    from pathlib import Path
    sys.path.insert(0, sys.argv[1])
    from tests.fixtures import models
    from tests.test_infra_validator import _run_executor
    tmp = Path(tempfile.mkdtemp())
    models.save_predict_model(tmp / "model" / "Format-Serving")
    examples = models.write_examples(tmp / "examples", [1.0])
    _run_executor(tmp, tmp / "model", examples, binary=sys.argv[2], max_loading=600)
    """
)


@pytest.mark.servers
@pytest.mark.parametrize(
    "sig", [signal.SIGTERM, signal.SIGINT, signal.SIGKILL], ids=["SIGTERM", "SIGINT", "SIGKILL"]
)
def test_server_is_stopped_when_the_pipeline_process_is_stopped(tmp_path, sig):
    pid_file = tmp_path / "pids"
    env = dict(os.environ, FAKE_SERVER_PID_FILE=str(pid_file))
    project_root = str(Path(__file__).resolve().parent.parent)
    pipeline_process = subprocess.Popen(
        [
            sys.executable,
            "-c",
            STOP_ON_SIGNAL,
            project_root,
            fake_server_binary(tmp_path, "hung_model_server.py"),
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        # As in a terminal: a shell starts background jobs (CI, `cmd &`) with SIGINT ignored,
        # and Python keeps an inherited "ignore", which would make Ctrl-C a no-op here.
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    deadline = time.time() + 120
    while not (pid_file.exists() and pid_file.read_text().strip()) and time.time() < deadline:
        time.sleep(0.2)
    server_pid = int(pid_file.read_text().split()[0])
    assert psutil.pid_exists(server_pid)
    pipeline_process.send_signal(sig)
    pipeline_process.wait(timeout=60)
    deadline = time.time() + 15
    while psutil.pid_exists(server_pid) and time.time() < deadline:
        time.sleep(0.2)
    assert not psutil.pid_exists(server_pid), (
        f"server {server_pid} survived {sig.name} of the pipeline"
    )


@pytest.mark.servers
def test_pusher_pushes_nothing_when_the_served_model_rejects_queries(tmp_path, examples):
    """A mini pipeline on LocalDagRunner: model and (positive) model blessing imported, the real
    InfraValidator and Pusher; the model's serving signature rejects the requests."""
    from tfx import v1 as tfx

    from cli.summary_text import format_summary
    from components.infra_validator.component import InfraValidator
    from metadata.run_summary import summarize_run
    from metadata.runs import run_contexts
    from metadata.store import StoreIndex, sqlite_connection_config

    models.save_predict_model(
        tmp_path / "model" / "Format-Serving", required_feature="label_only_in_training"
    )
    (tmp_path / "model_blessing").mkdir()
    serving_dir = tmp_path / "serving" / "iv_gate"
    (serving_dir / "1").mkdir(parents=True)
    (serving_dir / "1" / "saved_model.pb").write_bytes(b"the live model, untouched")
    artifacts = tfx.types.standard_artifacts

    model = tfx.dsl.Importer(
        source_uri=str(tmp_path / "model"), artifact_type=artifacts.Model
    ).with_id("model")
    model_blessing = tfx.dsl.Importer(
        source_uri=str(tmp_path / "model_blessing"),
        artifact_type=artifacts.ModelBlessing,
        custom_properties={"blessed": 1},
    ).with_id("model_blessing")
    eval_examples = tfx.dsl.Importer(
        source_uri=examples.uri,
        artifact_type=artifacts.Examples,
        properties={"split_names": '["eval"]'},
    ).with_id("examples")
    infra_validator = InfraValidator(
        model=model.outputs["result"],
        examples=eval_examples.outputs["result"],
        serving_spec=tfx.proto.ServingSpec(
            tensorflow_serving=tfx.proto.TensorFlowServing(tags=["latest"])
        ),
        validation_spec=tfx.proto.ValidationSpec(max_loading_time_seconds=60, num_tries=1),
        request_spec=tfx.proto.RequestSpec(
            tensorflow_serving=tfx.proto.TensorFlowServingRequestSpec(),
            split_name="eval",
            num_examples=2,
        ),
    )
    pusher = tfx.components.Pusher(
        model=model.outputs["result"],
        model_blessing=model_blessing.outputs["result"],
        infra_blessing=infra_validator.outputs["blessing"],
        push_destination=tfx.proto.PushDestination(
            filesystem=tfx.proto.PushDestination.Filesystem(base_directory=str(serving_dir))
        ),
    )
    metadata_path = tmp_path / "metadata.db"
    tfx.orchestration.LocalDagRunner().run(
        tfx.dsl.Pipeline(
            pipeline_name="iv_gate",
            pipeline_root=str(tmp_path / "root"),
            components=[model, model_blessing, eval_examples, infra_validator, pusher],
            metadata_connection_config=sqlite_connection_config(metadata_path),
        )
    )

    index = StoreIndex.open(metadata_path)
    summary = summarize_run(index, run_contexts(index.store, "iv_gate")[0].name)
    assert summary.infra_blessed is False
    assert (
        "INVALID_ARGUMENT" in summary.infra_reason
        and "label_only_in_training" in summary.infra_reason
    )
    assert summary.pushed_version is None
    assert sorted(p.name for p in serving_dir.iterdir()) == ["1"]
    assert (serving_dir / "1" / "saved_model.pb").read_bytes() == b"the live model, untouched"
    text = format_summary(summary, taxi_config(output_dir=tmp_path), tmp_path / "run.log", 1.0)
    assert "Serving:    NOT BLESSED by InfraValidator: failed 1 of 1 attempts" in text
    assert "Pushed:     nothing (the model was not blessed)" in text

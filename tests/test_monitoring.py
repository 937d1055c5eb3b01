"""`monitor` on real traffic: a real `serve` (two workers) of the model the session's taxi run pushed,
real HTTP and gRPC requests, labels posted to the server and given as a CSV, and the monitor run
as a user runs it. The run's store is copied first: the checks this module records stay out of
the store that other modules of the group count in.
"""

from __future__ import annotations

import csv
import datetime
import json
import random
import shutil
import signal
import time
from pathlib import Path

import httpx
import numpy as np
import pytest
import tensorflow as tf
from google.protobuf import text_format
from ml_metadata import metadata_store
from sklearn import metrics
from tensorflow_metadata.proto.v0 import schema_pb2
from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc

from metadata.store import StoreIndex, sqlite_connection_config
from tests.browser import visit
from tests.conftest import PIPELINE_NAME, PROJECT_ROOT, invoke, run_cli
from tests.serving_helpers import Server, grpc_example, typed_rows

pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("taxi-sample")]

ARTIFACTS_DIR = PROJECT_ROOT / "test-artifacts"
ROWS_PER_REQUEST = 8
CLEAN_ROWS = 240  # more than monitoring.min_rows (100), so every distribution is compared
UNKNOWN_IDS = ["no-such-request-1", "no-such-request-2", "no-such-request-3"]


class Traffic:
    """Requests sent through every API, with what came back: per row its request id, row index,
    the model's P(tip > 20%) and the true label."""

    def __init__(self, server: Server, kinds: dict[str, int]):
        self.server = server
        self.kinds = kinds
        self.sent: list[dict] = []  # {"request_id", "row", "score", "tips", "fare", "api"}

    def send(self, rows: list[dict]) -> None:
        for start in range(0, len(rows), ROWS_PER_REQUEST):
            chunk = rows[start : start + ROWS_PER_REQUEST]
            features = [{k: v for k, v in r.items() if k != "tips"} for r in chunk]
            api = ("predict", "classify", "grpc")[(start // ROWS_PER_REQUEST) % 3]
            if api == "predict":
                answer = self.server.post("predict", {"instances": features})
                assert answer.status_code == 200, answer.text
                request_id = answer.headers["X-Request-Id"]
                scores = [p[0] for p in answer.json()["predictions"]]
            elif api == "classify":
                answer = self.server.post(
                    "classify", {"signature_name": "classification", "examples": features}
                )
                assert answer.status_code == 200, answer.text
                request_id = answer.headers["X-Request-Id"]
                scores = [row[1][1] for row in answer.json()["result"]]
            else:
                request = predict_pb2.PredictRequest()
                request.model_spec.name = PIPELINE_NAME
                request.inputs["examples"].CopyFrom(
                    tf.make_tensor_proto([grpc_example(f, self.kinds) for f in features])
                )
                request_id = f"grpc-{len(self.sent)}"
                with self.server.channel() as channel:
                    stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
                    response = stub.Predict(
                        request, timeout=30, metadata=[("x-request-id", request_id)]
                    )
                scores = tf.make_ndarray(response.outputs["probabilities"])[:, 0].tolist()
            for index, (row, score) in enumerate(zip(chunk, scores, strict=True)):
                self.sent.append(
                    {
                        "request_id": request_id,
                        "row": index,
                        "score": score,
                        "tips": row["tips"],
                        "fare": row["fare"],
                        "api": api,
                    }
                )


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.timezone.utc)


@pytest.fixture(scope="module")
def monitored(e2e_runs, sample_data_dir, tmp_path_factory):
    """The pushed model served, clean traffic then drifted traffic, each in a window of its own."""
    assert e2e_runs["first"].returncode == 0, e2e_runs["first"].stderr
    output_dir = e2e_runs["output_dir"]
    home = tmp_path_factory.mktemp("monitoring")
    store = home / "metadata.db"
    shutil.copy(output_dir / "metadata.db", store)
    model_dir = output_dir / "serving_model" / PIPELINE_NAME
    (version_dir,) = [p for p in model_dir.iterdir() if p.name.isdigit()]
    schema = text_format.Parse(
        (version_dir / "assets.extra" / "schema.pbtxt").read_text(), schema_pb2.Schema()
    )
    # Rows drawn across the span: its file is ordered (its first rows all lack a census tract,
    # and have fewer big tips), and traffic like the training data is a fair sample of it.
    rows = random.Random(0).sample(
        typed_rows(sample_data_dir / "labeled" / "span-2" / "taxi.csv", schema), 2 * CLEAN_ROWS
    )
    kinds = {f.name: f.type for f in schema.feature}
    server = Server(model_dir, "--workers=2")
    try:
        clean = Traffic(server, kinds)
        clean_since = _now()
        clean.send(rows[:CLEAN_ROWS])
        clean_until = _now()
        drifted = Traffic(server, kinds)
        shifted = [
            {**r, "pickup_latitude": r["pickup_latitude"] + 1.5, "company": "Brand New Cab Co"}
            for r in rows[CLEAN_ROWS:]
        ]
        drifted.send(shifted)
        # The drifted window as long as the clean one at least: the clean one is its previous.
        drifted_until = max(_now(), clean_until + (clean_until - clean_since)) + datetime.timedelta(
            seconds=1
        )
        # Labels for the clean traffic's REST Predict rows, posted to the server.
        posted = [s for s in clean.sent if s["api"] == "predict"]
        answer = httpx.post(
            f"{server.url}/feedback",
            json=[
                {"request_id": s["request_id"], "label": s["tips"], "row": s["row"]} for s in posted
            ],
        )
        assert answer.status_code == 200 and answer.json() == {"recorded": len(posted)}
        time.sleep(2)  # the logs and the feedback flushed (within a second)
    finally:
        code, _, err = server.stop(signal.SIGTERM)
    assert code == 0, err
    # The other rows' labels as a CSV, with ids no request had.
    labels_csv = home / "labels.csv"
    with labels_csv.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["request_id", "row", "label"])
        for s in clean.sent:
            if s["api"] != "predict":
                writer.writerow([s["request_id"], s["row"], s["tips"]])
        for request_id in UNKNOWN_IDS:
            writer.writerow([request_id, 0, 1.0])
    return {
        "home": home,
        "store": store,
        "log_dir": server.request_log,
        "clean": clean,
        "drifted": drifted,
        "clean_window": (clean_since, clean_until),
        "drifted_window": (clean_until, drifted_until),
        "labels_csv": labels_csv,
        "version": int(version_dir.name),
    }


def _monitor(monitored, window, *args: str):
    since, until = window
    return run_cli(
        "monitor",
        f"--request-log-dir={monitored['log_dir']}",
        f"--metadata-uri={monitored['store']}",
        f"--since={since.isoformat()}",
        f"--until={until.isoformat()}",
        *args,
        timeout=300,
    )


def test_traffic_like_the_training_data_passes_and_labels_give_live_quality(monitored):
    result = _monitor(
        monitored, monitored["clean_window"], f"--labels={monitored['labels_csv']}", "--json"
    )
    assert result.returncode == 0, result.stdout + result.stderr
    report = json.loads(result.stdout)
    assert report["verdict"] == "ok" and report["findings"] == []
    assert report["requests"] == CLEAN_ROWS // ROWS_PER_REQUEST and report["rows"] == CLEAN_ROWS
    (version,) = report["versions"]
    assert version["version"] == monitored["version"]
    assert version["skew"]["judged"] and version["skew"]["distances"]
    assert version["prediction_drift"]["judged"]
    # Live quality equals a direct computation on the same rows and answers.
    sent = monitored["clean"].sent
    # The label as Transform derives it for training: in float32.
    targets = np.array(
        [float(np.float32(s["tips"]) > np.float32(s["fare"]) * np.float32(0.2)) for s in sent]
    )
    scores = np.array([s["score"] for s in sent])
    quality = version["quality"]
    assert quality["judged"] and quality["labelled_rows"] == CLEAN_ROWS
    assert quality["metrics"]["auc"] == pytest.approx(
        metrics.roc_auc_score(targets, scores), abs=1e-4
    )
    assert quality["metrics"]["accuracy"] == pytest.approx(
        np.mean((scores >= 0.5) == (targets == 1)), abs=1e-4
    )
    assert quality["evaluator"] == pytest.approx(
        version["reference"]["evaluator_metrics"]["auc"], abs=1e-4
    )
    labels = report["labels"]
    assert labels["joined"] == CLEAN_ROWS
    assert labels["unmatched_from_file"] == len(UNKNOWN_IDS)
    assert labels["unmatched_examples"] == sorted(UNKNOWN_IDS)
    # Recorded in ML Metadata, linked to the served version's push.
    index = StoreIndex.open(monitored["store"])
    execution = index.store.get_executions_by_id([report["execution_id"]])[0]
    assert execution.properties["verdict"].string_value == "ok"
    inputs = {
        e.path.steps[0].key: e.artifact_id
        for e in index.store.get_events_by_execution_ids([execution.id])
        if e.type == e.INPUT
    }
    pushed = [a for a in index.store.get_artifacts_by_type("PushedModel")]
    assert inputs["pushed_model"] in {a.id for a in pushed}
    assert Path(report["checks_folder"], "summary.json").is_file()


def test_drifted_traffic_alerts_naming_the_features_and_runs_the_alert_command(monitored):
    marker = monitored["home"] / "alerted.txt"
    result = _monitor(
        monitored, monitored["drifted_window"], f'--on-alert=echo "$MONITOR_SUMMARY" > {marker}'
    )
    assert result.returncode == 4, result.stdout + result.stderr
    out = result.stdout
    assert "ALERT:" in out
    lines = out.splitlines()
    assert any(
        line.strip().startswith("schema: pickup_latitude: Out-of-range values") for line in lines
    ), out
    assert any(line.strip().startswith("skew: company:") for line in lines), out
    # The previous window is the clean traffic: the unseen company drifted from it too.
    assert any(line.strip().startswith("drift: company:") for line in lines), out
    assert marker.read_text().strip().endswith("summary.json")
    # The report: self-contained, and it shows what the console said.
    report = Path(next(line for line in lines if line.startswith("Report:")).split(": ", 1)[1])
    html = report.read_text()
    assert "http://" not in html and "https://" not in html and "<script" not in html
    visited = visit(report.as_uri(), ARTIFACTS_DIR / "monitoring-report.png")
    assert visited.console_errors == [] and visited.requests == []
    text = " ".join(visited.text.split())
    assert "Verdict ALERT" in text
    assert "new live values: Brand New Cab Co" in text
    assert "of live values outside the training range" in text  # pickup_latitude
    assert "Live quality over time" in text
    # models shows the version's health; inspect lists both checks.
    models = invoke("models", f"--metadata-uri={monitored['store']}", "--json")
    (record,) = [r for r in json.loads(models.stdout) if r["version"] == monitored["version"]]
    assert record["health"]["verdict"] == "alert"
    assert any(f.startswith("skew: company: ") for f in record["health"]["findings"])
    listed = invoke("inspect", "monitoring", f"--metadata-uri={monitored['store']}")
    assert listed.exit_code == 0 and "ALERT" in listed.output and "OK" in listed.output


def test_a_window_without_requests_is_said_so(monitored):
    since = monitored["clean_window"][0] - datetime.timedelta(hours=3)
    result = invoke(
        "monitor",
        f"--request-log-dir={monitored['log_dir']}",
        f"--metadata-uri={monitored['store']}",
        f"--since={since.isoformat()}",
        f"--until={(since + datetime.timedelta(hours=1)).isoformat()}",
    )
    assert result.exit_code == 0, result.output
    assert "no requests logged between" in result.output


def test_a_log_file_cut_short_is_read_up_to_the_cut_and_named(monitored, tmp_path):
    (log_file,) = [
        p for p in Path(monitored["log_dir"]).glob("requests-*") if p.stat().st_size > 0
    ][:1]
    cut = tmp_path / log_file.name
    cut.write_bytes(log_file.read_bytes()[:-20])
    result = _monitor(
        {**monitored, "log_dir": tmp_path}, (monitored["clean_window"][0], _now()), "--json"
    )
    assert result.returncode in (0, 4), result.stdout + result.stderr
    report = json.loads(result.stdout)
    assert report["truncated_files"] == [str(cut)]
    assert 0 < report["requests"]


def test_unusable_input_gets_one_sentence_and_exit_2(monitored, tmp_path):
    window = [
        f"--since={monitored['clean_window'][0].isoformat()}",
        f"--until={monitored['drifted_window'][1].isoformat()}",
    ]
    bad_labels = tmp_path / "labels.csv"
    bad_labels.write_text("id,value\nx,1\n")
    result = invoke(
        "monitor",
        f"--request-log-dir={monitored['log_dir']}",
        f"--metadata-uri={monitored['store']}",
        f"--labels={bad_labels}",
        *window,
    )
    assert result.exit_code == 2
    assert f"--labels: {bad_labels} has no request_id or label column" in result.output
    # A store that never recorded the served version.
    empty = tmp_path / "empty.db"
    metadata_store.MetadataStore(sqlite_connection_config(empty))
    result = invoke(
        "monitor",
        f"--request-log-dir={monitored['log_dir']}",
        f"--metadata-uri={empty}",
        *window,
    )
    assert result.exit_code == 2
    assert f"version {monitored['version']} has no push recorded in ML Metadata" in result.output
    result = invoke("monitor", f"--request-log-dir={tmp_path / 'none'}", "--since=yesterday")
    assert result.exit_code == 2 and "--since: 'yesterday' is neither an ISO time" in result.output

"""A release from end to end, on versions real runs pushed to the session's taxi output dir
(`e2e_runs`; test_monitoring served its first version before this module runs, in the same group).

Two more runs push two candidates while `serve` runs under manual approval:
- a bad one: trained as the served model, its answers miscalibrated at export
  (tests/fixtures/miscalibrated_model.py), so the Evaluator blesses it (same AUC) and only its
  answers tell it apart. Held back until approved, then released as a shadow (the approval's
  choice over the policy's canary): every client is
  answered by the stable version while the guard sees the copies' answers, rolls the candidate
  back and re-pushes the stable version, with no request failing.
- a good one (trained one step longer): approved, released as a 50% canary, reachable by the
  `canary` and `stable` labels and split by a client's routing key; `serve` is restarted in the
  middle of its canary, resumes it from ML Metadata and its counts, and promotes it once the
  guard has its requests and labels.
Every decision is then read back from `models --json`, as ML Metadata recorded it.
"""

from __future__ import annotations

import json
import random
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest
import tensorflow as tf
import yaml
from google.protobuf import text_format
from tensorflow_metadata.proto.v0 import schema_pb2
from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc

from serving.routing import bucket
from tests.conftest import (
    FAST_RUN_ARGS,
    FAST_RUN_SETTINGS,
    PIPELINE_NAME,
    PROJECT_ROOT,
    invoke,
    run_cli,
)
from tests.serving_helpers import Server, grpc_example, typed_rows

pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("taxi-sample")]

MIN_REQUESTS = 40  # the candidate is judged after this many requests
MIN_LABELS = 10
CANARY_PERCENT = 50
MAX_ANSWER_DISTANCE = 0.3
# Client keys on either side of the split, by the hash serving/routing.py documents.
_KEYS = [f"client-{n}" for n in range(100)]
STICKY_KEYS = [k for k in _KEYS if bucket(k) < CANARY_PERCENT][:3] + [
    k for k in _KEYS if bucket(k) >= CANARY_PERCENT
][:3]


def _profile(folder: Path, *, strategy: str, run_fn: str | None = None) -> Path:
    """The taxi profile with a release policy for the test: manual approval, `strategy`, a
    decision after MIN_REQUESTS; blessed on AUC alone (a miscalibrated model keeps its AUC but
    not its accuracy at 0.5)."""
    shutil.copytree(PROJECT_ROOT / "profiles" / "taxi", folder)
    settings = yaml.safe_load((folder / "profile.yaml").read_text())
    settings["schema"] = str(PROJECT_ROOT / "schema" / "schema.pbtxt")
    settings["release"] = {
        "approval": "manual",
        "strategy": strategy,
        "canary_percent": CANARY_PERCENT,
        "min_requests": MIN_REQUESTS,
        "max_minutes": 10,
        # A candidate that is not worse is judged on about 20 of its answers against 20 of
        # the stable version's, on other rows: at the default 0.1, a chance difference beyond
        # the 95th-percentile bound rolls it back in about one test run in twenty. The
        # miscalibrated candidate's shadow answers differ by far more than 0.3.
        "guards": {"min_labels": MIN_LABELS, "max_answer_distance": MAX_ANSWER_DISTANCE},
    }
    settings["blessing"]["at_least"] = {"auc": 0.7}
    if run_fn:
        settings["code"] = {"run_fn": run_fn}
        shutil.copy(PROJECT_ROOT / "tests" / "fixtures" / "miscalibrated_model.py", folder)
    (folder / "profile.yaml").write_text(yaml.safe_dump(settings, sort_keys=False))
    return folder


def _versions(model_dir: Path) -> list[int]:
    return sorted(int(p.name) for p in model_dir.iterdir() if p.name.isdigit())


def _wait_for(server: Server, text: str, timeout: float = 60) -> str:
    deadline = time.time() + timeout
    while time.time() < deadline:
        found = [line for line in server.console if text in line]
        if found:
            return found[-1]
        assert server.process.poll() is None, server.stop()
        time.sleep(0.2)
    raise AssertionError(f"serve did not say {text!r} in {timeout} s:\n{''.join(server.console)}")


def _wait_loaded(server: Server, version: int, workers: int = 2) -> None:
    """Until every worker says the version is AVAILABLE (each loads it on its own scan)."""
    deadline = time.time() + 60
    while time.time() < deadline:
        loaded = [line for line in server.console if f"version {version} is AVAILABLE" in line]
        if len(loaded) >= workers:
            return
        time.sleep(0.2)
    raise AssertionError(f"version {version} was not loaded:\n{''.join(server.console)}")


class Client:
    """Single-row REST Predict requests, as clients send them; what came back."""

    def __init__(self, server: Server, rows: list[dict]):
        self.server, self.rows = server, rows
        self.answers: list[tuple[int, int, float | None]] = []  # (row index, status, score)
        self.http = httpx.Client(timeout=60)

    def ask(self, index: int, path: str = "", headers: dict | None = None) -> httpx.Response:
        features = {k: v for k, v in self.rows[index].items() if k != "tips"}
        return self.http.post(
            f"{self.server.url}{path}:predict",
            content=json.dumps({"instances": [features]}),
            headers=headers or {},
        )

    def send(self, indices, label: bool = False) -> None:
        for index in indices:
            answer = self.ask(index)
            score = answer.json()["predictions"][0][0] if answer.status_code == 200 else None
            self.answers.append((index, answer.status_code, score))
            if label and answer.status_code == 200:
                feedback = self.http.post(
                    f"{self.server.url}/feedback",
                    json={
                        "request_id": answer.headers["X-Request-Id"],
                        "label": self.rows[index]["tips"],
                    },
                )
                assert feedback.status_code == 200, feedback.text

    def until(
        self, server: Server, text: str, indices, label: bool = False, timeout: float = 90
    ) -> str:
        """Sends requests until serve says `text`, then ten more (the switch that follows).

        The decision lags the requests by up to a few seconds (the processes write their counts
        and the request log each second, and the controller reads them each second): once every
        index is sent, serve is given until `timeout` to say it."""
        indices = list(indices)
        deadline = time.time() + timeout
        for position, index in enumerate(indices):
            self.send([index], label)
            found = [line for line in server.console if text in line]
            if found:
                self.send(indices[position + 1 : position + 11], label)
                return found[-1]
        while time.time() < deadline:
            found = [line for line in server.console if text in line]
            if found:
                self.send(indices[:10], label)
                return found[-1]
            time.sleep(0.2)
        raise AssertionError(f"serve did not say {text!r}:\n{''.join(server.console)}")

    def close(self) -> None:
        self.http.close()


def _scores(server: Server, rows: list[dict], path: str) -> list[float]:
    answer = httpx.post(
        f"{server.url}{path}:predict",
        json={"instances": [{k: v for k, v in r.items() if k != "tips"} for r in rows]},
        timeout=60,
    )
    assert answer.status_code == 200, answer.text
    return [p[0] for p in answer.json()["predictions"]]


def _grpc_version(server: Server, row: dict, kinds: dict, *, key=None, label=None) -> int:
    request = predict_pb2.PredictRequest()
    request.model_spec.name = PIPELINE_NAME
    if label:
        request.model_spec.version_label = label
    features = {k: v for k, v in row.items() if k != "tips"}
    request.inputs["examples"].CopyFrom(tf.make_tensor_proto([grpc_example(features, kinds)]))
    metadata = [("x-routing-key", key)] if key else []
    with server.channel() as channel:
        stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
        return stub.Predict(request, timeout=30, metadata=metadata).model_spec.version.value


def _models(metadata: str) -> list[dict]:
    listed = invoke("models", "--json", metadata)
    assert listed.exit_code == 0, listed.output
    return json.loads(listed.output)


@pytest.fixture(scope="module")
def release(e2e_runs, sample_data_dir, tmp_path_factory):
    assert e2e_runs["first"].returncode == 0, e2e_runs["first"].stderr
    output_dir = e2e_runs["output_dir"]
    model_dir = output_dir / "serving_model" / PIPELINE_NAME
    metadata = f"--metadata-uri={output_dir / 'metadata.db'}"
    home = tmp_path_factory.mktemp("release")
    canary = _profile(home / "canary", strategy="canary")
    miscalibrated = _profile(
        home / "miscalibrated", strategy="canary", run_fn="miscalibrated_model.run_fn"
    )
    run_args = [f"--data-dir={sample_data_dir}", f"--output-dir={output_dir}"]
    first = _versions(model_dir)[-1]
    if _models(metadata)[0]["release"]["state"] == "pushed":  # test_monitoring did not serve it
        assert invoke("models", "approve", str(first), "--by=tester", metadata).exit_code == 0
    schema = text_format.Parse(
        (model_dir / str(first) / "assets.extra" / "schema.pbtxt").read_text(),
        schema_pb2.Schema(),
    )
    kinds = {f.name: f.type for f in schema.feature}
    rows = typed_rows(sample_data_dir / "labeled" / "span-2" / "taxi.csv", schema)
    rows = random.Random(1).sample(rows, 600)
    seen: dict = {"first": first, "kinds": kinds, "rows": rows, "metadata": metadata}

    # ---- the bad candidate: held back, approved, shadowed, rolled back ------------------------
    server = Server(model_dir, "--workers=2", f"--profile={canary}")
    client = Client(server, rows)
    good_run = None
    try:
        seen["first_scores"] = _scores(server, rows[:20], f"/versions/{first}")
        bad_run = run_cli(*run_args, f"--profile={miscalibrated}", *FAST_RUN_ARGS)
        assert bad_run.returncode == 0, bad_run.stdout + bad_run.stderr
        bad = _versions(model_dir)[-1]
        seen["bad"] = bad
        _wait_for(server, f"version {bad} is awaiting approval")
        seen["held"] = {
            "status": httpx.get(server.url).json(),
            "scores": _scores(server, rows[:20], ""),
            "canary_label": httpx.post(
                f"{server.url}/labels/canary:predict", json={"instances": []}
            ),
            "models": _models(metadata),
        }
        seen["refused"] = {
            "unknown": invoke("models", "approve", "12345", "--by=alice", metadata),
            "stable": invoke("models", "approve", str(first), "--by=alice", metadata),
            "reject_without_note": invoke("models", "reject", str(bad), "--by=alice", metadata),
        }
        approved = invoke(  # a shadow first, not the policy's canary
            "models",
            "approve",
            str(bad),
            "--by=alice",
            "--note=eval report read",
            "--strategy=shadow",
            metadata,
        )
        seen["approved"] = approved
        # The better model's run, meanwhile: pushed during the shadow, it waits its turn.
        longer = [a for a in FAST_RUN_ARGS if not a.startswith("--train-steps=")]
        longer.append(f"--train-steps={FAST_RUN_SETTINGS['train_steps'] + 1}")
        good_run = subprocess.Popen(
            [sys.executable, "run_local.py", *run_args, f"--profile={canary}", *longer],
            cwd=PROJECT_ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        _wait_for(server, f"version {bad} is shadow")
        _wait_loaded(server, bad)
        seen["shadow_labels"] = {
            "canary": _scores(server, rows[:20], "/labels/canary"),
            "stable": _scores(server, rows[:20], "/labels/stable"),
            "bad": _scores(server, rows[:20], f"/versions/{bad}"),
        }
        seen["rolled_back_line"] = client.until(
            server, f"version {bad} is rolled back", range(20, 20 + 10 * MIN_REQUESTS)
        )
        repushed_line = _wait_for(server, "now stable")
        seen["repushed"] = int(repushed_line.split(" re-pushed as version ")[1].split(",")[0])
        _wait_loaded(server, seen["repushed"])
        client.send(range(0, 20))  # the first rows again, once the re-push serves
        seen["shadow_answers"] = list(client.answers)
        sent = max(index for index, _, _ in client.answers) + 1
        seen["stable_scores"] = _scores(server, rows[:sent], f"/versions/{seen['repushed']}")
        client.close()

        # ---- the good candidate: approved, canary, serve restarted in its middle, promoted ----
        output, _ = good_run.communicate(timeout=900)
        assert good_run.returncode == 0, output
        good = int(output.split("Pushed:     version ")[1].split()[0])
        seen["good"] = good
        _wait_for(server, f"version {good} is awaiting approval")
        assert invoke("models", "approve", str(good), "--by=bob", metadata).exit_code == 0
        _wait_for(server, f"version {good} is canary")
        _wait_loaded(server, good)
        seen["canary_labels"] = {
            "canary": _grpc_version(server, rows[0], kinds, label="canary"),
            "stable": _grpc_version(server, rows[0], kinds, label="stable"),
        }
        seen["sticky"] = {
            key: [_grpc_version(server, rows[i], kinds, key=key) for i in range(3)]
            for key in STICKY_KEYS
        }
        seen["models_during_canary"] = invoke("models", metadata).output
        client = Client(server, rows)
        client.send(range(100, 100 + MIN_REQUESTS // 2), label=True)
        time.sleep(1.5)  # the workers' counts written
    finally:
        if good_run is not None and good_run.poll() is None:
            good_run.kill()
            good_run.communicate()
        code, _, err = server.stop(signal.SIGTERM)
    assert code == 0, err
    # Started again with one process (serving in `serve`'s own), as a restarted host might.
    server = Server(model_dir, "--workers=1", f"--profile={canary}")
    client.server = server
    try:
        seen["resumed_line"] = _wait_for(server, f"canary of version {good}:")
        seen["promoted_line"] = client.until(
            server,
            f"version {good} is stable: promoted",
            range(200, 200 + 10 * MIN_REQUESTS),
            label=True,
        )
        seen["canary_answers"] = list(client.answers)

        # ---- `models rollback` by hand: stable at once, while requests keep coming ----------
        client.answers.clear()
        asking = threading.Thread(target=client.send, args=(range(300, 300 + 150),))
        asking.start()
        try:
            seen["rolled_back_by_hand"] = invoke("models", "rollback", str(first), metadata)
            again = _wait_for(server, "(models rollback)")
            seen["by_hand"] = _versions(model_dir)[-1]
            assert f"version {seen['by_hand']} is stable" in again, again
            _wait_loaded(server, seen["by_hand"], workers=1)
        finally:
            asking.join()
        seen["by_hand_answers"] = list(client.answers)
        seen["by_hand_scores"] = _scores(server, rows[:20], "")
        seen["rollback_again"] = invoke("models", "rollback", str(first), metadata)
        (model_dir / "12345").mkdir()  # a version put there by hand: no push on record
        try:
            seen["rollback_unrecorded"] = invoke("models", "rollback", "12345", metadata)
        finally:
            (model_dir / "12345").rmdir()
    finally:
        client.close()
        code, out, err = server.stop(signal.SIGINT)
    assert code == 0, err
    seen["stopped_console"] = out
    seen["models"] = _models(metadata)
    return seen


def test_a_version_awaiting_approval_is_never_served(release):
    held, bad, first = release["held"], release["bad"], release["first"]
    assert [int(s["version"]) for s in held["status"]["model_version_status"]] == [first]
    assert held["scores"] == pytest.approx(release["first_scores"], abs=1e-6)
    assert held["canary_label"].status_code == 404
    assert "Unrecognized servable version label: canary" in held["canary_label"].text
    record = next(r for r in held["models"] if r["version"] == bad)
    assert record["release"]["state"] == "awaiting_approval" and not record["serving"]


def test_approvals_refused_with_one_sentence_and_recorded_with_who(release):
    refused = release["refused"]
    assert refused["unknown"].exit_code == 2
    assert "no pushed model version 12345 is recorded" in refused["unknown"].output
    assert refused["stable"].exit_code == 2
    assert f"version {release['first']} is already stable" in refused["stable"].output
    assert refused["reject_without_note"].exit_code == 2
    assert "--note" in refused["reject_without_note"].output
    assert release["approved"].exit_code == 0, release["approved"].output
    assert f"Version {release['bad']} approved by alice" in release["approved"].output
    bad = next(r for r in release["models"] if r["version"] == release["bad"])
    assert bad["release"]["approvals"][0]["by"] == "alice"
    assert bad["release"]["approvals"][0]["note"] == "eval report read"
    approval = next(c for c in bad["release"]["history"] if c["state"] == "approved")
    assert approval["strategy"] == "shadow"  # over the policy's canary


def test_shadow_answers_with_the_stable_version_only_and_rolls_a_bad_candidate_back(release):
    labels = release["shadow_labels"]
    assert labels["stable"] == pytest.approx(release["first_scores"], abs=1e-6)
    assert labels["canary"] == pytest.approx(labels["bad"], abs=1e-6)
    assert labels["bad"] != pytest.approx(labels["stable"], abs=0.05)  # miscalibrated indeed
    answers = release["shadow_answers"]
    assert {status for _, status, _ in answers} == {200}  # no client saw the candidate or a fault
    # Every answer is the stable version's for that row (the re-push is the same model).
    stable = release["stable_scores"]
    assert [score for _, _, score in answers] == pytest.approx(
        [stable[index] for index, _, _ in answers], abs=1e-6
    )
    assert (
        "shadow guard breached: answers differ from the stable version's"
        in (release["rolled_back_line"])
    )
    bad = next(r for r in release["models"] if r["version"] == release["bad"])
    assert bad["release"]["state"] == "rolled_back" and not bad["serving"]
    assert "Jensen-Shannon" in bad["release"]["history"][-1]["reason"]
    assert bad["release"]["history"][-1]["evidence"]["answers"]["distance"] > MAX_ANSWER_DISTANCE
    assert bad["release"]["history"][-1]["evidence"]["requests"]["candidate"] >= MIN_REQUESTS
    repushed = next(r for r in release["models"] if r["version"] == release["repushed"])
    assert repushed["rollback_of"] == release["first"]
    assert repushed["release"]["history"][0]["state"] == "stable"


def test_the_labels_and_a_clients_key_pick_the_version(release):
    assert release["canary_labels"] == {"canary": release["good"], "stable": release["repushed"]}
    for key, versions in release["sticky"].items():
        expected = release["good"] if bucket(key) < CANARY_PERCENT else release["repushed"]
        assert versions == [expected] * 3, (key, versions)
    text = release["models_during_canary"]
    assert f"canary {CANARY_PERCENT}%" in text and f"stable {100 - CANARY_PERCENT}%" in text


def test_a_restarted_serve_resumes_the_canary_and_promotes_a_good_candidate(release):
    resumed = release["resumed_line"]
    counted = int(resumed.split(f"canary of version {release['good']}: ")[1].split(" of ")[0])
    assert 0 < counted < MIN_REQUESTS, resumed
    assert {status for _, status, _ in release["canary_answers"]} == {200}
    assert "promoted after its canary" in release["promoted_line"]
    good = next(r for r in release["models"] if r["version"] == release["good"])
    history = good["release"]["history"]
    # One canary, resumed across the restart; retired later by the rollback by hand.
    states = [c["state"] for c in history]
    assert states == ["awaiting_approval", "approved", "canary", "stable", "retired"]
    promoted = history[3]
    assert promoted["share"] == 100.0 and promoted["release_id"] == history[2]["release_id"]
    evidence = promoted["evidence"]
    assert evidence["requests"]["candidate"] >= MIN_REQUESTS
    answers = evidence["answers"]
    assert answers["judged"] and answers["distance"] <= max(0.1, answers["chance"]), answers
    quality = evidence["quality"]
    assert quality["judged"], quality
    assert quality["candidate"]["labelled_rows"] >= MIN_LABELS
    previous = next(r for r in release["models"] if r["version"] == release["repushed"])
    assert previous["release"]["state"] == "retired" and not previous["serving"]


def test_models_rollback_by_hand_is_stable_at_once_and_no_request_fails(release):
    assert release["rolled_back_by_hand"].exit_code == 0, release["rolled_back_by_hand"].output
    by_hand = release["by_hand"]
    assert f"Version {release['first']} re-pushed as version {by_hand}" in (
        release["rolled_back_by_hand"].output
    )
    assert release["by_hand_answers"] and {s for _, s, _ in release["by_hand_answers"]} == {200}
    assert release["by_hand_scores"] == pytest.approx(release["first_scores"], abs=1e-6)
    again = release["rollback_again"]
    assert again.exit_code == 2 and "already the one served" in again.output
    unrecorded = release["rollback_unrecorded"]
    assert unrecorded.exit_code == 2
    assert "no pushed model version 12345 is recorded in ML Metadata" in unrecorded.output
    record = next(r for r in release["models"] if r["version"] == by_hand)
    assert (record["rollback_of"], record["pushed_by"]) == (release["first"], "rollback")
    assert record["release"]["state"] == "stable" and record["serving"]
    good = next(r for r in release["models"] if r["version"] == release["good"])
    assert good["release"]["state"] == "retired"
    console = release["stopped_console"]
    assert "(serving/model_server.py), 1 process" in console and "Stopped." in console


def test_models_lists_every_push_with_its_run_metrics_and_blessings(release):
    records = release["models"]
    versions = [r["version"] for r in records]
    assert versions == sorted(versions, reverse=True)
    assert {release["first"], release["bad"], release["good"]} <= set(versions)
    by_run = [r for r in records if r["pushed_by"] == "Pusher"]
    assert len({r["run_id"] for r in by_run}) == len(by_run) == 3
    for record in records:
        assert record["evaluator_blessed"] and record["infra_blessed"]
        assert 0.5 < record["metrics"]["auc"] <= 1.0 and record["metrics"]["example_count"] > 0
    assert [r["version"] for r in records if r["serving"]] == [release["by_hand"]]

"""Release parts without a pipeline run: the routing a server follows (on tiny real SavedModels
in a real repository), the counts it writes and the guard that reads them, and the policy's
checks. The whole release, on versions real runs pushed, is test_release.py."""

from __future__ import annotations

import datetime
import json
import time
from pathlib import Path

import grpc
import numpy as np
import pytest
import tensorflow as tf

from components import profile as profiles
from release import guard
from serving.batching import BatchingOptions
from serving.inference import Inference, ServingError
from serving.repository import ModelRepository, State
from serving.routing import REQUEST_KEY, Router, bucket, write_table
from tests.conftest import TAXI_PROFILE_DIR
from tests.fixtures import models

STABLE, CANDIDATE = 1, 2


def _examples(values: list[float]) -> np.ndarray:
    examples = []
    for value in values:
        example = tf.train.Example()
        example.features.feature[models.FEATURE].float_list.value.append(value)
        examples.append(example.SerializeToString())
    return np.array(examples, dtype=object)


@pytest.fixture
def released(tmp_path):
    """Two versions of a model (answers sigmoid(x) and sigmoid(3x)) in a repository that follows
    a routing file, and the inference over it."""
    base = tmp_path / "model"
    models.save_predict_model(base / str(STABLE))
    models.save_predict_model(base / str(CANDIDATE), scale=3.0)
    routing_file = tmp_path / "routing.json"
    stats_dir = tmp_path / "stats"

    def route(**table):
        write_table(str(routing_file), {"stats_dir": str(stats_dir), **table})
        router.refresh()
        repository.scan()
        repository.scan()

    router = Router(str(routing_file))
    repository = ModelRepository("m", str(base), router=router)
    inference = Inference(repository, BatchingOptions())
    yield {"route": route, "router": router, "repository": repository, "inference": inference}
    inference.stop()
    router.stop()


def _answer(inference: Inference, key: str | None, label: str | None = None) -> tuple[int, float]:
    token = REQUEST_KEY.set(key)
    try:
        route = inference.route("m", None, label)
    finally:
        REQUEST_KEY.reset(token)
    outputs = inference.run(route.served, "serving_default", {"examples": _examples([1.0])}, route)
    return route.served.version, float(outputs["probabilities"][0][0])


def test_only_the_versions_the_routing_file_names_are_loaded(released):
    released["route"](stable=STABLE, load=[STABLE])
    statuses = {v.version: v.state for v in released["repository"].statuses()}
    assert statuses == {STABLE: State.AVAILABLE}  # the newer version on disk is not served
    with pytest.raises(ServingError) as refused:
        released["inference"].route("m", None, "canary")
    assert refused.value.code == grpc.StatusCode.NOT_FOUND
    assert "Unrecognized servable version label: canary" in refused.value.message
    assert "stable = version 1" in refused.value.message
    with pytest.raises(ServingError) as malformed:
        released["inference"].route("m", None, "can ary")
    assert malformed.value.code == grpc.StatusCode.INVALID_ARGUMENT


def test_nothing_released_is_unavailable_not_the_newest(released):
    released["route"](stable=None, load=[])
    with pytest.raises(ServingError) as refused:
        released["inference"].route("m", None)
    assert refused.value.code == grpc.StatusCode.UNAVAILABLE
    assert "awaiting approval is not served" in refused.value.message


def test_a_canary_gets_its_share_and_a_key_always_the_same_version(released):
    released["route"](
        stable=STABLE,
        candidate=CANDIDATE,
        mode="canary",
        canary_percent=30.0,
        load=[STABLE, CANDIDATE],
        release_id="r1",
    )
    inference = released["inference"]
    chosen = [_answer(inference, f"client-{i}")[0] for i in range(400)]
    share = chosen.count(CANDIDATE) / len(chosen)
    assert 0.22 < share < 0.38, share
    for i in range(20):  # sticky: a key's version is its bucket's, every time
        expected = CANDIDATE if bucket(f"client-{i}") < 30.0 else STABLE
        assert {_answer(inference, f"client-{i}")[0] for _ in range(3)} == {expected}
    # Labels name each version, whatever the split.
    assert _answer(inference, "client-0", "stable")[0] == STABLE
    assert _answer(inference, "client-0", "canary")[0] == CANDIDATE
    # Only split requests count: 400 + 60, not the labelled ones.
    released["router"].flush()
    counts = guard.read_counts(str(released["router"].table.stats_dir), "r1")
    assert counts[str(STABLE)].requests + counts[str(CANDIDATE)].requests == 460
    assert counts[str(CANDIDATE)].answers[0] == pytest.approx([float(1 / (1 + np.exp(-3.0)))])


def test_shadow_answers_with_the_stable_version_and_counts_the_copy(released):
    released["route"](
        stable=STABLE,
        candidate=CANDIDATE,
        mode="shadow",
        load=[STABLE, CANDIDATE],
        release_id="r2",
    )
    inference = released["inference"]
    answers = [_answer(inference, f"client-{i}") for i in range(50)]
    assert {version for version, _ in answers} == {STABLE}
    assert [value for _, value in answers] == pytest.approx([1 / (1 + np.exp(-1.0))] * 50)
    deadline = time.time() + 10
    while time.time() < deadline:  # the copies run after the answers
        released["router"].flush()
        counts = guard.read_counts(str(released["router"].table.stats_dir), "r2")
        if counts.get(f"{CANDIDATE}/shadow", guard.Counts()).requests == 50:
            break
        time.sleep(0.05)
    assert counts[str(STABLE)].requests == 50
    shadow = counts[f"{CANDIDATE}/shadow"]
    assert shadow.requests == 50 and shadow.errors == 0
    assert shadow.answers[0] == pytest.approx([float(1 / (1 + np.exp(-3.0)))], rel=1e-5)


def test_a_new_stable_version_takes_over_only_once_loaded_here(released):
    """Promotion order: the old stable version answers until the new one is AVAILABLE in this
    process, and is unloaded only then (TF Serving's availability-preserving switch)."""
    route, repository = released["route"], released["repository"]
    route(stable=STABLE, load=[STABLE])
    assert _answer(released["inference"], "k")[0] == STABLE
    write_table(
        released["router"].routing_file,
        {"stable": CANDIDATE, "load": [CANDIDATE], "stats_dir": "unused"},
    )
    released["router"].refresh()
    repository.scan()  # first sight of the new version's folder: not loaded yet
    assert _answer(released["inference"], "k")[0] == STABLE
    assert repository.statuses(STABLE)[0].state == State.AVAILABLE
    repository.scan()  # loaded, then the old one unloaded
    assert _answer(released["inference"], "k")[0] == CANDIDATE
    assert repository.statuses(STABLE)[0].state == State.END


# ---- the guard --------------------------------------------------------------------------------
# The taxi profile with the release policy's defaults (what the tests below assume).
PROFILE = profiles.load(TAXI_PROFILE_DIR).model_copy(update={"release": profiles.Release()})
START = datetime.datetime(2026, 12, 6, 12, 0, tzinfo=datetime.timezone.utc)


def _counts(requests: int, errors: int = 0, latency: float = 2.0, answers=None) -> guard.Counts:
    rng = np.random.default_rng(requests)
    scores = answers if answers is not None else rng.uniform(0, 1, requests)
    return guard.Counts(
        requests,
        requests,
        errors,
        [latency] * requests,
        [[float(s)] for s in scores],
    )


def _judge(candidate, stable, minutes: float = 1.0, quality=None):
    return guard.judge(
        candidate=candidate,
        stable=stable,
        profile=PROFILE,
        started=START,
        now=START + datetime.timedelta(minutes=minutes),
        quality=quality,
    )


def test_the_guard_waits_for_its_requests_then_judges_at_the_deadline():
    waiting = _judge(_counts(150), _counts(1000))
    assert waiting.decision == guard.WAIT
    assert "150 of release.min_requests 200" in waiting.summary
    late = _judge(_counts(150), _counts(1000), minutes=61)
    assert late.decision == guard.ROLL_BACK
    assert "too little evidence" in late.summary


def test_the_guard_promotes_a_candidate_like_the_stable_version():
    verdict = _judge(_counts(300), _counts(3000))
    assert verdict.decision == guard.PROMOTE, verdict.reasons
    assert verdict.evidence["answers"]["distance"] < 0.05


@pytest.mark.parametrize(
    ("candidate", "breach"),
    [
        (_counts(300, errors=6), "error rate 2.00%"),
        (_counts(300, latency=30.0), "p99 latency 30.0 ms > 2 x"),
        (_counts(300, answers=np.full(300, 0.97)), "answers differ from the stable version's"),
    ],
)
def test_each_breached_guard_rolls_the_candidate_back(candidate, breach):
    verdict = _judge(candidate, _counts(3000, latency=2.0))
    assert verdict.decision == guard.ROLL_BACK
    assert breach in verdict.summary


def test_a_slower_p99_within_the_slack_is_not_a_breach():
    # 3x slower, but 4 ms in all: within guards.p99_slack_ms (10 ms).
    verdict = _judge(_counts(300, latency=6.0), _counts(3000, latency=2.0))
    assert verdict.decision == guard.PROMOTE, verdict.reasons


def test_a_quality_breach_rolls_back():
    verdict = _judge(_counts(300), _counts(3000), quality={"breach": "live auc 0.8 against 0.9"})
    assert verdict.decision == guard.ROLL_BACK
    assert "live auc 0.8" in verdict.summary


@pytest.mark.parametrize("share", [0, 100, -5, 150])
def test_a_canary_share_outside_0_100_is_refused_by_name(share):
    text = (TAXI_PROFILE_DIR / "profile.yaml").read_text()
    edited = text.replace("canary_percent: 10", f"canary_percent: {share}")
    assert edited != text
    with pytest.raises(profiles.ProfileError) as refused:
        profiles.parse(edited, "profile.yaml")
    assert "release.canary_percent" in str(refused.value)


def test_the_counts_files_of_every_process_add_up(tmp_path):
    for pid, requests in ((11, 3), (12, 4)):
        folder = tmp_path / "r9"
        folder.mkdir(exist_ok=True)
        counts = {"requests": requests, "rows": requests, "errors": 1}
        counts |= {"latencies_ms": [1.0] * requests, "answers": [[0.5]] * requests}
        (folder / f"worker-{pid}.json").write_text(json.dumps({"versions": {"7": counts}}))
    (tmp_path / "r9" / "worker-13.json").write_text('{"versions": {"7": {"requ')  # mid-write
    total = guard.read_counts(str(tmp_path), "r9")["7"]
    assert (total.requests, total.errors, len(total.latencies_ms)) == (7, 2, 7)


# ---- the controller's decisions, on a real ML Metadata store ------------------------------------
def _push(store, model_dir, version: int, rollback_of: int | None = None) -> None:
    """A PushedModel as Pusher records one (pushed, its version and folder), and the folder;
    with `rollback_of`, as `models rollback` records its re-push."""
    from ml_metadata.proto import metadata_store_pb2

    artifact_type = metadata_store_pb2.ArtifactType(name="PushedModel")
    type_id = store.put_artifact_type(artifact_type)
    artifact = metadata_store_pb2.Artifact(type_id=type_id, state=metadata_store_pb2.Artifact.LIVE)
    path = model_dir / str(version)
    path.mkdir(parents=True)
    artifact.custom_properties["pushed"].int_value = 1
    artifact.custom_properties["pushed_version"].string_value = str(version)
    artifact.custom_properties["pushed_destination"].string_value = str(path)
    artifact.uri = str(path)
    if rollback_of is not None:
        artifact.custom_properties["rollback_of"].int_value = rollback_of
    store.put_artifacts([artifact])


@pytest.fixture
def controlled(tmp_path):
    from ml_metadata import metadata_store

    from metadata.store import sqlite_connection_config
    from pipeline.metadata_location import sqlite_location
    from release.controller import ControllerSettings, ReleaseController

    store = metadata_store.MetadataStore(sqlite_connection_config(tmp_path / "metadata.db"))
    model_dir = tmp_path / "serving_model" / "m"

    def controller(**release) -> ReleaseController:
        policy = profiles.Release(**release)
        return ReleaseController(
            ControllerSettings(
                model_dir=model_dir,
                model_name="m",
                location=sqlite_location(tmp_path / "metadata.db"),
                profile=PROFILE.model_copy(update={"release": policy}),
                state_dir=tmp_path / "release",
                request_log_dir=None,
                poll_seconds=0.1,
            )
        )

    return {"store": store, "model_dir": model_dir, "controller": controller}


def _state(store, version: int) -> str:
    from release import states

    return states.state_of([c for c in states.changes(store) if c.version == version])


def test_the_first_version_is_stable_in_the_first_turns_routing(controlled):
    _push(controlled["store"], controlled["model_dir"], 1)
    table = controlled["controller"]().step()
    assert (table["stable"], table["load"]) == (1, [1])
    assert _state(controlled["store"], 1) == "stable"


def test_manual_approval_then_a_canary_then_promotion_by_the_counts(controlled):
    from release import states

    store, model_dir = controlled["store"], controlled["model_dir"]
    _push(store, model_dir, 1)
    controller = controlled["controller"](approval="manual", strategy="canary", min_requests=30)
    assert controller.step()["load"] == []  # nothing approved: nothing served
    states.approve(
        store, "here", lambda v: {"evaluator_blessed": 1, "infra_blessed": 1}, 1, "a", ""
    )
    assert controller.step()["stable"] == 1  # the first version: nothing to compare it with
    _push(store, model_dir, 2)
    _push(store, model_dir, 3)  # pushed after 2, before 2 went out: 2 is superseded
    table = controller.step()
    assert table["candidate"] is None and _state(store, 3) == "awaiting_approval"
    assert _state(store, 2) == "superseded"
    states.approve(
        store, "here", lambda v: {"evaluator_blessed": 1, "infra_blessed": 1}, 3, "b", ""
    )
    table = controller.step()
    assert (table["stable"], table["candidate"], table["mode"]) == (1, 3, "canary")
    assert table["load"] == [1, 3] and table["canary_percent"] == 10.0
    waiting = controller.step()  # no counts yet: waits
    assert waiting["candidate"] == 3
    folder = Path(table["stats_dir"]) / table["release_id"]
    folder.mkdir(parents=True)
    like = {"latencies_ms": [2.0] * 40, "errors": 0}
    answers = [[v] for v in np.random.default_rng(0).uniform(0, 1, 40).tolist()]
    (folder / "worker-1.json").write_text(
        json.dumps(
            {
                "versions": {
                    "1": {"requests": 40, "rows": 40, "answers": answers, **like},
                    "3": {"requests": 40, "rows": 40, "answers": answers, **like},
                }
            }
        )
    )
    table = controller.step()
    assert (table["stable"], table["candidate"], table["load"]) == (3, None, [3])
    assert (_state(store, 3), _state(store, 1)) == ("stable", "retired")
    promoted = [c for c in states.changes(store) if c.version == 3][-1]
    assert promoted.evidence["requests"]["candidate"] == 40
    assert "promoted after its canary" in promoted.reason


def _second_version_released(controlled, strategy: str):
    """Version 1 pushed and made stable, then version 2 pushed under `strategy`: the
    controller, and its routing after version 2's first turn."""
    store, model_dir = controlled["store"], controlled["model_dir"]
    _push(store, model_dir, 1)
    controller = controlled["controller"](strategy=strategy)
    controller.step()
    _push(store, model_dir, 2)
    return controller, controller.step()


def test_a_rejected_canary_leaves_the_routing_at_the_next_turn(controlled):
    from release import states

    store, model_dir = controlled["store"], controlled["model_dir"]
    controller, table = _second_version_released(controlled, "shadow")
    assert table["mode"] == "shadow"
    states.reject(store, "here", 2, "carol", "wrong features")
    table = controller.step()
    assert (table["stable"], table["candidate"], table["load"]) == (1, None, [1])
    with pytest.raises(states.ReleaseRefused) as refused:
        states.approve(
            store, "here", lambda v: {"evaluator_blessed": 1, "infra_blessed": 1}, 2, "d", ""
        )
    assert "version 2 is rejected (wrong features)" in str(refused.value)
    with pytest.raises(states.ReleaseRefused) as unblessed:
        _push(store, model_dir, 4)
        states.approve(
            store, "here", lambda v: {"evaluator_blessed": 0, "infra_blessed": 1}, 4, "d", ""
        )
    assert "never blessed by the Evaluator" in str(unblessed.value)


def test_a_rollback_to_a_version_either_validator_did_not_bless_is_refused():
    from deployment import rollback

    record = {"version": 7, "evaluator_blessed": True, "infra_blessed": True, "on_disk": True}
    assert rollback.refusal_reason(record) is None
    assert "never blessed by the Evaluator" in rollback.refusal_reason(
        {**record, "evaluator_blessed": False}
    )
    assert "never blessed by the InfraValidator" in rollback.refusal_reason(
        {**record, "infra_blessed": False}
    )
    assert "files are gone" in rollback.refusal_reason({**record, "on_disk": False, "path": "/x"})


def test_a_rollback_ends_the_canary_and_a_version_pushed_meanwhile_waits_its_turn(controlled):
    store, model_dir = controlled["store"], controlled["model_dir"]
    controller, table = _second_version_released(controlled, "canary")
    assert table["candidate"] == 2
    _push(store, model_dir, 3)  # during 2's canary: waits
    assert controller.step()["candidate"] == 2 and _state(store, 3) == "pushed"
    _push(store, model_dir, 5, rollback_of=1)  # `models rollback 1`: a higher number than 3
    table = controller.step()
    assert _state(store, 5) == "stable" and _state(store, 2) == "rolled_back"
    # 3 is a newer model than the re-push, whatever its number: it goes out next.
    assert (table["stable"], table["candidate"]) == (5, 3)
    assert _state(store, 3) == "canary"


def test_a_quality_difference_within_chance_is_not_a_breach():
    """Live AUC on a few dozen labelled rows per version varies by several points by chance: the
    bootstrap's standard error says how much, and only a drop beyond two of them counts."""
    rng = np.random.default_rng(3)
    targets = rng.integers(0, 2, 40).astype(float)
    scores = np.clip(targets * 0.3 + rng.uniform(0, 0.7, 40), 0, 1)
    few = guard._standard_error(targets, [np.array([s]) for s in scores], PROFILE)
    assert 0.02 < few < 0.1, few
    targets = rng.integers(0, 2, 1000).astype(float)
    scores = np.clip(targets * 0.3 + rng.uniform(0, 0.7, 1000), 0, 1)
    many = guard._standard_error(targets, [np.array([s]) for s in scores], PROFILE)
    assert many < few / 3, (few, many)  # about sqrt(1000 / 40) = 5 times less


def test_answers_from_one_distribution_on_few_requests_are_not_a_breach():
    """Forty answers against two thousand, all from one distribution: ten bins of forty can
    reach 0.1 Jensen-Shannon by chance, so the distance is judged against what permutations of
    the same answers reach."""
    rng = np.random.default_rng(5)
    stable = _counts(2000, answers=rng.beta(2, 5, 2000))
    same = _judge(_counts(200, answers=rng.beta(2, 5, 40)), stable)
    assert same.decision == guard.PROMOTE, same.reasons
    assert same.evidence["answers"]["chance"] > 0.05
    shifted = _judge(_counts(200, answers=rng.beta(5, 2, 40)), stable)
    assert shifted.decision == guard.ROLL_BACK and "by chance up to" in shifted.summary

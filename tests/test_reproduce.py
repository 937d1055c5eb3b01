"""`reproduce RUN` on real runs: a recorded run replayed from scratch gives the same artifacts to
the bit, and a change to its data, profile or code is refused, named, unless allowed.

The runs: the penguin profile copied with a model module of its own beside profile.yaml, on a
smaller training budget (one tuner trial, fewer steps; given on the command line, so recorded as
settings a replay keeps); a cold run one component at a time, then a run with --train-steps 210
(a new model, which the Evaluator compares with the first as its baseline). The replay of the
second runs two components at once, cold, in a fresh output directory. The refusals run in this
process (click's test runner): they stop before anything runs.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

from metadata import artifact_readers
from metadata.run_comparison import run_outputs_by_node
from metadata.runs import find_run
from metadata.store import StoreIndex, input_artifacts
from orchestration.dag_schedule import default_parallelism
from tests.conftest import PROJECT_ROOT, invoke, run_cli

pytestmark = pytest.mark.e2e

SMALL_BUDGET = ("--tuner-trials=1", "--tuner-train-steps=50")
MODEL_MODULE = '''"""The penguin profile's model: the project's own, named from the profile's folder."""

from components.model import run_fn  # noqa: F401
'''


@pytest.fixture(scope="module")
def recorded(tmp_path_factory):
    profile_dir = tmp_path_factory.mktemp("profiles") / "penguin"
    shutil.copytree(PROJECT_ROOT / "profiles" / "penguin", profile_dir)
    (profile_dir / "penguin_model.py").write_text(MODEL_MODULE)
    profile_file = profile_dir / "profile.yaml"
    profile_file.write_text(profile_file.read_text() + "\ncode:\n  run_fn: penguin_model.run_fn\n")
    output_dir = tmp_path_factory.mktemp("recorded-runs")
    args = [
        f"--profile={profile_dir}",
        f"--output-dir={output_dir}",
        *SMALL_BUDGET,
    ]
    first = run_cli(*args, "--parallelism=1", "--train-steps=200")
    assert first.returncode == 0, first.stdout + first.stderr
    second = run_cli(*args, "--train-steps=210")
    assert second.returncode == 0, second.stdout + second.stderr
    store = f"--metadata-uri={output_dir / 'metadata.db'}"
    replay = run_cli("reproduce", "1", store)
    return {
        "profile_dir": profile_dir,
        "output_dir": output_dir,
        "store": store,
        "replay": replay,
    }


def _index(output_dir: Path) -> StoreIndex:
    return StoreIndex.open(output_dir / "metadata.db")


def _variables(model_uri: str) -> dict[str, np.ndarray]:
    loaded = tf.saved_model.load(str(Path(model_uri) / "Format-Serving"))
    return {v.name: v.numpy() for v in loaded.variables}


def test_a_replay_from_scratch_gives_identical_weights_and_metrics(recorded):
    replay = recorded["replay"]
    assert replay.returncode == 0, replay.stdout + replay.stderr
    assert "Checked against this checkout: no difference" in replay.stdout
    assert "REPRODUCED: identical" in replay.stdout
    # Checked here without the command's own comparison: the two runs' models and metrics.
    original = _index(recorded["output_dir"])
    replay_dirs = list((recorded["output_dir"] / "reproductions").iterdir())
    assert len(replay_dirs) == 1
    copy = _index(replay_dirs[0])
    original_run = find_run(original, "1")["run_id"]
    replay_run = find_run(copy, "1")["run_id"]
    a = run_outputs_by_node(original, original_run)
    b = run_outputs_by_node(copy, replay_run)
    weights_a, weights_b = _variables(a["Trainer.model"].uri), _variables(b["Trainer.model"].uri)
    assert weights_a.keys() == weights_b.keys() and len(weights_a) >= 4
    for name in weights_a:
        assert np.array_equal(weights_a[name], weights_b[name]), name
    metrics_a = artifact_readers.evaluation(a["Evaluator.evaluation"].uri)
    metrics_b = artifact_readers.evaluation(b["Evaluator.evaluation"].uri)
    assert metrics_a["overall"] == metrics_b["overall"]
    assert metrics_a["per_class"] == metrics_b["per_class"]
    # Both Evaluators compared with the same baseline: the first run's model, from its folder.
    assert metrics_a["baseline_diff"] and metrics_a["baseline_diff"] == metrics_b["baseline_diff"]
    evaluator = copy.producing_execution[b["Evaluator.evaluation"].id]
    [baseline] = input_artifacts(copy.store, evaluator)["baseline_model"]
    first_run = find_run(original, "2")["run_id"]
    assert baseline.uri == run_outputs_by_node(original, first_run)["Trainer.model"].uri
    # The replay's run ran two components at once; the original's first run one at a time.
    assert find_run(copy, "1")["parallelism"] == default_parallelism()


def test_the_run_records_what_it_depended_on(recorded):
    index = _index(recorded["output_dir"])
    from metadata.runs import recorded_environment, run_context

    run_id = find_run(index, "1")["run_id"]
    environment = recorded_environment(run_context(index, run_id))
    assert environment["versions"]["tensorflow"] == tf.__version__
    assert environment["seeds"] == {"seed": 42, "deterministic": True, "python_hash_seed": 0}
    assert environment["profile_overrides"] == ["train_steps", "tuner_train_steps", "tuner_trials"]
    assert environment["settings"]["train_steps"] == 210
    module = str(recorded["profile_dir"] / "penguin_model.py")
    assert environment["source_files"][module] == _sha256(Path(module))
    examples = run_outputs_by_node(index, run_id)["CsvExampleGen.examples"]
    [read] = json.loads(examples.custom_properties["data_files"].string_value)
    csv = recorded["profile_dir"] / "data" / "labeled" / "span-1" / "penguins.csv"
    assert read == {
        "span": 1,
        "path": str(csv),
        "sha256": _sha256(csv),
        "bytes": csv.stat().st_size,
    }


def _sha256(path: Path) -> str:
    import hashlib

    return hashlib.sha256(path.read_bytes()).hexdigest()


def _edited(path: Path, old: str, new: str):
    """Context manager: `path` with `old` replaced by `new`, restored afterwards."""
    import contextlib

    @contextlib.contextmanager
    def editing():
        original = path.read_text()
        assert old in original
        path.write_text(original.replace(old, new, 1))
        try:
            yield
        finally:
            path.write_text(original)

    return editing()


@pytest.mark.parametrize(
    ("edited_file", "old", "new", "named"),
    [
        (
            "data/labeled/span-1/penguins.csv",
            "0.",
            "0.9",
            "data file {profile_dir}/data/labeled/span-1/penguins.csv changed",
        ),
        (
            "profile.yaml",
            "learning_rate: 0.01",
            "learning_rate: 0.02",
            "profile model.learning_rate: recorded 0.01, now 0.02",
        ),
        (
            "penguin_model.py",
            "named from",
            "imported from",
            "source file {profile_dir}/penguin_model.py changed",
        ),
    ],
    ids=["data-file", "profile-key", "model-module"],
)
def test_a_change_since_the_run_is_refused_and_named(recorded, edited_file, old, new, named):
    profile_dir = recorded["profile_dir"]
    replays = recorded["output_dir"] / "reproductions"
    before = sorted(replays.iterdir())
    with _edited(profile_dir / edited_file, old, new):
        refused = invoke("reproduce", "1", recorded["store"])
    assert refused.exit_code == 2, refused.output
    assert "the replay is refused" in refused.output
    assert named.format(profile_dir=profile_dir) in refused.output
    assert "--allow-differences" in refused.output
    assert sorted(replays.iterdir()) == before  # nothing written


def test_an_allowed_difference_shows_in_the_comparison(recorded, tmp_path):
    profile_dir = recorded["profile_dir"]
    replay_dir = tmp_path / "replay"
    with _edited(profile_dir / "profile.yaml", "learning_rate: 0.01", "learning_rate: 0.02"):
        allowed = run_cli(
            "reproduce",
            "1",
            recorded["store"],
            "--allow-differences",
            "--json",
            f"--output-dir={replay_dir}",
        )
    assert allowed.returncode == 5, allowed.stdout + allowed.stderr
    result = json.loads(allowed.stdout)
    assert result["identical"] is False and result["refused"] is False
    assert [d["subject"] for d in result["environment_differences"] if not d["informational"]] == [
        "model.learning_rate"
    ]
    by_output = {a["output"]: a for a in result["artifacts"]}
    assert not by_output["Trainer.model"]["identical"]
    assert any(line.startswith("weights ") for line in by_output["Trainer.model"]["differences"])
    # What the learning rate does not reach stays identical.
    for output in (
        "CsvExampleGen.examples",
        "StatisticsGen.statistics",
        "Transform.transform_graph",
    ):
        assert by_output[output]["identical"], by_output[output]
    assert result["replay_output_dir"] == str(replay_dir)
    # The progress went to stderr: stdout is the JSON alone.
    assert "Replaying run" in allowed.stderr


def test_inspect_diff_shows_what_two_runs_depended_on(recorded):
    result = invoke("inspect", "diff", "2", "1", recorded["store"], "--json")
    environment = json.loads(result.output)["environment"]
    assert environment["available"]
    changed = {d["subject"]: d for d in environment["differences"] if not d["informational"]}
    assert set(changed) == {"train_steps"}
    assert (changed["train_steps"]["recorded"], changed["train_steps"]["now"]) == (200, 210)
    text = invoke("inspect", "diff", "2", "1", recorded["store"]).output
    assert "settings train_steps: A 200, B 210" in text


def test_an_unknown_run_is_refused(recorded):
    result = invoke("reproduce", "no-such-run", recorded["store"])
    assert result.exit_code == 2
    assert "no run 'no-such-run'" in result.output


def test_a_newer_span_that_a_run_would_read_instead_is_refused(recorded):
    profile_dir = recorded["profile_dir"]
    new_span = profile_dir / "data" / "labeled" / "span-2"
    new_span.mkdir()
    try:
        shutil.copy(profile_dir / "data" / "labeled" / "span-1" / "penguins.csv", new_span)
        refused = invoke("reproduce", "1", recorded["store"])
    finally:
        shutil.rmtree(new_span)
    assert refused.exit_code == 2, refused.output
    assert (
        f"data {new_span / 'penguins.csv'} is new: a run started now reads it (span 2; the run "
        "read span(s) 1)" in refused.output
    )

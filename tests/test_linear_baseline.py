"""The Evaluator's linear baseline (components/evaluator/linear_baseline.py) and the data gate's
training checks (components/data_gate/training_checks.py), on arrays and statistics made here.
The baseline in a real run is checked in test_profiles_e2e.py (house prices)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pytest

from components import profile as profiles
from components.data_gate import training_checks
from components.evaluator import linear_baseline

PROFILE = profiles.parse(
    """
name: kinds
label: {column: label, task: binary, classes: ["0", "1"]}
features:
  amount: numeric
  plan: {kind: vocabulary, top_k: 2, oov_buckets: 1}
  notes: {kind: text, top_k: 3, oov_buckets: 1, max_tokens: 3}
  joined: {kind: datetime, parts: [month]}
""",
    "test profile",
)


def _columns(rows: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Transform's outputs for `rows` rows where the label follows amount and plan."""
    amount = rng.normal(size=rows).astype(np.float32)
    plan = rng.integers(0, 3, size=rows)
    logit = 2.0 * amount + np.where(plan == 1, 1.5, -0.5)
    label = (rng.random(rows) < 1 / (1 + np.exp(-logit))).astype(np.int64)
    notes = np.zeros((rows, 3), dtype=np.int64)
    notes[:, 0] = np.where(label == 1, 2, 1)  # a word that gives the label away, in every row
    return {
        "amount_xf": amount,
        "plan_xf": plan,
        "notes_xf": notes,
        "joined_month_sin_xf": np.zeros(rows, np.float32),
        "joined_month_cos_xf": np.ones(rows, np.float32),
        "label_xf": label,
    }


def test_the_design_matrix_is_numbers_one_hot_categories_and_a_bag_of_words():
    columns = {
        "amount_xf": np.array([0.5, -1.0], np.float32),
        "plan_xf": np.array([2, 7]),  # 7 is past the vocabulary: clipped into its last id
        "notes_xf": np.array([[1, 1, 3], [0, 0, 0]]),
        "joined_month_sin_xf": np.array([0.0, 1.0], np.float32),
        "joined_month_cos_xf": np.array([1.0, 0.0], np.float32),
    }
    matrix = linear_baseline.design_matrix(PROFILE, columns).toarray()
    # amount, plan (3 ids), notes (5 ids: 0 pads), month sine and cosine
    assert matrix.shape == (2, 1 + 3 + 5 + 2)
    np.testing.assert_allclose(matrix[0], [0.5, 0, 0, 1, 0, 2 / 3, 0, 1 / 3, 0, 0, 1])
    np.testing.assert_allclose(matrix[1], [-1.0, 0, 0, 1, 0, 0, 0, 0, 0, 1, 0])


def test_a_logistic_regression_finds_the_signal_and_scores_the_eval_rows():
    rng = np.random.default_rng(0)
    train, evaluation = _columns(2000, rng), _columns(500, rng)
    auc, described, train_rows, eval_rows, note = linear_baseline.fit_and_score(
        PROFILE, train, evaluation, "auc"
    )
    assert auc > 0.99 and note == ""  # the notes' word gives the label away
    assert (train_rows, eval_rows) == (2000, 500)
    assert described.startswith("logistic regression (C 1) on 11 inputs")
    evaluation["label_xf"][:] = 1
    auc, *_, note = linear_baseline.fit_and_score(PROFILE, train, evaluation, "auc")
    assert auc is None and "one class" in note


def test_a_ridge_regression_scores_rmse_and_the_gap_says_which_is_better():
    regression = profiles.parse(
        "name: r\nlabel: {column: y, task: regression}\nfeatures: {x: numeric}\n", "test profile"
    )
    rng = np.random.default_rng(1)
    x = rng.normal(size=1000).astype(np.float32)
    y = 3 * x + rng.normal(scale=0.5, size=1000)
    rmse, described, *_ = linear_baseline.fit_and_score(
        regression, {"x_xf": x[:800], "y_xf": y[:800]}, {"x_xf": x[800:], "y_xf": y[800:]}, "rmse"
    )
    assert 0.4 < rmse < 0.6 and described.startswith("ridge regression")
    # Positive: the model is better. RMSE as a fraction of the baseline's, AUC in points.
    assert linear_baseline.gap("rmse", 0.45, 0.5) == pytest.approx(0.1)
    assert linear_baseline.gap("auc", 0.84, 0.85) == pytest.approx(-0.01)


# A candidate 0.05 AUC below the baseline where blessing.vs_linear_baseline allows 0.02.
FAILING = linear_baseline.Result(
    metric="auc",
    linear_value=0.9,
    candidate_value=0.85,
    linear_model="logistic regression",
    train_rows=100,
    eval_rows=40,
    max_gap=0.02,
    gap=-0.05,
    passed=False,
)


def test_a_requirement_fails_with_a_sentence_that_names_the_setting():
    record = linear_baseline.as_record(FAILING)
    assert record["reason"] == (
        "auc 0.8500 is 0.0500 below the linear baseline's 0.9000; "
        "blessing.vs_linear_baseline allows 0.0200"
    )


def _write_statistics(folder, split: str, frame: pd.DataFrame) -> None:
    import tensorflow_data_validation as tfdv

    statistics = tfdv.generate_statistics_from_dataframe(frame)
    (folder / f"Split-{split}").mkdir(parents=True)
    (folder / f"Split-{split}" / "FeatureStats.pb").write_bytes(statistics.SerializeToString())


def test_the_gate_refuses_text_that_is_never_there_and_an_eval_split_of_one_class(tmp_path):
    settings = training_checks.Settings(
        label="churned",
        task="binary",
        derived_label=False,
        text_columns=["notes", "comment"],
        train_splits=["train"],
        eval_splits=["eval"],
    )
    _write_statistics(
        tmp_path,
        "train",
        pd.DataFrame(
            {
                "notes": [None] * 4,
                "comment": ["fine", None, "slow", None],
                "churned": ["yes", "no", "no", "yes"],
            }
        ),
    )
    _write_statistics(
        tmp_path,
        "eval",
        pd.DataFrame({"notes": [None] * 2, "comment": ["ok", "ok"], "churned": ["no", "no"]}),
    )
    found = training_checks.findings(settings, str(tmp_path))
    assert [(f.feature, f.kind) for f in found] == [
        ("notes", "No text to learn from"),
        ("churned", "One class in the eval split"),
    ]
    assert "set its kind to ignored in profile.yaml" in found[0].description
    assert "every labeled row of the eval split has the label 'no'" in found[1].description

    fixed = tmp_path / "fixed"
    _write_statistics(
        fixed, "train", pd.DataFrame({"notes": ["a b", None], "churned": ["yes", "no"]})
    )
    _write_statistics(fixed, "eval", pd.DataFrame({"notes": ["c", None], "churned": ["no", "yes"]}))
    only_notes = dataclasses.replace(settings, text_columns=["notes"])
    assert training_checks.findings(only_notes, str(fixed)) == []


def test_a_candidate_too_far_below_the_baseline_loses_its_blessing(tmp_path, monkeypatch):
    """blessing.vs_linear_baseline set: the Evaluator's blessing is withdrawn, as for the
    trivial predictor, with the figures in linear_baseline.json and on the ModelBlessing."""
    import json

    from tfx.types import standard_artifacts

    from components.evaluator import executor

    monkeypatch.setattr(linear_baseline, "check", lambda *args, **kwargs: FAILING)
    blessing = standard_artifacts.ModelBlessing()
    blessing.uri = str(tmp_path / "blessing")
    (tmp_path / "blessing").mkdir()
    (tmp_path / "blessing" / "BLESSED").touch()
    blessing.set_int_custom_property("blessed", 1)
    evaluation = tmp_path / "evaluation"
    evaluation.mkdir()
    examples, transform = standard_artifacts.Examples(), standard_artifacts.TransformGraph()
    examples.uri, transform.uri = str(tmp_path / "examples"), str(tmp_path / "transform")
    settings = linear_baseline.Settings(
        profile=PROFILE.transform_part(),
        metric="auc",
        max_gap=0.02,
        train_splits=["train"],
        eval_splits=["eval"],
    )
    monkeypatch.setattr(executor, "_candidate_value", lambda uri, key: 0.85)
    executor.Executor()._linear_baseline(
        json.dumps(dataclasses.asdict(settings)),
        {"examples": [examples], "transform_graph": [transform]},
        executor._Reads(str(evaluation), None),
        str(evaluation),
        blessing,
    )
    assert not (tmp_path / "blessing" / "BLESSED").exists()
    assert (tmp_path / "blessing" / "NOT_BLESSED").exists()
    assert blessing.get_int_custom_property("blessed") == 0
    assert blessing.get_int_custom_property("within_linear_baseline") == 0
    assert blessing.get_float_custom_property("linear_baseline") == 0.9
    written = json.loads((evaluation / "linear_baseline.json").read_text())
    assert written["passed"] is False and "blessing.vs_linear_baseline allows" in written["reason"]


@pytest.mark.e2e
def test_a_run_stops_at_the_gate_for_empty_text_and_an_eval_split_of_one_class(tmp_path):
    """A profile made by init from rows with notes, run on a CSV whose notes are all empty and
    whose labels are all 'no' but one: the data gate names both, exit 3, before Transform
    (nothing trained or pushed)."""
    import csv

    from cli import exit_codes
    from tests.conftest import run_cli

    moods, topics = ["slow", "fast", "broken", "great"], ["bill", "login", "refund"]
    rows = [
        [
            i,
            f"plan {i % 3}",
            f"{moods[i % 4]} app and {topics[i % 3]} issue number {i}",
            "yes" if i % 2 else "no",
        ]
        for i in range(60)
    ]
    source = tmp_path / "source.csv"
    with source.open("w", newline="") as f:
        csv.writer(f).writerows([["id", "plan", "notes", "answer"], *rows])
    profile_dir = tmp_path / "accounts"
    init = run_cli("init", f"--csv={source}", "--label=answer", f"--out={profile_dir}", timeout=300)
    assert init.returncode == 0, init.stdout + init.stderr
    assert profiles.load(profile_dir).features["notes"].kind.value == "text"

    labeled = profile_dir / "data" / "labeled" / "span-1" / "data.csv"
    with labeled.open() as f:
        header, *kept = list(csv.reader(f))
    # Every note emptied; one 'yes' row (row 0, which ExampleGen's hash puts in the eval split:
    # the training split then holds one class; the eval split's check is the unit test above).
    broken = [[r[0], r[1], "", "yes" if n == 0 else "no"] for n, r in enumerate(kept)]
    with labeled.open("w", newline="") as f:
        csv.writer(f).writerows([header, *broken])
    output_dir = tmp_path / "out"
    run = run_cli(f"--profile={profile_dir}", f"--output-dir={output_dir}", "--parallelism=2")
    assert run.returncode == exit_codes.DATA_REFUSED, run.stdout + run.stderr
    out = run.stdout
    assert "was REFUSED by the data gate" in out
    assert (
        "training: 'notes' [latest_train, previous_train]: No text to learn from. the profile "
        "reads 'notes' as free text (kind: text), but it is empty in every labeled row of the "
        "training split: fill it in, or set its kind to ignored" in out
    )
    assert (
        "training: 'answer' [latest_train, previous_train]: One class in the training split. "
        "every labeled row of the training split has the label 'no'" in out
    )
    assert "Model:      not trained" in out and "Pushed:     nothing" in out
    assert not (output_dir / "serving_model").exists()
    assert "Transform" not in [
        line.split()[1] for line in run.stdout.splitlines() if "executed" in line
    ]

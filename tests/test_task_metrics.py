"""What the run summary, `inspect`, `models` and the report say of each task, read from the
evaluations of the session's real runs (tests/conftest.py): the shipped penguin profile
(multiclass), a CSV `init` made a regression profile of, and the same profile with a margin over
the trivial predictor that no model can meet."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from metadata import artifact_readers
from metadata.run_summary import task_of_run
from metadata.runs import run_contexts, run_executions
from metadata.store import StoreIndex, custom_property, output_artifacts
from tests.conftest import invoke

pytestmark = pytest.mark.e2e

PENGUIN = pytest.mark.xdist_group("penguin")
HOUSE_PRICES = pytest.mark.xdist_group("house-prices")
OLDEST, NEWEST = -1, 0  # run positions in ML Metadata, newest first


# ---- fixtures: the session's runs, as this module reads them -----------------------------------
@pytest.fixture(scope="module")
def penguin_run(penguin_runs) -> dict:
    """The penguin profile's cold run (multiclass, three classes)."""
    return {
        "output_dir": penguin_runs["output_dir"],
        "result": penguin_runs["first"],
        "stdout": penguin_runs["first"].stdout,
        "position": OLDEST,
    }


@pytest.fixture(scope="module")
def regression_runs(house_prices_runs) -> dict:
    """The house prices profile as `init` wrote it (it beats the training mean easily), and the
    re-run after its margin over the trivial predictor became one no model meets."""
    runs = {}
    for name, position in (("blessed", OLDEST), ("unmet", NEWEST)):
        result = house_prices_runs[name]
        assert result is not None, "an earlier step of house_prices_runs failed"
        runs[name] = {
            "output_dir": house_prices_runs["output_dir"],
            "result": result,
            "stdout": result.stdout,
            "position": position,
        }
    return runs


# ---- helpers ------------------------------------------------------------------------------------
def _succeeded(run: dict) -> str:
    result = run["result"]
    assert result.returncode == 0, result.stdout + result.stderr
    return run["stdout"]


def _model_block(stdout: str) -> list[str]:
    """The summary's Model: lines (up to the Serving: line)."""
    lines = stdout.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("Model:"))
    end = next(i for i, line in enumerate(lines) if i > start and not line.startswith("  "))
    return lines[start:end]


def _evaluator_outputs(run: dict, pipeline_name: str) -> tuple[StoreIndex, str, dict]:
    """The store, the run's id and its Evaluator's outputs."""
    index = StoreIndex.open(run["output_dir"] / "metadata.db")
    context = run_contexts(index.store, pipeline_name)[run["position"]]
    evaluator = next(e for e in run_executions(index, context.id) if e.node_id == "Evaluator")
    return index, context.name, output_artifacts(index.store, evaluator.execution.id)


def _report(stdout: str) -> str:
    line = next(line for line in stdout.splitlines() if line.startswith("Report:"))
    return Path(line.split(":", 1)[1].strip()).read_text()


# ---- multiclass ----------------------------------------------------------------------------------
@PENGUIN
def test_penguin_summary_shows_accuracy_per_class_and_a_3x3_confusion_matrix(penguin_run):
    block = _model_block(_succeeded(penguin_run))
    examples = int(re.search(r"on (\d+) eval examples", block[0]).group(1))
    assert re.fullmatch(r" +accuracy \d\.\d{3}; no earlier blessed model to compare with", block[1])
    assert not any("AUC" in line or "calibration" in line for line in block)
    per_class = next(
        line
        for line in block
        if "per class, that class vs the rest at probability 0.5 (precision/recall):" in line
    )
    assert re.search(
        r"0 \d\.\d{3}/\d\.\d{3}, 1 \d\.\d{3}/\d\.\d{3}, 2 \d\.\d{3}/\d\.\d{3}$", per_class
    )

    start = next(i for i, line in enumerate(block) if "confusion matrix" in line)
    header, *rows = (line.split() for line in block[start + 1 : start + 5])
    assert header[-3:] == ["0", "1", "2"] and "actual" in header[0]
    assert [row[0] for row in rows] == ["0", "1", "2"]
    counts = [[int(cell) for cell in row[1:]] for row in rows]
    assert all(len(row) == 3 for row in counts)
    assert sum(map(sum, counts)) == examples > 0

    trivial = next(line for line in block if "vs trivial predictor" in line)
    assert re.search(
        r"vs trivial predictor \(always class '\d'\): accuracy \d\.\d{4}; needs ≥ \d\.\d{4}$",
        trivial,
    )


@PENGUIN
def test_penguin_per_class_metrics_are_kept_apart(penguin_run):
    _succeeded(penguin_run)
    index, run_id, outputs = _evaluator_outputs(penguin_run, "penguin")
    info = task_of_run(index, run_id)
    assert (info.task, info.class_names) == ("multiclass", ["0", "1", "2"])

    evaluation = artifact_readers.evaluation(outputs["evaluation"][0].uri, info.class_names)
    assert evaluation["task"] == "multiclass"
    assert "precision" not in evaluation["overall"] and "recall" not in evaluation["overall"]
    assert 0 < evaluation["overall"]["sparse_categorical_accuracy"] <= 1
    assert list(evaluation["per_class"]) == ["0", "1", "2"]
    matrix = evaluation["confusion_matrix"]
    assert matrix["actual"] == matrix["predicted"] == ["0", "1", "2"]
    assert matrix["total"] == evaluation["overall"]["example_count"]
    # Each class's own precision and recall, as TFMA computed them one class against the rest.
    import tensorflow_model_analysis as tfma

    by_class = {}
    for per_slice in tfma.load_metrics(outputs["evaluation"][0].uri):
        for entry in per_slice.metric_keys_and_values:
            if entry.key.sub_key.HasField("class_id"):
                class_id = entry.key.sub_key.class_id.value
                by_class[(entry.key.name, class_id)] = entry.value.double_value.value
    assert {class_id for _, class_id in by_class} == {0, 1, 2}
    for (metric, class_id), value in by_class.items():
        assert evaluation["per_class"][str(class_id)][metric] == value
    # Accuracy and the confusion matrix count the same predictions (the most probable class).
    counts = matrix["counts"]
    accuracy = sum(counts[c][c] for c in range(3)) / matrix["total"]
    assert evaluation["overall"]["sparse_categorical_accuracy"] == pytest.approx(accuracy)

    # A profile's class names name the classes (the files only hold ids).
    named = artifact_readers.evaluation(
        outputs["evaluation"][0].uri, ["Adelie", "Chinstrap", "Gentoo"]
    )
    assert list(named["per_class"]) == ["Adelie", "Chinstrap", "Gentoo"]
    assert named["confusion_matrix"]["actual"] == ["Adelie", "Chinstrap", "Gentoo"]
    assert named["per_class"]["Gentoo"] == evaluation["per_class"]["2"]
    trivial = evaluation["trivial_baseline"]
    assert trivial["metric"] == "accuracy" and trivial["passed"] and trivial["reason"] == ""


@PENGUIN
def test_penguin_inspect_models_and_report_show_the_task(penguin_run):
    stdout = _succeeded(penguin_run)
    store = penguin_run["output_dir"] / "metadata.db"
    _, _, outputs = _evaluator_outputs(penguin_run, "penguin")
    shown = invoke("inspect", "show", str(outputs["evaluation"][0].id), f"--metadata-path={store}")
    assert shown.exit_code == 0, shown.output
    text = shown.stdout
    assert "task: multiclass" in text and "sparse_categorical_accuracy" in text
    assert re.search(r"^\s+class\s+precision\s+recall$", text, re.MULTILINE)
    assert re.search(r"confusion matrix \(\d+ examples", text)
    assert "vs trivial predictor (always class" in text
    linear = artifact_readers.linear_baseline(outputs["evaluation"][0].uri)
    assert linear["metric"] == "accuracy" and 0.5 < linear["linear_value"] <= 1
    assert linear["linear_model"].startswith("logistic regression (C 1) on ")
    assert re.search(
        r"vs linear baseline \(logistic regression \(C 1\) on \d+ inputs\): accuracy "
        rf"{linear['linear_value']:.4f}, this model [-+]\d\.\d{{4}}",
        text,
    )
    assert f"fitted on {linear['train_rows']} training rows, scored on" in text

    models = invoke("models", f"--metadata-path={store}")
    assert models.exit_code == 0, models.output
    assert re.search(r"accuracy \d\.\d{3} \(linear \d\.\d{3}\), examples \d+", models.stdout)
    assert "precision" not in models.stdout and "AUC" not in models.stdout

    html = _report(stdout)
    assert "<h3>Confusion matrix</h3>" in html and "<h3>Per class</h3>" in html
    assert "<th>actual \\ predicted</th>" in html
    matrix = re.search(r'<table class="narrow confusion">(.*?)</table>', html, re.DOTALL).group(1)
    assert re.findall(r"<tr><th>(\w+)</th>", matrix) == ["0", "1", "2"]
    assert len(re.findall(r'<td class="num diag">\d+</td>', matrix)) == 3
    assert "<h3>Trivial predictor</h3>" in html and "always class" in html
    assert "<h3>Linear baseline</h3>" in html and "Fitted by scikit-learn on" in html
    assert "<th>AUC</th>" not in html
    # One span: nothing to drift from, and the report says so rather than list TFDV's noise.
    drift = html.split("<h3>Drift (new span vs previous span)</h3>", 1)[1].split("<h3>", 1)[0]
    assert "Not checked in this run." in drift and "could not be done" not in drift


# ---- regression ----------------------------------------------------------------------------------
@HOUSE_PRICES
def test_regression_summary_shows_rmse_mae_mse_and_the_trivial_rmse(regression_runs):
    run = regression_runs["blessed"]
    block = _model_block(_succeeded(run))
    assert block[0].startswith("Model:      BLESSED by Evaluator on ")
    assert re.fullmatch(
        r" +RMSE [\d.]+, MAE [\d.]+, MSE [\d.]+, mean label [-\d.]+; "
        r"no earlier blessed model to compare with",
        block[1],
    )
    trivial = next(line for line in block if "vs trivial predictor" in line)
    assert re.search(
        r"vs trivial predictor \(always the training mean [-\d.]+\): RMSE [\d.]+; needs ≤ [\d.]+$",
        trivial,
    )
    assert not any("accuracy" in line or "AUC" in line for line in block)

    index, run_id, outputs = _evaluator_outputs(run, "house-prices")
    assert task_of_run(index, run_id).task == "regression"
    evaluation = artifact_readers.evaluation(outputs["evaluation"][0].uri)
    overall = evaluation["overall"]
    assert evaluation["task"] == "regression" and evaluation["confusion_matrix"] is None
    assert overall["root_mean_squared_error"] ** 2 == pytest.approx(overall["mean_squared_error"])
    assert f"RMSE {overall['root_mean_squared_error']:.4g}," in block[1]
    check = evaluation["trivial_baseline"]
    assert check["passed"] and overall["root_mean_squared_error"] <= check["required"]
    assert f"RMSE {check['trivial_value']:.4g}" in trivial

    store = run["output_dir"] / "metadata.db"
    models = invoke("models", f"--metadata-path={store}")
    assert re.search(
        r"RMSE [\d.]+ \(linear [\d.]+\), MAE [\d.]+, MSE [\d.]+, examples \d+", models.stdout
    )
    html = _report(run["stdout"])
    assert "root_mean_squared_error" in html and "<h3>Trivial predictor</h3>" in html
    assert "always the training mean" in html and "Confusion matrix" not in html


@HOUSE_PRICES
def test_an_unmeetable_margin_is_not_blessed_and_nothing_is_pushed(regression_runs):
    run = regression_runs["unmet"]
    stdout = _succeeded(run)
    block = _model_block(stdout)
    assert block[0].startswith("Model:      NOT BLESSED by Evaluator on ")
    trivial = next(line for line in block if "vs trivial predictor" in line)
    assert trivial.endswith(": NOT met")
    reasons = [line.strip()[2:] for line in block if line.strip().startswith("- ")]
    assert any("does not beat the trivial predictor" in r for r in reasons), block
    assert "Pushed:     nothing (the model was not blessed)" in stdout
    assert "Inference:  nothing scored (the model was not blessed)" in stdout

    # The folder holds the version the blessed run pushed, and nothing more.
    blessed = regression_runs["blessed"]["stdout"]
    pushed = re.search(r"^Pushed:     version (\d+) ", blessed, re.MULTILINE).group(1)
    serving = run["output_dir"] / "serving_model"
    versions = [p.name for p in serving.rglob("*") if p.is_dir() and p.name.isdigit()]
    assert versions == [pushed]
    _, _, outputs = _evaluator_outputs(run, "house-prices")
    blessing = outputs["blessing"][0]
    assert custom_property(blessing, "blessed") == 0
    assert custom_property(blessing, "beats_trivial_predictor") == 0

    store = run["output_dir"] / "metadata.db"
    shown = invoke("inspect", "show", str(blessing.id), f"--metadata-path={store}")
    assert "verdict: NOT BLESSED" in shown.stdout
    assert "does not beat the trivial predictor" in shown.stdout
    html = _report(stdout)
    evaluator_card = re.search(r"<b>Evaluator</b>(.*?)</div>", html, re.DOTALL).group(1)
    assert (
        "NOT BLESSED" in evaluator_card and "does not beat the trivial predictor" in evaluator_card
    )
    assert "NOT BEATEN" in html

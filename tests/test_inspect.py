"""`run_local.py inspect ...` and `report` against the store of the real end-to-end runs.

The commands run in this process (click's test runner): they read ML Metadata and print, and a
process of their own would add nothing but TensorFlow's start-up time.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from ml_metadata import metadata_store
from ml_metadata.proto import metadata_store_pb2

from metadata.runs import run_contexts, run_executions
from metadata.store import StoreIndex, sqlite_connection_config
from tests.browser import chromium_binary, visit
from tests.conftest import PIPELINE_NAME, PROJECT_ROOT, SAMPLE_UNLABELED_ROWS, invoke
from tests.test_pipeline import EXPECTED_NODES

# The session's taxi runs (tests/conftest.py e2e_runs); a worker runs the group whole.
pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("taxi-sample")]
ARTIFACTS_DIR = PROJECT_ROOT / "test-artifacts"


@pytest.fixture(scope="module")
def store_path(e2e_runs) -> Path:
    assert e2e_runs["first"].returncode == 0 and e2e_runs["second"].returncode == 0
    return e2e_runs["output_dir"] / "metadata.db"


def inspect(capsys, store_path: Path, *args: str, as_json: bool = True):
    argv = ["inspect", *args, f"--metadata-path={store_path}"] + (["--json"] if as_json else [])
    result = invoke(*argv)
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout) if as_json else result.stdout


def _mlmd(store_path: Path):
    return StoreIndex.open(store_path).store


def test_runs_match_the_store(capsys, store_path):
    runs = inspect(capsys, store_path, "runs")
    index = StoreIndex.open(store_path)
    contexts = run_contexts(index.store, PIPELINE_NAME)
    assert [r["run_id"] for r in runs] == [c.name for c in contexts]
    for run, context in zip(runs, contexts, strict=True):
        executions = {e.node_id: e for e in run_executions(index, context.id)}
        assert {c["node_id"] for c in run["components"]} == set(executions) == EXPECTED_NODES
        for component in run["components"]:
            assert component["state"] == executions[component["node_id"]].state
            assert component["execution_id"] == executions[component["node_id"]].execution.id
        assert run["state"] == "COMPLETE"
    newest = {c["node_id"]: c["state"] for c in runs[0]["components"]}
    assert newest["Trainer"] == "cached" and newest["Transform"] == "cached"
    text = inspect(capsys, store_path, "runs", as_json=False)
    newest_block = text.split("#2  run")[0]
    assert f"#1  run {runs[0]['run_id']}" in newest_block
    trainer_line = next(line for line in newest_block.splitlines() if line.split()[0] == "Trainer")
    assert trainer_line.split()[1] == "cached"


def test_artifacts_filter_by_component_type_and_run(capsys, store_path):
    models = inspect(capsys, store_path, "artifacts", "--type=Model")
    store = _mlmd(store_path)
    expected = [a.id for a in store.get_artifacts_by_type("Model")]
    assert [m["id"] for m in models] == sorted(expected)
    assert all(m["producer"] == "Trainer" and m["state"] == "LIVE" for m in models)
    trainer = inspect(capsys, store_path, "artifacts", "--component=Trainer")
    assert {a["type"] for a in trainer} == {"Model", "ModelRun"}
    first_run = inspect(capsys, store_path, "artifacts", "--run=2")
    assert {a["producer"] for a in first_run} >= {
        "CsvExampleGen",
        "Trainer",
        "Pusher",
        "BulkInferrer",
    }


def _artifact_of(capsys, store_path, type_name: str, component: str | None = None) -> dict:
    """The newest artifact of a type (of one producer, when given)."""
    args = [f"--type={type_name}"] + ([f"--component={component}"] if component else [])
    return inspect(capsys, store_path, "artifacts", *args)[-1]


def test_show_statistics_schema_anomalies(capsys, store_path):
    stats = inspect(
        capsys,
        store_path,
        "show",
        str(_artifact_of(capsys, store_path, "ExampleStatistics", "StatisticsGen")["id"]),
    )
    splits = stats["details"]["splits"]
    assert sum(s["examples"] for s in splits.values()) == 2500
    fare = splits["latest_train"]["features"]["fare"]
    assert (
        fare["missing"] == 0
        and fare["count"] == splits["latest_train"]["examples"]
        and fare["mean"] > 0
    )
    payment = splits["latest_train"]["features"]["payment_type"]
    assert payment["top_values"][0]["value"] in ("Cash", "Credit Card")
    schema = inspect(
        capsys, store_path, "show", str(_artifact_of(capsys, store_path, "Schema")["id"])
    )
    assert len(schema["details"]["features"]) == 18
    for validator, splits in (
        ("ExampleValidator", {"latest_train", "latest_eval", "previous_train", "previous_eval"}),
        ("DriftValidator", {"latest_train_previous_train"}),
    ):
        anomalies = inspect(
            capsys,
            store_path,
            "show",
            str(_artifact_of(capsys, store_path, "ExampleAnomalies", validator)["id"]),
        )
        assert set(anomalies["details"]["splits"]) == splits
        assert anomalies["details"]["count"] == 0
    text = inspect(capsys, store_path, "show", str(stats["id"]), as_json=False)
    assert "payment_type" in text and "missing" in text


def test_show_evaluation_blessings_model_push_inference(capsys, store_path):
    evaluation = inspect(
        capsys, store_path, "show", str(_artifact_of(capsys, store_path, "ModelEvaluation")["id"])
    )
    details = evaluation["details"]
    assert 0.5 < details["overall"]["auc"] <= 1.0
    assert details["thresholds"]["AUC"]["valueThreshold"]["lowerBound"] == 0.7
    assert any(name.startswith("trip_start_hour=") for name in details["slices"])
    blessing = inspect(
        capsys, store_path, "show", str(_artifact_of(capsys, store_path, "ModelBlessing")["id"])
    )
    assert blessing["details"]["blessed"] is True and blessing["details"]["reasons"]
    infra = inspect(
        capsys, store_path, "show", str(_artifact_of(capsys, store_path, "InfraBlessing")["id"])
    )
    assert (
        infra["details"]["blessed"] is True and "answered 30 requests" in infra["details"]["reason"]
    )
    model = inspect(
        capsys, store_path, "show", str(_artifact_of(capsys, store_path, "Model")["id"])
    )
    assert {"serving_default", "transform_features", "classification", "regression"} <= set(
        model["details"]["signatures"]
    )
    pushed = inspect(
        capsys, store_path, "show", str(_artifact_of(capsys, store_path, "PushedModel")["id"])
    )
    assert pushed["details"]["pushed"] and Path(pushed["details"]["destination"]).is_dir()
    inference = inspect(
        capsys, store_path, "show", str(_artifact_of(capsys, store_path, "InferenceResult")["id"])
    )
    assert inference["details"]["predictions"] == SAMPLE_UNLABELED_ROWS
    assert 0 <= inference["details"]["mean_prediction"] <= 1
    text = inspect(capsys, store_path, "show", str(evaluation["id"]), as_json=False)
    assert "auc" in text and "threshold AUC" in text


def test_lineage_of_the_pushed_model_reaches_data_schema_and_code(
    capsys, store_path, sample_data_dir
):
    tree = inspect(capsys, store_path, "lineage", "pushed-model")
    assert tree["type"] == "PushedModel"
    store = _mlmd(store_path)
    for source, target in tree["edges"]:
        consumers = {
            e.execution_id
            for e in store.get_events_by_artifact_ids([source])
            if e.type == metadata_store_pb2.Event.INPUT
        }
        producers = {
            e.execution_id
            for e in store.get_events_by_artifact_ids([target])
            if e.type == metadata_store_pb2.Event.OUTPUT
        }
        assert consumers & producers, (source, target)

    sources: dict[str, dict] = {}

    def walk(node):
        produced = node.get("produced_by")
        if produced:
            sources.setdefault(produced["node_id"], produced["sources"])
            for child in produced["inputs"]:
                walk(child)

    walk(tree)
    assert sources["CsvExampleGen"]["input_base"] == str(sample_data_dir / "labeled")
    assert sources["CuratedSchemaImporter"]["schema_file"].endswith("schema.pbtxt")
    assert sources["Trainer"]["run_fn"] == "components.model.run_fn"
    assert "code_fingerprint" in sources["Transform"]["custom_config"]
    assert {"Pusher", "Trainer", "Evaluator", "InfraValidator", "Transform", "Tuner"} <= set(
        sources
    )
    text = inspect(capsys, store_path, "lineage", "pushed-model", as_json=False)
    assert "<- Trainer" in text and "input_base" in text


def test_diff_of_the_two_runs(capsys, store_path):
    diff = inspect(capsys, store_path, "diff", "2", "1")
    assert diff["statistics"]["available"] and diff["statistics"]["changed_features"] == {}
    assert diff["schema"]["added"] == [] and diff["schema"]["removed"] == []
    assert diff["hyperparameters"]["available"] and diff["hyperparameters"]["changed"] == {}
    assert diff["blessing"]["model"] == {"a": 1, "b": 1}
    assert "Trainer.Model" in diff["same_artifacts"]
    text = inspect(capsys, store_path, "diff", "2", "1", as_json=False)
    assert "hyperparameters: unchanged" in text


@pytest.mark.parametrize(
    "args, message",
    [
        (
            ["inspect", "runs", "--metadata-path=/no/such/metadata.db"],
            "no ML Metadata store at /no/such/metadata.db",
        ),
        (["inspect", "show", "999999"], "no artifact with id 999999"),
        (["inspect", "show", "abc"], "artifact id must be a number"),
        (["inspect", "diff", "1", "no-such-run"], "no run 'no-such-run'"),
        (["report", "no-such-run"], "no run 'no-such-run'"),
    ],
)
def test_bad_input_is_one_line_and_exit_code_2(store_path, args, message):
    if not any(a.startswith("--metadata-path") for a in args):
        args = [*args, f"--metadata-path={store_path}"]
    result = invoke(*args)
    assert result.exit_code == 2
    assert result.stderr.strip().splitlines() == [f"error: {result.stderr.strip()[7:]}"]
    assert message in result.stderr and result.stdout == ""


def test_empty_store_is_a_clear_error(tmp_path):
    metadata_store.MetadataStore(sqlite_connection_config(tmp_path / "empty.db"))
    result = invoke("inspect", "runs", f"--metadata-path={tmp_path / 'empty.db'}")
    assert result.exit_code == 2
    assert (
        f"the ML Metadata store {tmp_path / 'empty.db'} holds no pipeline runs yet" in result.stderr
    )


def test_html_report_opens_in_chromium_without_errors_or_network(e2e_runs, store_path, capsys):
    assert chromium_binary(), "make test installs Debian's chromium"
    first = e2e_runs["first"].stdout
    report_line = next(line for line in first.splitlines() if line.startswith("Report:"))
    report = Path(report_line.split(":", 1)[1].strip())
    assert report.is_file() and report.suffix == ".html"
    html = report.read_text()
    assert "http://" not in html and "https://" not in html and "<script" not in html
    visited = visit(report.as_uri(), ARTIFACTS_DIR / "report.png")
    assert visited.console_errors == []
    assert visited.requests == []
    evaluation = inspect(capsys, store_path, "artifacts", "--type=ModelEvaluation")[0]
    auc = inspect(capsys, store_path, "show", str(evaluation["id"]))["details"]["overall"]["auc"]
    assert f"{auc:.4f}" in visited.text
    assert "Evaluator BLESSED" in visited.text.replace("\n", " ")
    assert "InfraValidator BLESSED" in visited.text.replace("\n", " ")
    assert (ARTIFACTS_DIR / "report.png").stat().st_size > 10_000


def test_the_browser_harness_catches_errors_and_requests(tmp_path):
    """The report test can fail: a page with a console error and a remote image is caught."""
    page = tmp_path / "bad.html"
    page.write_text(
        '<html><body>hi<img src="http://192.0.2.1/x.png"><script>console.error("boom")</script></body></html>'
    )
    visited = visit(page.as_uri(), tmp_path / "bad.png")
    assert any("boom" in e for e in visited.console_errors)
    assert any(r.startswith("http://192.0.2.1/") for r in visited.requests)

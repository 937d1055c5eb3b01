"""Bad data never reaches a model: refused with every finding named, fixed, accepted, trained.

One CLI-level flow per class of failure, each running the real pipeline on a copy of the sample:
- gated (exit 3): the data reads, the checks find problems and the data gate refuses the run.
  `data_lifecycle` breaks the latest span in five ways at once (a column dropped, text in a
  numeric column, the label empty, an unseen category that also shifts the distribution, negative
  fares), then fixes it except for a new column, accepts that column with `schema diff` /
  `schema accept`, and trains;
- unreadable (exit 1): ExampleGen's file checks name each bad file, its line and its problem.
Either way nothing is trained or pushed, ML Metadata records the failed step with its message,
and no artifact is published for it. Each file check on its own is tested in-process.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from components.data_gate.anomalies import Finding, gate_findings, refusal_message
from components.span_example_gen import csv_checks, executor, spans
from metadata.store import StoreIndex, custom_property
from tests.conftest import (
    FAST_RUN_ARGS,
    LATEST_SPAN,
    PIPELINE_NAME,
    PROJECT_ROOT,
    edit_column,
    invoke,
    node_outputs,
    node_status,
    read_rows,
    run_cli,
    run_node,
    run_node_states,
    write_rows,
)

TRAINING_NODES = ("Transform", "Tuner", "Trainer", "Evaluator", "InfraValidator", "Pusher")
UNLABELED_SPAN = Path("unlabeled") / "span-1" / "taxi.csv"


def break_latest_span(path: Path) -> None:
    """Five problems in one span: each must be named by its column."""
    rows = read_rows(path)
    company = rows[0].index("company")
    write_rows(path, [row[:company] + row[company + 1 :] for row in rows])
    edit_column(path, "trip_miles", lambda i, v: "far" if i == 3 else v)
    edit_column(path, "tips", lambda i, v: "")
    # Three unseen values, and every other trip paid by card: a schema and a drift finding.
    edit_column(path, "payment_type", lambda i, v: "Bitcoin" if i < 3 else "Credit Card")
    edit_column(path, "fare", lambda i, v: "-7.25" if i < 2 else v)


def add_driver_rating_column(path: Path) -> None:
    """A column the curated schema does not know, with valid-looking values."""
    rows = read_rows(path)
    write_rows(
        path, [rows[0] + ["driver_rating"]] + [row + [str(i % 5)] for i, row in enumerate(rows[1:])]
    )


def failure_message(output_dir: Path, node_id: str, run_position: int = 0) -> str:
    """The failure message ML Metadata holds for `node_id` in a run (0 = newest)."""
    _, node = run_node(output_dir, node_id, run_position)
    return json.loads(node.execution.custom_properties["__execution_result__"].string_value)[
        "resultMessage"
    ]


def finding_lines(output: str) -> list[str]:
    """The gate's finding lines in a run's summary."""
    return [
        line.strip()[2:]
        for line in output.splitlines()
        if line.strip().startswith("- schema: ") or line.strip().startswith("- drift: ")
    ]


def assert_nothing_trained_or_pushed(output_dir: Path, run_position: int = 0) -> None:
    states = run_node_states(output_dir, run_position)
    assert not set(TRAINING_NODES) & set(states), states


@pytest.fixture(scope="module")
def data_lifecycle(sample_data_dir, tmp_path_factory):
    """Broken data refused; fixed but for a new column, refused again; the column accepted into
    the curated schema; trained. The batch to score is skewed throughout (reported, not gated)."""
    root = tmp_path_factory.mktemp("lifecycle")
    data_dir, output_dir, schema_file = root / "data", root / "out", root / "schema.pbtxt"
    shutil.copytree(sample_data_dir, data_dir)
    shutil.copy(PROJECT_ROOT / "schema" / "schema.pbtxt", schema_file)
    edit_column(data_dir / UNLABELED_SPAN, "payment_type", lambda i, v: "Credit Card")
    args = (
        f"--data-dir={data_dir}",
        f"--output-dir={output_dir}",
        f"--schema={schema_file}",
        *FAST_RUN_ARGS,
    )
    store_options = (f"--metadata-path={output_dir / 'metadata.db'}", f"--schema={schema_file}")
    clean_span = (data_dir / LATEST_SPAN).read_bytes()
    schema_before = schema_file.read_text()

    break_latest_span(data_dir / LATEST_SPAN)
    broken = run_cli(*args)
    (data_dir / LATEST_SPAN).write_bytes(clean_span)
    add_driver_rating_column(data_dir / LATEST_SPAN)
    new_column = run_cli(*args)
    diff = invoke("schema", "diff", *store_options)
    accept = invoke("schema", "accept", *store_options)
    accepted_schema = schema_file.read_text()
    nothing_left = invoke("schema", "diff", *store_options)
    trained = run_cli(*args) if accept.exit_code == 0 else None
    return {
        "output_dir": output_dir,
        "data_dir": data_dir,
        "broken": broken,
        "new_column": new_column,
        "diff": diff,
        "accept": accept,
        "nothing_left": nothing_left,
        "trained": trained,
        "schema_before": schema_before,
        "accepted_schema": accepted_schema,
    }


# Run positions in the store, newest first.
TRAINED_RUN, NEW_COLUMN_RUN, BROKEN_RUN = 0, 1, 2


@pytest.mark.e2e
def test_broken_span_is_refused_with_every_problem_named_by_its_column(data_lifecycle):
    result, output_dir = data_lifecycle["broken"], data_lifecycle["output_dir"]
    assert result.returncode == 3, result.stdout + result.stderr
    out = result.stdout
    assert "was REFUSED by the data gate" in out and "Traceback" not in out
    findings = finding_lines(out)
    expected = {
        ("schema: 'company'", "Column dropped"),
        (
            "schema: 'trip_miles'",
            "Unexpected data type. Expected data of type: FLOAT but got STRING",
        ),
        ("schema: 'tips'", "Column dropped"),
        (
            "schema: 'payment_type'",
            "Unexpected string values. Examples contain values missing from the schema: Bitcoin",
        ),
        ("schema: 'fare'", "Out-of-range values. Unexpectedly low values: -7.25"),
        ("drift: 'payment_type'", "above the threshold 0.1"),
    }
    for column, problem in expected:
        assert any(f.startswith(column) and problem in f for f in findings), (column, findings)
    assert "What to do:" in out and "fix the data" in out and "schema accept" in out
    assert "`data_checks.drift` in the profile, profile.yaml" in out
    assert "Model:      not trained" in out and "Pushed:     nothing" in out
    states = run_node_states(output_dir, BROKEN_RUN)
    assert states["DataGate"] == "failed"
    assert "schema: 'fare'" in failure_message(output_dir, "DataGate", BROKEN_RUN)
    assert_nothing_trained_or_pushed(output_dir, BROKEN_RUN)


@pytest.mark.e2e
def test_fixed_span_reuses_what_the_fix_did_not_touch_and_names_the_new_column(data_lifecycle):
    result, output_dir = data_lifecycle["new_column"], data_lifecycle["output_dir"]
    assert result.returncode == 3, result.stdout + result.stderr
    assert finding_lines(result.stdout) == [
        "schema: 'driver_rating' [latest_train, latest_eval]: New column. New column "
        "(column in data but not in schema)"
    ]
    assert "driver_rating" in failure_message(output_dir, "DataGate", NEW_COLUMN_RUN)
    states = run_node_states(output_dir, NEW_COLUMN_RUN)
    assert states["CsvExampleGen"] == "executed"  # the span's file changed
    for untouched in ("UnlabeledExampleGen", "UnlabeledStatisticsGen", "CuratedSchemaImporter"):
        assert states[untouched] == "cached", states
    assert node_status(result.stdout)["UnlabeledExampleGen"].startswith("cached")
    assert_nothing_trained_or_pushed(output_dir, NEW_COLUMN_RUN)


@pytest.mark.e2e
def test_schema_diff_shows_the_new_column_and_accept_writes_it(data_lifecycle):
    diff = data_lifecycle["diff"]
    assert diff.exit_code == 0, diff.output
    assert "In the data, not in the curated schema: driver_rating" in diff.output
    assert '+  name: "driver_rating"' in diff.output
    assert data_lifecycle["accept"].exit_code == 0
    accepted = data_lifecycle["accepted_schema"]
    assert 'name: "driver_rating"' in accepted
    before = data_lifecycle["schema_before"]
    assert accepted.startswith(before.split("feature {")[0])  # the leading comments are kept
    assert "`schema accept` would change nothing." in data_lifecycle["nothing_left"].output


@pytest.mark.e2e
def test_after_accepting_the_run_trains_from_cached_ingestion_and_reports_skew(data_lifecycle):
    result, output_dir = data_lifecycle["trained"], data_lifecycle["output_dir"]
    assert result is not None and result.returncode == 0, result and result.stdout + result.stderr
    states = run_node_states(output_dir, TRAINED_RUN)
    assert states["CsvExampleGen"] == "cached" and states["StatisticsGen"] == "cached"
    assert states["ExampleValidator"] == "executed" and states["Pusher"] == "executed"
    out = result.stdout
    assert "schema: no anomaly; no drift past thresholds vs span 1" in out
    assert "Skew:       batch to score (unlabeled span 1) vs training data: 1 feature(s)" in out
    assert "            - skew: 'payment_type'" in out
    # Trained on a tiny budget, the model may miss a per-slice threshold (seeded training is not
    # bit-exact from run to run): the summary states the verdict the Evaluator recorded in ML
    # Metadata, and the push follows it.
    blessing = node_outputs(output_dir, "Evaluator", TRAINED_RUN)["blessing"][0]
    blessed = custom_property(blessing, "blessed") == 1
    assert f"Model:      {'BLESSED' if blessed else 'NOT BLESSED'} by Evaluator" in out
    assert (output_dir / "serving_model" / PIPELINE_NAME).is_dir() == blessed
    pushed = (
        "Pushed:     version " if blessed else "Pushed:     nothing (the model was not blessed)"
    )
    assert pushed in out


@pytest.mark.e2e
def test_unreadable_files_are_each_named_with_their_line_and_nothing_is_ingested(
    sample_data_dir, tmp_path
):
    data_dir, output_dir = tmp_path / "data", tmp_path / "out"
    shutil.copytree(sample_data_dir, data_dir)
    span = data_dir / LATEST_SPAN.parent
    lines = (span / "taxi.csv").read_bytes().splitlines(keepends=True)
    (span / "empty.csv").write_bytes(b"")
    (span / "header_only.csv").write_bytes(lines[0])
    quoted = [line.decode() for line in lines[:20]]
    quoted[10] = quoted[10].replace(",", ',"', 1)  # a quote opened in line 11, never closed
    (span / "quote.csv").write_text("".join(quoted))
    latin1 = lines[:8]
    latin1[5] = latin1[5].replace(b"Cash", b"C\xe9sh", 1).replace(b"Credit Card", b"Cr\xe9dit", 1)
    (span / "latin1.csv").write_bytes(b"".join(latin1))

    result = run_cli(f"--data-dir={data_dir}", f"--output-dir={output_dir}", *FAST_RUN_ARGS)
    assert result.returncode == 1, result.stdout + result.stderr
    out = result.stdout
    assert "error: CsvExampleGen failed: InvalidInputData" in out
    expected = [
        f"{span / 'empty.csv'} is empty (0 bytes)",
        f"{span / 'header_only.csv'} has a header row but no data rows",
        f"{span / 'quote.csv'}, line 11: a quoted field opened here is never closed",
        f"{span / 'latin1.csv'}, line 6, column",
    ]
    message = failure_message(output_dir, "CsvExampleGen")
    for text in expected:
        assert text in out and text in message, text
    assert "bytes that are not UTF-8" in out
    assert "Nothing was pushed" in out and "Traceback" not in out
    store = StoreIndex.open(output_dir / "metadata.db").store
    labeled = [a for a in store.get_artifacts_by_type("Examples") if "/CsvExampleGen/" in a.uri]
    assert all(a.state != a.LIVE for a in labeled)
    states = run_node_states(output_dir)
    assert states["CsvExampleGen"] == "failed"
    # What ran beside it (the schema import, the unlabeled data's branch) finished; nothing that
    # waits for CsvExampleGen started.
    assert set(states) <= {
        "CsvExampleGen",
        "CuratedSchemaImporter",
        "UnlabeledExampleGen",
        "UnlabeledStatisticsGen",
    }, states
    assert {n for n, state in states.items() if state not in ("executed", "cached")} == {
        "CsvExampleGen"
    }, states
    assert_nothing_trained_or_pushed(output_dir)
    assert not (output_dir / "serving_model").exists()


# ---- in-process: each check on its own ----------------------------------------------------------
def test_an_empty_span_folder_is_named_not_skipped(tmp_path):
    """TFX alone would take span 2 as the latest and quietly retrain on it."""
    for span in (1, 2):
        (tmp_path / f"span-{span}").mkdir()
        (tmp_path / f"span-{span}" / "taxi.csv").write_text("a\n1\n")
    (tmp_path / "span-3").mkdir()
    plan = spans.SpanPlan.make(latest=2, training_spans=2)
    with pytest.raises(csv_checks.InvalidInputData) as refused:
        executor.check_span_folders(str(tmp_path), "span-{SPAN}/*.csv", plan)
    assert str(tmp_path / "span-3") in str(refused.value)
    assert "Add the span's CSV file(s)" in str(refused.value)


def test_a_row_that_does_not_match_its_header_is_named(tmp_path):
    path = tmp_path / "taxi.csv"
    path.write_text("fare,tips\n1.0,2.0,3.0\n")
    assert csv_checks.check_csv_file(str(path)) == [
        f"{path}, line 2: 3 fields, but the header has 2; fix the row (a stray comma or quote?) "
        "or remove it"
    ]


def test_drift_alone_refuses_the_data_and_says_which_threshold_to_raise(tmp_path):
    """The gate reads the drift validator's anomalies as well as the schema's: valid values
    with a new distribution are refused too, and the advice names the drift thresholds."""
    from tensorflow_metadata.proto.v0 import anomalies_pb2

    def write(uri: Path, folder: str, anomalies: anomalies_pb2.Anomalies) -> None:
        (uri / folder).mkdir(parents=True)
        (uri / folder / "SchemaDiff.pb").write_bytes(anomalies.SerializeToString())

    schema_uri, drift_uri = tmp_path / "schema", tmp_path / "drift"
    write(schema_uri, "Split-latest_train", anomalies_pb2.Anomalies())
    drifted = anomalies_pb2.Anomalies()
    reason = drifted.anomaly_info["payment_type"].reason.add()
    reason.short_description = "High Linfty distance between current and previous"
    reason.description = "The Linfty distance is 0.69, above the threshold 0.1."
    write(drift_uri, "SplitPair-latest_train_previous_train", drifted)

    found = gate_findings(
        str(schema_uri), ["latest_train"], str(drift_uri), ["latest_train_previous_train"], True
    )
    assert found == [
        Finding(
            "drift",
            "payment_type",
            "High Linfty distance between current and previous",
            "The Linfty distance is 0.69, above the threshold 0.1.",
            ["latest_train_previous_train"],
        )
    ]
    message = refusal_message(found, "2")
    assert "drift: 'payment_type'" in message and "data_checks.drift" in message
    assert "schema accept" not in message  # nothing for the schema to accept
    # Without a previous span there is nothing to drift from: the same anomalies do not count.
    assert (
        gate_findings(
            str(schema_uri),
            ["latest_train"],
            str(drift_uri),
            ["latest_train_previous_train"],
            False,
        )
        == []
    )

"""Bad data never reaches a model: each bad input, its expected outcome, and the re-run after a fix.

Every test edits the latest span (span 2) of a copy of the sample data and runs the real CLI.
Outcomes are of two kinds:
- gated (exit 3): ingestion works, ExampleValidator or the drift check finds the problem, and the
  data gate refuses the run; the summary lists each finding and what to do;
- unreadable input (exit 1): ExampleGen's file checks name the file, the line and the problem.
Either way nothing is trained or pushed, ML Metadata records the failed step with its message,
and no artifact is published for it.
"""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import pytest

from pipeline import metadata_reader as mr
from tests.conftest import FAST_RUN_ARGS, copy_project, run_cli

pytestmark = pytest.mark.e2e

LATEST_SPAN = Path("labeled") / "span-2" / "taxi.csv"
TRAINING_NODES = ("Transform", "Tuner", "Trainer", "Evaluator", "InfraValidator", "Pusher")


@pytest.fixture
def data_dir(sample_data_dir, tmp_path) -> Path:
    target = tmp_path / "data"
    shutil.copytree(sample_data_dir, target)
    return target


def read_rows(path: Path) -> list[list[str]]:
    with path.open(newline="") as f:
        return list(csv.reader(f))


def write_rows(path: Path, rows: list[list[str]]) -> None:
    with path.open("w", newline="") as f:
        csv.writer(f, lineterminator="\n").writerows(rows)


def edit_column(path: Path, column: str, edit) -> None:
    """Applies `edit(row_number, value) -> value` to one column of every data row."""
    rows = read_rows(path)
    index = rows[0].index(column)
    for number, row in enumerate(rows[1:]):
        row[index] = edit(number, row[index])
    write_rows(path, rows)


def add_driver_rating_column(path: Path) -> None:
    """A column the curated schema does not know, with valid-looking values."""
    rows = read_rows(path)
    write_rows(
        path, [rows[0] + ["driver_rating"]] + [row + [str(i % 5)] for i, row in enumerate(rows[1:])]
    )


def run(data_dir: Path, output_dir: Path, *extra: str):
    return run_cli(f"--data-dir={data_dir}", f"--output-dir={output_dir}", *FAST_RUN_ARGS, *extra)


def node_states(output_dir: Path) -> dict[str, str]:
    store = mr.open_store(output_dir / "metadata.db")
    run_context = mr.run_contexts(store, "taxi-tips")[0]
    return {n.node_id: n.state for n in mr.run_executions(store, run_context.id)}


def failure_message(output_dir: Path, node_id: str) -> str:
    store = mr.open_store(output_dir / "metadata.db")
    execution = mr.latest_node_execution(store, "taxi-tips", node_id).execution
    return json.loads(execution.custom_properties["__execution_result__"].string_value)[
        "resultMessage"
    ]


def assert_nothing_trained_or_pushed(output_dir: Path) -> None:
    states = node_states(output_dir)
    assert not set(TRAINING_NODES) & set(states), states
    assert not (output_dir / "serving_model").exists()


def assert_gated(result, output_dir: Path, *expected: str) -> str:
    """Exit 3, each expected text in the printed findings, DataGate FAILED in MLMD."""
    assert result.returncode == 3, result.stdout + result.stderr
    out = result.stdout
    assert "was REFUSED by the data gate" in out
    assert "What to do:" in out and "fix the data" in out
    for text in expected:
        assert text in out, out
    assert node_states(output_dir)["DataGate"] == "failed"
    assert expected[0] in failure_message(output_dir, "DataGate")
    assert "Traceback" not in out
    assert_nothing_trained_or_pushed(output_dir)
    return out


def assert_unreadable(result, output_dir: Path, *expected: str) -> None:
    """Exit 1, ExampleGen FAILED with the message (naming the file) in MLMD, no Examples."""
    assert result.returncode == 1, result.stdout + result.stderr
    out = result.stdout
    assert "CsvExampleGen failed: InvalidInputData" in out
    for text in expected:
        assert text in out, out
        assert text in failure_message(output_dir, "CsvExampleGen")
    assert "Traceback" not in out
    store = mr.open_store(output_dir / "metadata.db")
    assert not store.get_artifacts_by_type("Examples") or all(
        a.state != a.LIVE for a in store.get_artifacts_by_type("Examples")
    )
    assert_nothing_trained_or_pushed(output_dir)


# --- Gated: the data reads, and the checks explain what is wrong. ---


def test_missing_column_is_gated(data_dir, tmp_path):
    rows = read_rows(data_dir / LATEST_SPAN)
    index = rows[0].index("company")
    write_rows(data_dir / LATEST_SPAN, [row[:index] + row[index + 1 :] for row in rows])
    out = assert_gated(run(data_dir, tmp_path / "out"), tmp_path / "out", "schema: 'company'")
    assert "Column dropped" in out


def test_extra_column_is_gated(data_dir, tmp_path):
    add_driver_rating_column(data_dir / LATEST_SPAN)
    out = assert_gated(run(data_dir, tmp_path / "out"), tmp_path / "out", "schema: 'driver_rating'")
    assert "New column" in out


def test_wrong_type_in_numeric_column_is_gated(data_dir, tmp_path):
    edit_column(data_dir / LATEST_SPAN, "trip_miles", lambda i, v: "far" if i == 3 else v)
    out = assert_gated(run(data_dir, tmp_path / "out"), tmp_path / "out", "schema: 'trip_miles'")
    assert "Unexpected data type" in out or "type" in out.lower()


def test_label_column_all_empty_is_gated(data_dir, tmp_path):
    edit_column(data_dir / LATEST_SPAN, "tips", lambda i, v: "")
    assert_gated(run(data_dir, tmp_path / "out"), tmp_path / "out", "schema: 'tips'")


def test_unseen_categorical_value_is_gated(data_dir, tmp_path):
    edit_column(data_dir / LATEST_SPAN, "payment_type", lambda i, v: "Bitcoin" if i < 3 else v)
    out = assert_gated(run(data_dir, tmp_path / "out"), tmp_path / "out", "schema: 'payment_type'")
    assert "Unexpected string values" in out and "Bitcoin" in out


def test_negative_fares_are_gated(data_dir, tmp_path):
    edit_column(data_dir / LATEST_SPAN, "fare", lambda i, v: "-7.25" if i < 2 else v)
    out = assert_gated(run(data_dir, tmp_path / "out"), tmp_path / "out", "schema: 'fare'")
    assert "Out-of-range values" in out and "-7.25" in out


def test_drift_past_a_threshold_is_gated(data_dir, tmp_path):
    """Every new trip paid by card: valid values, so only the drift check can catch it."""
    edit_column(data_dir / LATEST_SPAN, "payment_type", lambda i, v: "Credit Card")
    out = assert_gated(run(data_dir, tmp_path / "out"), tmp_path / "out", "drift: 'payment_type'")
    assert "above the threshold 0.1" in out
    assert "schema:" not in out.split("What to do:")[0]
    assert "drift_thresholds" in out


# --- Unreadable: ExampleGen's file checks name the file and the problem. ---


def test_empty_file_names_the_file(data_dir, tmp_path):
    (data_dir / LATEST_SPAN).write_bytes(b"")
    assert_unreadable(
        run(data_dir, tmp_path / "out"), tmp_path / "out", f"{data_dir / LATEST_SPAN} is empty"
    )


def test_header_only_file_names_the_file(data_dir, tmp_path):
    header = (data_dir / LATEST_SPAN).read_text().splitlines()[0]
    (data_dir / LATEST_SPAN).write_text(header + "\n")
    assert_unreadable(
        run(data_dir, tmp_path / "out"),
        tmp_path / "out",
        f"{data_dir / LATEST_SPAN} has a header row but no data rows",
    )


def test_unterminated_quote_names_the_line(data_dir, tmp_path):
    lines = (data_dir / LATEST_SPAN).read_text().splitlines(keepends=True)
    lines[10] = lines[10].replace(",", ',"', 1)  # a quote opened in line 11, never closed
    (data_dir / LATEST_SPAN).write_text("".join(lines))
    assert_unreadable(
        run(data_dir, tmp_path / "out"),
        tmp_path / "out",
        f"{data_dir / LATEST_SPAN}, line 11: a quoted field opened here is never closed",
    )


def test_bytes_that_are_not_utf8_name_the_line(data_dir, tmp_path):
    lines = (data_dir / LATEST_SPAN).read_bytes().splitlines(keepends=True)
    lines[5] = lines[5].replace(b"Cash", b"C\xe9sh", 1).replace(b"Credit Card", b"Cr\xe9dit", 1)
    (data_dir / LATEST_SPAN).write_bytes(b"".join(lines))
    assert_unreadable(
        run(data_dir, tmp_path / "out"),
        tmp_path / "out",
        f"{data_dir / LATEST_SPAN}, line 6",
        "bytes that are not UTF-8",
    )


def test_empty_span_folder_is_named(data_dir, tmp_path):
    (data_dir / "labeled" / "span-3").mkdir()
    assert_unreadable(
        run(data_dir, tmp_path / "out"),
        tmp_path / "out",
        f"{data_dir / 'labeled' / 'span-3'}",
        "Add the span's CSV file(s)",
    )


# --- After the fix: the re-run succeeds and reuses what the fix did not touch. ---


def test_fixing_the_data_then_rerunning_succeeds_and_reuses_the_cache(data_dir, tmp_path):
    original = (data_dir / LATEST_SPAN).read_bytes()
    edit_column(data_dir / LATEST_SPAN, "fare", lambda i, v: "-7.25" if i < 2 else v)
    output_dir = tmp_path / "out"
    assert run(data_dir, output_dir).returncode == 3
    (data_dir / LATEST_SPAN).write_bytes(original)

    fixed = run(data_dir, output_dir)
    assert fixed.returncode == 0, fixed.stdout + fixed.stderr
    states = node_states(output_dir)
    assert states["CsvExampleGen"] == "executed"  # the span's file changed
    for untouched in ("UnlabeledExampleGen", "UnlabeledStatisticsGen", "CuratedSchemaImporter"):
        assert states[untouched] == "cached", states
    assert states["DataGate"] == "executed" and states["Pusher"] == "executed"
    assert "schema: no anomaly; no drift past thresholds vs span 1" in fixed.stdout
    assert len(list((output_dir / "serving_model" / "taxi-tips").iterdir())) == 1


def test_accepting_a_new_column_into_the_schema_then_rerunning_succeeds(data_dir, tmp_path):
    """The accept path: `schema diff` shows the change, `schema accept` writes it, the re-run
    validates against it, and ingestion and statistics are reused. The batch to score is skewed
    (every trip paid by card), which the summary reports without stopping the run."""
    project = copy_project(tmp_path / "project")
    add_driver_rating_column(data_dir / LATEST_SPAN)
    edit_column(
        data_dir / "unlabeled" / "span-1" / "taxi.csv", "payment_type", lambda i, v: "Credit Card"
    )
    output_dir = tmp_path / "out"
    args = (f"--data-dir={data_dir}", f"--output-dir={output_dir}", *FAST_RUN_ARGS)
    assert run_cli(*args, cwd=project).returncode == 3

    metadata = f"--metadata-path={output_dir / 'metadata.db'}"
    diff = run_cli("schema", "diff", metadata, cwd=project)
    assert diff.returncode == 0, diff.stderr
    assert "In the data, not in the curated schema: driver_rating" in diff.stdout
    assert '+  name: "driver_rating"' in diff.stdout
    schema_file = project / "schema" / "schema.pbtxt"
    before = schema_file.read_text()
    assert run_cli("schema", "accept", metadata, cwd=project).returncode == 0
    assert 'name: "driver_rating"' in schema_file.read_text()
    assert schema_file.read_text().startswith(before.split("feature {")[0])  # comments kept

    rerun = run_cli(*args, cwd=project)
    assert rerun.returncode == 0, rerun.stdout + rerun.stderr
    states = node_states(output_dir)
    assert states["CsvExampleGen"] == "cached" and states["StatisticsGen"] == "cached"
    assert states["ExampleValidator"] == "executed" and states["Pusher"] == "executed"
    assert "Skew:       batch to score (unlabeled span 1) vs training data: 1 feature(s)" in (
        rerun.stdout
    )
    assert "skew: 'payment_type'" in rerun.stdout
    nothing_left = run_cli("schema", "diff", metadata, cwd=project)
    assert "`schema accept` would change nothing." in nothing_left.stdout

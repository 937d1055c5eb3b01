"""Bad settings and inputs: one clear paragraph, a non-zero exit, nothing pushed."""

from __future__ import annotations

import shutil
from pathlib import Path

from tests.conftest import copy_project, run_cli


def _nothing_pushed(output_dir: Path) -> bool:
    serving = output_dir / "serving_model"
    return not serving.exists() or not any(serving.rglob("saved_model.pb"))


def test_missing_data_directory(tmp_path):
    missing = tmp_path / "no-such-data"
    result = run_cli(f"--data-dir={missing}", f"--output-dir={tmp_path / 'out'}")
    assert result.returncode == 2
    assert f"The data directory {missing} does not exist" in result.stdout
    assert "Traceback" not in result.stdout + result.stderr
    assert _nothing_pushed(tmp_path / "out")


def test_missing_unlabeled_folder(sample_data_dir, tmp_path):
    data_dir = tmp_path / "data"
    shutil.copytree(sample_data_dir / "labeled", data_dir / "labeled")
    result = run_cli(f"--data-dir={data_dir}", f"--output-dir={tmp_path / 'out'}")
    assert result.returncode == 2
    assert f"{data_dir / 'unlabeled'} does not exist" in result.stdout


def test_csv_outside_a_span_folder_says_where_to_move_it(sample_data_dir, tmp_path):
    """The layout before spans (labeled/taxi.csv): named, with the fix."""
    data_dir = tmp_path / "data"
    shutil.copytree(sample_data_dir, data_dir)
    shutil.rmtree(data_dir / "labeled")
    (data_dir / "labeled").mkdir()
    shutil.copy(sample_data_dir / "labeled" / "span-1" / "taxi.csv", data_dir / "labeled")
    result = run_cli(f"--data-dir={data_dir}", f"--output-dir={tmp_path / 'out'}")
    assert result.returncode == 2
    assert f"The labeled data folder {data_dir / 'labeled'} has no file matching" in result.stdout
    assert "move the file(s) into a span folder" in result.stdout
    assert _nothing_pushed(tmp_path / "out")


def test_output_directory_that_cannot_be_written(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    result = run_cli(f"--output-dir={blocker / 'outputs'}")
    assert result.returncode == 2
    assert f"Cannot write to the output directory {blocker / 'outputs'}" in result.stderr
    assert "--output-dir" in result.stderr


def test_user_module_that_fails_to_import(sample_data_dir, tmp_path):
    project = copy_project(tmp_path / "project")
    model_file = project / "components" / "model.py"
    model_file.write_text(model_file.read_text() + "\ndef broken(:\n")
    result = run_cli(
        f"--data-dir={sample_data_dir}", f"--output-dir={tmp_path / 'out'}", cwd=project
    )
    assert result.returncode == 2, result.stdout + result.stderr
    assert "fails to import: SyntaxError" in result.stdout
    assert f"{model_file}, line" in result.stdout
    assert "Traceback" not in result.stdout
    assert _nothing_pushed(tmp_path / "out")


def test_invalid_curated_schema(sample_data_dir, tmp_path):
    schema = tmp_path / "schema.pbtxt"
    schema.write_text("feature { name: 'fare' type: NOT_A_TYPE }")
    result = run_cli(
        f"--data-dir={sample_data_dir}", f"--output-dir={tmp_path / 'out'}", f"--schema={schema}"
    )
    assert result.returncode == 2
    assert f"The curated schema {schema} is not a valid Schema text proto" in result.stdout


def test_a_failing_component_names_itself_and_pushes_nothing(sample_data_dir, tmp_path):
    data_dir = tmp_path / "data"
    shutil.copytree(sample_data_dir, data_dir)
    # A CSV whose rows do not match its header: ExampleGen cannot parse it.
    (data_dir / "labeled" / "span-2" / "taxi.csv").write_text("fare,tips\n1.0,2.0,3.0\n")
    result = run_cli(
        f"--data-dir={data_dir}", f"--output-dir={tmp_path / 'out'}", "--tuner-trials=1"
    )
    assert result.returncode == 1
    assert "error: CsvExampleGen failed" in result.stdout
    assert "Nothing was pushed" in result.stdout
    assert "Traceback" not in result.stdout
    assert _nothing_pushed(tmp_path / "out")

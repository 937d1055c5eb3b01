"""The command line: one app whose --help shows everything, settings checked once, and each bad
setting reported in one clear paragraph with exit code 2 and nothing pushed.

Each check runs in-process; one run through `python run_local.py` shows the class of failure as
a user sees it (the header, the message, the exit code, no traceback).
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from orchestration import preflight
from orchestration.dag_schedule import default_parallelism
from pipeline.config import ConfigError, PipelineConfig
from tests.conftest import invoke, run_cli


def test_help_lists_the_run_options_and_every_command():
    result = invoke("--help")
    assert result.exit_code == 0
    for option in (
        "--data-dir",
        "--tuner-trials",
        "--beam-mode",
        "--orchestrator",
        "--kfp-endpoint",
    ):
        assert option in result.stdout, option
    commands = result.stdout.split("Commands:")[1]
    for command in ("inspect", "report", "schema", "run-spec"):
        assert f"  {command} " in commands, command
    assert "[default: 2]" in result.stdout  # --tuner-trials, from PipelineConfig


@pytest.mark.parametrize(
    "command, options",
    [
        (["inspect", "artifacts"], ["--run", "--component", "--type", "--metadata-uri", "--json"]),
        (["report"], ["--metadata-uri", "--output"]),
        (["schema", "accept"], ["--schema", "--metadata-uri"]),
        (["run-spec"], ["--pipeline-root", "--logs-dir"]),
    ],
)
def test_each_command_documents_its_options_and_defaults(command, options):
    result = invoke(*command, "--help")
    assert result.exit_code == 0, result.output
    for option in options:
        assert option in result.stdout, option
    if "--metadata-uri" in options:
        uri_help = result.stdout.split("--metadata-uri")[1].split("MLMD_URI]")[0]
        assert "[default:" in uri_help and "postgresql://" in uri_help


@pytest.mark.parametrize(
    "setting, value, problem",
    [
        ("tuner_trials", 0, "must be at least 1, got 0"),
        ("training_spans", -1, "must be at least 1, got -1"),
        ("beam_mode", "fast", "must be one of auto, in_memory, multi_processing, got 'fast'"),
    ],
)
def test_the_config_checks_its_ranges(setting, value, problem):
    with pytest.raises(ConfigError) as refused:
        PipelineConfig(**{setting: value})
    assert refused.value.setting == setting and refused.value.problem == problem


def test_an_out_of_range_option_is_named_by_its_flag(tmp_path):
    result = invoke("--tuner-trials=0", f"--output-dir={tmp_path / 'out'}")
    assert result.exit_code == 2
    assert result.stderr == "error: --tuner-trials must be at least 1, got 0.\n"
    assert not (tmp_path / "out").exists()


def test_run_options_given_to_a_command_are_refused():
    result = invoke("--data-dir=/somewhere", "inspect", "runs")
    assert result.exit_code == 2
    assert "--data-dir: run options go without a command" in result.stderr


def test_output_directory_that_cannot_be_written(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    result = invoke(f"--output-dir={blocker / 'outputs'}")
    assert result.exit_code == 2
    assert f"Cannot write to the output directory {blocker / 'outputs'}" in result.stderr
    assert "--output-dir" in result.stderr


# ---- the pre-run checks, one by one ------------------------------------------------------------
def test_missing_data_directory(tmp_path):
    missing = tmp_path / "no-such-data"
    with pytest.raises(preflight.SetupError, match=f"The data directory {missing} does not exist"):
        preflight.check_data_dir(PipelineConfig(data_dir=missing))


def test_missing_unlabeled_folder(sample_data_dir, tmp_path):
    shutil.copytree(sample_data_dir / "labeled", tmp_path / "labeled")
    with pytest.raises(preflight.SetupError, match=f"{tmp_path / 'unlabeled'} does not exist"):
        preflight.check_data_dir(PipelineConfig(data_dir=tmp_path))


def test_csv_outside_a_span_folder_says_where_to_move_it(sample_data_dir, tmp_path):
    """The layout before spans (labeled/taxi.csv): named, with the fix."""
    shutil.copytree(sample_data_dir / "unlabeled", tmp_path / "unlabeled")
    (tmp_path / "labeled").mkdir()
    shutil.copy(sample_data_dir / "labeled" / "span-1" / "taxi.csv", tmp_path / "labeled")
    with pytest.raises(preflight.SetupError) as refused:
        preflight.check_data_dir(PipelineConfig(data_dir=tmp_path))
    message = str(refused.value)
    assert f"The labeled data folder {tmp_path / 'labeled'} has no file matching" in message
    assert "It holds taxi.csv directly: move the file(s) into a span folder" in message


def test_invalid_curated_schema(tmp_path):
    schema = tmp_path / "schema.pbtxt"
    schema.write_text("feature { name: 'fare' type: NOT_A_TYPE }")
    with pytest.raises(
        preflight.SetupError, match=f"The curated schema {schema} is not a valid Schema text proto"
    ):
        preflight.check_curated_schema(schema)


def user_package(root: Path, name: str, modules: dict[str, str], monkeypatch) -> Path:
    """A package of user code, importable for this test only."""
    package = root / name
    package.mkdir()
    (package / "__init__.py").write_text("")
    for module, source in modules.items():
        (package / f"{module}.py").write_text(source)
    monkeypatch.syspath_prepend(str(root))
    return package


def test_user_module_that_fails_to_import_is_named_with_its_line(tmp_path, monkeypatch):
    model_source = "def run_fn(fn_args):\n    pass\n\ndef broken(:\n"
    package = user_package(tmp_path, "user_pkg", {"model": model_source}, monkeypatch)
    config = PipelineConfig(run_fn="user_pkg.model.run_fn")
    with pytest.raises(preflight.SetupError) as refused:
        preflight.check_user_code(config)
    message = str(refused.value)
    assert (
        "The module user_pkg.model (the run_fn 'user_pkg.model.run_fn') fails to import: "
        in message
    )
    assert "SyntaxError" in message and f"{package / 'model.py'}, line 4" in message


def test_user_function_that_does_not_exist_is_named(tmp_path, monkeypatch):
    user_package(tmp_path, "user_pkg2", {"tuning": "X = 1\n"}, monkeypatch)
    with pytest.raises(
        preflight.SetupError, match="The module user_pkg2.tuning has no function tuner_fn"
    ):
        preflight.check_user_code(PipelineConfig(tuner_fn="user_pkg2.tuning.tuner_fn"))


# ---- the class of failure as a user sees it ------------------------------------------------------
def test_a_bad_setting_stops_the_run_before_anything_runs(sample_data_dir, tmp_path):
    """Exit 2, after the header (which names the DirectRunner mode chosen), with nothing run."""
    data_dir = tmp_path / "data"
    shutil.copytree(sample_data_dir / "labeled", data_dir / "labeled")
    result = run_cli(
        f"--data-dir={data_dir}", f"--output-dir={tmp_path / 'out'}", "--beam-mode=multi_processing"
    )
    assert result.returncode == 2, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    assert lines[1] == "Beam:     DirectRunner multi_processing (0.3 MiB of labeled CSV to read)"
    assert lines[2] == (
        f"Parallel: up to {default_parallelism()} components at once (one per core; --parallelism)"
    )
    assert lines[3] == f"Metadata: {tmp_path / 'out' / 'metadata.db'} (SQLite)"
    assert lines[5] == (
        f"error: The unlabeled data folder {data_dir / 'unlabeled'} does not exist. A data "
        "directory needs 'labeled/' (CSV files with the label column) and 'unlabeled/' (CSV files "
        "to score), each with one folder per span matching 'span-{SPAN}/*.csv'; point --data-dir "
        "at one, or run `python scripts/prepare_taxi_data.py` to rebuild data/."
    )
    assert "Traceback" not in result.stdout + result.stderr
    assert not (tmp_path / "out" / "metadata.db").exists()
    assert not (tmp_path / "out" / "serving_model").exists()

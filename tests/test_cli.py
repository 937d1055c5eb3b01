"""The command line: one app whose --help shows everything, settings checked once, and each bad
setting reported in one clear paragraph with exit code 2 and nothing pushed.

Each check runs in-process; one run through `python run_local.py` shows the class of failure as
a user sees it (the header, the message, the exit code, no traceback).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from orchestration import preflight
from orchestration.dag_schedule import default_parallelism
from pipeline.config import PROFILE_SETTINGS, ConfigError, PipelineConfig, profile_settings
from tests.conftest import PROJECT_ROOT, invoke, run_cli, taxi_config


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
    shown = " ".join(result.stdout.split())  # the help as one line, whatever the wrapping
    # A setting the profile gives: the default profile's value, read for the help.
    assert "KerasTuner trial budget. [default: (the profile's; taxi: 2)]" in shown
    assert f"[default: (the profile's; taxi: {PROJECT_ROOT / 'data'})]" in shown
    # Any other setting: PipelineConfig's own default.
    assert "Train on the latest N spans of labeled/. [default: 2]" in shown
    assert f"reports/ go. [default: {PROJECT_ROOT / 'outputs'}]" in shown
    assert "--profile DIR" in shown and "[default: (profiles/taxi)]" in shown


def test_serve_documents_its_ports():
    shown = " ".join(invoke("serve", "--help").stdout.split())
    assert "--rest-port INTEGER RANGE Port for TF Serving's REST API" in shown
    assert "--grpc-port INTEGER RANGE Port for TF Serving's gRPC API" in shown
    assert "[default: 8501; 1<=x<=65535]" in shown and "[default: 8500; 1<=x<=65535]" in shown


def test_the_config_has_no_hidden_profile():
    """The settings a profile gives are required: a config is built from a profile
    (`from_profile`), which the command line chooses."""
    with pytest.raises(TypeError, match="missing 15 required keyword-only arguments"):
        PipelineConfig()
    taxi = taxi_config()
    assert set(profile_settings(taxi.profile_dir, taxi.profile)) == PROFILE_SETTINGS
    assert all(getattr(taxi, name) is not None for name in PROFILE_SETTINGS)
    assert taxi.metadata_path == PROJECT_ROOT / "outputs" / "metadata.db"


def test_importing_the_command_line_reads_no_profile_and_patches_nothing():
    """No settings at import time: the CLI's modules import with profile loading switched off,
    and importing the project's packages leaves TFX's modules alone (run_local.py defers TFX's
    cloud extensions itself, explicitly)."""
    code = (
        "import sys\n"
        "from components import profile\n"
        "def refuse(*args, **kwargs):\n"
        "    raise AssertionError('a profile was read at import time')\n"
        "profile.load = refuse\n"
        "import components, pipeline, pipeline.config, cli.app\n"
        "assert 'tfx.v1.extensions' not in sys.modules, 'sys.modules patched'\n"
        "assert not [p for p in sys.path if 'profiles' in p], sys.path\n"
        "print('ok')\n"
    )
    # A fresh interpreter's import path: a test before this one may have made some profile's
    # user code importable in this process, which PYTHONPATH passes on.
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=PROJECT_ROOT, capture_output=True, text=True, env=env
    )
    assert result.returncode == 0 and result.stdout == "ok\n", result.stderr


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
        taxi_config(**{setting: value})
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
        preflight.check_data_dir(taxi_config(data_dir=missing))


def test_missing_unlabeled_folder(sample_data_dir, tmp_path):
    shutil.copytree(sample_data_dir / "labeled", tmp_path / "labeled")
    with pytest.raises(preflight.SetupError, match=f"{tmp_path / 'unlabeled'} does not exist"):
        preflight.check_data_dir(taxi_config(data_dir=tmp_path))


def test_csv_outside_a_span_folder_says_where_to_move_it(sample_data_dir, tmp_path):
    """The layout before spans (labeled/taxi.csv): named, with the fix."""
    shutil.copytree(sample_data_dir / "unlabeled", tmp_path / "unlabeled")
    (tmp_path / "labeled").mkdir()
    shutil.copy(sample_data_dir / "labeled" / "span-1" / "taxi.csv", tmp_path / "labeled")
    with pytest.raises(preflight.SetupError) as refused:
        preflight.check_data_dir(taxi_config(data_dir=tmp_path))
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
    config = taxi_config(run_fn="user_pkg.model.run_fn")
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
        preflight.check_user_code(taxi_config(tuner_fn="user_pkg2.tuning.tuner_fn"))


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


@pytest.mark.parametrize(
    "entry_point", ["run_local", "orchestration.node_server_preload", "orchestration.kfp_task"]
)
def test_each_entry_point_defers_tfx_cloud_extensions_before_tfx_loads(entry_point):
    """run_local.py, the node server's first import and a Kubeflow task's command defer TFX's
    Google Cloud extensions (about 5 s of import), explicitly; `tfx.v1` then loads without
    them."""
    from orchestration import node_process

    preloaded = node_process.PRELOADED_MODULES
    assert preloaded.index("orchestration.node_server_preload") < preloaded.index(
        "pipeline.definition"
    )
    code = (
        "import sys\n"
        f"import {entry_point}\n"
        "assert 'tfx.v1.extensions' in sys.modules and 'tfx.v1' not in sys.modules\n"
        "import pipeline.definition\n"
        "assert 'tfx.v1' in sys.modules\n"
        "assert 'tfx.v1.extensions.google_cloud_ai_platform' not in sys.modules\n"
        "print('ok')\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=PROJECT_ROOT, capture_output=True, text=True
    )
    assert result.returncode == 0 and result.stdout == "ok\n", result.stderr[-2000:]


def test_a_log_file_gets_each_record_once_with_a_stderr_handler_already_on_root(tmp_path):
    """Importing TFMA makes absl call logging.basicConfig() (a handler on standard error); inside
    output_to_log_file standard error is the log file, so that handler would write each record a
    second time there."""
    script = f"""
import logging
from pathlib import Path
from orchestration.console import output_to_log_file
logging.basicConfig()  # what absl does when a library logs before any handler exists
with output_to_log_file(Path({str(tmp_path / "run.log")!r})):
    logging.getLogger("serving").info("version 7 is AVAILABLE")
logging.getLogger("serving").warning("after: to the terminal again")
"""
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=PROJECT_ROOT, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    logged = (tmp_path / "run.log").read_text()
    assert logged.count("version 7 is AVAILABLE") == 1, logged
    assert "after: to the terminal again" in done.stderr  # the handler is back afterwards

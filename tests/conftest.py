"""Shared fixtures: a small, real sample of the taxi data, the full runs tests share, and how
the suite is spread over worker processes.

Full pipeline runs are the expensive part of the suite (about 40 s each on 2 cores), so each one
is a fixture that several tests read: `e2e_runs` (a cold run and an unchanged re-run of the taxi
sample), `penguin_runs` (the penguin profile: cold, unchanged, a blessing change) and
`house_prices_runs` (a CSV through `init`, run, then judged by a margin no model meets); modules
keep their own (`data_lifecycle` in test_bad_data.py, `stopped_runs` in test_interrupted_runs.py,
...).

`make test` runs the suite on one pytest-xdist worker per core (`-n auto --dist loadgroup`). A
worker takes an `xdist_group` whole: every module is a group of its own, but for the groups named
in SHARED_RUN_GROUPS, whose session fixture would otherwise run once on each worker. Groups start
longest first (LONGEST_GROUPS_FIRST) so that the workers finish at about the same time.
"""

from __future__ import annotations

import csv
import os
import re
import shutil
import subprocess
import sys
import uuid
from pathlib import Path

import psutil
import pytest
from click.testing import CliRunner, Result

from components import tfx_private

# As run_local.py does, before anything imports TFX: tfx.v1 without its Google Cloud extensions.
tfx_private.defer_cloud_extensions()

from cli.app import main as cli_main  # noqa: E402 - after the deferral above
from metadata.runs import run_contexts, run_executions  # noqa: E402
from metadata.store import StoreIndex, output_artifacts  # noqa: E402
from pipeline.config import PipelineConfig  # noqa: E402

PROJECT_ROOT = Path(__file__).resolve().parent.parent
# The project's code, one folder a part, lowest first (see README "How the code is organized").
CODE_FOLDERS = (
    "serving",
    "components",
    "pipeline",
    "metadata",
    "profiling",
    "orchestration",
    "deployment",
    "monitoring",
    "release",
    "cli",
)
DATA_DIR = PROJECT_ROOT / "data"
TAXI_PROFILE_DIR = PROJECT_ROOT / "profiles" / "taxi"
PIPELINE_NAME = "taxi-tips"
SAMPLE_LABELED_ROWS = 2500
SAMPLE_UNLABELED_ROWS = 150
# A small but real training budget so the e2e run stays within a minute or two.
FAST_RUN_SETTINGS = {
    "tuner_trials": 1,
    "tuner_train_steps": 30,
    "train_steps": 150,
    "eval_steps": 5,
}
FAST_RUN_ARGS = [f"--{name.replace('_', '-')}={value}" for name, value in FAST_RUN_SETTINGS.items()]
SAMPLE_SPANS = {
    "labeled/span-1/taxi.csv": SAMPLE_LABELED_ROWS // 2,
    "labeled/span-2/taxi.csv": SAMPLE_LABELED_ROWS // 2,
    "unlabeled/span-1/taxi.csv": SAMPLE_UNLABELED_ROWS,
}
LATEST_SPAN = Path("labeled") / "span-2" / "taxi.csv"

# ---- spreading the suite over workers ----------------------------------------------------------
# Groups whose tests, in several modules, read one session fixture (a pytestmark in each module).
SHARED_RUN_GROUPS = {
    "taxi-sample": "e2e_runs",
    "penguin": "penguin_runs",
    "house-prices": "house_prices_runs",
}
# Longest first, as measured in one `make test` on 2 cores (2026-12-06, seconds of the group with
# the other worker busy): a worker that started one of these last would finish long after the
# other. Groups not listed (unit-test modules, a few seconds each) fill the gaps.
LONGEST_GROUPS_FIRST = (
    # 85 + monitoring 60 + release 130 + serving 90 + watch 20: the runs, servers, monitor,
    # two candidates released, a refused run
    "taxi-sample",
    "test_kubeflow",  # 160: run-spec, every compiled task in a process of its own
    "faults",  # 140: a cold run with a retry, then faulted runs and their resumptions
    "shared-mariadb",  # 105
    "test_bad_data",  # 95
    "shared-postgresql",  # 95
    "penguin",  # 90
    "test_reproduce",  # two runs, a replay, three refusals, a replay with a difference
    "house-prices",  # 90
    "test_infra_validator",  # 80
    "test_model",  # 55
    "test_interrupted_runs",  # 45
    "test_linear_baseline",  # 40: init, and a run refused at the data gate
)


def xdist_group(item: pytest.Item) -> str:
    mark = item.get_closest_marker("xdist_group")
    return str(mark.args[0] if mark.args else mark.kwargs["name"])


def pytest_itemcollected(item: pytest.Item) -> None:
    """Every test gets a group: its module's, unless it has one. Done as each test is collected,
    before any pytest_collection_modifyitems: pytest-xdist reads the groups in its own."""
    if item.get_closest_marker("xdist_group") is None:
        item.add_marker(pytest.mark.xdist_group(item.module.__name__.rsplit(".", 1)[-1]))


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The longest groups first: pytest-xdist hands groups to workers in the order of the items
    (`--no-loadscope-reorder`)."""

    def rank(item: pytest.Item) -> int:
        group = xdist_group(item)
        return (
            LONGEST_GROUPS_FIRST.index(group)
            if group in LONGEST_GROUPS_FIRST
            else len(LONGEST_GROUPS_FIRST)
        )

    items.sort(key=rank)  # stable: within a group, the order of the files


# Every process this test process starts, directly or not, inherits this token, and keeps it when
# orphaned: checks for processes left running look at this worker's own, not at those of the tests
# another worker runs at the same time.
SESSION_TOKEN_VARIABLE = "PIPELINE_TEST_SESSION"
os.environ[SESSION_TOKEN_VARIABLE] = uuid.uuid4().hex


def processes_of_this_session(*command_parts: str) -> list[psutil.Process]:
    """Running processes started from this test process whose command line contains any of
    `command_parts`."""
    token = os.environ[SESSION_TOKEN_VARIABLE]
    found = []
    for process in psutil.process_iter(["cmdline"]):
        command = " ".join(process.info["cmdline"] or [])
        if process.pid == os.getpid() or not any(part in command for part in command_parts):
            continue
        try:
            if process.environ().get(SESSION_TOKEN_VARIABLE) == token:
                found.append(process)
        except psutil.Error:  # ended meanwhile, or a zombie
            continue
    return found


def taxi_config(**settings) -> PipelineConfig:
    """The shipped taxi profile's config (the CLI's default profile), `settings` overriding it."""
    return PipelineConfig.from_profile(TAXI_PROFILE_DIR, **settings)


def write_sample(source: Path, target: Path, rows: int) -> int:
    """Copies the header and the first `rows` rows of a CSV; returns the row count written."""
    target.parent.mkdir(parents=True, exist_ok=True)
    with source.open(newline="") as f_in, target.open("w", newline="") as f_out:
        reader, writer = csv.reader(f_in), csv.writer(f_out, lineterminator="\n")
        writer.writerow(next(reader))
        written = 0
        for row in reader:
            if written == rows:
                break
            writer.writerow(row)
            written += 1
    return written


def write_sample_data(data_dir: Path) -> Path:
    """The first rows of every shipped span, in the same layout."""
    for relative, rows in SAMPLE_SPANS.items():
        write_sample(DATA_DIR / relative, data_dir / relative, rows)
    return data_dir


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


@pytest.fixture(autouse=True)
def import_path_restored(monkeypatch):
    """Each test leaves the import path as it found it: commands run in this process (a Kubeflow
    compile through click's runner, say) make a profile's user code importable, in `sys.path`
    and in the PYTHONPATH that later subprocesses inherit."""
    monkeypatch.setattr(sys, "path", list(sys.path))
    before = os.environ.get("PYTHONPATH")
    monkeypatch.setenv("PYTHONPATH", before or "")  # recorded: restored (or removed) afterwards
    if before is None:
        monkeypatch.delenv("PYTHONPATH")


@pytest.fixture(scope="session")
def sample_data_dir(tmp_path_factory) -> Path:
    return write_sample_data(tmp_path_factory.mktemp("data"))


def run_cli(
    *args: str, cwd: Path = PROJECT_ROOT, timeout: int = 900, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess:
    """Runs `python run_local.py ARGS` as a user would, capturing what the terminal would show.

    For runs of the pipeline: a run sends file descriptors 1 and 2 to its log file, which only a
    process of its own shows as a user sees it."""
    return subprocess.run(
        [sys.executable, "run_local.py", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
    )


def invoke(*args: str) -> Result:
    """Runs a command of the click app in this process (commands that read ML Metadata)."""
    return CliRunner().invoke(cli_main, list(args), catch_exceptions=False)


def copy_project(target: Path) -> Path:
    """A copy of the runnable project (entry point, code, schema, profiles) to edit without
    touching ours."""
    target.mkdir(parents=True)
    for part in ("run_local.py", *CODE_FOLDERS, "schema", "profiles"):
        source = PROJECT_ROOT / part
        (shutil.copytree if source.is_dir() else shutil.copy)(source, target / part)
    return target


_PROGRESS_LINE = re.compile(r"^\[\s*\d+/\d+\] (\S+)\s+(.*)$")


def node_status(output: str) -> dict[str, str]:
    """Node id -> what its last progress line in a run's console output says, e.g.
    "cached      0.1 s" (the line `[ 3/18] StatisticsGen  cached  0.1 s`)."""
    status = {}
    for line in output.splitlines():
        match = _PROGRESS_LINE.match(line)
        if match:
            status[match.group(1)] = match.group(2)
    return status


def run_node(output_dir: Path, node_id: str, run_position: int = 0):
    """The store in `output_dir` and `node_id`'s execution in one of its runs (0 = newest)."""
    index = StoreIndex.open(output_dir / "metadata.db")
    run = run_contexts(index.store, PIPELINE_NAME)[run_position]
    return index, next(n for n in run_executions(index, run.id) if n.node_id == node_id)


def node_outputs(output_dir: Path, node_id: str, run_position: int = 0) -> dict[str, list]:
    """The output artifacts, by key, of `node_id` in a run of the store in `output_dir`."""
    index, node = run_node(output_dir, node_id, run_position)
    return output_artifacts(index.store, node.execution.id)


def run_node_states(output_dir: Path, run_position: int = 0) -> dict[str, str]:
    """Node id -> state in a run of the store in `output_dir` (0 = newest)."""
    index = StoreIndex.open(output_dir / "metadata.db")
    run = run_contexts(index.store, PIPELINE_NAME)[run_position]
    return {n.node_id: n.state for n in run_executions(index, run.id)}


@pytest.fixture(scope="session")
def e2e_runs(sample_data_dir, tmp_path_factory):
    """Two runs of the full pipeline on the sample: a cold one, then one with nothing changed."""
    output_dir = tmp_path_factory.mktemp("outputs")
    args = [f"--data-dir={sample_data_dir}", f"--output-dir={output_dir}", *FAST_RUN_ARGS]
    first = run_cli(*args)
    second = run_cli(*args) if first.returncode == 0 else None
    return {"output_dir": output_dir, "first": first, "second": second}


@pytest.fixture(scope="session")
def penguin_runs(tmp_path_factory):
    """The shipped penguin profile (multiclass), copied so a test can edit it: a cold run (one
    component at a time), a re-run with nothing changed, and a run after a change to the profile's blessing only."""
    profile_dir = tmp_path_factory.mktemp("profiles") / "penguin"
    shutil.copytree(PROJECT_ROOT / "profiles" / "penguin", profile_dir)
    output_dir = tmp_path_factory.mktemp("penguin-outputs")
    args = [f"--profile={profile_dir}", f"--output-dir={output_dir}"]
    # One component at a time, the way TFX's own LocalDagRunner runs them (test_parallel_runs).
    first = run_cli(*args, "--parallelism=1")
    second = run_cli(*args) if first.returncode == 0 else None
    profile_file = profile_dir / "profile.yaml"
    profile_file.write_text(
        profile_file.read_text().replace("max_regression: 0.02", "max_regression: 0.03")
    )
    blessing_changed = run_cli(*args) if first.returncode == 0 else None
    return {
        "profile_dir": profile_dir,
        "output_dir": output_dir,
        "first": first,
        "second": second,
        "blessing_changed": blessing_changed,
    }


# The agent's remarks: a state, a feature and a place, so that most remarks differ (free text);
# "renovated" sells dearer, "needs work" cheaper.
REMARK_STATES = ("renovated last year", "needs work", "well kept", "bright and airy", "original")
REMARK_FEATURES = ("new kitchen", "large windows", "wooden floors", "a balcony", "two bathrooms")
REMARK_PLACES = ("near the park", "on a quiet street", "close to the station", "by the river")


def write_house_prices(path: Path, rows: int = 600) -> None:
    """A CSV the project has never seen: a price (regression) that depends on the floor area,
    the neighbourhood, the number of rooms, the month of listing and the agent's remarks, with
    names as people write them and empty cells."""
    import random

    rng = random.Random(11)
    with path.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(
            [
                "Listing ID",
                "Floor Area (m2)",
                "Rooms",
                "Neighbourhood/District",
                "Has Garden?",
                "Listed On",
                "Agent Remarks",
                "Sale Price (kEUR)",
            ]
        )
        for i in range(rows):
            area = rng.uniform(30, 200)
            rooms = rng.randint(1, 6)
            district = rng.choice(["Centre", "North", "Harbour", "Old Town"])
            garden = rng.choice(["yes", "no", ""])  # sometimes not recorded
            month = rng.randint(1, 12)
            listed = f"2024-{month:02d}-{rng.randint(1, 28):02d}"
            remark = (
                f"{rng.choice(REMARK_STATES).capitalize()}, {rng.choice(REMARK_FEATURES)}, "
                f"{rng.choice(REMARK_PLACES)}, built in {rng.randint(1890, 2020)}"
                if rng.random() < 0.7
                else ""
            )
            price = (
                2.5 * area
                + 15 * rooms
                + {"Centre": 120, "North": 20, "Harbour": 60, "Old Town": 90}[district]
                + (25 if month in (4, 5, 6) else 0)  # spring sells dearer
                + (40 if "renovated" in remark.lower() else -30 if "needs work" in remark else 0)
                + rng.gauss(0, 15)
            )
            writer.writerow(
                [
                    f"L{i:05d}",
                    round(area, 1),
                    rooms,
                    district if rng.random() > 0.05 else "",
                    garden,
                    listed,
                    remark,
                    round(price, 1),
                ]
            )


HOUSE_PRICES_LABEL = "Sale Price (kEUR)"
# init gives 540 labeled rows 300 passes (3,900 steps; bench/model_quality.py measures what that
# buys): a quarter of them here, where the model only has to be blessed, keeps the suite short.
HOUSE_PRICES_RUN_ARGS = ["--tuner-train-steps=250", "--train-steps=1000"]
UNMEETABLE_MARGIN = 0.99  # the RMSE must be 1% of the trivial predictor's: no model meets it


@pytest.fixture(scope="session")
def house_prices_runs(tmp_path_factory):
    """A CSV the project has never seen (house prices: a regression) taken through `init` and a
    run to a pushed model; then its profile's blessing is changed to a margin over the trivial
    predictor that no model meets, and the next run on the same output directory re-evaluates the
    same model (nothing before the Evaluator executes) and must not bless or push it."""
    folder = tmp_path_factory.mktemp("house-prices")
    source = folder / "houses.csv"
    write_house_prices(source)
    profile_dir = folder / "House Prices"
    output_dir = folder / "out"
    init = run_cli(
        "init",
        f"--csv={source}",
        f"--label={HOUSE_PRICES_LABEL}",
        f"--out={profile_dir}",
        timeout=300,
    )
    blessed = unmet = None
    if init.returncode == 0:
        blessed = run_cli(
            f"--profile={profile_dir}", f"--output-dir={output_dir}", *HOUSE_PRICES_RUN_ARGS
        )
    if blessed is not None and blessed.returncode == 0:
        profile_file = profile_dir / "profile.yaml"
        text, edits = re.subn(
            r"margin_over_trivial: [\d.]+",
            f"margin_over_trivial: {UNMEETABLE_MARGIN}",
            profile_file.read_text(),
        )
        assert edits == 1, "init writes one blessing margin"
        profile_file.write_text(text)
        unmet = run_cli(
            f"--profile={profile_dir}", f"--output-dir={output_dir}", *HOUSE_PRICES_RUN_ARGS
        )
    return {
        "source": source,
        "profile_dir": profile_dir,
        "output_dir": output_dir,
        "init": init,
        "blessed": blessed,
        "unmet": unmet,
    }

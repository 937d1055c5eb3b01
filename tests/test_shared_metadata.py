"""ML Metadata on a real MariaDB and a real PostgreSQL server, shared by several runs.

Each database has a server of its own (tests/db_servers.py: Debian's, as an unprivileged user, on
a free loopback port, in a temporary folder), started once for the module, stopped afterwards and
checked to be gone. Full pipeline runs are the expensive part, so each behaviour that needs them
runs on one of the two servers, not on both:
- MariaDB takes two full runs started together on one database, each reporting its own run, and
  `inspect` and `report` on them, because concurrent writes are where InnoDB's deadlocks show.
  Its server is killed (SIGKILL) while both runs work and started again a few seconds later:
  both runs wait for it (`--metadata-retry-seconds`) and complete.
- PostgreSQL takes its server killed in the middle of Transform and not back within
  `--metadata-retry-seconds`: the run stops with exit 6 naming the server; once the server is
  started again, the run reads back as INTERRUPTED and the next run resumes from the cache, and
  `inspect` and `report` read them, because one run at a time shows that, and it still gives
  PostgreSQL full runs of its own (a cold one, then one from the cache).
- Both take several processes creating ML Metadata's tables in an empty database at the same
  moment, because each engine collides its own way (MariaDB's deadlocks, PostgreSQL's catalog
  collisions).
- Both refuse a wrong password, a missing database and a port nobody listens on with exit 2 before
  any run (the last after waiting `--metadata-retry-seconds` for a server that may be starting),
  because each engine's driver words the failure its own way.

`make test` runs the suite with `-n auto --dist loadgroup`: every test is in the xdist group of
the server it uses ("shared-mariadb" or "shared-postgresql"), so that one worker starts each server.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from metadata.store import StoreIndex, connect_server, custom_property, output_artifacts
from pipeline.metadata_location import parse_metadata_uri
from tests import db_servers
from tests.conftest import FAST_RUN_ARGS, PROJECT_ROOT, node_status, run_cli

pytestmark = pytest.mark.e2e

# One worker takes a group whole: a module-scoped server is used only by the tests of its group.
MARIADB = pytest.mark.xdist_group("shared-mariadb")
POSTGRESQL = pytest.mark.xdist_group("shared-postgresql")

_INTO_TRANSFORM_SECONDS = 3.0
# MariaDB is down this long in the middle of the concurrent runs, well within the runs' default
# --metadata-retry-seconds (60).
_SERVER_DOWN_SECONDS = 6.0
# PostgreSQL's run waits this long for its killed server before it gives up.
_RETRY_SECONDS = 3


def _serve(start):
    running = start()
    yield running
    running.stop()
    assert running.process.poll() is not None
    assert db_servers.server_processes(running) == [], "a database server was left running"


@pytest.fixture(scope="module")
def mariadb():
    yield from _serve(db_servers.start_mariadb)


@pytest.fixture(scope="module")
def postgresql():
    yield from _serve(db_servers.start_postgresql)


@pytest.fixture(
    scope="module",
    params=[
        pytest.param("mariadb", marks=MARIADB),
        pytest.param("postgresql", marks=POSTGRESQL),
    ],
)
def server(request):
    """Each server in turn, for the behaviours that differ by engine."""
    return request.getfixturevalue(request.param)


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLMD_")}
    return {**env, **extra}


def _reader_env(server) -> dict[str, str]:
    return _env(MLMD_URI=server.uri(), MLMD_PASSWORD=db_servers.PASSWORD)


def _start_run(*args: str, env: dict[str, str]) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "run_local.py", *args],
        cwd=PROJECT_ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )


def _run_id(console: str) -> str:
    match = re.search(r"^Run (\S+) finished", console, re.MULTILINE)
    assert match, console
    return match.group(1)


def _assert_inspect_and_report_read(
    env: dict[str, str], runs: dict[str, Path], report_run: str, tmp_path: Path
) -> None:
    """`inspect runs` lists each of `runs` (run id -> output directory) with its output
    directory, and `report` writes `report_run`'s page, without the password."""
    listed = run_cli("inspect", "runs", env=env)
    assert listed.returncode == 0, listed.stderr
    for run_id, output_dir in runs.items():
        header = rf"run {re.escape(run_id)} .* in {re.escape(str(output_dir))}$"
        assert re.search(header, listed.stdout, re.MULTILINE), listed.stdout
    report = tmp_path / "report.html"
    written = run_cli("report", report_run, f"--output={report}", env=env)
    assert written.returncode == 0, written.stderr
    html = report.read_text()
    assert report_run in html and "Evaluator" in html
    assert db_servers.PASSWORD not in html


# ---- MariaDB: two full runs at once on one database --------------------------------------------


@pytest.fixture(scope="module")
def concurrent_runs(mariadb, sample_data_dir, tmp_path_factory):
    """Two full runs on the sample, from two output directories, started together on one store:
    one given the password by MLMD_PASSWORD, the other by a password file."""
    folder = tmp_path_factory.mktemp("shared-mariadb")
    password_file = folder / "password"
    password_file.write_text(db_servers.PASSWORD + "\n")
    uri = mariadb.uri()
    runs = {}
    for name, env in (
        ("a", _env(MLMD_URI=uri, MLMD_PASSWORD=db_servers.PASSWORD)),
        ("b", _env(MLMD_URI=uri, MLMD_PASSWORD_FILE=str(password_file))),
    ):
        output_dir = folder / name
        args = (f"--data-dir={sample_data_dir}", f"--output-dir={output_dir}", *FAST_RUN_ARGS)
        runs[name] = {"output_dir": output_dir, "env": env, "process": _start_run(*args, env=env)}
    time.sleep(5)
    command_lines = {
        name: Path(f"/proc/{run['process'].pid}/cmdline").read_bytes().decode()
        for name, run in runs.items()
        if run["process"].poll() is None
    }
    # The server killed as the first run's statistics start (the small steps after them all
    # read and write ML Metadata within seconds), and started again: the runs wait for it.
    seen = []
    for line in runs["a"]["process"].stdout:
        seen.append(line)
        if node_status(line).get("StatisticsGen", "").startswith("running ..."):
            break
    server_killed = all(run["process"].poll() is None for run in runs.values())
    mariadb.kill()
    time.sleep(_SERVER_DOWN_SECONDS)
    mariadb.restart()
    for name, run in runs.items():
        run["stdout"], run["stderr"] = run["process"].communicate(timeout=900)
        if name == "a":
            run["stdout"] = "".join(seen) + run["stdout"]
        run["returncode"] = run["process"].returncode
    return {
        "runs": runs,
        "command_lines": command_lines,
        "reader_env": _reader_env(mariadb),
        "server_killed": server_killed,
    }


@MARIADB
def test_two_runs_at_once_on_one_database_both_complete_and_report_their_own_run(
    concurrent_runs,
):
    runs = concurrent_runs["runs"]
    for run in runs.values():
        assert run["returncode"] == 0, run["stdout"] + run["stderr"]
        assert "Metadata: " in run["stdout"]
        assert db_servers.PASSWORD not in run["stdout"] + run["stderr"]
    ids = {name: _run_id(run["stdout"]) for name, run in runs.items()}
    assert ids["a"] != ids["b"]
    listed = run_cli("inspect", "runs", "--json", env=concurrent_runs["reader_env"])
    assert listed.returncode == 0, listed.stderr
    by_id = {r["run_id"]: r for r in json.loads(listed.stdout)}
    for name, run in runs.items():
        recorded = by_id[ids[name]]
        assert recorded["state"] == "COMPLETE"
        assert recorded["output_dir"] == str(run["output_dir"])
        # The summary, report and push are this run's: its own id, its own output directory.
        assert f"reports/run-{ids[name].replace(':', '-')}.html" in run["stdout"]
        assert f"-> {run['output_dir']}/serving_model/" in run["stdout"]
        assert {c["state"] for c in recorded["components"]} <= {"executed", "cached", "resolved"}


@MARIADB
def test_runs_wait_for_a_killed_and_restarted_server_and_complete(concurrent_runs):
    assert concurrent_runs["server_killed"], "a run ended before the server was killed"
    waited = []
    for run in concurrent_runs["runs"].values():
        assert run["returncode"] == 0, run["stdout"] + run["stderr"]
        text = "".join(log.read_text() for log in (run["output_dir"] / "logs").glob("run-*.log"))
        if "cannot be reached" in text:
            assert "retrying for up to 60 s (--metadata-retry-seconds)" in text
            assert re.search(r"MySQL server at 127\.0\.0\.1:\d+ answers again after", text)
            waited.append(run)
    assert waited, "no run met the server while it was down"


@MARIADB
def test_no_password_in_command_lines_or_logs(concurrent_runs):
    assert concurrent_runs["command_lines"], "the runs ended before their command lines were read"
    for command_line in concurrent_runs["command_lines"].values():
        assert "--output-dir=" in command_line
        assert db_servers.PASSWORD not in command_line
    for run in concurrent_runs["runs"].values():
        logs = list((run["output_dir"] / "logs").glob("run-*.log"))
        assert logs
        text = "".join(log.read_text() for log in logs)
        assert "Using connection config" in text  # TFX logs the config: with the password hidden
        assert db_servers.PASSWORD not in text


def _inputs_by_key(store, execution_id: int) -> dict[str, set[int]]:
    found: dict[str, set[int]] = {}
    for event in store.get_events_by_execution_ids([execution_id]):
        if event.type == event.INPUT:
            found.setdefault(event.path.steps[0].key, set()).add(event.artifact_id)
    return found


@MARIADB
def test_each_evaluator_judged_its_own_model_never_against_itself(mariadb, concurrent_runs):
    """Each run's Evaluator read the model its own Trainer made, and its baseline (if any) was
    another model, which a Evaluator had blessed."""
    location = parse_metadata_uri(mariadb.uri(), password=db_servers.PASSWORD)
    index = StoreIndex.open(location)
    blessed_models = set()
    for run in concurrent_runs["runs"].values():
        run_context = index.store.get_context_by_type_and_name(
            "pipeline_run", _run_id(run["stdout"])
        )
        executions = {
            index.node_of_execution[e.id]: e
            for e in index.store.get_executions_by_context(run_context.id)
        }
        trained = output_artifacts(index.store, executions["Trainer"].id)["model"][0]
        evaluator_inputs = _inputs_by_key(index.store, executions["Evaluator"].id)
        assert evaluator_inputs["model"] == {trained.id}
        assert trained.id not in evaluator_inputs.get("baseline_model", set())
        blessing = output_artifacts(index.store, executions["Evaluator"].id)["blessing"][0]
        if custom_property(blessing, "blessed") == 1:
            blessed_models.add(trained.id)
        run["baseline"] = evaluator_inputs.get("baseline_model", set())
    for run in concurrent_runs["runs"].values():
        assert run["baseline"] <= blessed_models


@MARIADB
def test_inspect_and_report_read_the_concurrent_runs_from_mariadb(concurrent_runs, tmp_path):
    runs = concurrent_runs["runs"]
    _assert_inspect_and_report_read(
        concurrent_runs["reader_env"],
        {_run_id(run["stdout"]): run["output_dir"] for run in runs.values()},
        report_run=_run_id(runs["a"]["stdout"]),
        tmp_path=tmp_path,
    )


# ---- PostgreSQL: a run killed in Transform, then resumed ---------------------------------------


@pytest.fixture(scope="module")
def killed_then_resumed(postgresql, sample_data_dir, tmp_path_factory):
    """A run on the sample whose PostgreSQL server is killed with SIGKILL a few seconds into
    Transform (on an empty store, so everything before Transform ran for it) and not back within
    the run's --metadata-retry-seconds; what `inspect runs` says once the server is started
    again, as JSON and as text; and the next run on the same output directory (None when the
    first did not stop on the lost server)."""
    output_dir = tmp_path_factory.mktemp("killed-postgresql") / "outputs"
    env = _reader_env(postgresql)
    args = (f"--data-dir={sample_data_dir}", f"--output-dir={output_dir}", *FAST_RUN_ARGS)
    process = _start_run(*args, f"--metadata-retry-seconds={_RETRY_SECONDS}", env=env)
    seen = []
    for line in process.stdout:
        seen.append(line)
        if node_status(line).get("Transform", "").startswith("running ..."):
            time.sleep(_INTO_TRANSFORM_SECONDS)
            postgresql.kill()
            break
    out, err = process.communicate(timeout=300)
    postgresql.restart()
    stopped = process.returncode == 6
    return {
        "output_dir": output_dir,
        "env": env,
        "returncode": process.returncode,
        "console": "".join(seen) + out + err,
        "listed_json": run_cli("inspect", "runs", "--json", env=env),
        "listed_text": run_cli("inspect", "runs", env=env),
        "resumed": run_cli(*args, env=env) if stopped else None,
    }


@POSTGRESQL
def test_a_run_whose_server_is_lost_says_so_and_reads_as_interrupted(killed_then_resumed):
    console = killed_then_resumed["console"]
    assert killed_then_resumed["returncode"] == 6, console
    said = console[console.index("\nerror: ") :]
    assert "ML Metadata's database could not be reached during" in said
    assert re.search(
        rf"the PostgreSQL server at 127\.0\.0\.1:\d+ did not answer for {_RETRY_SECONDS} s "
        r"\(--metadata-retry-seconds\)",
        said,
    ), said
    assert "Start the server again" in said and "Traceback" not in console
    assert db_servers.PASSWORD not in console
    listed = killed_then_resumed["listed_json"]
    assert listed.returncode == 0, listed.stderr
    [killed] = json.loads(listed.stdout)  # the store was empty: the killed run is its only run
    assert killed["output_dir"] == str(killed_then_resumed["output_dir"])
    assert killed["state"] == "INTERRUPTED"
    states = {c["node_id"]: c["state"] for c in killed["components"]}
    assert states["Transform"] == "interrupted"
    assert re.search(r"Transform\s+interrupted", killed_then_resumed["listed_text"].stdout)


@POSTGRESQL
def test_the_killed_run_resumes_from_the_cache(killed_then_resumed):
    resumed = killed_then_resumed["resumed"]
    assert resumed is not None, "the first run was not killed in Transform"
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    status = node_status(resumed.stdout)
    assert status["CsvExampleGen"].startswith("cached")
    assert status["StatisticsGen"].startswith("cached")
    assert status["Transform"].startswith("executed")
    assert status["Pusher"].split()[0] in ("executed", "cached")


@POSTGRESQL
def test_inspect_and_report_read_the_killed_and_resumed_runs_from_postgresql(
    killed_then_resumed, tmp_path
):
    resumed = killed_then_resumed["resumed"]
    assert resumed is not None, "the first run was not killed in Transform"
    output_dir = killed_then_resumed["output_dir"]
    killed_id = json.loads(killed_then_resumed["listed_json"].stdout)[0]["run_id"]
    resumed_id = _run_id(resumed.stdout)
    _assert_inspect_and_report_read(
        killed_then_resumed["env"],
        {killed_id: output_dir, resumed_id: output_dir},
        report_run=resumed_id,
        tmp_path=tmp_path,
    )


# ---- both servers: refusals before the run, and a connect storm on an empty database -----------


def _refused(*, uri: str, env: dict[str, str], tmp_path: Path):
    output_dir = tmp_path / "outputs"
    result = run_cli(
        f"--output-dir={output_dir}",
        "--metadata-uri",
        uri,
        "--metadata-retry-seconds=2",
        *FAST_RUN_ARGS,
        env=env,
        timeout=120,
    )
    assert result.returncode == 2, result.stdout + result.stderr
    assert "Traceback" not in result.stdout + result.stderr
    assert db_servers.PASSWORD not in result.stdout + result.stderr
    assert not (output_dir / "pipeline_root").exists()
    return result.stdout + result.stderr


def _run_count(server) -> int:
    listed = run_cli("inspect", "runs", "--json", env=_reader_env(server))
    return len(json.loads(listed.stdout)) if listed.returncode == 0 else 0


def test_a_wrong_password_is_refused_before_the_run(server, tmp_path):
    before = _run_count(server)
    said = _refused(uri=server.uri(), env=_env(MLMD_PASSWORD="not-the-password"), tmp_path=tmp_path)
    assert f"127.0.0.1:{server.port}, database 'mlmd'" in said
    assert f"refused the login of user '{db_servers.USER}'" in said
    assert _run_count(server) == before
    read = run_cli("inspect", "runs", env=_env(MLMD_URI=server.uri(), MLMD_PASSWORD="wrong"))
    assert read.returncode == 2 and "refused the login" in read.stderr


def test_a_missing_database_is_refused_not_created(server, tmp_path):
    said = _refused(
        uri=server.uri(database="no_such_db"),
        env=_env(MLMD_PASSWORD=db_servers.PASSWORD),
        tmp_path=tmp_path,
    )
    assert f"127.0.0.1:{server.port}, database 'no_such_db'" in said
    assert "does not exist" in said


def test_a_port_nobody_listens_on_is_refused_before_the_run(server, tmp_path):
    port = db_servers.free_port()
    said = _refused(
        uri=server.uri(port=port),
        env=_env(MLMD_PASSWORD=db_servers.PASSWORD),
        tmp_path=tmp_path,
    )
    engine = "MySQL" if server.scheme == "mysql" else "PostgreSQL"
    assert f"cannot reach the {engine} server at 127.0.0.1:{port}" in said
    assert f"127.0.0.1:{port}, database 'mlmd'" in said
    assert "Connection refused" in said
    # Waited for first, as for a server that is starting: said at once, then given up.
    assert "waiting: cannot reach" in said and "Waiting up to 2 s for it" in said
    assert "(waited 2 s, --metadata-retry-seconds)" in said


# Connects at the given wall-clock moment, then writes and reads a type: one process of several
# that all meet an empty database at once (as runs started together on a new store do).
_CONNECT_AT = """
import sys, time
from ml_metadata.proto import metadata_store_pb2
from metadata.store import connect_server
from pipeline.metadata_location import parse_metadata_uri

uri, password, moment, name = sys.argv[1:]
location = parse_metadata_uri(uri, password=password)
time.sleep(max(0.0, float(moment) - time.time()))
store = connect_server(location)
type_id = store.put_execution_type(metadata_store_pb2.ExecutionType(name=name))
assert store.get_execution_types_by_id([type_id])[0].name == name
"""


def test_runs_that_meet_an_empty_database_at_once_all_connect(server):
    server.create_database("empty_at_first")
    uri = server.uri(database="empty_at_first")
    moment = time.time() + 8  # past every process's imports
    processes = [
        subprocess.Popen(
            [sys.executable, "-c", _CONNECT_AT, uri, db_servers.PASSWORD, str(moment), f"T{i}"],
            cwd=PROJECT_ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env=_env(),
        )
        for i in range(6)
    ]
    outputs = [p.communicate(timeout=120)[0] for p in processes]
    failed = [out for p, out in zip(processes, outputs, strict=True) if p.returncode != 0]
    assert not failed, failed[0]
    store = connect_server(parse_metadata_uri(uri, password=db_servers.PASSWORD))
    names = {t.name for t in store.get_execution_types()}
    assert {f"T{i}" for i in range(6)} <= names

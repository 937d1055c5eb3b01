"""Independent components run at once, each in its own process: the schedule that decides which
may start, and what runs of the real pipeline show (ML Metadata, console, report)."""

from __future__ import annotations

import pytest

from metadata.runs import describe_run, most_at_once, run_contexts
from metadata.store import StoreIndex
from orchestration.dag_schedule import DagSchedule, default_parallelism
from tests.conftest import PIPELINE_NAME, node_status

# A diamond with a tail and an independent branch: a -> (b, c) -> d; e alone.
DIAMOND = {"a": set(), "b": {"a"}, "c": {"a"}, "d": {"b", "c"}, "e": set()}


def _start_all(schedule: DagSchedule) -> list[str]:
    started = schedule.next_nodes()
    for node in started:
        schedule.start(node)
    return started


def test_nodes_start_when_what_they_wait_for_succeeded_at_most_parallelism_at_once():
    schedule = DagSchedule(DIAMOND, parallelism=2)
    assert _start_all(schedule) == ["a", "e"]
    assert schedule.next_nodes() == []  # full
    schedule.finish("e", succeeded=True)
    assert schedule.next_nodes() == []  # b and c wait for a
    schedule.finish("a", succeeded=True)
    assert _start_all(schedule) == ["b", "c"]
    schedule.finish("b", succeeded=True)
    assert schedule.next_nodes() == []  # d waits for c too
    schedule.finish("c", succeeded=True)
    assert _start_all(schedule) == ["d"]
    schedule.finish("d", succeeded=True)
    assert schedule.finished and schedule.not_run() == {}


def test_parallelism_one_runs_in_topological_order():
    schedule = DagSchedule(DIAMOND, parallelism=1)
    order = []
    while not schedule.finished:
        (node,) = _start_all(schedule)
        order.append(node)
        schedule.finish(node, succeeded=True)
    assert order == ["a", "b", "c", "d", "e"]


def test_after_a_failure_nothing_starts_and_what_runs_may_finish():
    schedule = DagSchedule(DIAMOND, parallelism=2)
    _start_all(schedule)  # a, e
    schedule.finish("a", succeeded=True)
    assert _start_all(schedule) == ["b"]  # e still runs: room for one
    schedule.finish("b", succeeded=False)
    assert schedule.next_nodes() == [] and not schedule.finished  # e is still running
    schedule.finish("e", succeeded=True)
    assert schedule.finished
    assert schedule.not_run() == {"c": "not started after the failure", "d": "waits for b"}


def test_a_schedule_refuses_unknown_nodes_and_no_parallelism():
    with pytest.raises(ValueError, match="unknown nodes"):
        DagSchedule({"a": {"z"}}, parallelism=1)
    with pytest.raises(ValueError, match="at least 1"):
        DagSchedule(DIAMOND, parallelism=0)
    assert default_parallelism(4) == 4 and default_parallelism(0) == 1


def test_most_at_once_counts_overlapping_intervals_not_touching_ones():
    assert most_at_once([]) == 0
    assert most_at_once([(0, 1), (1, 2), (2, 3)]) == 1
    assert most_at_once([(0, 5), (1, 2), (1.5, 3), (4, 6)]) == 3


def _cold_run(output_dir, pipeline_name: str = PIPELINE_NAME) -> dict:
    index = StoreIndex.open(output_dir / "metadata.db")
    return describe_run(index, run_contexts(index.store, pipeline_name)[-1])


@pytest.mark.e2e
@pytest.mark.xdist_group("taxi-sample")
def test_a_default_run_overlaps_independent_components(e2e_runs):
    first = e2e_runs["first"]
    assert first.returncode == 0, first.stdout + first.stderr
    run = _cold_run(e2e_runs["output_dir"])
    assert run["parallelism"] == default_parallelism()
    if default_parallelism() > 1:
        assert run["most_at_once"] >= 2
        assert "  beside " in first.stdout
        assert f"up to {default_parallelism()} components at once (one per core" in first.stdout
    # Each node ran once, after everything it waits for had ended.
    starts = {c["node_id"]: c["offset_seconds"] for c in run["components"]}
    ends = {c["node_id"]: c["offset_seconds"] + c["seconds"] for c in run["components"]}
    assert starts["Transform"] >= ends["DataGate"] and starts["Trainer"] >= ends["Tuner"]
    assert starts["Pusher"] >= max(ends["Evaluator"], ends["InfraValidator"])
    report_name = f"run-{run['run_id'].replace(':', '-')}.html"
    report = (e2e_runs["output_dir"] / "reports" / report_name).read_text()
    assert f"up to <b>{run['most_at_once']}</b> at once" in report


@pytest.mark.e2e
@pytest.mark.xdist_group("penguin")
def test_parallelism_one_runs_one_component_at_a_time(penguin_runs):
    first = penguin_runs["first"]
    assert first.returncode == 0, first.stdout + first.stderr
    run = _cold_run(penguin_runs["output_dir"], "penguin")
    assert run["parallelism"] == 1 and run["most_at_once"] == 1
    assert "beside" not in first.stdout
    assert all(
        text.split()[0] in ("executed", "resolved") for text in node_status(first.stdout).values()
    )

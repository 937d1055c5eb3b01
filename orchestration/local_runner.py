"""Runs `create_pipeline()` here: each component in a process of its own, independent ones at once
(`parallelism` of them), every Beam step on Beam's DirectRunner; ML Metadata is the output
directory's SQLite file or a shared MySQL / PostgreSQL database.

The order is TFX's: the pipeline compiles to TFX's IR and each node runs through TFX's launcher,
which resolves its inputs from ML Metadata, reuses a cached execution or executes, and publishes
(components/tfx_private.py). A node starts when every node it waits for has succeeded
(orchestration/dag_schedule.py). When a node fails, no further node starts and the ones running
finish (their results are kept for the re-run); Ctrl-C or SIGTERM stops every running node.
"""

from __future__ import annotations

import collections
import getpass
import logging
import multiprocessing.connection
import os
import signal
import socket
import time
from collections.abc import Callable
from pathlib import Path
from typing import TextIO

from ml_metadata.proto import metadata_store_pb2

from components import tfx_private
from components.data_gate.executor import DataRefused
from components.span_example_gen.csv_checks import InvalidInputData
from metadata import runs
from metadata.store import NodeExecution, latest_node_execution, open_store
from orchestration import faults, node_process
from orchestration.beam_mode import BeamChoice
from orchestration.console import ComponentProgress
from orchestration.dag_schedule import DagSchedule, default_parallelism
from orchestration.interrupts import RunInterrupted, describe, sigterm_raises
from orchestration.node_process import NodeJob, NodeOutcome, RunningNode
from pipeline import run_environment
from pipeline.config import PipelineConfig
from pipeline.definition import create_pipeline

__all__ = ["DataRefusedError", "PipelineRunError", "RunInterrupted", "run"]

Execution = metadata_store_pb2.Execution
_CANCELLED = 1  # the canonical error code for a cancelled operation
# How long stopped components get to record that they stopped before they are killed.
_STOP_GRACE_SECONDS = 30.0


class PipelineRunError(Exception):
    """A component failed in run `run_id`; `node_id` names it, `cause` is what it raised,
    `fault` the fault outside the pipeline behind it, if one was (orchestration/faults.py)."""

    def __init__(
        self,
        run_id: str,
        node_id: str | None,
        cause: BaseException,
        fault: faults.Fault | None = None,
    ):
        super().__init__(f"{node_id or 'the pipeline'} failed: {type(cause).__name__}: {cause}")
        self.run_id = run_id
        self.node_id = node_id
        self.cause = cause
        self.fault = fault

    def cause_text(self) -> str:
        """The cause for people: input-data errors (written for them) in full, others' first line."""
        lines = str(self.cause).strip().splitlines() or [""]
        message = "\n".join(lines) if isinstance(self.cause, InvalidInputData) else lines[0][:400]
        name = getattr(self.cause, "type_name", type(self.cause).__name__)
        return f"{name}: {message}"


class DataRefusedError(PipelineRunError):
    """The data gate refused the data of run `run_id`."""


def _update_node_execution(
    config: PipelineConfig,
    run_id: str,
    node_id: str,
    update: Callable[[NodeExecution], bool],
    what: str,
) -> None:
    """Applies `update` to the node's latest execution in the run and writes it back, when it
    says to (returns True). A store that cannot be reached (the fault itself, perhaps) is left
    as it is: said in the log, and the run goes on to its own outcome."""
    try:
        store = open_store(config.metadata_location, writable=True)
        latest = latest_node_execution(store, config.pipeline_name, node_id, run_id)
        if latest is not None and update(latest):
            store.put_executions([latest.execution])
    except Exception:  # noqa: BLE001 - the run's own outcome matters more; the log has it
        logging.exception("Recording %s's %s in ML Metadata failed", node_id, what)


def record_failure(
    config: PipelineConfig,
    run_id: str,
    node_id: str | None,
    cause: BaseException,
    fault: faults.Fault | None = None,
) -> None:
    """Writes the failure's message (the fault's sentence, when a fault caused it) on the node's
    failed execution in ML Metadata: TFX marks an execution FAILED when its executor raises, but
    keeps no message, and leaves it RUNNING when its process was killed."""
    if node_id is None:
        return
    message = fault.sentence if fault else f"{type(cause).__name__}: {cause}"

    def failed(latest: NodeExecution) -> bool:
        if latest.state not in ("failed", "running"):
            return False
        latest.execution.last_known_state = Execution.FAILED
        tfx_private.set_execution_failure(latest.execution, message)
        return True

    _update_node_execution(config, run_id, node_id, failed, "failure")


RETRIED_PROPERTY = "retried_after"


def record_retry(config: PipelineConfig, run_id: str, node_id: str, fault: faults.Fault) -> None:
    """Adds the fault a node is being run again after to its execution's `retried_after`
    property (one line per retry). TFX runs a node again in the same execution (one per node and
    run), which ends as the retry ends."""

    def retried(latest: NodeExecution) -> bool:
        properties = latest.execution.custom_properties
        earlier = (
            properties[RETRIED_PROPERTY].string_value if RETRIED_PROPERTY in properties else ""
        )
        properties[RETRIED_PROPERTY].string_value = "\n".join(
            line for line in (earlier, fault.sentence) if line
        )
        return True

    _update_node_execution(config, run_id, node_id, retried, "retry")


def cancel_unfinished(
    config: PipelineConfig, run_id: str, reason: str, failed_nodes: set[str] = frozenset()
) -> list[str]:
    """Marks the run's executions that had not finished CANCELED, with `reason`; returns their
    node ids. (TFX leaves them RUNNING when the process is stopped mid-component, and records
    FAILED a component whose Beam pipeline turned the interrupt into an error: `failed_nodes`.)"""
    store = open_store(config.metadata_location, writable=True)
    run = store.get_context_by_type_and_name(tfx_private.PIPELINE_RUN_CONTEXT, run_id)
    if run is None:
        return []

    def node_of(execution: Execution) -> str:
        return next(
            (
                tfx_private.node_id_from_context_name(c.name)
                for c in store.get_contexts_by_execution(execution.id)
                if c.type == tfx_private.NODE_CONTEXT
            ),
            "?",
        )

    unfinished = {}
    for execution in store.get_executions_by_context(run.id):
        state = execution.last_known_state
        if state in (Execution.RUNNING, Execution.NEW) or (
            state == Execution.FAILED and node_of(execution) in failed_nodes
        ):
            unfinished[execution.id] = execution
    for execution in unfinished.values():
        execution.last_known_state = Execution.CANCELED
        tfx_private.set_execution_failure(execution, reason, code=_CANCELLED)
    if unfinished:
        store.put_executions(list(unfinished.values()))
    return [node_of(e) for e in unfinished.values()]


def _run_properties(config: PipelineConfig, parallelism: int) -> dict[str, str]:
    """Who runs the run and where, and what it depends on besides its data (code, lock,
    versions, profile, settings, seeds: what `reproduce` checks and replays), on its context in
    ML Metadata (see metadata/runs.py)."""
    environment = run_environment.to_json(run_environment.capture(config))
    return {
        **runs.environment_properties(environment),
        runs.HOST_PROPERTY: socket.gethostname(),
        runs.PID_PROPERTY: str(os.getpid()),
        runs.OUTPUT_DIR_PROPERTY: str(config.output_dir),
        runs.USER_PROPERTY: getpass.getuser(),
        runs.PARALLELISM_PROPERTY: str(parallelism),
    }


class _RunningNodes:
    """The node processes of one run, by node id."""

    def __init__(self) -> None:
        self.by_node: dict[str, RunningNode] = {}

    def wait(self) -> list[RunningNode]:
        """Blocks until at least one node process has reported or ended; returns those."""
        handles = {}
        for node in self.by_node.values():
            handles[node.outcomes] = node
            handles[node.process.sentinel] = node
        ready = multiprocessing.connection.wait(list(handles))
        done = list({id(handles[h]): handles[h] for h in ready}.values())
        for node in done:
            del self.by_node[node.node_id]
        return done

    def stop(self, signal_number: int) -> list[NodeOutcome]:
        """Stops every running node with `signal_number`; kills those that have not ended after
        a grace period. Returns what they reported (nothing for a killed one)."""
        for node in self.by_node.values():
            node.signal(signal_number)
        outcomes = []
        deadline = time.monotonic() + _STOP_GRACE_SECONDS
        while self.by_node and time.monotonic() < deadline:
            handles = [h for n in self.by_node.values() for h in (n.outcomes, n.process.sentinel)]
            if not multiprocessing.connection.wait(handles, timeout=deadline - time.monotonic()):
                break
            for node in list(self.by_node.values()):
                if node.outcomes.poll() or not node.process.is_alive():
                    outcomes.append(node.outcome())
                    node.close()
                    del self.by_node[node.node_id]
        for node in self.by_node.values():
            logging.error(
                "%s did not stop within %.0f s: killed", node.node_id, _STOP_GRACE_SECONDS
            )
            node.close()
        self.by_node.clear()
        return outcomes


def run(
    config: PipelineConfig,
    beam: BeamChoice,
    console: TextIO,
    run_id: str,
    log_path: Path,
    parallelism: int | None = None,
) -> None:
    """Runs the whole chain as run `run_id`, at most `parallelism` components at once (default:
    `default_parallelism()`), printing per-component progress to `console`; the components' own
    output goes to `log_path`.

    Raises DataRefusedError when the data gate refuses the data, PipelineRunError when a
    component fails (ML Metadata holds the failed execution with its message), RunInterrupted
    on Ctrl-C or SIGTERM (the unfinished executions are recorded CANCELED).
    """
    # The node processes' server is started and stopped by the caller (cli/run_commands.py), so
    # that it imports while the pre-run checks run; it lives for one run.
    _run(config, beam, console, run_id, log_path, parallelism or default_parallelism())


def _run(
    config: PipelineConfig,
    beam: BeamChoice,
    console: TextIO,
    run_id: str,
    log_path: Path,
    parallelism: int,
) -> None:
    pipeline = create_pipeline(
        config,
        beam_pipeline_args=beam.beam_args,
        unlabeled_beam_args=beam.unlabeled_beam_args,
        metadata_connection_config=config.metadata_location.connection_config(),
        exclude_candidate_from_baseline=True,
    )
    pipeline_ir = tfx_private.compile_run(pipeline, run_id, _run_properties(config, parallelism))
    schedule = DagSchedule(tfx_private.node_dependencies(pipeline_ir), parallelism)
    logging.info(
        "Run %s compiled: %d nodes, at most %d at once", run_id, len(schedule.nodes), parallelism
    )
    # As TFX's LocalDagRunner logs it (the log file never shows the password: console.py).
    logging.info("Using connection config:\n %s", pipeline.metadata_connection_config)
    serialized_ir = pipeline_ir.SerializeToString()
    secrets = config.metadata_location.secrets()

    def state_of(node_id: str) -> str:
        store = open_store(config.metadata_location)
        execution = latest_node_execution(store, config.pipeline_name, node_id, run_id)
        return execution.state if execution else "skipped"

    def job(node_id: str) -> NodeJob:
        return NodeJob(
            serialized_ir,
            node_id,
            log_path,
            secrets,
            config.deterministic,
            config.metadata_retry_seconds,
        )

    progress = ComponentProgress(console, schedule.nodes, state_of)
    running = _RunningNodes()
    failures: list[tuple[NodeOutcome, faults.Fault | None]] = []
    stopped_from_outside: list[NodeOutcome] = []
    retried: collections.Counter[str] = collections.Counter()
    try:
        with sigterm_raises():
            while True:
                for node_id in schedule.next_nodes():
                    progress.started(node_id)
                    running.by_node[node_id] = node_process.start(job(node_id))
                    schedule.start(node_id)
                if not running.by_node:
                    break
                for node in running.wait():
                    outcome = node.outcome()
                    node.close()
                    if outcome.status == "interrupted":  # a signal sent to the node's process
                        stopped_from_outside.append(outcome)
                        raise RunInterrupted(outcome.signal_number)
                    succeeded = outcome.status == "succeeded"
                    fault = (
                        None
                        if succeeded
                        else faults.classify_in_run(outcome.error, node.node_id, config)
                    )
                    if fault and fault.transient and retried[node.node_id] < config.retries:
                        retried[node.node_id] += 1
                        record_retry(config, run_id, node.node_id, fault)
                        progress.note(
                            f"{node.node_id}: {fault.kind} ({faults.first_line(outcome.error)}); "
                            f"running it again, retry {retried[node.node_id]} of "
                            f"{config.retries} (--retries)"
                        )
                        logging.warning("%s: %s; retrying", node.node_id, fault.sentence)
                        running.by_node[node.node_id] = node_process.start(job(node.node_id))
                        continue
                    schedule.finish(node.node_id, succeeded)
                    progress.finished(node.node_id, None if succeeded else "failed")
                    if not succeeded:
                        failures.append((outcome, fault))
                        _failed(config, run_id, progress, running, outcome, fault)
    except (KeyboardInterrupt, RunInterrupted) as e:
        signal_number = signal.SIGINT if isinstance(e, KeyboardInterrupt) else e.signal_number
        _stopped(config, run_id, progress, running, schedule, signal_number, stopped_from_outside)
        raise RunInterrupted(signal_number) from e
    finally:
        if running.by_node:  # the runner itself failed: stop what it started
            running.stop(signal.SIGTERM)
            cancel_unfinished(config, run_id, "canceled: the runner stopped on an error")
    if failures:
        for node, reason in schedule.not_run().items():
            logging.info("%s did not run: %s", node, reason)
        first, fault = failures[0]
        error = DataRefusedError if isinstance(first.error, DataRefused) else PipelineRunError
        raise error(run_id, first.node_id, first.error, fault) from first.error


def _failed(
    config: PipelineConfig,
    run_id: str,
    progress: ComponentProgress,
    running: _RunningNodes,
    outcome: NodeOutcome,
    fault: faults.Fault | None,
) -> None:
    """Records a node's failure in ML Metadata, and says which running nodes the run waits for."""
    record_failure(config, run_id, outcome.node_id, outcome.error, fault)
    if running.by_node:
        progress.note(
            f"{outcome.node_id} failed: no further component starts; waiting for "
            f"{', '.join(running.by_node)} to finish (what they compute is kept for the re-run)"
        )


def _stopped(
    config: PipelineConfig,
    run_id: str,
    progress: ComponentProgress,
    running: _RunningNodes,
    schedule: DagSchedule,
    signal_number: int,
    already_stopped: list[NodeOutcome],
) -> None:
    """Stops every running node with `signal_number` and records the run's unfinished steps
    CANCELED."""
    logging.error("Run %s stopped by %s", run_id, signal.Signals(signal_number).name)
    outcomes = already_stopped + running.stop(signal_number)
    for node_id in list(schedule.running):
        progress.finished(node_id, "canceled")
        schedule.finish(node_id, succeeded=False)
    reason = f"canceled: the run was stopped by {describe(signal_number)}"
    # A node that reports a failure after the signal was sent to it failed because it was
    # stopped (the interrupt surfaced as some other error inside its libraries): canceled too.
    recorded_failed = {o.node_id for o in outcomes if o.recorded_failed or o.status == "failed"}
    cancel_unfinished(config, run_id, reason, failed_nodes=recorded_failed)

"""Each pipeline node runs in a process of its own, so that independent nodes run at once.

The processes are forked from one server process (multiprocessing's "forkserver") that imported
TensorFlow, TFX and the project's components once, before running anything: a node's process
starts in milliseconds instead of importing for ten seconds, and starts clean (its parent never
ran TensorFlow, whose thread pools do not survive a fork). A node's process writes its log to the
run's log file, runs the node with TFX's launcher (components/tfx_private.py `launch_node`) and
reports one `NodeOutcome` back through a pipe.

Stopping: Ctrl-C in a terminal reaches every process of the run; the runner also forwards SIGINT
or SIGTERM to the node processes (a process stops at the first signal and ignores the rest). A
node process dies with the server process, which dies with the runner: a runner killed with
SIGKILL leaves nothing running, and its unfinished executions read as interrupted.
"""

from __future__ import annotations

import ctypes
import dataclasses
import logging
import multiprocessing
import multiprocessing.connection
import os
import pickle
import signal
import time
from multiprocessing import forkserver, resource_tracker
from pathlib import Path
from typing import Literal

from orchestration.interrupts import RunInterrupted, interrupt_inside, sigterm_raises

# What the server process imports before it forks anything, in order: its entry point, then TFX
# and its component executors (through the pipeline definition), and the project's own component
# code. (multiprocessing imports "__main__" before the others, wherever it is listed.)
PRELOADED_MODULES = [
    # The runner's main module (run_local.py and the CLI it imports): each node process would
    # otherwise import it anew, a tenth of a second or more per node.
    "__main__",
    # Defers TFX's Google Cloud extensions before anything imports `tfx.v1`.
    "orchestration.node_server_preload",
    "components.tfx_private",
    "pipeline.definition",
    "components.preprocessing",
    "components.tuning",
    "tfx.orchestration.portable.launcher",
    "orchestration.node_process",
]

_PR_SET_PDEATHSIG = 1  # linux/prctl.h

Status = Literal["succeeded", "failed", "interrupted"]


@dataclasses.dataclass(frozen=True)
class NodeJob:
    """One node of a compiled pipeline to run, and where its process logs."""

    pipeline_ir: bytes  # the serialized pipeline_pb2.Pipeline of the run
    node_id: str
    log_path: Path
    secrets: tuple[str, ...] = ()  # never written to the log (the ML Metadata password)
    # Batches by byte size, not by timing, so that the same data gives the same float sums.
    deterministic: bool = True
    # ML Metadata calls to a database server that cannot be reached are retried this long.
    metadata_retry_seconds: float = 0.0


@dataclasses.dataclass(frozen=True)
class NodeOutcome:
    """How a node's process ended. `error` is what the component raised (failed), or the
    interrupt; `signal_number` is the signal that stopped it (interrupted)."""

    node_id: str
    status: Status
    error: BaseException | None = None
    signal_number: int | None = None
    # Beam turned the interrupt into an error, and TFX recorded the execution FAILED.
    recorded_failed: bool = False


class NodeProcessDied(Exception):
    """A node's process ended without reporting (killed, out of memory, a crash in C++)."""


class RemoteError(Exception):
    """A component's error that could not be sent between processes as it was; its type name
    and message are kept."""

    def __init__(self, type_name: str, message: str):
        super().__init__(message)
        self.type_name = type_name


def _context() -> multiprocessing.context.BaseContext:
    return multiprocessing.get_context("forkserver")


def warm_up() -> None:
    """Starts the server process now, so that its imports overlap the runner's own start-up
    (it is started once per runner process and reused by later runs)."""
    forkserver.set_forkserver_preload(PRELOADED_MODULES)
    forkserver.ensure_running()


def shut_down() -> None:
    """Stops the server process, if one was started, and waits for it to end. (Left alone, it
    would end on its own once this process has ended, unaccounted for and after it.) CPython
    3.10's forkserver and resource tracker have no public way to stop them: this uses their
    private `_stop`, which CPython's own tests use, after a SIGTERM so that a server still
    importing stops at once."""
    server = forkserver._forkserver  # noqa: SLF001
    pid = server._forkserver_pid  # noqa: SLF001
    if pid is None:
        return
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        pass
    server._stop()  # noqa: SLF001
    # The resource tracker the server started (it would clean up shared memory) goes with it.
    resource_tracker._resource_tracker._stop()  # noqa: SLF001


@dataclasses.dataclass
class RunningNode:
    node_id: str
    process: multiprocessing.process.BaseProcess
    outcomes: multiprocessing.connection.Connection
    started: float

    def signal(self, signal_number: int) -> None:
        if self.process.is_alive() and self.process.pid:
            try:
                os.kill(self.process.pid, signal_number)
            except ProcessLookupError:
                pass

    def outcome(self) -> NodeOutcome:
        """What the process reported; call once `outcomes` or the process's sentinel is ready."""
        try:
            if self.outcomes.poll():
                return self.outcomes.recv()
        except (EOFError, OSError, pickle.UnpicklingError):
            pass
        self.process.join(5)
        code = self.process.exitcode
        how = (
            f"was killed by {signal.Signals(-code).name}"
            if code is not None and code < 0
            else f"ended with exit code {code}"
        )
        return NodeOutcome(
            self.node_id,
            "failed",
            NodeProcessDied(
                f"the process running {self.node_id} {how} without reporting a result "
                "(out of memory? the full log has its last words)"
            ),
        )

    def close(self) -> None:
        self.outcomes.close()
        self.process.join(1)
        if self.process.is_alive():
            self.process.kill()
            self.process.join()


def start(job: NodeJob) -> RunningNode:
    """Starts `job` in a process forked from the server process."""
    warm_up()
    receive, send = _context().Pipe(duplex=False)
    process = _context().Process(
        target=_run_node, args=(job, send), name=f"node-{job.node_id}", daemon=False
    )
    process.start()
    send.close()
    logging.info("Started %s in process %s", job.node_id, process.pid)
    return RunningNode(job.node_id, process, receive, time.monotonic())


# ---- In the node's process ---------------------------------------------------------------------
def _die_with_parent() -> None:
    """SIGKILL when the server process (and so the runner) is gone.

    The server ends when nothing holds the write end of its "alive" pipe any more. The runner
    holds it, and multiprocessing hands every forked process a copy too (so that the server
    outlives its children): a node process closes its copy, or a killed runner would leave the
    server, and the node with it, running."""
    server = forkserver._forkserver  # noqa: SLF001
    if server._forkserver_alive_fd is not None:  # noqa: SLF001
        os.close(server._forkserver_alive_fd)  # noqa: SLF001
        server._forkserver_alive_fd = None  # noqa: SLF001
    parent = os.getppid()
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != parent:  # the parent died before prctl took effect
        os._exit(1)


def _sendable(error: BaseException) -> BaseException:
    """`error` itself if it survives pickling, else a RemoteError with its type name and text."""
    try:
        return pickle.loads(pickle.dumps(error))
    except Exception:  # noqa: BLE001 - any pickling problem: send the text instead
        return RemoteError(type(error).__name__, str(error))


def _stop_listening() -> None:
    """A node that is stopping ignores further signals, so that it can report."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)


def _run_node(job: NodeJob, outcomes: multiprocessing.connection.Connection) -> None:
    _die_with_parent()
    from tfx.components.infra_validator import error_types

    from components import tfx_private
    from metadata import connection_retry
    from orchestration.console import output_to_log_file

    # Handlers set up in the server process by the libraries it imported write to its stderr,
    # which is now the log file too: one handler, the log file's, writes each record once.
    logging.getLogger().handlers.clear()
    with output_to_log_file(job.log_path, job.secrets):
        logger = logging.getLogger(__name__)
        logger.info("Component %s is running (process %d).", job.node_id, os.getpid())
        if job.deterministic:
            tfx_private.batch_deterministically()
        connection_retry.install(job.metadata_retry_seconds)
        try:
            with sigterm_raises():
                tfx_private.launch_node(job.pipeline_ir, job.node_id)
            outcome = NodeOutcome(job.node_id, "succeeded")
            logger.info("Component %s is finished.", job.node_id)
        except (KeyboardInterrupt, RunInterrupted, error_types.GracefulShutdown) as e:
            # InfraValidator's executor turns SIGTERM into its own GracefulShutdown.
            _stop_listening()
            number = signal.SIGINT if isinstance(e, KeyboardInterrupt) else signal.SIGTERM
            logger.warning("Component %s was stopped by %s", job.node_id, e)
            outcome = NodeOutcome(job.node_id, "interrupted", signal_number=number)
        except Exception as e:  # noqa: BLE001 - reported to the runner, which decides
            _stop_listening()
            number = interrupt_inside(e)
            if number is not None:
                logger.warning("Component %s was stopped", job.node_id, exc_info=e)
                outcome = NodeOutcome(
                    job.node_id, "interrupted", signal_number=number, recorded_failed=True
                )
            else:
                logger.exception("Component %s failed", job.node_id)
                outcome = NodeOutcome(job.node_id, "failed", _sendable(e))
        outcomes.send(outcome)
        outcomes.close()

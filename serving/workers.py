"""Several model server processes on one pair of ports, supervised: `serve --workers N`.

One Python process answers REST and gRPC with one core at most: its request handling holds the
interpreter lock, and only the model's own call runs beside it. So `serve` starts N workers, each
a whole `serving.model_server` (its own copy of the model, its own batcher), all listening on the
same ports with SO_REUSEPORT, so the kernel spreads connections over them.

The supervisor (this module, in the `serve` process):
- starts the workers and waits until each listens (each writes `READY` on its status pipe);
- shows what each worker says of its versions (loaded, unloaded) as `worker K: ...`: every worker
  loads each new version itself, within one folder scan of the others;
- starts a worker again if one dies (its connections fail, the others keep answering), and gives
  up if a worker dies before it was ready `_MAX_FAILED_STARTS` times in a row;
- on SIGTERM or Ctrl-C stops them all gracefully (each answers what it holds, as a single
  server does) and kills any left after the grace period.
The workers' own logs go where the supervisor's go (they inherit its stdout and stderr).
"""

from __future__ import annotations

import ctypes
import dataclasses
import logging
import os
import selectors
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable

log = logging.getLogger("serving")

READY = "READY"
_MAX_FAILED_STARTS = 3
_START_SECONDS = 300  # loading TensorFlow and the model, replaying warm-up requests


def _stop_with_the_supervisor() -> None:
    """In the worker, before it runs: SIGTERM it when the supervisor dies, even by SIGKILL
    (Linux's parent-death signal), so that no worker outlives `serve`."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


_PR_SET_PDEATHSIG = 1


def default_count() -> int:
    """One worker per core this process may run on, at most 8 (each holds the model)."""
    return max(1, min(8, len(os.sched_getaffinity(0))))


class WorkersFailed(Exception):
    """A worker cannot start; the message says why and where its log is."""


@dataclasses.dataclass
class _Worker:
    index: int
    process: subprocess.Popen
    status: int  # the read end of its status pipe
    ready: bool = False
    buffer: bytes = b""


class Supervisor:
    def __init__(self, server_flags: list[str], count: int, threads_per_worker: int | None = None):
        self.server_flags = server_flags
        self.count = count
        self.threads_per_worker = threads_per_worker
        self._workers: dict[int, _Worker] = {}
        self._failed_starts = 0
        self._stopping = threading.Event()
        self._selector = selectors.DefaultSelector()

    def _start(self, index: int) -> _Worker:
        read_end, write_end = os.pipe()
        env = dict(os.environ)
        if self.threads_per_worker:
            # TensorFlow's own thread pools, sized so the workers together fill the cores once.
            env["TF_NUM_INTRAOP_THREADS"] = str(self.threads_per_worker)
            env["TF_NUM_INTEROP_THREADS"] = str(self.threads_per_worker)
        command = [
            sys.executable,
            "-m",
            "serving.model_server",
            *self.server_flags,
            "--reuse_port",
            f"--status_fd={write_end}",
        ]
        process = subprocess.Popen(
            command,
            pass_fds=(write_end,),
            stdin=subprocess.DEVNULL,
            env=env,
            preexec_fn=_stop_with_the_supervisor,
        )
        os.close(write_end)
        worker = _Worker(index, process, read_end)
        self._workers[index] = worker
        self._selector.register(read_end, selectors.EVENT_READ, worker)
        log.debug("Started worker %d (pid %d)", index, process.pid)
        return worker

    def _forget(self, worker: _Worker) -> None:
        self._selector.unregister(worker.status)
        os.close(worker.status)
        self._workers.pop(worker.index, None)

    def _read_status(self, worker: _Worker) -> None:
        chunk = os.read(worker.status, 65536)
        if not chunk:  # the worker closed its end: it exited
            return
        worker.buffer += chunk
        *lines, worker.buffer = worker.buffer.split(b"\n")
        for line in lines:
            text = line.decode(errors="replace")
            if text == READY:
                worker.ready = True
            else:
                log.info("worker %d: %s", worker.index, text)

    def _poll(self, timeout: float) -> None:
        for key, _ in self._selector.select(timeout):
            self._read_status(key.data)

    def start(self, on_ready: Callable[[], None] | None = None) -> None:
        """Starts every worker and returns once all listen; WorkersFailed if one cannot."""
        for index in range(1, self.count + 1):
            self._start(index)
        deadline = time.monotonic() + _START_SECONDS
        while not all(w.ready for w in self._workers.values()):
            if self._stopping.is_set():  # SIGTERM while starting
                return
            self._poll(0.2)
            for worker in list(self._workers.values()):
                if worker.process.poll() is not None:
                    self.stop()
                    raise WorkersFailed(
                        f"worker {worker.index} exited with code {worker.process.returncode} "
                        "before it listened; its log is above in the same file"
                    )
            if time.monotonic() > deadline:
                self.stop()
                raise WorkersFailed(f"the workers did not all listen within {_START_SECONDS} s")
        if on_ready:
            on_ready()

    def supervise(self) -> None:
        """Until `request_stop()`: shows the workers' news and starts any that dies again."""
        while not self._stopping.is_set():
            self._poll(0.5)
            for worker in list(self._workers.values()):
                code = worker.process.poll()
                if code is None or self._stopping.is_set():
                    continue
                was_ready = worker.ready
                self._forget(worker)
                self._failed_starts = 0 if was_ready else self._failed_starts + 1
                if self._failed_starts >= _MAX_FAILED_STARTS:
                    log.error(
                        "worker %d exited with code %d before it listened, %d times in a row; "
                        "stopping",
                        worker.index,
                        code,
                        self._failed_starts,
                    )
                    self._stopping.set()
                    break
                log.warning("worker %d exited with code %d; starting it again", worker.index, code)
                self._start(worker.index)

    def request_stop(self) -> None:
        self._stopping.set()

    def stop(self, grace: float = 40.0) -> None:
        """SIGTERM to every worker, then SIGKILL to those still running after `grace` s."""
        self._stopping.set()
        for worker in self._workers.values():
            if worker.process.poll() is None:
                worker.process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + grace
        for worker in list(self._workers.values()):
            try:
                worker.process.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                log.warning("worker %d did not stop within %g s; killing it", worker.index, grace)
                worker.process.kill()
                worker.process.wait()
            self._poll(0)
            self._forget(worker)
        self._selector.close()


def serve(
    server_flags: list[str],
    count: int,
    on_ready: Callable[[], None] | None = None,
    grace: float = 40.0,
) -> None:
    """Runs `count` workers with these `serving.model_server` flags until SIGTERM or SIGINT."""
    cores = len(os.sched_getaffinity(0))
    supervisor = Supervisor(server_flags, count, threads_per_worker=max(1, cores // count))
    previous = {
        sig: signal.signal(sig, lambda *_: supervisor.request_stop())
        for sig in (signal.SIGTERM, signal.SIGINT)
    }
    try:
        supervisor.start(on_ready)
        supervisor.supervise()
    finally:
        supervisor.stop(grace)
        for sig, handler in previous.items():
            signal.signal(sig, handler)

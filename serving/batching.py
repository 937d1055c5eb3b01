"""Server-side batching: concurrent requests to one signature run as one call, as TF Serving's
`--enable_batching` does.

A request's inputs wait in a queue for their (version, signature, input shapes); a batch thread
takes the oldest queue's requests, up to `max_batch_size` rows, waiting at most
`batch_timeout_micros` for more to arrive, concatenates each input along the first dimension,
calls the signature once and gives each request its rows of every output. Under load the batches
fill while the threads are busy, so the model's fixed cost per call (about 0.45 ms here for one
row, 0.76 ms for 64) is paid once per batch instead of once per request.

The parameters are TF Serving's (batching_parameters_file): max_batch_size, batch_timeout_micros,
num_batch_threads, max_enqueued_batches. Two choices of our own:
- a request larger than `max_batch_size` runs alone instead of being refused (TF Serving splits or
  refuses it);
- a batch that fails is retried request by request, so that one request's bad input (an
  unparsable serialized example, say) fails that request only.
A signature whose outputs do not all have one row per input row cannot be split back: it runs
unbatched from then on.

With `enabled=False` every request is its own batch, on the same threads.
"""

from __future__ import annotations

import collections
import dataclasses
import logging
import threading
import time
from collections.abc import Callable
from concurrent import futures

import numpy as np

log = logging.getLogger("serving")

Outputs = dict[str, np.ndarray]
# Runs a signature on inputs (arrays with rows along the first dimension); returns its outputs.
Runner = Callable[[dict[str, np.ndarray]], Outputs]


class QueueFull(Exception):
    """More requests are waiting than `max_enqueued_batches` full batches: the server is
    overloaded (TF Serving answers UNAVAILABLE)."""


@dataclasses.dataclass(frozen=True)
class BatchingOptions:
    enabled: bool = True
    max_batch_size: int = 64  # rows in one call
    batch_timeout_micros: int = 0  # how long a batch waits to fill once its first request came
    num_batch_threads: int = 1  # calls running at once
    max_enqueued_batches: int = 64  # waiting requests beyond this many full batches: QueueFull

    def check(self) -> None:
        for name in ("max_batch_size", "num_batch_threads", "max_enqueued_batches"):
            if getattr(self, name) < 1:
                raise ValueError(f"--{name} must be at least 1, got {getattr(self, name)}")
        if self.batch_timeout_micros < 0:
            raise ValueError(
                f"--batch_timeout_micros must be 0 or more, got {self.batch_timeout_micros}"
            )


@dataclasses.dataclass(eq=False)  # removed from its queue by identity
class _Task:
    inputs: dict[str, np.ndarray]
    rows: int
    future: futures.Future
    enqueued: float


@dataclasses.dataclass
class _Queue:
    runner: Runner
    tasks: collections.deque = dataclasses.field(default_factory=collections.deque)
    rows: int = 0


def _rows(inputs: dict[str, np.ndarray]) -> int | None:
    """The number of rows every input has, or None when they disagree or one is a scalar."""
    counts = {a.shape[0] if a.ndim else None for a in inputs.values()}
    return counts.pop() if len(counts) == 1 else None


def _shape_key(inputs: dict[str, np.ndarray]) -> tuple:
    return tuple(sorted((k, a.dtype.str, a.shape[1:]) for k, a in inputs.items()))


class Batcher:
    """Batches calls to signatures across the threads and coroutines that submit them."""

    def __init__(self, options: BatchingOptions):
        options.check()
        self.options = options
        self._queues: dict[tuple, _Queue] = {}
        self._waiting = 0  # rows queued, all queues together
        self._running = 0  # calls to the model under way
        self._unbatchable: set = set()  # signatures whose outputs cannot be split by rows
        self._condition = threading.Condition()
        self._stopped = False
        self.batches = 0  # calls made, and the requests they answered: batches / requests
        self.requests = 0
        self._threads = [
            threading.Thread(target=self._work, name=f"batch-{i}", daemon=True)
            for i in range(options.num_batch_threads)
        ]
        for thread in self._threads:
            thread.start()

    def submit(self, signature_key, runner: Runner, inputs: dict[str, np.ndarray]):
        """Queues a call; the future gives the outputs, or the runner's exception. A future
        cancelled before its batch starts is dropped from the batch."""
        rows = _rows(inputs)
        future: futures.Future = futures.Future()
        o = self.options
        batchable = (
            o.enabled
            and rows is not None
            and rows <= o.max_batch_size
            and signature_key not in self._unbatchable
        )
        # Requests that cannot share a batch still queue, each under its own key.
        key = (signature_key, _shape_key(inputs)) if batchable else (signature_key, id(future))
        with self._condition:
            if self._stopped:
                raise RuntimeError("the batcher has stopped")
            if self._waiting + (rows or 1) > o.max_enqueued_batches * o.max_batch_size:
                raise QueueFull(
                    f"{self._waiting} rows are waiting for the model, the most this server "
                    f"queues ({o.max_enqueued_batches} batches of {o.max_batch_size})"
                )
            queue = self._queues.get(key)
            if queue is None:
                queue = self._queues[key] = _Queue(runner)
            task = _Task(inputs, rows or 1, future, time.monotonic())
            queue.tasks.append(task)
            queue.rows += rows or 1
            self._waiting += rows or 1
            self._condition.notify()
        future.add_done_callback(lambda f: f.cancelled() and self._leave(key, queue, task))
        return future

    def _leave(self, key, queue: _Queue, task: _Task) -> None:
        """A request cancelled while it waits (it timed out) leaves its queue at once, and its
        rows no longer count against max_enqueued_batches."""
        with self._condition:
            if self._queues.get(key) is not queue:
                return  # its queue was emptied into a batch, or the batcher stopped
            try:
                queue.tasks.remove(task)
            except ValueError:
                return  # already taken into a batch
            queue.rows -= task.rows
            self._waiting -= task.rows
            if not queue.tasks:
                del self._queues[key]

    def run_if_idle(self, runner: Runner, inputs: dict[str, np.ndarray]) -> Outputs | None:
        """Runs the call at once, in the calling thread, when nothing waits and no call is under
        way (a lone request: handing it to a batch thread and back would only add latency);
        None when the batcher is busy, and the call should be submitted."""
        with self._condition:
            if self._queues or self._running or self._stopped:
                return None
            self._running += 1
            self.batches += 1
            self.requests += 1
        try:
            return runner(inputs)
        finally:
            with self._condition:
                self._running -= 1
                self._condition.notify()

    def stop(self) -> None:
        if self.batches:
            log.info(
                "Batching: requests answered %d, calls to the model %d (%.1f per call)",
                self.requests,
                self.batches,
                self.requests / self.batches,
            )
        with self._condition:
            self._stopped = True
            waiting = [task for queue in self._queues.values() for task in queue.tasks]
            self._queues.clear()
            self._waiting = 0
            self._condition.notify_all()
        for task in waiting:
            task.future.cancel()
        for thread in self._threads:
            thread.join(timeout=10)

    # -- the batch threads ---------------------------------------------------------------------

    def _next_batch(self) -> tuple[tuple, Runner, list[_Task]] | None:
        """Waits for the oldest queue to fill or time out, then takes up to a batch from it."""
        timeout = self.options.batch_timeout_micros / 1e6
        limit = self.options.max_batch_size
        with self._condition:
            while True:
                if self._stopped:
                    return None
                if not self._queues:
                    self._condition.wait()
                    continue
                key, queue = min(self._queues.items(), key=lambda kv: kv[1].tasks[0].enqueued)
                shared = isinstance(key[1], tuple)  # a batching key, not a single request's
                wait = queue.tasks[0].enqueued + timeout - time.monotonic()
                if shared and queue.rows < limit and wait > 0:
                    self._condition.wait(wait)
                    continue
                batch, rows = [], 0
                while queue.tasks and (not batch or rows + queue.tasks[0].rows <= limit):
                    task = queue.tasks.popleft()
                    queue.rows -= task.rows
                    self._waiting -= task.rows
                    if task.future.set_running_or_notify_cancel():  # False: cancelled (timed out)
                        batch.append(task)
                        rows += task.rows
                if not queue.tasks:
                    del self._queues[key]
                if batch:
                    self.batches += 1
                    self.requests += len(batch)
                    self._running += 1
                    return key[0], queue.runner, batch

    def _work(self) -> None:
        while True:
            taken = self._next_batch()
            if taken is None:
                return
            signature_key, runner, batch = taken
            try:
                self._run(signature_key, runner, batch)
            finally:
                with self._condition:
                    self._running -= 1

    def _run(self, signature_key, runner: Runner, batch: list[_Task]) -> None:
        if len(batch) == 1:
            _answer(batch[0], runner)
            return
        try:
            inputs = {
                name: np.concatenate([t.inputs[name] for t in batch]) for name in batch[0].inputs
            }
            outputs = runner(inputs)
        except Exception:  # noqa: BLE001 - one request's bad input fails that request only
            for task in batch:
                _answer(task, runner)
            return
        total = sum(t.rows for t in batch)
        if any(a.ndim == 0 or a.shape[0] != total for a in outputs.values()):
            log.info(
                "Signature %s has outputs without one row per input row; it runs unbatched",
                signature_key,
            )
            self._unbatchable.add(signature_key)
            for task in batch:
                _answer(task, runner)
            return
        start = 0
        for task in batch:
            end = start + task.rows
            task.future.set_result({k: a[start:end] for k, a in outputs.items()})
            start = end


def _answer(task: _Task, runner: Runner) -> None:
    try:
        task.future.set_result(runner(task.inputs))
    except Exception as e:  # noqa: BLE001 - handed to the request that asked
        task.future.set_exception(e)

"""Measures one process tree: runs a command in its own session and records its wall time, CPU
(os.wait4's, or the sampled sum when larger), peak RSS of the tree and of its largest process, and
ends its process group (SIGTERM, then SIGKILL) when it outlives its cap."""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import psutil


@dataclass
class Measurement:
    """Resource use of one command and all its descendants."""

    wall_seconds: float
    cpu_user_seconds: float  # os.wait4: the process and every descendant it waited for
    cpu_system_seconds: float
    cpu_sampled_seconds: float  # sum of each sampled process's own CPU, as last seen
    peak_rss_bytes: int  # sampled sum over the process tree
    # Proportional set size summed over the tree (shared pages split between the processes that
    # map them, so forked workers' shared libraries count once): the memory the run needs.
    peak_pss_bytes: int
    peak_pss_at_seconds: float  # when that peak was sampled, from the start
    max_process_rss_bytes: int  # the largest single process: ru_maxrss, or sampled if larger
    rss_samples: int
    exit_code: int
    timed_out: bool
    leftover_processes: int  # descendants still alive after the command exited (then ended)

    @property
    def cpu_seconds(self) -> float:
        """wait4's figure, exact when every descendant was waited for; the sampled sum when that
        is larger (a descendant nobody waited for, e.g. a multiprocessing forkserver whose
        workers it reaps itself, is missing from wait4's usage)."""
        return max(self.cpu_user_seconds + self.cpu_system_seconds, self.cpu_sampled_seconds)


PSS_INTERVAL_SECONDS = 5.0


class TreeSampler(threading.Thread):
    """Samples a process and its descendants until stopped: the largest summed RSS, the largest
    single process's RSS, and each process's own CPU time as last seen."""

    def __init__(self, pid: int, interval: float, pss_interval: float = PSS_INTERVAL_SECONDS):
        super().__init__(daemon=True)
        self.pss_interval = pss_interval
        self.process = psutil.Process(pid)
        self.interval = interval
        self.peak = 0
        self.process_peak = 0
        self.pss_peak = 0
        self.pss_peak_at = 0.0
        self._next_pss = 0.0
        self._sampling_since = time.perf_counter()
        self.samples = 0
        self._cpu: dict[tuple[int, float], float] = {}  # (pid, start time) -> user + system
        self._stop_event = threading.Event()

    @property
    def cpu_seconds(self) -> float:
        """A lower bound: each process's CPU after its last sample is missed."""
        return sum(self._cpu.values())

    def sample(self) -> None:
        try:
            tree = [self.process, *self.process.children(recursive=True)]
        except psutil.Error:
            return
        # PSS makes the kernel walk every page of every process (10 to 20 ms for one of
        # TensorFlow's processes; read at every RSS sample, it took a third of a core):
        # read every `pss_interval` seconds, and only when the summed RSS (never below the PSS)
        # is above the PSS peak so far, i.e. when a new peak is possible.
        now = time.perf_counter()
        read_pss = now >= self._next_pss
        total = pss_total = 0
        for process in tree:
            try:
                with process.oneshot():
                    rss = process.memory_info().rss
                    times = process.cpu_times()
                    key = (process.pid, process.create_time())
            except psutil.Error:
                continue  # exited between listing and reading
            total += rss
            self.process_peak = max(self.process_peak, rss)
            self._cpu[key] = times.user + times.system
        self.peak = max(self.peak, total)
        if read_pss and total > self.pss_peak:
            self._next_pss = now + self.pss_interval
            pss_total = sum(_pss_bytes(process.pid) for process in tree)
        if pss_total > self.pss_peak:
            self.pss_peak, self.pss_peak_at = pss_total, now - self._sampling_since
        self.samples += 1

    def run(self) -> None:
        while not self._stop_event.is_set():
            self.sample()
            self._stop_event.wait(self.interval)

    def stop(self) -> None:
        self._stop_event.set()
        self.join()


def _pss_bytes(pid: int) -> int:
    """The process's proportional set size, from the kernel's one-line summary of its mappings
    (/proc/PID/smaps_rollup, Linux 4.14+); 0 when it cannot be read."""
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                if line.startswith("Pss:"):
                    return int(line.split()[1]) * 1024  # kB
    except OSError:
        pass
    return 0


def _processes_in_group(pgid: int) -> list[psutil.Process]:
    found = []
    for process in psutil.process_iter():
        try:
            if os.getpgid(process.pid) == pgid:
                found.append(process)
        except (OSError, psutil.Error):
            pass
    return found


def _end_group(pgid: int, grace_seconds: float = 15.0) -> None:
    """SIGTERM, then SIGKILL, to the process group this harness started (by its id)."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(pgid, sig)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + grace_seconds
        while time.monotonic() < deadline and _processes_in_group(pgid):
            time.sleep(0.5)


def measure(
    command: list[str],
    cwd: Path,
    log_path: Path,
    timeout: float,
    interval: float,
    pss_interval: float = PSS_INTERVAL_SECONDS,
) -> Measurement:
    """Runs `command` (stdout and stderr to `log_path`) in its own session and measures it."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    timed_out = threading.Event()
    with log_path.open("wb") as log:
        started = time.perf_counter()
        process = subprocess.Popen(
            command, cwd=cwd, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        sampler = TreeSampler(process.pid, interval, pss_interval)
        sampler.start()

        def on_timeout() -> None:
            timed_out.set()
            _end_group(process.pid)

        timer = threading.Timer(timeout, on_timeout)
        timer.start()
        try:
            # wait4 rather than Popen.wait: it also returns the tree's resource usage.
            _, status, usage = os.wait4(process.pid, 0)
        except BaseException:  # Ctrl-C: the run is in its own session, so end it here
            timer.cancel()
            _end_group(process.pid)
            raise
        wall = time.perf_counter() - started
        process.returncode = os.waitstatus_to_exitcode(status)
        timer.cancel()
        if timed_out.is_set():
            timer.join()  # let _end_group finish with the rest of the group before counting
        sampler.stop()
    leftovers = _processes_in_group(process.pid)
    if leftovers:
        _end_group(process.pid)
    return Measurement(
        wall_seconds=round(wall, 3),
        cpu_user_seconds=round(usage.ru_utime, 3),
        cpu_system_seconds=round(usage.ru_stime, 3),
        cpu_sampled_seconds=round(sampler.cpu_seconds, 3),
        peak_rss_bytes=sampler.peak,
        peak_pss_bytes=sampler.pss_peak,
        peak_pss_at_seconds=round(sampler.pss_peak_at, 1),
        max_process_rss_bytes=max(usage.ru_maxrss * 1024, sampler.process_peak),  # KiB on Linux
        rss_samples=sampler.samples,
        exit_code=process.returncode,
        timed_out=timed_out.is_set(),
        leftover_processes=len(leftovers),
    )


def measurement_dict(m: Measurement) -> dict:
    return {**asdict(m), "cpu_seconds": round(m.cpu_seconds, 3)}

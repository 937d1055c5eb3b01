"""Which pipeline nodes may start now: the bookkeeping of a concurrent run, without processes.

A node starts when every node it waits for has succeeded, at most `parallelism` at once, in the
pipeline's topological order. After a failure no further node starts: the run has failed, and
nothing after it could be pushed. The nodes already running finish, since what they compute is
valid and a re-run after the fix reuses it from the cache instead of computing it again.
"""

from __future__ import annotations

import os


def default_parallelism(cores: int | None = None) -> int:
    """How many components run at once unless told: one per core (BENCHMARKS.md, "Parallelism",
    has the measurements behind it)."""
    return max(1, cores if cores is not None else (os.cpu_count() or 1))


class DagSchedule:
    def __init__(self, dependencies: dict[str, set[str]], parallelism: int):
        """`dependencies`: node id -> the node ids it waits for, in topological order."""
        if parallelism < 1:
            raise ValueError(f"parallelism must be at least 1, got {parallelism}")
        unknown = {u for upstream in dependencies.values() for u in upstream} - dependencies.keys()
        if unknown:
            raise ValueError(f"nodes wait for unknown nodes: {sorted(unknown)}")
        self._dependencies = dependencies
        self.parallelism = parallelism
        self.running: list[str] = []
        self.succeeded: list[str] = []
        self.failed: list[str] = []

    @property
    def nodes(self) -> list[str]:
        return list(self._dependencies)

    def next_nodes(self) -> list[str]:
        """The nodes to start now (none once a node has failed), in topological order."""
        if self.failed:
            return []
        room = self.parallelism - len(self.running)
        done = set(self.succeeded)
        ready = [
            node
            for node, upstream in self._dependencies.items()
            if node not in done and node not in self.running and upstream <= done
        ]
        return ready[: max(room, 0)]

    def start(self, node: str) -> None:
        self.running.append(node)

    def finish(self, node: str, succeeded: bool) -> None:
        self.running.remove(node)
        (self.succeeded if succeeded else self.failed).append(node)

    @property
    def finished(self) -> bool:
        return not self.running and not self.next_nodes()

    def not_run(self) -> dict[str, str]:
        """Each node that did not run -> why, for a run that has ended."""
        ran = set(self.succeeded) | set(self.failed)
        reasons = {}
        for node in self._dependencies:
            if node in ran:
                continue
            failed_upstream = [f for f in self.failed if f in self.upstream_of(node)]
            reasons[node] = (
                f"waits for {', '.join(failed_upstream)}"
                if failed_upstream
                else "not started after the failure"
            )
        return reasons

    def upstream_of(self, node: str) -> set[str]:
        """Every node `node` waits for, directly or through others."""
        seen: set[str] = set()
        stack = list(self._dependencies[node])
        while stack:
            current = stack.pop()
            if current not in seen:
                seen.add(current)
                stack.extend(self._dependencies[current])
        return seen

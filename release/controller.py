"""The release controller: inside `serve`, it takes each pushed version through the profile's
release policy, records every change in ML Metadata (release/states.py), and tells the server
processes what to serve through the routing file (serving/routing.py).

Each turn (every `--poll-seconds`) reads the model folder's pushes and their states from ML
Metadata, so a turn after a restart takes up where the last one stopped, and decides:
- a re-push by `models rollback` (or by this controller) becomes stable at once: it is the way
  back to a known version, not a new one to try;
- otherwise the newest version not yet released is the candidate (older ones waiting are
  superseded): under `approval: manual` it waits for `models approve`; then, with a stable
  version to compare it with, `strategy: canary` or `shadow` starts its release, and
  `all_at_once` (or no stable version yet) makes it stable at once;
- a candidate in canary or shadow is judged by the guard (release/guard.py) on the servers'
  counts: promoted to stable, or rolled back: marked `rolled_back` with the breaches, and the
  stable version re-pushed as the newest (deployment/rollback.py, as `models rollback` does), so
  that the highest version in the folder is again the one served, for any server.
A version rejected by `models reject` while in canary leaves the routing at the next turn.

The routing file names the versions to load (the stable one and the candidate) and the split;
the servers load a new stable version before they switch to it, so no request finds none.
"""

from __future__ import annotations

import dataclasses
import datetime
import logging
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from components.profile import Profile
from deployment import rollback
from metadata.store import open_store
from pipeline.metadata_location import MetadataLocation
from release import guard, states
from serving.repository import version_folders
from serving.routing import CANARY_MODE, SHADOW_MODE, write_table

log = logging.getLogger("serving")
ROUTING_FILE = "routing.json"
STATS_FOLDER = "stats"
_PROGRESS_SECONDS = 10.0  # how often a release under way says where it stands
_PUSH_SECONDS = 60.0  # a version folder younger than this may be a push not yet recorded


@dataclasses.dataclass(frozen=True)
class ControllerSettings:
    model_dir: Path
    model_name: str
    location: MetadataLocation
    profile: Profile
    state_dir: Path  # the routing file and the servers' counts
    request_log_dir: str | None  # labels for the quality guard come from here
    poll_seconds: float = 1.0


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.timezone.utc)


def _time_of(ms: int) -> datetime.datetime:
    return datetime.datetime.fromtimestamp(ms / 1000, datetime.timezone.utc)


class ReleaseController:
    def __init__(self, settings: ControllerSettings):
        self.settings = settings
        self.policy = settings.profile.release
        settings.state_dir.mkdir(parents=True, exist_ok=True)
        (settings.state_dir / STATS_FOLDER).mkdir(exist_ok=True)
        self.routing_file = settings.state_dir / ROUTING_FILE
        self._store = None
        self._table: dict[str, Any] | None = None
        self._serial = 0
        self._said: set[str] = set()  # one-time notices already given
        self._last_progress = 0.0
        self._stopped = threading.Event()
        self._thread: threading.Thread | None = None
        self.last_error: str | None = None

    def describe(self) -> str:
        policy = self.policy
        strategy = {
            "all_at_once": "all at once",
            "canary": f"canary ({policy.canary_percent:g}% of requests first)",
            "shadow": "shadow (copies of the requests first)",
        }[policy.strategy]
        return (
            f"profile {self.settings.profile.name}'s release policy: approval {policy.approval}, "
            f"{strategy}; states in ML Metadata at {self.settings.location}"
        )

    # -- running ------------------------------------------------------------------------------

    def start(self) -> None:
        """The first turn now (the servers start on its routing), then one per poll."""
        self.step()
        self._thread = threading.Thread(target=self._run, daemon=True, name="release")
        self._thread.start()

    def stop(self) -> None:
        self._stopped.set()
        if self._thread is not None:
            self._thread.join(timeout=30)

    def _run(self) -> None:
        while not self._stopped.wait(self.settings.poll_seconds):
            try:
                self.step()
                if self.last_error:
                    log.info("Release: ML Metadata answers again")
                self.last_error = None
            except Exception as e:  # noqa: BLE001 - the servers keep the last routing
                self._store = None  # opened again at the next turn
                text = f"{type(e).__name__}: {e}"
                if text != self.last_error:
                    log.warning("Release: this turn failed (%s); serving as before, retrying", text)
                self.last_error = text

    def _open(self):
        if self._store is None:
            self._store = open_store(self.settings.location, writable=True)
        return self._store

    def _once(self, key: str, message: str) -> None:
        if key not in self._said:
            self._said.add(key)
            log.info("%s", message)

    # -- one turn -----------------------------------------------------------------------------

    def step(self, now: datetime.datetime | None = None) -> dict[str, Any]:
        """One decision round; the routing it wrote."""
        now = now or _now()
        store = self._open()
        base = str(self.settings.model_dir)
        pushes, histories = states.histories(store, base)
        on_disk = version_folders(base)
        for version in sorted(set(on_disk) - set(pushes)):
            if time.time() - os.path.getmtime(on_disk[version]) < _PUSH_SECONDS:
                continue  # Pusher records a push once its files are in place
            self._once(
                f"unrecorded {version}",
                f"Release: version {version} in {base} has no push recorded in ML Metadata at "
                f"{self.settings.location}; it is not served",
            )
        state = {v: states.state_of(h) for v, h in histories.items()}
        record = self._recorder(store, pushes, histories, state)

        stable = self._stable(state, histories, record)
        repushed = sorted(
            v
            for v in pushes
            if state[v] == states.PUSHED and pushes[v].rollback_of is not None and v in on_disk
        )
        if repushed:
            stable = self._make_stable(
                repushed[-1],
                stable,
                record,
                f"a re-push of version {pushes[repushed[-1]].rollback_of} (models rollback)",
                by="models rollback",
            )
            for version in sorted(pushes):
                if state[version] in states.RELEASING:  # the release under way is over
                    record(version, states.ROLLED_BACK, f"models rollback re-pushed {stable}")
        candidate = next((v for v in sorted(pushes) if state[v] in states.RELEASING), None)
        if candidate is not None and candidate not in on_disk:
            record(candidate, states.ROLLED_BACK, f"its folder {pushes[candidate].path} is gone")
            candidate = None
        if candidate is None:
            stable, candidate = self._next_candidate(
                pushes, state, stable, on_disk, record, now, histories
            )
        if candidate is not None and state[candidate] in states.RELEASING:
            stable, candidate = self._judge(
                pushes, histories, state, stable, candidate, record, now
            )
        return self._route(stable, candidate, state, histories)

    def _recorder(self, store, pushes, histories, state) -> Callable[..., None]:
        def record(version: int, new_state: str, reason: str, **kwargs) -> None:
            by = kwargs.pop("by", states.CONTROLLER)
            states.record(store, pushes[version], new_state, by=by, reason=reason, **kwargs)
            state[version] = new_state
            histories[version] = states.changes(store, {pushes[version].pushed_model_id})
            log.info("Release: version %d is %s: %s", version, new_state.replace("_", " "), reason)

        return record

    def _stable(self, state, histories, record) -> int | None:
        stables = sorted(
            (v for v in state if state[v] == states.STABLE),
            key=lambda v: histories[v][-1].execution_id,
        )
        for older in stables[:-1]:  # two stable versions: the latest change wins
            record(older, states.RETIRED, f"version {stables[-1]} is stable")
        return stables[-1] if stables else None

    def _make_stable(
        self, version, previous, record, reason, *, by=states.CONTROLLER, retired=None, **kw
    ) -> int:
        record(version, states.STABLE, reason, by=by, share=100.0, **kw)
        if previous is not None and previous != version:
            record(previous, states.RETIRED, retired or f"version {version} is stable")
        return version

    def _next_candidate(self, pushes, state, stable, on_disk, record, now, histories):
        """(stable, candidate) once the newest version waiting to go out has been taken as far
        as the policy lets it this turn."""
        # By version number, which Pusher takes from the time of the push. A re-push of the stable
        # version (a rollback) has a higher number than versions pushed before it, but is no
        # newer a model: those still wait their turn.
        waiting = sorted(v for v in pushes if state[v] in states.UNDECIDED and v in on_disk)
        if not waiting:
            return stable, None
        newest = waiting[-1]
        for older in waiting[:-1]:
            record(older, states.SUPERSEDED, f"version {newest} was pushed after it")
        if state[newest] == states.PUSHED and self.policy.approval == "manual":
            record(
                newest,
                states.AWAITING_APPROVAL,
                "release.approval is manual: `python run_local.py models approve "
                f"{newest} --by NAME` releases it",
            )
        if state[newest] == states.AWAITING_APPROVAL:
            return stable, None
        chosen = histories[newest][-1].strategy if histories[newest] else None
        strategy = chosen or self.policy.strategy
        if stable is None or strategy == "all_at_once":
            why = (
                "the first version released (no stable version to compare it with)"
                if stable is None
                else "all at once, as its approval chose"
                if chosen
                else "release.strategy is all_at_once"
            )
            return self._make_stable(newest, stable, record, why), None
        mode = states.CANARY if strategy == "canary" else states.SHADOW
        share = self.policy.canary_percent if mode == states.CANARY else 0.0
        release_id = f"{newest}-{int(now.timestamp())}"
        what = (
            f"{share:g}% of the requests that name no version"
            if mode == states.CANARY
            else "a copy of every request, answered by the stable version"
        )
        record(
            newest,
            mode,
            f"{mode} against stable version {stable}: {what}, judged after "
            f"{self.policy.min_requests} requests or {self.policy.max_minutes:g} minutes",
            share=share,
            release_id=release_id,
        )
        return stable, newest

    def _judge(self, pushes, histories, state, stable, candidate, record, now):
        """(stable, candidate) after judging the candidate under way."""
        started_change = next(
            c for c in reversed(histories[candidate]) if c.state in states.RELEASING
        )
        mode, release_id = started_change.state, started_change.release_id
        if stable is None:  # the stable version vanished from the record: nothing to judge by
            self._make_stable(candidate, None, record, "no stable version is left to compare it")
            return candidate, None
        counts = guard.read_counts(str(self.settings.state_dir / STATS_FOLDER), release_id)
        key = f"{candidate}/shadow" if mode == states.SHADOW else str(candidate)
        candidate_counts = counts.get(key, guard.Counts())
        started = _time_of(started_change.at_ms)
        quality = None
        if (
            mode == states.CANARY
            and candidate_counts.requests >= self.policy.min_requests
            and self.settings.request_log_dir
        ):
            quality = guard.live_quality(
                self.settings.request_log_dir,
                self.settings.model_name,
                (candidate, stable),
                self.settings.profile,
                started,
                now,
            )
        verdict = guard.judge(
            candidate=candidate_counts,
            stable=counts.get(str(stable), guard.Counts()),
            profile=self.settings.profile,
            started=started,
            now=now,
            quality=quality,
        )
        if verdict.decision == guard.WAIT:
            if time.monotonic() - self._last_progress >= _PROGRESS_SECONDS:
                self._last_progress = time.monotonic()
                log.info(
                    "Release: %s of version %d: %s, %.1f of %g minutes",
                    mode,
                    candidate,
                    verdict.summary,
                    verdict.evidence["minutes"],
                    self.policy.max_minutes,
                )
            return stable, candidate
        if verdict.decision == guard.PROMOTE:
            self._make_stable(
                candidate,
                stable,
                record,
                f"promoted after its {mode}: {_evidence_text(verdict.evidence)}",
                evidence=verdict.evidence,
                release_id=release_id,
            )
            return candidate, None
        record(
            candidate,
            states.ROLLED_BACK,
            f"{mode} guard breached: {verdict.summary}",
            evidence=verdict.evidence,
            release_id=release_id,
        )
        return self._repush(stable, candidate, pushes, record), None

    def _repush(self, stable: int, candidate: int, pushes, record) -> int:
        """The stable version pushed again as the newest (the existing rollback), made stable:
        what was served stays served, and the folder's highest version is it again."""
        try:
            repushed = rollback.rollback(
                self.settings.location, stable, user="serve (release guard)"
            )
        except (rollback.RollbackRefused, LookupError) as e:
            log.warning("Release: version %d stays stable, but re-pushing it failed: %s", stable, e)
            return stable
        found, _ = states.histories(self._open(), str(self.settings.model_dir))
        pushes.update(found)  # the recorder's pushes: it records the re-push's state
        version = repushed["version"]
        self._make_stable(
            version,
            stable,
            record,
            f"a re-push of version {stable}, after version {candidate} was rolled back",
            retired=f"re-pushed as version {version}",
        )
        log.info(
            "Release: version %d re-pushed as version %d, now stable (models rollback's way)",
            stable,
            version,
        )
        return version

    # -- the routing file ---------------------------------------------------------------------

    def _route(self, stable, candidate, state, histories) -> dict[str, Any]:
        mode = None
        release_id = None
        if candidate is not None and state.get(candidate) in states.RELEASING:
            change = histories[candidate][-1]
            mode = CANARY_MODE if change.state == states.CANARY else SHADOW_MODE
            release_id = change.release_id
        else:
            candidate = None
        table = {
            "model": self.settings.model_name,
            "stable": stable,
            "candidate": candidate,
            "mode": mode,
            "canary_percent": self.policy.canary_percent if mode == CANARY_MODE else 0.0,
            "load": [v for v in (stable, candidate) if v is not None],
            "release_id": release_id,
            "stats_dir": str(self.settings.state_dir / STATS_FOLDER),
        }
        if table != self._table or not self.routing_file.exists():
            self._table = table
            self._serial += 1
            write_table(str(self.routing_file), {**table, "serial": self._serial})
            if stable is None and candidate is None:
                self._once("nothing", "Release: no version is released yet; nothing is served")
        return table


def _evidence_text(evidence: dict[str, Any]) -> str:
    parts = [f"{evidence['requests']['candidate']} requests"]
    parts.append(f"error rate {evidence['error_rate']['candidate']:.2%}")
    p99 = evidence.get("p99_ms") or {}
    if p99.get("candidate") is not None and p99.get("stable") is not None:
        parts.append(f"p99 {p99['candidate']:.1f} ms against {p99['stable']:.1f} ms")
    answers = evidence.get("answers") or {}
    if answers.get("judged"):
        parts.append(f"answers at Jensen-Shannon {answers['distance']:.3f}")
    quality = evidence.get("quality") or {}
    if quality.get("judged"):
        headline = quality["headline"]
        parts.append(
            f"live {headline} {quality['candidate'][headline]:.3f} against "
            f"{quality['stable'][headline]:.3f}"
        )
    return ", ".join(parts)

"""The guard: a candidate judged against the stable version on the traffic they shared.

The figures come from the servers' counts (serving/routing.py), added up over the processes:
requests, server errors, latencies and answers per version, for the requests the release split
(canary) or copied (shadow). Live quality comes from the request log and the labels posted for
it (monitoring/), per version, when enough labels arrived.

The candidate is judged once it answered `release.min_requests` requests, or once
`release.max_minutes` passed (then, with fewer requests, it is rolled back: too little evidence
to promote it). It is promoted when every guard holds and rolled back when one is breached:
- error rate: its server errors per request at most `guards.max_error_rate`;
- latency: its p99 at most `guards.max_p99_ratio` times the stable version's, unless within
  `guards.p99_slack_ms` of it;
- answers: Jensen-Shannon divergence between its answers and the stable version's, over ten
  bins at the stable answers' deciles (classes for multiclass), at most
  `guards.max_answer_distance`;
- quality (canary, with labels): its live headline metric at most `guards.quality_max_drop`
  below the stable version's (RMSE: that fraction above), once each has `guards.min_labels`.
"""

from __future__ import annotations

import dataclasses
import datetime
import glob
import json
import os
from typing import Any

import numpy as np

from components import profile as profiles
from components.profile import Profile
from monitoring import checks, traffic
from serving.routing import Counts

PROMOTE, ROLL_BACK, WAIT = "promote", "roll back", "wait"
_MIN_LATENCIES = 20  # fewer stable latencies than this: its p99 says nothing


def read_counts(stats_dir: str, release_id: str) -> dict[str, Counts]:
    """Every server process's counts for the release, added up, by version key ("V", or
    "V/shadow" for shadow copies)."""
    merged: dict[str, Counts] = {}
    for path in sorted(glob.glob(os.path.join(stats_dir, release_id, "worker-*.json"))):
        try:
            with open(path) as f:
                written = json.load(f)
        except (OSError, ValueError):  # being replaced: read at the next turn
            continue
        for key, counts in written.get("versions", {}).items():
            merged.setdefault(key, Counts()).add(counts)
    return merged


@dataclasses.dataclass
class Verdict:
    decision: str  # PROMOTE, ROLL_BACK or WAIT
    reasons: list[str]  # the breaches (ROLL_BACK), or what is awaited (WAIT)
    evidence: dict[str, Any]

    @property
    def summary(self) -> str:
        return "; ".join(self.reasons)


def _round(value: float | None, digits: int = 3) -> float | None:
    return None if value is None else round(value, digits)


def judge(
    *,
    candidate: Counts,
    stable: Counts,
    profile: Profile,
    started: datetime.datetime,
    now: datetime.datetime,
    quality: dict[str, Any] | None = None,
) -> Verdict:
    """The guard's decision on the candidate's counts against the stable version's."""
    policy, guards = profile.release, profile.release.guards
    minutes = max(0.0, (now - started).total_seconds() / 60)
    evidence: dict[str, Any] = {
        "requests": {"candidate": candidate.requests, "stable": stable.requests},
        "minutes": round(minutes, 2),
        "error_rate": {
            "candidate": _round(candidate.error_rate, 4),
            "stable": _round(stable.error_rate, 4),
            "max": guards.max_error_rate,
        },
    }
    if candidate.requests < policy.min_requests:
        if minutes < policy.max_minutes:
            return Verdict(
                WAIT,
                [f"{candidate.requests} of release.min_requests {policy.min_requests} requests"],
                evidence,
            )
        return Verdict(
            ROLL_BACK,
            [
                f"only {candidate.requests} requests in {policy.max_minutes:g} minutes "
                f"(release.max_minutes), fewer than release.min_requests {policy.min_requests}: "
                "too little evidence to promote it"
            ],
            evidence,
        )
    breaches = []
    if candidate.error_rate > guards.max_error_rate:
        breaches.append(
            f"error rate {candidate.error_rate:.2%} ({candidate.errors} of {candidate.requests} "
            f"requests) > guards.max_error_rate {guards.max_error_rate:.2%}"
        )
    breaches += _latency(candidate, stable, guards, evidence)
    breaches += _answers(candidate, stable, profile, evidence)
    if quality is not None:
        evidence["quality"] = quality
        if quality.get("breach"):
            breaches.append(quality["breach"])
    if breaches:
        return Verdict(ROLL_BACK, breaches, evidence)
    return Verdict(PROMOTE, ["every guard holds"], evidence)


def _latency(candidate: Counts, stable: Counts, guards, evidence: dict) -> list[str]:
    p99_candidate, p99_stable = candidate.p99_ms, stable.p99_ms
    evidence["p99_ms"] = {
        "candidate": _round(p99_candidate),
        "stable": _round(p99_stable),
        "max_ratio": guards.max_p99_ratio,
        "slack_ms": guards.p99_slack_ms,
    }
    if p99_candidate is None or p99_stable is None or len(stable.latencies_ms) < _MIN_LATENCIES:
        evidence["p99_ms"]["judged"] = False
        return []
    evidence["p99_ms"]["judged"] = True
    if (
        p99_candidate > guards.max_p99_ratio * p99_stable
        and p99_candidate - p99_stable > guards.p99_slack_ms
    ):
        return [
            f"p99 latency {p99_candidate:.1f} ms > {guards.max_p99_ratio:g} x the stable "
            f"version's {p99_stable:.1f} ms (guards.max_p99_ratio, beyond guards.p99_slack_ms "
            f"{guards.p99_slack_ms:g} ms)"
        ]
    return []


def _answers(candidate: Counts, stable: Counts, profile: Profile, evidence: dict) -> list[str]:
    threshold = profile.release.guards.max_answer_distance
    if not candidate.answers or not stable.answers:
        evidence["answers"] = {"judged": False, "max_distance": threshold}
        return []
    task = profile.task
    live = checks.answer_values(candidate.answers, task)
    reference = checks.answer_values(stable.answers, task)
    drift = checks.prediction_drift(live, reference, task, threshold)
    chance = _chance_distance(live, reference, task)
    evidence["answers"] = {
        "judged": True,
        "distance": drift["distance"],
        "max_distance": threshold,
        "chance": chance,
        "candidate_mean": drift["live_mean"],
        "stable_mean": drift["eval_mean"],
        "sampled": {"candidate": len(candidate.answers), "stable": len(stable.answers)},
    }
    if drift["distance"] > threshold and drift["distance"] > chance:
        return [
            f"answers differ from the stable version's: Jensen-Shannon {drift['distance']:.3f} "
            f"> guards.max_answer_distance {threshold:g} (mean {drift['live_mean']:.3f} against "
            f"{drift['eval_mean']:.3f}; samples this size differ by chance up to {chance:.3f})"
        ]
    return []


_PERMUTATIONS = 200


def _chance_distance(live: np.ndarray, reference: np.ndarray, task: str) -> float:
    """The distance two samples of these sizes reach by chance alone: the 95th percentile over
    seeded permutations of the pooled answers (on a few dozen answers, ten bins differ by
    more than 0.1 Jensen-Shannon from sampling alone)."""
    pooled = np.concatenate([live, reference])
    rng = np.random.default_rng(0)
    distances = []
    for _ in range(_PERMUTATIONS):
        shuffled = rng.permutation(pooled)
        first, second = shuffled[: len(live)], shuffled[len(live) :]
        distances.append(checks.prediction_drift(first, second, task, 1.0)["distance"])
    return round(float(np.percentile(distances, 95)), 4)


def live_quality(
    request_log_dir: str,
    model_name: str,
    versions: tuple[int, int],
    profile: Profile,
    started: datetime.datetime,
    now: datetime.datetime,
) -> dict[str, Any] | None:
    """The candidate's and the stable version's live headline metric on the labelled requests
    of the release, and the breach if the candidate's fell too far; None without labels."""
    if not request_log_dir or not os.path.isdir(request_log_dir):
        return None
    labels = traffic.feedback_labels(request_log_dir)
    if not labels:
        return None
    window = traffic.read_window(request_log_dir, model_name, started, now)
    joined, _ = traffic.join_labels(window, labels)
    guards = profile.release.guards
    headline = profile.headline_metric
    figures = {}
    for role, version in zip(("candidate", "stable"), versions, strict=True):
        rows, found = window.by_version.get(version), joined.get(version)
        if rows is None or found is None or len(found.rows) < guards.min_labels:
            figures[role] = {"labelled_rows": len(found.rows) if found else 0}
            continue
        try:
            targets = np.array(
                [
                    checks.target_of(value, profile, rows.examples[row])
                    for row, value in zip(found.rows, found.values, strict=True)
                ]
            )
        except checks.LabelError:
            figures[role] = {"labelled_rows": len(found.rows), "error": "unreadable labels"}
            continue
        answers = [rows.answers[row] for row in found.rows]
        result = checks.live_quality(targets, answers, profile, {})
        figures[role] = {
            "labelled_rows": len(found.rows),
            headline: result["metrics"].get(headline),
            "standard_error": _standard_error(targets, answers, profile),
        }
    quality: dict[str, Any] = {
        "headline": headline,
        "max_drop": guards.quality_max_drop,
        "min_labels": guards.min_labels,
        **figures,
    }
    live, reference = figures["candidate"].get(headline), figures["stable"].get(headline)
    if live is None or reference is None:
        quality["judged"] = False
        return quality
    quality["judged"] = True
    lower_is_better = headline in profiles.LOWER_IS_BETTER
    worse = (
        live > reference * (1 + guards.quality_max_drop)
        if lower_is_better
        else live < reference - guards.quality_max_drop
    )
    # Two versions' metrics on different, small sets of labelled rows differ by chance: a drop
    # counts only beyond two standard errors of the difference (bootstrapped).
    errors = (figures["candidate"]["standard_error"], figures["stable"]["standard_error"])
    noise = None if None in errors else round(2 * float(np.hypot(*errors)), 4)
    quality["noise"] = noise
    if worse and noise is not None and abs(live - reference) > noise:
        quality["breach"] = (
            f"live {headline} {live:.4f} on {figures['candidate']['labelled_rows']} labelled "
            f"rows, against the stable version's {reference:.4f} "
            f"(guards.quality_max_drop {guards.quality_max_drop:g}, beyond chance: "
            f"two standard errors are {noise:.4f})"
        )
    return quality


_BOOTSTRAP_SAMPLES = 200


def _standard_error(targets: np.ndarray, answers: list, profile: Profile) -> float | None:
    """The headline metric's standard error on these rows, from a seeded bootstrap (None when
    too few resamples have it)."""
    headline = profile.headline_metric
    rng = np.random.default_rng(0)
    figures = []
    for _ in range(_BOOTSTRAP_SAMPLES):
        picked = rng.integers(0, len(targets), len(targets))
        metrics = checks.live_quality(targets[picked], [answers[i] for i in picked], profile, {})[
            "metrics"
        ]
        if headline in metrics:  # AUC needs both classes in the resample
            figures.append(metrics[headline])
    return round(float(np.std(figures)), 4) if len(figures) > 1 else None

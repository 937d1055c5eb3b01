"""The benchmark's targets and whether each one was met: evaluates a results JSON's runs against
them (met / MISSED / not measured, with what was measured and why)."""

from __future__ import annotations

from formatting import GIB, fmt_bytes, fmt_minutes, fmt_seconds

# Targets. A scale target applies when --scale-rows includes its row count.
TARGET_COLD_VS_REFERENCE = 0.78  # project cold wall / reference cold wall
TARGET_RERUN_RATIO = 0.10  # unchanged re-run wall / cold wall
TARGET_MODEL_CHANGE_RATIO = 0.35  # model-code-change re-run wall / cold wall
TARGET_1M_ROWS = 1_000_000
TARGET_1M_SECONDS = 4 * 60.0
TARGET_10M_ROWS = 10_000_000
TARGET_10M_SECONDS = 40 * 60.0
TARGET_10M_PEAK_BYTES = 8 * GIB
TARGET_CORES = 2
TARGET_AUC = 0.947  # the project's cold run on the default data
# Serving (bench/serve_load.py), REST :predict unless said.
TARGET_SERVE_ONE_CLIENT_P50_MS = 2.0  # 1 row per request, 1 client
TARGET_SERVE_32_CLIENTS_RPS = 1500.0  # 1 row per request, 32 clients
TARGET_SERVE_32_CLIENTS_P99_MS = 50.0
TARGET_SERVE_64_ROWS_PER_SECOND = 30_000.0  # 64 rows per request, best of the client counts
TARGET_REQUEST_LOG_COST = 0.10  # throughput lost with request logging on, at any point measured

MET, MISSED, NOT_MEASURED = "met", "MISSED", "not measured"


def run_ok(run: dict | None) -> bool:
    """Whether `run` exists and exited 0."""
    return bool(run) and run.get("exit_code") == 0


def _target(name: str, goal: str, measured: str | None, ok: bool | None, note: str = "") -> dict:
    status = NOT_MEASURED if ok is None else MET if ok else MISSED
    return {"target": name, "goal": goal, "measured": measured, "status": status, "note": note}


def _why_not_ok(run: dict) -> str:
    """Why a run that did not exit 0 did not: stopped at the cap, or failed."""
    if run.get("timed_out"):
        return f"stopped at the {fmt_minutes(run.get('timeout_seconds'))} cap before it finished"
    if run.get("exit_code") is None:
        return run.get("description") or "not run"
    return f"the run failed (exit {run.get('exit_code')})"


def _other_invocation(run: dict, base: dict, base_name: str) -> str:
    """A note when two runs compared were measured by different harness invocations."""
    if run.get("invocation") == base.get("invocation"):
        return ""
    return f"measured in another invocation than the {base_name} ({base.get('started_at')})"


def _join(*notes: str) -> str:
    return "; ".join(n for n in notes if n)


def reference_auc(reference: dict | None) -> float | None:
    """The reference's AUC: its Evaluator's if it computed one, else the untimed scoring's."""
    if not reference:
        return None
    metrics = reference.get("metrics") or {}
    if "auc" in metrics:
        return metrics["auc"]
    return (reference.get("scored") or {}).get("auc")


def _reference_note(reference: dict | None) -> str:
    """The reference's model quality, for information beside the project's AUC."""
    if not reference:
        return "reference not run"
    if not run_ok(reference):
        return f"reference: {_why_not_ok(reference)}"
    auc = reference_auc(reference)
    accuracy = (reference.get("metrics") or {}).get("binary_accuracy")
    parts = []
    if auc is not None:
        count = (reference.get("scored") or {}).get("example_count")
        on = f" on its {count:,} eval rows" if count else ""
        parts.append(f"AUC {auc:.4f}{on} (scored after its run)")
    elif (reference.get("scored") or {}).get("error"):
        parts.append(f"AUC not computed: {reference['scored']['error']}")
    if accuracy is not None:
        parts.append(f"its Evaluator's binary accuracy {accuracy:.4f}")
    return "for information, the reference (TFX's taxi example): " + (
        ", ".join(parts) or "no metrics read"
    )


def _ratio_target(
    name: str,
    goal: str,
    runs: dict,
    scenario: str,
    base_scenario: str,
    base_name: str,
    limit: float,
) -> dict:
    """Wall of `scenario` / wall of `base_scenario` <= limit. A failed base (nothing to compare
    with) is not measured; a failed or stopped run is MISSED."""
    run, base = runs.get(scenario), runs.get(base_scenario)
    if not run or not base:
        missing = [n for n, r in ((scenario, run), (base_scenario, base)) if not r]
        return _target(name, goal, None, None, f"not run: {', '.join(missing)}")
    if not run_ok(base):
        return _target(name, goal, None, None, f"the {base_name}: {_why_not_ok(base)}")
    wall, base_wall = run.get("wall_seconds"), base["wall_seconds"]
    ratio = wall / base_wall if wall is not None and base_wall else None
    measured = (
        None if ratio is None else f"{ratio:.2f}x ({fmt_seconds(wall)} / {fmt_seconds(base_wall)})"
    )
    if not run_ok(run):
        return _target(name, goal, measured, False, _why_not_ok(run))
    return _target(name, goal, measured, ratio <= limit, _other_invocation(run, base, base_name))


def _scale_target(
    runs: dict, rows: int, name: str, goal: str, key: str, limit: float, cores: int | None
) -> dict:
    """A scale run's wall or peak RSS against its limit; a run stopped at the cap is MISSED."""
    run = runs.get(f"scale_{rows}")
    if not run:
        return _target(name, goal, None, None, f"not run (--scale-rows without {rows:,})")
    if run.get("exit_code") is None:
        return _target(name, goal, None, None, _why_not_ok(run))
    value = run.get(key)
    shown = (
        None if value is None else fmt_seconds(value) if key == "wall_seconds" else fmt_bytes(value)
    )
    cores_note = (
        f"measured on {cores} cores (the target is for {TARGET_CORES})"
        if cores and cores != TARGET_CORES
        else ""
    )
    if run.get("timed_out"):
        if key == "wall_seconds":
            shown = f"stopped at {fmt_minutes(run.get('timeout_seconds'))}"
        else:
            shown = f"{shown} until stopped" if shown else None
        return _target(name, goal, shown, False, _join(_why_not_ok(run), cores_note))
    if not run_ok(run):
        return _target(name, goal, shown, False, _join(_why_not_ok(run), cores_note))
    return _target(name, goal, shown, value <= limit, cores_note)


def evaluate_targets(results: dict) -> list[dict]:
    """Each target with what was measured and met / MISSED / not measured."""
    runs = results.get("runs", {})
    cores = (results.get("machine") or {}).get("cores")
    reference, cold = runs.get("reference"), runs.get("cold")
    targets = [
        _ratio_target(
            "Cold run vs TFX's taxi example",
            f"<= {TARGET_COLD_VS_REFERENCE:.2f}x the reference's cold wall",
            runs,
            "cold",
            "reference",
            "reference",
            TARGET_COLD_VS_REFERENCE,
        ),
        _ratio_target(
            "Unchanged re-run",
            f"<= {TARGET_RERUN_RATIO:.2f}x cold",
            runs,
            "rerun_unchanged",
            "cold",
            "cold run",
            TARGET_RERUN_RATIO,
        ),
        _ratio_target(
            "Model-code-change re-run",
            f"<= {TARGET_MODEL_CHANGE_RATIO:.2f}x cold",
            runs,
            "rerun_model_change",
            "cold",
            "cold run",
            TARGET_MODEL_CHANGE_RATIO,
        ),
        _scale_target(
            runs,
            TARGET_1M_ROWS,
            f"{TARGET_1M_ROWS:,} rows, wall",
            f"<= {fmt_minutes(TARGET_1M_SECONDS)}",
            "wall_seconds",
            TARGET_1M_SECONDS,
            cores,
        ),
        _scale_target(
            runs,
            TARGET_10M_ROWS,
            f"{TARGET_10M_ROWS:,} rows, wall",
            f"<= {fmt_minutes(TARGET_10M_SECONDS)} on {TARGET_CORES} cores",
            "wall_seconds",
            TARGET_10M_SECONDS,
            cores,
        ),
        _scale_target(
            runs,
            TARGET_10M_ROWS,
            f"{TARGET_10M_ROWS:,} rows, peak PSS (tree)",
            f"<= {TARGET_10M_PEAK_BYTES / GIB:g} GiB on {TARGET_CORES} cores",
            "peak_pss_bytes",
            TARGET_10M_PEAK_BYTES,
            cores,
        ),
    ]
    targets += serving_targets(results.get("serving_load"))
    # Model quality: the project's cold run on the default data.
    name, goal = "AUC, cold run on the default data", f">= {TARGET_AUC}"
    auc = ((cold or {}).get("metrics") or {}).get("auc")
    if not cold:
        targets.append(
            _target(name, goal, None, None, _join("not run", _reference_note(reference)))
        )
    elif auc is None:
        why = _why_not_ok(cold) if not run_ok(cold) else "no AUC in its evaluation"
        ok = False if not run_ok(cold) else None
        targets.append(_target(name, goal, None, ok, _join(why, _reference_note(reference))))
    elif not run_ok(cold):
        note = _join(_why_not_ok(cold), _reference_note(reference))
        targets.append(_target(name, goal, f"{auc:.4f}", False, note))
    else:
        targets.append(
            _target(name, goal, f"{auc:.4f}", auc >= TARGET_AUC, _reference_note(reference))
        )
    return targets


def _point(load: dict, api: str, rows: int, clients: int | None = None) -> dict | None:
    found = [
        p
        for p in load.get("points", [])
        if p.get("api", "REST") == api
        and p["rows_per_request"] == rows
        and (clients is None or p["clients"] == clients)
    ]
    return max(found, key=lambda p: p["rows_per_second"]) if found else None


def serving_targets(load: dict | None) -> list[dict]:
    """The serving goals, against the serving load's points (REST unless named)."""
    names = [
        ("Serving, 1 client, 1 row", f"p50 <= {TARGET_SERVE_ONE_CLIENT_P50_MS:g} ms"),
        (
            "Serving, 32 clients, 1 row",
            f">= {TARGET_SERVE_32_CLIENTS_RPS:,.0f} requests/s, p99 <= "
            f"{TARGET_SERVE_32_CLIENTS_P99_MS:g} ms, no errors",
        ),
        ("Serving, 64 rows per request", f">= {TARGET_SERVE_64_ROWS_PER_SECOND:,.0f} rows/s"),
        ("Serving, gRPC vs REST", "gRPC Predict at least as fast as REST, point by point"),
        (
            "Serving, request logging cost",
            f"<= {TARGET_REQUEST_LOG_COST:.0%} lower throughput with it on than off",
        ),
    ]
    if not load or "error" in load or not load.get("points"):
        why = (load or {}).get("error") or "not run"
        return [_target(name, goal, None, None, why) for name, goal in names]
    if "api" not in load["points"][0]:  # results from before gRPC and the floor were measured
        return [
            _target(name, goal, None, None, "measured before these goals existed")
            for name, goal in names
        ]
    floor = load.get("floor", {})
    floor_note = "floor (the model's own call, same run): p50 {} ms for {}".format
    targets = []
    one = _point(load, "REST", 1, 1)
    targets.append(
        _target(
            *names[0],
            f"p50 {one['p50_ms']} ms" if one else None,
            one["p50_ms"] <= TARGET_SERVE_ONE_CLIENT_P50_MS if one else None,
            floor_note(floor.get("1", {}).get("p50_ms"), "1 row") if floor else "",
        )
    )
    many = _point(load, "REST", 1, 32)
    targets.append(
        _target(
            *names[1],
            f"{many['requests_per_second']:,.0f} requests/s, p99 {many['p99_ms']} ms, "
            f"{many['errors']} errors"
            if many
            else None,
            (
                many["requests_per_second"] >= TARGET_SERVE_32_CLIENTS_RPS
                and many["p99_ms"] <= TARGET_SERVE_32_CLIENTS_P99_MS
                and many["errors"] == 0
            )
            if many
            else None,
        )
    )
    wide = _point(load, "REST", 64)
    targets.append(
        _target(
            *names[2],
            f"{wide['rows_per_second']:,.0f} rows/s ({wide['clients']} clients)" if wide else None,
            wide["rows_per_second"] >= TARGET_SERVE_64_ROWS_PER_SECOND if wide else None,
            floor_note(floor.get("64", {}).get("p50_ms"), "64 rows") if floor else "",
        )
    )
    slower = []
    for rest in (p for p in load["points"] if p["api"] == "REST"):
        grpc = _point(load, "gRPC", rest["rows_per_request"], rest["clients"])
        if grpc and grpc["requests_per_second"] < rest["requests_per_second"]:
            slower.append(
                f"{rest['rows_per_request']} row(s) x {rest['clients']} clients: "
                f"{grpc['requests_per_second']:,.0f} vs {rest['requests_per_second']:,.0f} req/s"
            )
    compared = sum(1 for p in load["points"] if p["api"] == "gRPC")
    targets.append(
        _target(
            *names[3],
            f"slower at {len(slower)} of {compared} points"
            if slower
            else f"as fast or faster at all {compared} points",
            not slower,
            "; ".join(slower),
        )
    )
    costs = (load.get("request_log") or {}).get("cost") or []
    worst = max(costs, key=lambda c: c["throughput_lost"]) if costs else None
    if worst is None:
        targets.append(_target(*names[4], None, None, "not measured by this harness run"))
        return targets
    measured = (
        f"{worst['throughput_lost']:.1%} at most ({worst['api']}, {worst['rows_per_request']} "
        f"row(s) x {worst['clients']} clients: {worst['on']:,.0f} vs {worst['off']:,.0f} req/s)"
    )
    spread = max(c.get("spread", 0.0) for c in costs)
    shares = [c["logger_cpu_share"] for c in costs if "logger_cpu_share" in c]
    cpu_note = (
        f"the logger's own CPU is {min(shares):.1%} to {max(shares):.1%} of a request's "
        "(its work timed alone, against the server's CPU per request)"
        if shares
        else ""
    )
    if spread > TARGET_REQUEST_LOG_COST:
        # Two rounds of the same server differed by more than the effect looked for: the
        # throughput comparison cannot tell 10% apart on this machine in this run.
        note = (
            f"too noisy to tell: the rounds of one server differed by up to {spread:.0%} "
            f"(more than the {TARGET_REQUEST_LOG_COST:.0%} looked for); " + cpu_note
        )
        targets.append(_target(*names[4], measured, None, note))
        return targets
    targets.append(
        _target(*names[4], measured, worst["throughput_lost"] <= TARGET_REQUEST_LOG_COST, cpu_note)
    )
    return targets

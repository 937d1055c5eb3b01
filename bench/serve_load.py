"""Load on `run_local.py serve`: requests per second and latency of REST :predict.

    python bench/serve_load.py --model-dir DIR --rows-file CSV [--seconds 10] [--json OUT]

Starts `run_local.py serve` on the pushed model (free loopback ports, the project's server),
then, for 1 and 64 rows per request and 1, 8 and 32 concurrent clients, sends :predict requests
with raw feature values (the rows of an unlabeled CSV, typed by the model's schema) for a fixed
time after a warm-up, and records requests/s, rows/s, p50 and p99 latency and errors. The clients
are asyncio tasks with one shared httpx connection pool, in this process: on a small machine
they share the CPU with the server, which the results say (cores).

The harness (run_bench.py, via scenarios.py) calls `measure()` after its cold run; this file also
runs alone.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

import httpx

PROJECT_ROOT = Path(__file__).resolve().parent.parent
ROWS_PER_REQUEST = (1, 64)
CLIENTS = (1, 8, 32)
WARMUP_SECONDS = 2.0


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _schema_kinds(model_dir: Path) -> dict[str, str]:
    """Feature -> INT / FLOAT / BYTES, from the newest version's schema."""
    from google.protobuf import text_format
    from tensorflow_metadata.proto.v0 import schema_pb2

    version = max((p for p in model_dir.iterdir() if p.name.isdigit()), key=lambda p: int(p.name))
    schema = text_format.Parse(
        (version / "assets.extra" / "schema.pbtxt").read_text(), schema_pb2.Schema()
    )
    return {f.name: schema_pb2.FeatureType.Name(f.type) for f in schema.feature}


def typed_rows(rows_file: Path, kinds: dict[str, str], limit: int = 256) -> list[dict]:
    rows = []
    with open(rows_file, newline="") as f:
        for record in csv.DictReader(f):
            row = {}
            for name, kind in kinds.items():
                cell = record.get(name, "")
                row[name] = (
                    None
                    if cell == ""
                    else int(float(cell))
                    if kind == "INT"
                    else float(cell)
                    if kind == "FLOAT"
                    else cell
                )
            rows.append(row)
            if len(rows) == limit:
                break
    return rows


def _start_server(model_dir: Path, log_path: Path) -> tuple[subprocess.Popen, str]:
    rest, grpc_port = _free_port(), _free_port()
    log = open(log_path, "w")
    process = subprocess.Popen(
        [
            sys.executable,
            "run_local.py",
            "serve",
            f"--model-dir={model_dir}",
            f"--rest-port={rest}",
            f"--grpc-port={grpc_port}",
            "--max-in-flight=256",
        ],
        cwd=PROJECT_ROOT,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{rest}/v1/models/{model_dir.name}"
    deadline = time.time() + 180
    while time.time() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"serve exited with {process.returncode}; see {log_path}")
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return process, url
        except httpx.TransportError:
            pass
        time.sleep(0.3)
    process.kill()
    raise RuntimeError(f"serve did not answer in 180 s; see {log_path}")


async def _load(url: str, body: bytes, clients: int, seconds: float) -> dict:
    latencies: list[float] = []
    errors = 0
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(limits=limits, timeout=60) as client:

        async def one_client(until: float, record: bool) -> None:
            nonlocal errors
            while time.perf_counter() < until:
                started = time.perf_counter()
                response = await client.post(url + ":predict", content=body)
                elapsed = time.perf_counter() - started
                if not record:
                    continue
                if response.status_code == 200:
                    latencies.append(elapsed)
                else:
                    errors += 1

        warm_until = time.perf_counter() + WARMUP_SECONDS
        await asyncio.gather(*(one_client(warm_until, False) for _ in range(clients)))
        started = time.perf_counter()
        until = started + seconds
        await asyncio.gather(*(one_client(until, True) for _ in range(clients)))
        wall = time.perf_counter() - started
    latencies.sort()
    count = len(latencies)
    return {
        "requests": count,
        "errors": errors,
        "seconds": round(wall, 2),
        "requests_per_second": round(count / wall, 1),
        "p50_ms": round(1000 * statistics.median(latencies), 2) if count else None,
        "p99_ms": round(1000 * latencies[min(count - 1, int(0.99 * count))], 2) if count else None,
    }


def measure(model_dir: Path, rows_file: Path, seconds: float, log_path: Path) -> dict:
    """Every (rows per request, clients) combination against one `serve` process."""
    rows = typed_rows(rows_file, _schema_kinds(model_dir))
    process, url = _start_server(model_dir, log_path)
    results = []
    try:
        for per_request in ROWS_PER_REQUEST:
            body = json.dumps({"instances": (rows * 64)[:per_request]}).encode()
            for clients in CLIENTS:
                measured = asyncio.run(_load(url, body, clients, seconds))
                measured.update(
                    rows_per_request=per_request,
                    clients=clients,
                    rows_per_second=round(measured["requests_per_second"] * per_request, 1),
                )
                print(
                    f"[serve-load] {per_request:>2} row(s)/request, {clients:>2} client(s): "
                    f"{measured['requests_per_second']:8.1f} req/s, p50 {measured['p50_ms']} ms, "
                    f"p99 {measured['p99_ms']} ms, errors {measured['errors']}",
                    flush=True,
                )
                results.append(measured)
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(60)
        except subprocess.TimeoutExpired:
            process.kill()
    return {
        "measured_at": time.strftime("%Y-%m-%dT%H:%M:%S"),
        "model_dir": str(model_dir),
        "server": "the project's server (run_local.py serve), REST :predict with raw features",
        "cores": os.cpu_count(),
        "seconds_per_point": seconds,
        "warmup_seconds": WARMUP_SECONDS,
        "points": results,
        "server_exit_code": process.returncode,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model-dir", type=Path, required=True)
    parser.add_argument("--rows-file", type=Path, required=True, help="a CSV of feature rows")
    parser.add_argument("--seconds", type=float, default=10.0, help="per point (default 10)")
    parser.add_argument("--json", type=Path, help="write the results here")
    parser.add_argument("--log", type=Path, default=Path("serve-load.log"))
    args = parser.parse_args(argv)
    results = measure(args.model_dir.resolve(), args.rows_file, args.seconds, args.log)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())

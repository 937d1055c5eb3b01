"""Load on `run_local.py serve`: requests per second and latency, REST and gRPC, beside the floor.

    python bench/serve_load.py --model-dir DIR --rows-file CSV [--seconds 10] [--json OUT]

What it measures, in one run:
1. **The floor**: the pushed version's `serving_default` signature called in a process of its
   own (TensorFlow only, no server), on the same rows as serialized tf.Examples: p50 of one row
   and of 64 rows, with the machine otherwise idle. No server answers faster than this.
2. **The server** (`run_local.py serve` with its defaults: worker processes, batching) on free
   loopback ports, loaded by C clients in processes of their own, so that the clients are not
   what is measured: `wrk` (REST `:predict` with raw feature values, as JSON rows typed by the
   model's schema) and `h2load` (gRPC `PredictionService/Predict` with serialized tf.Examples,
   the message framed as gRPC over HTTP/2). For 1 and 64 rows per request and 1, 8 and 32
   connections (each connection one client sending its next request on the answer), after a
   warm-up: requests/s, rows/s, p50 and p99 latency, errors, and the CPU the clients and the
   server used (seconds of CPU per second: 1.0 is one core busy).

Both clients come from Debian (`make bench` installs `wrk` and `nghttp2-client`). `h2load`
counts HTTP status 200 as success and does not read gRPC's status trailer: before the load,
one request of each size is checked to answer with grpc-status 0 (see `_check_grpc`).

The harness (run_bench.py, via scenarios.py) calls `measure()` after its cold run; this file also
runs alone.
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import json
import os
import shutil
import signal
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent
ROWS_PER_REQUEST = (1, 64)
CONNECTIONS = (1, 8, 32)
WARMUP_SECONDS = 3.0
FLOOR_CALLS = 400
GRPC_PATH = "/tensorflow.serving.PredictionService/Predict"
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")

# wrk's report, as one JSON line (latency in microseconds).
WRK_SCRIPT = """
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
local f = assert(io.open(os.getenv("BODY_FILE"), "rb")); wrk.body = f:read("*a"); f:close()
done = function(summary, latency, requests)
  io.write(string.format('{"requests": %d, "duration_us": %d, "non_2xx": %d, "socket_errors": %d, ' ..
    '"p50_us": %d, "p99_us": %d}\\n', summary.requests, summary.duration, summary.errors.status,
    summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout,
    latency:percentile(50), latency:percentile(99)))
end
"""

# Runs in a process of its own: the model's own call, timed (milliseconds), on the rows given.
FLOOR_SCRIPT = """
import json, sys, time
import numpy as np
import tensorflow as tf
version_dir, examples_file, calls = sys.argv[1], sys.argv[2], int(sys.argv[3])
examples = [bytes.fromhex(e) for e in json.load(open(examples_file))]
function = tf.saved_model.load(version_dir).signatures["serving_default"]
floor = {}
for rows in (1, 64):
    batch = tf.constant((examples * 64)[:rows])
    for _ in range(20):
        function(examples=batch)
    times = []
    for _ in range(calls):
        started = time.perf_counter()
        function(examples=batch)
        times.append((time.perf_counter() - started) * 1000)
    floor[str(rows)] = {"p50_ms": round(float(np.median(times)), 3),
                        "p99_ms": round(float(np.percentile(times, 99)), 3)}
print(json.dumps(floor))
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _newest_version(model_dir: Path) -> Path:
    return max((p for p in model_dir.iterdir() if p.name.isdigit()), key=lambda p: int(p.name))


def _schema_kinds(model_dir: Path) -> dict[str, str]:
    """Feature -> INT / FLOAT / BYTES, from the newest version's serving schema."""
    from google.protobuf import text_format
    from tensorflow_metadata.proto.v0 import schema_pb2

    schema = text_format.Parse(
        (_newest_version(model_dir) / "assets.extra" / "schema.pbtxt").read_text(),
        schema_pb2.Schema(),
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


def _serialized_examples(model_dir: Path, rows: list[dict]) -> list[bytes]:
    """The rows as the serialized tf.Examples the server builds from them (the project's writer)."""
    sys.path.insert(0, str(PROJECT_ROOT))
    from serving.repository import read_serving_features
    from serving.tf_examples import ExampleWriter

    writer = ExampleWriter(read_serving_features(str(_newest_version(model_dir))))
    return [writer.serialize(row, f"row {i}") for i, row in enumerate(rows)]


def _grpc_frame(model_name: str, examples: list[bytes]) -> bytes:
    """A PredictRequest as gRPC sends it over HTTP/2: a zero flag byte, the length, the bytes."""
    import tensorflow as tf
    from tensorflow_serving.apis import predict_pb2

    request = predict_pb2.PredictRequest()
    request.model_spec.name = model_name
    request.inputs["examples"].CopyFrom(tf.make_tensor_proto(examples, dtype=tf.string))
    message = request.SerializeToString()
    return b"\x00" + struct.pack(">I", len(message)) + message


def _check_grpc(port: int, model_name: str, examples: list[bytes]) -> None:
    """One real gRPC Predict of the rows: it must answer one output row per example."""
    import grpc
    import tensorflow as tf
    from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc

    request = predict_pb2.PredictRequest()
    request.model_spec.name = model_name
    request.inputs["examples"].CopyFrom(tf.make_tensor_proto(examples, dtype=tf.string))
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        answer = prediction_service_pb2_grpc.PredictionServiceStub(channel).Predict(
            request, timeout=60
        )
    rows = {tf.make_ndarray(t).shape[0] for t in answer.outputs.values()}
    if rows != {len(examples)}:
        raise RuntimeError(f"gRPC Predict answered {rows} rows for {len(examples)} examples")


def _check_grpc_sizes(port: int, model_name: str, examples: list[bytes]) -> None:
    for rows in ROWS_PER_REQUEST:
        _check_grpc(port, model_name, (examples * 64)[:rows])


# The request log's own work per request (serving/request_log.py: the record built and written,
# as its writer thread does), in a process of its own: CPU microseconds per logged request, for
# REST (arrays written as bytes) and gRPC (the request and answer messages copied).
LOGGER_SCRIPT = r"""
import json, sys, tempfile, time
import numpy as np, tensorflow as tf
from tensorflow_serving.apis import predict_pb2
from serving.request_log import RequestDetails, RequestLogger, RequestLogOptions
examples = [bytes.fromhex(h) for h in json.load(open(sys.argv[1]))]
logger = RequestLogger(RequestLogOptions(directory=tempfile.mkdtemp()), "model")
logger.stop()
logger._open()
details = RequestDetails("0" * 32, int(time.time() * 1e6), 1.0)
def entry(api, n):
    rows = (examples * 64)[:n]
    answers = np.random.rand(n, 1).astype(np.float32)
    if api == "REST":
        return ("arrays", details, 1, "serving_default",
                {"examples": np.array(rows, dtype=object)}, {"probabilities": answers})
    request, response = predict_pb2.PredictRequest(), predict_pb2.PredictResponse()
    request.model_spec.name = response.model_spec.name = "model"
    request.inputs["examples"].CopyFrom(tf.make_tensor_proto(rows))
    response.outputs["probabilities"].CopyFrom(tf.make_tensor_proto(answers))
    return ("protos", details, "predict_log", request, response)
result = {}
for api in ("REST", "gRPC"):
    for n in (1, 64):
        made, calls = entry(api, n), 4000 if n == 1 else 1000
        started = time.process_time()
        for _ in range(calls):
            logger._writer.write(logger._record(made))
        result[f"{api} {n}"] = round((time.process_time() - started) / calls * 1e6, 1)
print(json.dumps(result))
"""


def measure_logger_floor(examples: list[bytes], work: Path) -> dict:
    """The request log's CPU microseconds per logged request, by API and rows per request."""
    examples_file = work / "logger-examples.json"
    examples_file.write_text(json.dumps([e.hex() for e in examples]))
    result = subprocess.run(
        [sys.executable, "-c", LOGGER_SCRIPT, str(examples_file)],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=PROJECT_ROOT,
    )
    if result.returncode != 0:
        raise RuntimeError(f"the request log's floor failed: {result.stderr[-2000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def measure_floor(model_dir: Path, examples: list[bytes], work: Path) -> dict:
    examples_file = work / "floor-examples.json"
    examples_file.write_text(json.dumps([e.hex() for e in examples]))
    result = subprocess.run(
        [
            sys.executable,
            "-c",
            FLOOR_SCRIPT,
            str(_newest_version(model_dir)),
            str(examples_file),
            str(FLOOR_CALLS),
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    if result.returncode != 0:
        raise RuntimeError(f"the floor measurement failed: {result.stderr[-2000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def _process_tree(pid: int) -> list[int]:
    """The pid and its descendants (from /proc)."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                parent = int(f.read().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(parent, []).append(int(entry))
    tree, todo = [], [pid]
    while todo:
        current = todo.pop()
        tree.append(current)
        todo.extend(children.get(current, []))
    return tree


def _cpu_seconds(pids: list[int]) -> float:
    total = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])  # utime, stime
        except (OSError, IndexError, ValueError):
            continue
    return total / CLOCK_TICKS


def _timed(command: list[str], env: dict | None = None, timeout: float = 600) -> tuple[str, float]:
    """Runs a client; its output and the CPU seconds it used (user + system, from wait4)."""
    process = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env
    )
    deadline = time.monotonic() + timeout
    while True:
        pid, status, usage = os.wait4(process.pid, os.WNOHANG)
        if pid:
            break
        if time.monotonic() > deadline:
            process.kill()
            raise RuntimeError(f"{command[0]} ran past {timeout} s")
        time.sleep(0.05)
    process.returncode = os.waitstatus_to_exitcode(status)
    out, err = process.communicate()
    if process.returncode != 0:
        raise RuntimeError(f"{' '.join(command[:3])} ... failed: {err[-1000:]}")
    return out, usage.ru_utime + usage.ru_stime


def _wrk(url: str, body_file: Path, script: Path, connections: int, seconds: float) -> tuple:
    env = {**os.environ, "BODY_FILE": str(body_file)}
    command = ["wrk", "-t1", f"-c{connections}", f"-d{seconds:g}s", "-s", str(script), url]
    out, cpu = _timed(command, env, timeout=seconds + 120)
    report = json.loads(out.strip().splitlines()[-1])
    wall = report["duration_us"] / 1e6
    good = report["requests"] - report["non_2xx"]
    point = {
        "requests": report["requests"],
        "errors": report["non_2xx"] + report["socket_errors"],
        "requests_per_second": round(good / wall, 1),
        "p50_ms": round(report["p50_us"] / 1000, 2),
        "p99_ms": round(report["p99_us"] / 1000, 2),
    }
    return point, wall, cpu


def _h2load(url: str, frame_file: Path, connections: int, seconds: float, work: Path) -> tuple:
    log = work / "h2load-requests.log"
    log.unlink(missing_ok=True)
    command = [
        "h2load",
        f"--duration={seconds:g}",
        f"--clients={connections}",
        "--max-concurrent-streams=1",
        "--threads=1",
        "--header=content-type: application/grpc",
        "--header=te: trailers",
        f"--data={frame_file}",
        f"--log-file={log}",
        url,
    ]
    out, cpu = _timed(command, timeout=seconds + 120)
    # Each line: start time (us since the epoch), HTTP status, latency (us).
    lines = [line.split() for line in log.read_text().splitlines() if line.strip()]
    latencies = sorted(int(fields[2]) for fields in lines if fields[1] == "200")
    failed = sum(1 for fields in lines if fields[1] != "200")
    for line in out.splitlines():
        if line.startswith("requests:"):  # "... N succeeded, N failed, N errored, N timeout"
            words = line.replace(",", "").split()
            failed = max(
                failed,
                int(words[words.index("failed") - 1])
                + int(words[words.index("errored") - 1])
                + int(words[words.index("timeout") - 1]),
            )
    count = len(latencies)
    point = {
        "requests": count + failed,
        "errors": failed,
        "requests_per_second": round(count / seconds, 1),
        "p50_ms": round(statistics.median(latencies) / 1000, 2) if count else None,
        "p99_ms": round(latencies[min(count - 1, int(0.99 * count))] / 1000, 2) if count else None,
    }
    return point, seconds, cpu


def _start_server(
    model_dir: Path, log_path: Path, *extra: str
) -> tuple[subprocess.Popen, int, int]:
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
            *extra,
        ],
        cwd=PROJECT_ROOT,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    deadline = time.time() + 300
    while time.time() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"serve exited with {process.returncode}; see {log_path}")
        if "Ctrl-C stops." in log_path.read_text():  # every worker listens
            return process, rest, grpc_port
        time.sleep(0.3)
    process.kill()
    raise RuntimeError(f"serve was not ready in 300 s; see {log_path}")


def _stop(process: subprocess.Popen) -> None:
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(90)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def _missing_clients() -> list[str]:
    return [tool for tool in ("wrk", "h2load") if shutil.which(tool) is None]


ALL_POINTS = [
    (api, rows, clients)
    for api in ("REST", "gRPC")
    for rows in ROWS_PER_REQUEST
    for clients in CONNECTIONS
]
# The request log's cost: these points against servers with logging off (--log-sample-rate 0)
# and on, in the order off, on, on, off (LOGGING_ROUNDS rounds), so that a drift of the
# machine's speed during the run falls on both alike; each side's figure is the median of its
# rounds (with two, their mean).
LOGGING_POINTS = [("REST", 1, 32), ("REST", 64, 8), ("gRPC", 1, 32), ("gRPC", 64, 8)]
LOGGING_ROUNDS = 2


@dataclasses.dataclass(frozen=True)
class _Load:
    """What every point sends: the request files and the wrk script, for so many seconds."""

    model_name: str
    examples: list[bytes]  # serialized tf.Examples of the rows
    bodies: dict[int, Path]  # rows per request -> REST body
    frames: dict[int, Path]  # rows per request -> gRPC frame
    script: Path
    seconds: float
    work: Path


def _points(load_spec: _Load, process, rest_port: int, grpc_port: int, which) -> list[dict]:
    """Each (API, rows per request, connections) point, after its warm-up, with the CPU used."""
    bodies, frames, script = load_spec.bodies, load_spec.frames, load_spec.script
    seconds, work = load_spec.seconds, load_spec.work
    server_pids = _process_tree(process.pid)
    rest_url = f"http://127.0.0.1:{rest_port}/v1/models/{load_spec.model_name}:predict"
    grpc_url = f"http://127.0.0.1:{grpc_port}{GRPC_PATH}"
    points = []
    for api, per_request, connections in which:

        def load(duration: float, api=api, rows=per_request, n=connections):
            if api == "REST":
                return _wrk(rest_url, bodies[rows], script, n, duration)
            return _h2load(grpc_url, frames[rows], n, duration, work)

        load(WARMUP_SECONDS)
        server_before = _cpu_seconds(server_pids)
        point, wall, client_cpu = load(seconds)
        server_cpu = _cpu_seconds(server_pids) - server_before
        point.update(
            api=api,
            rows_per_request=per_request,
            clients=connections,
            rows_per_second=round(point["requests_per_second"] * per_request, 1),
            client_cpu=round(client_cpu / wall, 2),
            server_cpu=round(server_cpu / wall, 2),
        )
        print(
            f"[serve-load] {api:<4} {per_request:>2} row(s)/request, {connections:>2} client(s): "
            f"{point['requests_per_second']:8.1f} req/s, p50 {point['p50_ms']} ms, p99 "
            f"{point['p99_ms']} ms, errors {point['errors']}, CPU client {point['client_cpu']} "
            f"server {point['server_cpu']}",
            flush=True,
        )
        points.append(point)
    return points


def _serve_and_load(
    load_spec: _Load, model_dir: Path, log_path: Path, server_args: list[str], which, check=None
) -> tuple[list[dict], int | None]:
    """Starts `serve` with these arguments, measures the points, stops it: the points and its
    exit code. `check(grpc_port)` runs before the load."""
    process, rest_port, grpc_port = _start_server(model_dir, log_path, *server_args)
    try:
        if check:
            check(grpc_port)
        points = _points(load_spec, process, rest_port, grpc_port, which)
    finally:
        _stop(process)
    return points, process.returncode


def _logging_cost(load_spec: _Load, model_dir: Path, log_path: Path) -> dict:
    """LOGGING_POINTS with request logging off and on, alternated: each point's median
    requests/s either way, and the share of throughput logging cost."""
    rounds: dict[str, list[list[dict]]] = {"off": [], "on": []}
    for number in range(1, LOGGING_ROUNDS + 1):
        sides = [
            ("off", ["--log-sample-rate=0"]),
            ("on", [f"--request-log-dir={load_spec.work / f'request-log-{number}'}"]),
        ]
        # off, on, then on, off: a machine that slows (or speeds up) steadily during the run
        # weighs on both sides alike.
        for side, args in sides if number % 2 else sides[::-1]:
            print(f"[serve-load] request logging {side}, round {number}", flush=True)
            points, _ = _serve_and_load(
                load_spec,
                model_dir,
                log_path.with_name(f"{log_path.stem}-logging-{side}-{number}.log"),
                args,
                LOGGING_POINTS,
            )
            rounds[side].append(points)
    logger_us = measure_logger_floor(load_spec.examples, load_spec.work)
    cost = []
    for i, (api, per_request, connections) in enumerate(LOGGING_POINTS):
        on = statistics.median(r[i]["requests_per_second"] for r in rounds["on"])
        off = statistics.median(r[i]["requests_per_second"] for r in rounds["off"])
        # The server's CPU per request with logging off, and the logger's share on top of it.
        request_us = statistics.median(
            r[i]["server_cpu"] / r[i]["requests_per_second"] * 1e6 for r in rounds["off"]
        )
        logger = logger_us[f"{api} {per_request}"]
        cost.append(
            {
                "api": api,
                "rows_per_request": per_request,
                "clients": connections,
                "on": round(on, 1),
                "off": round(off, 1),
                "rounds": LOGGING_ROUNDS,
                "throughput_lost": round(1 - on / off, 3),
                "spread": _spread(rounds, i),
                "server_cpu_us_per_request": round(request_us, 1),
                "logger_cpu_us_per_request": logger,
                "logger_cpu_share": round(logger / (request_us + logger), 3),
            }
        )
    return {"cost": cost, "off_points": rounds["off"][0], "logger_floor_us": logger_us}


def _spread(rounds: dict, i: int) -> float:
    """How far apart the rounds of one side were (the largest relative gap): the noise the
    throughput comparison carries."""
    gaps = []
    for side in ("on", "off"):
        values = [r[i]["requests_per_second"] for r in rounds[side]]
        gaps.append((max(values) - min(values)) / max(values))
    return round(max(gaps), 3)


def _load_spec(model_name: str, rows: list, examples: list, seconds: float, work: Path) -> _Load:
    """The request files every point sends, written into `work`."""
    script = work / "post.lua"
    script.write_text(WRK_SCRIPT)
    bodies, frames = {}, {}
    for per_request in ROWS_PER_REQUEST:
        bodies[per_request] = work / f"rest-{per_request}.json"
        bodies[per_request].write_text(json.dumps({"instances": (rows * 64)[:per_request]}))
        frames[per_request] = work / f"grpc-{per_request}.bin"
        frames[per_request].write_bytes(_grpc_frame(model_name, (examples * 64)[:per_request]))
    return _Load(model_name, examples, bodies, frames, script, seconds, work)


def _inputs(model_dir: Path, rows_file: Path) -> tuple[list, list]:
    """The rows as JSON values and as serialized tf.Examples, once the clients are found."""
    missing = _missing_clients()
    if missing:
        raise RuntimeError(
            f"{' and '.join(missing)} not found: `make bench` installs them (Debian's wrk and "
            "nghttp2-client), or `apt-get install wrk nghttp2-client`"
        )
    rows = typed_rows(rows_file, _schema_kinds(model_dir))
    return rows, _serialized_examples(model_dir, rows)


def measure_logging_cost(model_dir: Path, rows_file: Path, seconds: float, log_path: Path) -> dict:
    """Only the request log's cost (serve_load.py --logging-cost-only)."""
    rows, examples = _inputs(model_dir, rows_file)
    with tempfile.TemporaryDirectory(prefix="serve-load-") as work_dir:
        work = Path(work_dir)
        load_spec = _load_spec(model_dir.name, rows, examples, seconds, work)
        return {
            "measured_at": time.strftime("%Y-%m-%dT%H:%M:%S"),
            "seconds_per_point": seconds,
            "request_log": _logging_cost(load_spec, model_dir, log_path),
        }


def measure(model_dir: Path, rows_file: Path, seconds: float, log_path: Path) -> dict:
    """The floor, then every (API, rows per request, connections) point against one `serve`."""
    model_name = model_dir.name
    rows, examples = _inputs(model_dir, rows_file)
    with tempfile.TemporaryDirectory(prefix="serve-load-") as work_dir:
        work = Path(work_dir)
        floor = measure_floor(model_dir, examples, work)
        print(
            f"[serve-load] floor (the model's own call): 1 row p50 {floor['1']['p50_ms']} ms, "
            f"64 rows p50 {floor['64']['p50_ms']} ms",
            flush=True,
        )
        load_spec = _load_spec(model_name, rows, examples, seconds, work)
        request_log = work / "request-log"
        points, exit_code = _serve_and_load(
            load_spec,
            model_dir,
            log_path,
            [f"--request-log-dir={request_log}"],
            ALL_POINTS,
            check=lambda grpc_port: _check_grpc_sizes(grpc_port, model_name, examples),
        )
        logged_mb = sum(f.stat().st_size for f in request_log.glob("requests-*")) / 2**20
        logging_cost = _logging_cost(load_spec, model_dir, log_path)
    workers = None
    for line in log_path.read_text().splitlines():
        if line.startswith("Serving with"):
            workers = line
    return {
        "measured_at": time.strftime("%Y-%m-%dT%H:%M:%S"),
        "model_dir": str(model_dir),
        "server": workers or "run_local.py serve",
        "clients": "wrk (REST), h2load (gRPC): C clients, one thread each, in their own process",
        "cores": len(os.sched_getaffinity(0)),
        "seconds_per_point": seconds,
        "warmup_seconds": WARMUP_SECONDS,
        "floor": floor,
        "points": points,
        "request_log": {"logged_mb": round(logged_mb, 1), **logging_cost},
        "server_exit_code": exit_code,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model-dir", type=Path, required=True)
    parser.add_argument("--rows-file", type=Path, required=True, help="a CSV of feature rows")
    parser.add_argument("--seconds", type=float, default=10.0, help="per point (default 10)")
    parser.add_argument("--json", type=Path, help="write the results here")
    parser.add_argument("--log", type=Path, default=Path("serve-load.log"))
    parser.add_argument(
        "--logging-cost-only",
        action="store_true",
        help="only the request log's cost (its points with logging off and on, alternated)",
    )
    args = parser.parse_args(argv)
    if args.logging_cost_only:
        results = measure_logging_cost(
            args.model_dir.resolve(), args.rows_file, args.seconds, args.log
        )
    else:
        results = measure(args.model_dir.resolve(), args.rows_file, args.seconds, args.log)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""A `run_local.py serve` process for tests: started on free ports with a request log of its
own, ready once it says so, stopped with the signal a test chooses."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import grpc
import httpx
import tensorflow as tf
from tensorflow_metadata.proto.v0 import schema_pb2

from tests.conftest import PIPELINE_NAME, PROJECT_ROOT, read_rows
from tests.db_servers import free_port


class Server:
    """A `run_local.py serve` process, and how to reach it."""

    def __init__(self, model_dir: Path, *args: str, env: dict | None = None):
        self.rest_port, self.grpc_port = free_port(), free_port()
        # Its own request log, never the checkout's outputs/.
        self.request_log = Path(tempfile.mkdtemp(prefix="request-log-"))
        self.process = subprocess.Popen(
            [
                sys.executable,
                "run_local.py",
                "serve",
                f"--model-dir={model_dir}",
                f"--rest-port={self.rest_port}",
                f"--grpc-port={self.grpc_port}",
                "--poll-seconds=0.5",
                f"--request-log-dir={self.request_log}",
                *args,
            ],
            cwd=PROJECT_ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        self.path = f"/v1/models/{PIPELINE_NAME}"
        self.url = f"http://127.0.0.1:{self.rest_port}{self.path}"
        # The console, read as it comes: the server is ready once it says so (every worker
        # listens), which may be after the first worker answers.
        self.console: list[str] = []
        self._reader = threading.Thread(target=self._read_console, daemon=True)
        self._reader.start()
        deadline = time.time() + 120
        while time.time() < deadline:
            assert self.process.poll() is None, self.stop()
            if any("Ctrl-C stops." in line for line in self.console):
                assert httpx.get(self.url, timeout=2).status_code == 200
                return
            time.sleep(0.3)
        self.stop(signal.SIGKILL)
        raise AssertionError("the server did not say it was ready in 120 s")

    def _read_console(self) -> None:
        for line in self.process.stdout:
            self.console.append(line)

    def post(self, verb: str, body, version: int | None = None) -> httpx.Response:
        url = self.url + (f"/versions/{version}" if version else "") + f":{verb}"
        content = body if isinstance(body, (bytes, str)) else json.dumps(body)
        return httpx.post(url, content=content, timeout=60)

    def channel(self) -> grpc.Channel:
        return grpc.insecure_channel(f"127.0.0.1:{self.grpc_port}")

    def stop(self, sig=signal.SIGTERM) -> tuple[int, str, str]:
        """Stops the server; its exit code, console and standard error."""
        if self.process.poll() is None:
            self.process.send_signal(sig)
        err = self.process.stderr.read()
        self.process.wait(timeout=60)
        self._reader.join(timeout=10)
        return self.process.returncode, "".join(self.console), err


def typed_rows(csv_path: Path, schema: schema_pb2.Schema) -> list[dict]:
    """Rows of the CSV with values typed as the model's schema says, the label kept aside."""
    kinds = {f.name: f.type for f in schema.feature}
    header, *rows = read_rows(csv_path)
    typed = []
    for row in rows:
        values = {}
        for column, cell in zip(header, row, strict=True):
            if column not in kinds:  # the label
                values[column] = float(cell)
            elif cell == "":
                values[column] = None
            elif kinds[column] == schema_pb2.INT:
                values[column] = int(cell)
            elif kinds[column] == schema_pb2.FLOAT:
                values[column] = float(cell)
            else:
                values[column] = cell
        typed.append(values)
    return typed


def grpc_example(row: dict, kinds: dict[str, int]) -> bytes:
    """A tf.Example as a gRPC client writes one: an empty cell is a feature with no value, as
    CSV ingestion writes it for training (the curated schema wants every feature present)."""
    feature = {}
    for name, value in row.items():
        if value is None:
            feature[name] = {
                schema_pb2.INT: tf.train.Feature(int64_list=tf.train.Int64List()),
                schema_pb2.FLOAT: tf.train.Feature(float_list=tf.train.FloatList()),
            }.get(kinds[name], tf.train.Feature(bytes_list=tf.train.BytesList()))
        elif isinstance(value, str):
            feature[name] = tf.train.Feature(bytes_list=tf.train.BytesList(value=[value.encode()]))
        elif isinstance(value, int):
            feature[name] = tf.train.Feature(int64_list=tf.train.Int64List(value=[value]))
        else:
            feature[name] = tf.train.Feature(float_list=tf.train.FloatList(value=[value]))
    return tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString()

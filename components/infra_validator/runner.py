"""Starts a model server as a local child process on 127.0.0.1, and always stops it.

The server is the real `tensorflow_model_server` when one is given or on PATH, otherwise the
project's `model_server` module (TF Serving's gRPC API over a SavedModel loaded with TensorFlow).
"""

from __future__ import annotations

import ctypes
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import portpicker
from tfx.components.infra_validator import error_types
from tfx.components.infra_validator.model_server_runners import base_runner

TF_SERVING_BINARY = "tensorflow_model_server"
PROJECT_SERVER_MODULE = "serving.model_server"
_PR_SET_PDEATHSIG = 1
_STOP_GRACE_SECONDS = 5.0
_LOG_TAIL_CHARS = 8000


def find_model_server_binary(configured: str | None) -> str | None:
    """The TF Serving binary to use: the configured one, else one on PATH, else None."""
    if configured:
        path = shutil.which(configured) or (configured if os.access(configured, os.X_OK) else None)
        if path is None:
            raise FileNotFoundError(
                f"The model server binary {configured!r} (model_server_binary / --model-server-bin) "
                "does not exist or is not executable."
            )
        return path
    return shutil.which(TF_SERVING_BINARY)


_STOP_SIGNALS = {signal.SIGINT, signal.SIGTERM}


def _die_with_parent() -> None:
    """Runs in the child before exec: the kernel kills it if the pipeline process dies."""
    signal.pthread_sigmask(signal.SIG_UNBLOCK, _STOP_SIGNALS)  # held by the parent in Start()
    os.setsid()
    libc = ctypes.CDLL("libc.so.6", use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)


class LocalProcessRunner(base_runner.BaseModelServerRunner):
    """A model server child process on a free loopback port, for one model base path."""

    def __init__(self, model_base_path: str, model_name: str, binary: str | None):
        self._model_base_path = model_base_path
        self._model_name = model_name
        self._binary = binary
        self._port: int | None = None
        self._process: subprocess.Popen | None = None
        self._log_file = tempfile.NamedTemporaryFile(
            prefix="model-server-", suffix=".log", delete=False
        )
        self._log_path = Path(self._log_file.name)

    def __repr__(self) -> str:
        kind = self._binary or f"python -m {PROJECT_SERVER_MODULE}"
        return f"LocalProcessRunner({kind}, port={self._port}, model={self._model_name})"

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process else None

    def command(self, port: int) -> list[str]:
        common = [
            f"--port={port}",
            f"--model_name={self._model_name}",
            f"--model_base_path={self._model_base_path}",
        ]
        if self._binary:
            # TF Serving: no REST port, and re-scan the base path rarely (the model does not change).
            return [
                self._binary,
                *common,
                "--rest_api_port=0",
                "--file_system_poll_wait_seconds=86400",
            ]
        return [sys.executable, "-m", PROJECT_SERVER_MODULE, "--host=127.0.0.1", *common]

    def Start(self) -> None:  # noqa: N802 - TFX's runner interface
        assert self._process is None, "Start() called twice"
        self._port = portpicker.pick_unused_port()
        env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL=os.environ.get("TF_CPP_MIN_LOG_LEVEL", "1"))
        project_root = str(Path(__file__).resolve().parents[2])
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [project_root, env.get("PYTHONPATH")]))
        # Ctrl-C or SIGTERM arriving inside Popen would leave a running server that Stop() does
        # not know of: hold them until the process is recorded, then let them through.
        held = signal.pthread_sigmask(signal.SIG_BLOCK, _STOP_SIGNALS)
        try:
            self._process = subprocess.Popen(
                self.command(self._port),
                stdout=self._log_file,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=env,
                preexec_fn=_die_with_parent,
            )
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, held)

    def raise_if_exited(self) -> None:
        """Raises JobAborted if the server process has ended, with the last line of its log (a
        Python server's exception; the reason, which keeps one line, shows it)."""
        assert self._process is not None, "Start() first"
        if self._process.poll() is not None:
            lines = [line.strip() for line in self.GetLogs().splitlines() if line.strip()]
            raise error_types.JobAborted(
                f"The model server exited with code {self._process.returncode} before it was ready: "
                f"{lines[-1] if lines else '(it wrote nothing)'}"
            )

    def WaitUntilRunning(self, deadline: float) -> None:  # noqa: N802
        """Returns once the port accepts connections; raises if the server exits or the deadline
        passes. Another process may hold the port (taken between picking and binding): the caller
        keeps checking `raise_if_exited` while it waits for the model."""
        assert self._process is not None, "Start() first"
        while time.time() < deadline:
            self.raise_if_exited()
            try:
                with socket.create_connection(("127.0.0.1", self._port), timeout=1):
                    return
            except OSError:
                time.sleep(0.2)
        raise error_types.DeadlineExceeded(
            f"The model server did not accept connections on port {self._port} in time."
        )

    def GetEndpoint(self) -> str:  # noqa: N802
        assert self._port is not None, "Start() first"
        return f"127.0.0.1:{self._port}"

    def GetLogs(self) -> str:  # noqa: N802
        try:
            return self._log_path.read_text(errors="replace")[-_LOG_TAIL_CHARS:]
        except OSError:
            return ""

    def Stop(self) -> None:  # noqa: N802
        """Terminates the server's process group, killing it if it does not exit in time."""
        process, self._process = self._process, None
        if process is not None and process.poll() is None:
            try:
                os.killpg(process.pid, signal.SIGTERM)
                process.wait(timeout=_STOP_GRACE_SECONDS)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
            except ProcessLookupError:
                pass
        if not self._log_file.closed:
            self._log_file.close()

    def __del__(self):
        self.Stop()
        self._log_path.unlink(missing_ok=True)

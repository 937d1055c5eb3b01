"""`run_local.py serve`: the pushed model behind TF Serving's REST and gRPC APIs.

With a `tensorflow_model_server` on PATH (or given), that binary loads the versions and answers
gRPC, as in InfraValidator, and the project's REST front (serving/rest_api.py) answers REST in
front of its gRPC port, so that REST requests with raw feature values work the same on either.
Without one, the project's server (serving/model_server.py) does both: in this process with
`--workers 1`, else in that many worker processes sharing the ports (serving/workers.py).

With a release controller (release/controller.py, given by the command line when the model's
ML Metadata store is there), the servers follow its routing file: the versions the release
policy lets out, the `stable` and `canary` labels, the canary's share or the shadow's copies. The
controller needs the project's server: it routes inside it, which TF Serving cannot.

The console gets one line per event (a version loaded or unloaded, a release decision, the server
stopped); the full log, with one access line per request, goes to the log file.
"""

from __future__ import annotations

import dataclasses
import logging
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Protocol, TextIO

from components.infra_validator.runner import find_model_server_binary
from orchestration.console import output_to_log_file
from serving import model_server, rest_api, workers
from serving.batching import BatchingOptions
from serving.repository import version_folders
from serving.request_log import RequestLogOptions

_BINARY_START_SECONDS = 120


class ServeError(Exception):
    """A setting `serve` cannot work with; the message names it and what to do."""


class Controller(Protocol):
    """What `serve` needs of a release controller: its first decision written before the
    servers start (`start`), the routing file they follow, and `stop`."""

    routing_file: Path

    def start(self) -> None: ...

    def stop(self) -> None: ...

    def describe(self) -> str: ...


@dataclasses.dataclass(frozen=True)
class ServeSettings:
    model_dir: Path
    model_name: str
    version: int | None
    host: str
    rest_port: int
    grpc_port: int
    poll_seconds: float
    limits: rest_api.Limits
    batching: BatchingOptions
    request_log: RequestLogOptions
    workers: int  # model server processes sharing the ports; 1: this process serves
    binary: str | None  # None: use tensorflow_model_server from PATH if there is one
    log_path: Path


def check_model_dir(model_dir: Path, version: int | None) -> dict[int, str]:
    """The version folders to serve from, or a ServeError naming what is missing."""
    if not model_dir.is_dir():
        raise ServeError(
            f"--model-dir: {model_dir} does not exist. Run the pipeline first (`make run`) so "
            "that Pusher pushes a model there, or pass the folder that holds the version folders."
        )
    versions = version_folders(str(model_dir))
    if not versions:
        raise ServeError(
            f"--model-dir: {model_dir} holds no version folder (TF Serving's layout: "
            f"{model_dir}/<version>/saved_model.pb); no model has been pushed there yet."
        )
    if version is not None and version not in versions:
        raise ServeError(
            f"--version: {model_dir} has no version {version}; it has "
            f"{', '.join(str(v) for v in sorted(versions))}."
        )
    return versions


def _port_free(host: str, port: int, option: str) -> None:
    with socket.socket() as s:
        # As the servers bind: a port whose last connections are still in TIME_WAIT (a server
        # stopped a moment ago) is free to listen on again.
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError as e:
            raise ServeError(f"{option}: cannot listen on {host}:{port}: {e.strerror}.") from None


class _ConsoleLines(logging.Handler):
    """The serving logger's INFO lines (versions loaded and unloaded), as plain console lines."""

    def __init__(self, console: TextIO):
        super().__init__(logging.INFO)
        self.console = console

    def emit(self, record: logging.LogRecord) -> None:
        self.console.write(f"{time.strftime('%H:%M:%S')}  {record.getMessage()}\n")


def _start_binary(binary: str, settings: ServeSettings, config_dir: Path) -> subprocess.Popen:
    command = [
        binary,
        f"--port={settings.grpc_port}",
        "--rest_api_port=0",
        f"--file_system_poll_wait_seconds={max(1, round(settings.poll_seconds))}",
    ]
    if settings.version is None:
        command += [
            f"--model_name={settings.model_name}",
            f"--model_base_path={settings.model_dir}",
        ]
    else:
        config = config_dir / "models.config"
        config.write_text(
            "model_config_list { config { "
            f"name: '{settings.model_name}' base_path: '{settings.model_dir}' "
            "model_platform: 'tensorflow' "
            f"model_version_policy {{ specific {{ versions: {settings.version} }} }} }} }}\n"
        )
        command.append(f"--model_config_file={config}")
    logging.getLogger("serving").info("Starting %s", " ".join(command))
    process = subprocess.Popen(command, stdin=subprocess.DEVNULL)  # its output: the log file
    deadline = time.monotonic() + _BINARY_START_SECONDS
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise ServeError(
                f"{binary} exited with code {process.returncode} before it served; its output "
                f"is in {settings.log_path}."
            )
        try:
            socket.create_connection(("127.0.0.1", settings.grpc_port), timeout=1).close()
            return process
        except OSError:
            time.sleep(0.2)
    process.kill()
    raise ServeError(f"{binary} did not open its gRPC port in {_BINARY_START_SECONDS} s.")


def _stop_binary(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def serve(settings: ServeSettings, console: TextIO, controller: Controller | None = None) -> None:
    """Serves until SIGTERM or Ctrl-C; the console gets what people need to know."""
    versions = check_model_dir(settings.model_dir, settings.version)
    _port_free(settings.host, settings.rest_port, "--rest-port")
    _port_free(settings.host, settings.grpc_port, "--grpc-port")
    binary = find_model_server_binary(settings.binary)
    if binary and controller is not None:
        if settings.binary:
            raise ServeError(
                f"--model-server-bin: {binary} cannot follow a release (TF Serving has no "
                "traffic split or shadow); serve with the project's server (leave "
                "--model-server-bin out), or pin a version with --version."
            )
        console.write(
            f"Not using {binary}: releases route inside the project's server, which serves "
            "instead.\n"
        )
        binary = None
    base = f"http://{settings.host}:{settings.rest_port}/v1/models/{settings.model_name}"
    if controller is None:
        chosen = settings.version if settings.version is not None else max(versions)
        console.write(
            f"Model {settings.model_name}: version {chosen} of {len(versions)} in "
            f"{settings.model_dir}"
            + (" (pinned by --version)\n" if settings.version is not None else " (the latest)\n")
        )
    else:
        console.write(
            f"Model {settings.model_name}: {len(versions)} version"
            f"{'s' if len(versions) > 1 else ''} in {settings.model_dir}, "
            f"released by {controller.describe()}\n"
        )
    with output_to_log_file(settings.log_path) as terminal:
        logging.getLogger("tornado.access").propagate = True
        lines = _ConsoleLines(terminal)
        logging.getLogger("serving").addHandler(lines)
        process = None
        try:
            if controller is not None:
                controller.start()
            with tempfile.TemporaryDirectory(prefix="serve-") as config_dir:
                if binary:
                    process = _start_binary(binary, settings, Path(config_dir))
                options = model_server.ServerOptions(
                    model_name=settings.model_name,
                    model_base_path=str(settings.model_dir),
                    host=settings.host,
                    grpc_port=0 if binary else settings.grpc_port,
                    rest_port=settings.rest_port,
                    version=settings.version,
                    poll_seconds=settings.poll_seconds,
                    grpc_backend=f"127.0.0.1:{settings.grpc_port}" if binary else None,
                    limits=settings.limits,
                    batching=settings.batching,
                    request_log=settings.request_log,
                    routing_file=str(controller.routing_file) if controller else None,
                )

                def ready() -> None:
                    server = (
                        f"{binary} (gRPC) + the project's REST front"
                        if binary
                        else ("the project's server (serving/model_server.py)")
                    )
                    rate = settings.request_log.sample_rate
                    logged = (
                        f"  Requests logged to {settings.request_log.directory}"
                        + (f" ({rate:.0%} sampled)" if rate < 1 else "")
                        if rate > 0
                        else "  Requests not logged (--log-sample-rate 0)"
                    )
                    batching = (
                        f"batches of up to {settings.batching.max_batch_size} rows"
                        if settings.batching.enabled
                        else "no batching"
                    )
                    labels = (
                        f"  Labels {base}/labels/stable, {base}/labels/canary\n"
                        if controller
                        else ""
                    )
                    terminal.write(
                        f"Serving with {server}, {workers_text}, {batching}\n"
                        f"  REST  {base}  (:predict, :classify, :regress, /metadata)\n"
                        f"{labels}"
                        f"  gRPC  {settings.host}:{settings.grpc_port}\n"
                        f"  Log   {settings.log_path}\n"
                        f"{logged}\n"
                        + (
                            f"New versions pushed to {settings.model_dir} are released as "
                            "the release policy says (`models` shows their states)."
                            if controller
                            else f"New versions pushed to {settings.model_dir} are picked up "
                            f"within {settings.poll_seconds:g} s."
                        )
                        + " Ctrl-C stops.\n"
                    )

                workers_text = (
                    f"{settings.workers} worker processes" if settings.workers > 1 else "1 process"
                )
                if settings.workers > 1:
                    workers.serve(
                        model_server.flags(options),
                        settings.workers,
                        on_ready=ready,
                        grace=settings.limits.request_timeout + 10,
                    )
                else:
                    model_server.serve(options, on_ready=ready)
        finally:
            if controller is not None:
                controller.stop()
            if process is not None:
                _stop_binary(process)
            logging.getLogger("serving").removeHandler(lines)
            terminal.write("Stopped.\n")


def output_dir_of(model_dir: Path, fallback_output_dir: Path) -> Path:
    """The output dir the model was pushed in (<output dir>/serving_model/<name>), else the
    fallback."""
    return (
        model_dir.parent.parent if model_dir.parent.name == "serving_model" else fallback_output_dir
    )


def default_log_path(model_dir: Path, fallback_output_dir: Path) -> Path:
    """<output dir>/logs/serve-<time>.log, the output dir being the one the model was pushed in."""
    output_dir = output_dir_of(model_dir, fallback_output_dir)
    return output_dir / "logs" / f"serve-{time.strftime('%Y%m%d-%H%M%S')}.log"

"""A model server speaking TensorFlow Serving's gRPC and REST APIs, for machines without TF Serving.

    python -m serving.model_server --port=8500 [--rest_api_port=8501] --model_name=NAME \
        --model_base_path=BASE [--model_version=V] [--host=127.0.0.1]

Like `tensorflow_model_server`, it serves the highest numeric version under `model_base_path`
(TF Serving's layout: BASE/<version>/saved_model.pb), or the version asked for, loaded with
nothing but TensorFlow, and picks up new versions by re-scanning the folder every
`--file_system_poll_wait_seconds`. It listens on loopback only unless told otherwise.

With `--grpc_backend=HOST:PORT` it serves only the REST API, in front of a running
`tensorflow_model_server`'s gRPC port: the same requests get the same answers.

SIGTERM or SIGINT stops it gracefully: no new connections, requests in flight answered (up to
`--request_timeout` seconds), then the gRPC server and the folder scans stop.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import logging
import os
import signal
import sys
from collections.abc import Callable

import grpc

from serving import grpc_services, rest_api
from serving.batching import BatchingOptions
from serving.inference import Inference
from serving.repository import ModelRepository
from serving.request_log import RequestLogger, RequestLogOptions
from serving.routing import Router
from serving.workers import READY

log = logging.getLogger("serving")


@dataclasses.dataclass(frozen=True)
class ServerOptions:
    model_name: str
    model_base_path: str
    host: str = "127.0.0.1"
    grpc_port: int = 8500  # 0: no gRPC API
    rest_port: int = 0  # 0: no REST API
    version: int | None = None  # None: the latest
    poll_seconds: float = 1.0
    grpc_backend: str | None = None  # serve REST in front of this TF Serving gRPC endpoint
    limits: rest_api.Limits = rest_api.Limits()
    batching: BatchingOptions = BatchingOptions()
    request_log: RequestLogOptions = RequestLogOptions()  # directory None: no request log
    reuse_port: bool = False  # share the ports with other processes (the workers of `serve`)
    # A release's routing file (serving/routing.py): the versions to load, labels, the split.
    routing_file: str | None = None


class ModelServer:
    """The running server: the repository, the gRPC server and the REST server."""

    def __init__(self, options: ServerOptions):
        self.options = options
        self.repository: ModelRepository | None = None
        self.router: Router | None = None
        self.inference: Inference | None = None
        self.request_log: RequestLogger | None = None
        self._grpc: grpc.aio.Server | None = None
        self._http = None
        self._api: rest_api.RestApi | None = None
        self._stopping: asyncio.Event | None = None

    async def _start_grpc(self, inference: Inference) -> None:
        o = self.options
        # grpc.aio, on this event loop beside the REST API: requests wait for the batcher
        # without a thread each (the threaded server answered a third as many per second).
        self._grpc = grpc.aio.server(
            maximum_concurrent_rpcs=o.limits.max_in_flight,
            options=[
                ("grpc.max_receive_message_length", o.limits.max_body_bytes),
                ("grpc.so_reuseport", int(o.reuse_port)),
            ],
        )
        grpc_services.add_services(self._grpc, inference, self.request_log)
        if self._grpc.add_insecure_port(f"{o.host}:{o.grpc_port}") == 0:
            raise OSError(f"cannot listen for gRPC on {o.host}:{o.grpc_port} (port in use?)")
        await self._grpc.start()

    async def run(self, on_ready: Callable[[], None] | None = None) -> None:
        """Serves until `stop()` (or SIGTERM/SIGINT, when run by `main`)."""
        o = self.options
        self._stopping = asyncio.Event()
        if o.request_log.directory and o.request_log.sample_rate > 0:
            self.request_log = RequestLogger(o.request_log, o.model_name)
        if o.grpc_backend:
            backend = rest_api.GrpcBackend(
                o.grpc_backend, o.model_base_path, o.limits.request_timeout
            )
        else:
            if o.routing_file:
                self.router = Router(o.routing_file)
                self.router.start()
            self.repository = ModelRepository(
                o.model_name,
                o.model_base_path,
                versions=(o.version,) if o.version is not None else (),
                poll_seconds=o.poll_seconds,
                router=self.router,
            )
            # The first load, before listening, as TF Serving does: two scans, since a version
            # is loaded once its folder is the same on two of them.
            self.repository.scan()
            self.repository.scan()
            self.repository.start()
            self.inference = Inference(self.repository, o.batching)
            if o.grpc_port:
                await self._start_grpc(self.inference)
            backend = rest_api.InProcessBackend(self.inference)
        if o.rest_port:
            self._api = rest_api.RestApi(backend, o.limits, self.request_log)
            self._http = rest_api.http_server(self._api)
            self._http.listen(o.rest_port, address=o.host, reuse_port=o.reuse_port)
        if on_ready:
            on_ready()
        try:
            await self._stopping.wait()
        finally:
            await self._shut_down(backend)

    def stop(self) -> None:
        if self._stopping is not None:
            self._stopping.set()

    async def _shut_down(self, backend) -> None:
        grace = self.options.limits.request_timeout
        if self._http is not None:
            self._http.stop()  # no new connections
            deadline = asyncio.get_running_loop().time() + grace
            while self._api.in_flight and asyncio.get_running_loop().time() < deadline:
                await asyncio.sleep(0.05)
            await self._http.close_all_connections()
            self._api.shutdown()
        if self._grpc is not None:
            await self._grpc.stop(grace=min(grace, 5))
        if self.inference is not None:
            self.inference.stop()
        if self.request_log is not None:
            self.request_log.stop()
        if self.repository is not None:
            self.repository.stop()
        if self.router is not None:
            self.router.stop()  # its last counts written
        if isinstance(backend, rest_api.GrpcBackend):
            backend.close()


def serve(options: ServerOptions, on_ready: Callable[[], None] | None = None) -> None:
    """Runs the server until SIGTERM or SIGINT, then stops it gracefully."""
    server = ModelServer(options)

    async def main() -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, server.stop)
        await server.run(on_ready)

    asyncio.run(main())


def _parser() -> argparse.ArgumentParser:
    limits = rest_api.Limits()
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add = parser.add_argument
    add("--port", type=int, default=8500, help="gRPC port; 0: no gRPC API (default 8500)")
    add("--rest_api_port", type=int, default=0, help="REST port; 0: no REST API (the default)")
    add("--host", default="127.0.0.1", help="address to listen on (default: loopback only)")
    add("--model_name", required=True)
    add("--model_base_path", required=True, help="folder holding numeric version folders")
    add("--model_version", type=int, help="serve this version only (default: the latest)")
    add("--file_system_poll_wait_seconds", type=float, default=1.0)
    add("--grpc_backend", help="HOST:PORT of a tensorflow_model_server to put the REST API before")
    add("--max_concurrent", type=int, default=limits.max_concurrent)
    add("--max_in_flight", type=int, default=limits.max_in_flight)
    add("--request_timeout", type=float, default=limits.request_timeout)
    add("--max_body_bytes", type=int, default=limits.max_body_bytes)
    batching = BatchingOptions()
    add(
        "--enable_batching",
        type=_yes_or_no,
        default=batching.enabled,
        help="batch concurrent requests to one signature into one call (default: true)",
    )
    add("--max_batch_size", type=int, default=batching.max_batch_size, help="rows per call")
    add(
        "--batch_timeout_micros",
        type=int,
        default=batching.batch_timeout_micros,
        help="how long a batch waits to fill (default 0: it takes what waits when a thread frees)",
    )
    add("--num_batch_threads", type=int, default=batching.num_batch_threads)
    add(
        "--reuse_port",
        action="store_true",
        help="listen with SO_REUSEPORT, sharing the ports with the other workers of one server",
    )
    add("--request_log_dir", help="log requests as PredictionLog TFRecords here (default: none)")
    add("--request_log_sample_rate", type=float, default=1.0, help="share of requests logged")
    add("--request_log_max_mb", type=float, default=1024.0, help="all log files together")
    add("--request_log_file_mb", type=float, default=64.0, help="a file is closed at this size")
    add("--request_log_file_seconds", type=float, default=3600.0, help="or at this age")
    add("--status_fd", type=int, help="a pipe to write READY and version news to (workers)")
    add("--max_enqueued_batches", type=int, default=batching.max_enqueued_batches)
    add("--routing_file", help="follow a release's routing file (versions, labels, split)")
    return parser


def _yes_or_no(text: str) -> bool:
    if text.lower() in ("true", "1", "yes"):
        return True
    if text.lower() in ("false", "0", "no"):
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got {text!r}")


def flags(options: ServerOptions) -> list[str]:
    """The command-line flags that give `main` these options (for the workers of `serve`)."""
    o, limits, batching = options, options.limits, options.batching
    given = [
        f"--port={o.grpc_port}",
        f"--rest_api_port={o.rest_port}",
        f"--host={o.host}",
        f"--model_name={o.model_name}",
        f"--model_base_path={o.model_base_path}",
        f"--file_system_poll_wait_seconds={o.poll_seconds}",
        f"--max_concurrent={limits.max_concurrent}",
        f"--max_in_flight={limits.max_in_flight}",
        f"--request_timeout={limits.request_timeout}",
        f"--max_body_bytes={limits.max_body_bytes}",
        f"--enable_batching={str(batching.enabled).lower()}",
        f"--max_batch_size={batching.max_batch_size}",
        f"--batch_timeout_micros={batching.batch_timeout_micros}",
        f"--num_batch_threads={batching.num_batch_threads}",
        f"--max_enqueued_batches={batching.max_enqueued_batches}",
    ]
    if o.version is not None:
        given.append(f"--model_version={o.version}")
    if o.grpc_backend:
        given.append(f"--grpc_backend={o.grpc_backend}")
    if o.routing_file:
        given.append(f"--routing_file={o.routing_file}")
    if o.request_log.directory:
        r = o.request_log
        given += [
            f"--request_log_dir={r.directory}",
            f"--request_log_sample_rate={r.sample_rate}",
            f"--request_log_max_mb={r.max_mb}",
            f"--request_log_file_mb={r.file_mb}",
            f"--request_log_file_seconds={r.file_seconds}",
        ]
    return given


class _StatusLines(logging.Handler):
    """The serving logger's news (versions loaded and unloaded), one line each, and READY once
    listening, on the pipe a supervisor (serving/workers.py) reads."""

    def __init__(self, fd: int):
        super().__init__(logging.INFO)
        self.stream = os.fdopen(fd, "w", buffering=1)

    def emit(self, record: logging.LogRecord) -> None:
        self.write(record.getMessage().replace("\n", " "))

    def write(self, line: str) -> None:
        try:
            self.stream.write(line + "\n")
        except OSError:  # the supervisor is gone; the log has it all
            pass


def main(argv: list[str] | None = None) -> None:
    args = _parser().parse_args(argv)
    logging.basicConfig(
        stream=sys.stderr,
        level=logging.INFO,
        format=f"%(asctime)s %(levelname)s [pid {os.getpid()}] %(message)s",
    )
    status = None
    if args.status_fd is not None:
        status = _StatusLines(args.status_fd)
        log.addHandler(status)
    options = ServerOptions(
        model_name=args.model_name,
        model_base_path=os.path.abspath(args.model_base_path),
        host=args.host,
        grpc_port=args.port,
        rest_port=args.rest_api_port,
        version=args.model_version,
        poll_seconds=args.file_system_poll_wait_seconds,
        grpc_backend=args.grpc_backend,
        reuse_port=args.reuse_port,
        routing_file=args.routing_file,
        request_log=RequestLogOptions(
            directory=args.request_log_dir,
            sample_rate=args.request_log_sample_rate,
            max_mb=args.request_log_max_mb,
            file_mb=args.request_log_file_mb,
            file_seconds=args.request_log_file_seconds,
        ),
        limits=rest_api.Limits(
            max_concurrent=args.max_concurrent,
            max_in_flight=args.max_in_flight,
            request_timeout=args.request_timeout,
            max_body_bytes=args.max_body_bytes,
        ),
        batching=BatchingOptions(
            enabled=args.enable_batching,
            max_batch_size=args.max_batch_size,
            batch_timeout_micros=args.batch_timeout_micros,
            num_batch_threads=args.num_batch_threads,
            max_enqueued_batches=args.max_enqueued_batches,
        ),
    )
    log.info(
        "Serving model %s from %s (gRPC %s, REST %s)",
        options.model_name,
        options.model_base_path,
        f"{options.host}:{options.grpc_port}" if options.grpc_port else "off",
        f"{options.host}:{options.rest_port}" if options.rest_port else "off",
    )
    try:
        serve(options, on_ready=(lambda: status.write(READY)) if status else None)
    except OSError as e:
        raise SystemExit(f"model_server: {e}") from None


if __name__ == "__main__":
    main()

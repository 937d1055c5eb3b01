"""Which Beam runner a component's Beam options name, read as Beam itself parses them."""

from __future__ import annotations

from collections.abc import Iterable

# Names Beam's `--runner` takes for its local DirectRunner.
DIRECT_RUNNER_NAMES = ("DirectRunner", "direct")


def names_another_runner(beam_args: Iterable[str]) -> bool:
    """Whether `beam_args` choose a runner other than the DirectRunner (`--runner=X` or
    `--runner X`); no runner named is the DirectRunner."""
    beam_args = list(beam_args)
    if not any(arg.startswith("--runner") for arg in beam_args):
        return False
    # Beam is imported only to parse a runner option: the command line calls this at start-up,
    # before anything else needs Beam (its import takes seconds).
    from apache_beam.options.pipeline_options import PipelineOptions, StandardOptions

    runner = PipelineOptions(beam_args).view_as(StandardOptions).runner
    return runner is not None and runner not in DIRECT_RUNNER_NAMES


# Seconds to wait when checking that a host a runner needs can be reached.
REACH_TIMEOUT_SECONDS = 3.0
# The job-server runners Beam starts from a Java jar, and the option that names the jar.
_JAR_RUNNERS = {
    "FlinkRunner": (
        "flink_job_server_jar",
        "apache_beam.runners.portability.flink_runner",
        "FlinkJarJobServer",
    ),
    "SparkRunner": (
        "spark_job_server_jar",
        "apache_beam.runners.portability.spark_runner",
        "SparkJarJobServer",
    ),
}


def _reachable(host: str, port: int) -> bool:
    import socket

    try:
        with socket.create_connection((host, port), timeout=REACH_TIMEOUT_SECONDS):
            return True
    except OSError:
        return False


def _endpoint_problem(runner: str, endpoint: str) -> str | None:
    host, _, port = endpoint.rpartition(":")
    if not port.isdigit():
        return (
            f"--beam-arg=--job_endpoint={endpoint} is not HOST:PORT: give the address of the "
            f"{runner}'s running job service"
        )
    if not _reachable(host or "localhost", int(port)):
        return (
            f"the {runner} cannot start: nothing answers at its job service {endpoint} "
            "(--beam-arg=--job_endpoint): start the job service there, or correct the address"
        )
    return None


def _jar_problem(runner: str, options) -> str | None:
    """What is missing for Beam to start the runner's Java job server here."""
    import importlib
    import os
    import shutil
    import urllib.parse

    from apache_beam.utils.subprocess_server import JavaJarServer

    option, module, server_class = _JAR_RUNNERS[runner]
    server = getattr(importlib.import_module(module), server_class)(options)
    given = options.get_all_options().get(option)
    if given and not os.path.exists(given) and not urllib.parse.urlparse(given).scheme:
        return (
            f"the {runner} cannot start: its job server jar {given} (--beam-arg=--{option}) "
            "does not exist: download Beam's job server jar for this Beam version and give its path"
        )
    if shutil.which("java") is None:
        return (
            f"the {runner} cannot start: its job server is a Java program and no `java` is on "
            "PATH: install a Java 11+ runtime, or give a running job service with "
            "--beam-arg=--job_endpoint=HOST:PORT"
        )
    jar = server.path_to_jar()
    url = urllib.parse.urlparse(jar)
    if url.scheme not in ("http", "https"):
        return None
    cached = os.path.join(JavaJarServer.JAR_CACHE, os.path.basename(url.path))
    if os.path.exists(cached) or _reachable(url.hostname or "", url.port or 443):
        return None
    return (
        f"the {runner} cannot start: it needs Beam's job server jar {os.path.basename(url.path)}, "
        f"which Beam downloads from {url.hostname}, and that host cannot be reached from here: "
        f"download {jar} where you can and pass --beam-arg=--{option}=PATH, or give a running "
        "job service with --beam-arg=--job_endpoint=HOST:PORT"
    )


def _dataflow_problem(options, runner_object) -> str | None:
    """Google Cloud credentials first (a local check), then Beam's own validation of the
    Dataflow options (which may look up the staging bucket in Cloud Storage)."""
    try:
        import google.auth

        google.auth.default()
    except Exception as e:  # google.auth's DefaultCredentialsError, or google-auth missing
        return (
            "the DataflowRunner cannot start: no Google Cloud credentials were found "
            f"({type(e).__name__}): run `gcloud auth application-default login`, or set "
            "GOOGLE_APPLICATION_CREDENTIALS to a service account key file"
        )
    from apache_beam.options.pipeline_options_validator import PipelineOptionsValidator

    try:
        errors = PipelineOptionsValidator(options, runner_object).validate()
    except Exception as e:  # the bucket lookup: no network, no permission
        return f"the DataflowRunner cannot start: checking its options failed ({type(e).__name__}: {e})"
    errors = [e.strip().rstrip(".") for e in errors]
    if errors:
        return (
            "the DataflowRunner cannot start: "
            + "; ".join(errors)
            + " (give them with --beam-arg, e.g. --beam-arg=--project=PROJECT)"
        )
    return None


def runner_problem(beam_args: Iterable[str]) -> str | None:
    """One sentence naming what the Beam runner chosen in `beam_args` lacks to start on this
    machine, or None (the DirectRunner always starts). Checked before a local run, so that a
    runner that cannot start stops the run at once rather than inside the first Beam component."""
    beam_args = list(beam_args)
    if not names_another_runner(beam_args):
        return None
    from apache_beam.options.pipeline_options import (
        PipelineOptions,
        PortableOptions,
        StandardOptions,
    )
    from apache_beam.runners.runner import create_runner

    options = PipelineOptions(beam_args)
    name = options.view_as(StandardOptions).runner
    try:
        runner_object = create_runner(name)
    except (ValueError, ImportError) as e:
        return f"--beam-arg=--runner={name} names no runner this Beam can start ({e})"
    runner = type(runner_object).__name__
    endpoint = options.view_as(PortableOptions).job_endpoint
    if endpoint and endpoint != "embed":
        return _endpoint_problem(runner, endpoint)
    if runner in _JAR_RUNNERS:
        return _jar_problem(runner, options)
    if runner == "PortableRunner":
        return (
            "the PortableRunner cannot start without a job service: give its address with "
            "--beam-arg=--job_endpoint=HOST:PORT"
        )
    if runner == "DataflowRunner":
        return _dataflow_problem(options, runner_object)
    return None

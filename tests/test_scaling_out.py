"""Moving the Beam work to another runner: the runner's options reach every Beam-using component,
locally and in the compiled Kubeflow spec, and a runner that cannot start here stops the run before
anything runs, with one sentence naming what is missing."""

from __future__ import annotations

import yaml
from tfx.dsl.components.base import base_beam_component

from cli import exit_codes
from components import beam_runner, tfx_private
from orchestration import beam_mode, kubeflow, kubeflow_locations
from pipeline.definition import create_pipeline
from tests.conftest import run_cli, taxi_config

FLINK_ARGS = ("--runner=FlinkRunner", "--flink_master=flink-jobmanager:8081", "--parallelism=8")
IMAGE = "registry.example.com/taxi-tips:1"


def _beam_node_ids(config) -> set[str]:
    """The pipeline's components that run Beam (TFX's BaseBeamComponent)."""
    return {
        c.id
        for c in create_pipeline(config).components
        if isinstance(c, base_beam_component.BaseBeamComponent)
    }


def test_runner_options_reach_every_beam_component_of_a_local_run(tmp_path):
    config = taxi_config(output_dir=tmp_path, extra_beam_args=FLINK_ARGS)
    beam_ids = _beam_node_ids(config)
    # ExampleGens, StatisticsGens, the drift and skew checks, Transform, Evaluator, BulkInferrer.
    assert {"CsvExampleGen", "StatisticsGen", "Transform", "Evaluator", "BulkInferrer"} <= beam_ids
    pipeline = create_pipeline(config, beam_pipeline_args=beam_mode.choose(config).beam_args)
    ir = tfx_private.compile_run(pipeline, "run-1")
    specs = ir.deployment_config
    from tfx.proto.orchestration import executable_spec_pb2, pipeline_pb2

    deployment = pipeline_pb2.IntermediateDeploymentConfig()
    specs.Unpack(deployment)
    seen = set()
    for node_id, packed in deployment.executor_specs.items():
        if node_id not in beam_ids:
            continue
        spec = executable_spec_pb2.BeamExecutableSpec()
        packed.Unpack(spec)
        args = list(spec.beam_pipeline_args)
        # The user's options come last, so they win over the DirectRunner's defaults.
        assert args[-len(FLINK_ARGS) :] == list(FLINK_ARGS), node_id
        assert not any(a.startswith("--sdk_container_image") for a in args), node_id
        seen.add(node_id)
    assert seen == beam_ids


def test_runner_options_reach_every_beam_component_in_the_kubeflow_spec(tmp_path):
    config = taxi_config(
        output_dir=tmp_path,
        extra_beam_args=FLINK_ARGS,
        **kubeflow_locations.task_locations(
            tmp_path, "taxi-tips", taxi_config().data_dir, taxi_config().curated_schema_file
        ),
    )
    compiled = kubeflow.compile_pipeline(
        config, IMAGE, tmp_path / "kubeflow", beam_mode.choose(config).beam_args
    )
    executors = yaml.safe_load(compiled.pipeline_spec.read_text())["deploymentSpec"]["executors"]
    beam_ids = _beam_node_ids(config)
    for node_id in beam_ids:
        args = executors[f"{node_id}_executor"]["container"]["args"]
        for option in FLINK_ARGS:
            assert option in args, (node_id, option)


def test_a_missing_job_server_jar_stops_the_run_before_anything_runs(tmp_path):
    missing = tmp_path / "beam-runners-flink-job-server.jar"
    result = run_cli(
        f"--output-dir={tmp_path / 'out'}",
        "--beam-arg=--runner=FlinkRunner",
        f"--beam-arg=--flink_job_server_jar={missing}",
        timeout=300,
    )
    assert result.returncode == exit_codes.BAD_SETTINGS, result.stdout + result.stderr
    message = result.stdout + result.stderr
    assert f"The FlinkRunner cannot start: its job server jar {missing}" in message
    assert "--flink_job_server_jar" in message
    assert "Traceback" not in message
    # Nothing ran: no component wrote outputs.
    assert not (tmp_path / "out" / "pipeline_root").exists()


def test_what_each_runner_lacks_is_named(tmp_path, monkeypatch):
    assert beam_runner.runner_problem(()) is None
    assert beam_runner.runner_problem(("--runner=DirectRunner",)) is None
    unknown = beam_runner.runner_problem(("--runner=NoSuchRunner",))
    assert unknown.startswith("--beam-arg=--runner=NoSuchRunner names no runner")
    # Beam downloads the Flink job server jar from Maven Central when it is not cached: a
    # machine that cannot reach it is told so, with the two ways around it.
    monkeypatch.setattr(beam_runner, "_reachable", lambda host, port: False)
    from apache_beam.utils.subprocess_server import JavaJarServer

    monkeypatch.setattr(JavaJarServer, "JAR_CACHE", str(tmp_path / "empty-cache"))
    flink = beam_runner.runner_problem(("--runner=FlinkRunner",))
    assert flink.startswith("the FlinkRunner cannot start: it needs Beam's job server jar beam-")
    assert "repo.maven.apache.org" in flink and "--flink_job_server_jar=PATH" in flink
    spark = beam_runner.runner_problem(("--runner=SparkRunner",))
    assert "--spark_job_server_jar=PATH" in spark
    endpoint = beam_runner.runner_problem(("--runner=FlinkRunner", "--job_endpoint=localhost:1"))
    assert "nothing answers at its job service localhost:1" in endpoint
    portable = beam_runner.runner_problem(("--runner=PortableRunner",))
    assert "--job_endpoint=HOST:PORT" in portable
    # Dataflow: Google Cloud credentials, then Beam's own validation of the options.
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(tmp_path / "no-key.json"))
    dataflow = beam_runner.runner_problem(("--runner=DataflowRunner",))
    assert dataflow.startswith(
        "the DataflowRunner cannot start: no Google Cloud credentials were found"
    )

"""`--orchestrator kubeflow`: the same pipeline compiled to a KFP v2 spec, checked, and run.

The command line compiles once (cloud locations, Dataflow options); the other checks call the
compiler in-process. `run-spec` then runs a compiled spec task by task on a first-ever span.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import kfp
import pytest
import yaml
from google.protobuf import json_format
from kfp.pipeline_spec import pipeline_spec_pb2

from metadata.artifact_readers import count_prediction_logs
from orchestration import beam_mode, kfp_spec_runner, kubeflow, kubeflow_locations
from pipeline import definition
from tests.conftest import (
    CODE_FOLDERS,
    FAST_RUN_SETTINGS,
    PROJECT_ROOT,
    SAMPLE_UNLABELED_ROWS,
    copy_project,
    node_status,
    run_cli,
    taxi_config,
)

IMAGE = "registry.example.com/ml/taxi-pipeline:test"
RESOLVER_TASKS = {
    "LatestBlessedModelResolver-model-blessing-resolver",
    "LatestBlessedModelResolver-model-resolver",
}


def _compile(output_dir: Path, *extra: str):
    result = run_cli(
        "--orchestrator=kubeflow", f"--output-dir={output_dir}", f"--image={IMAGE}", *extra
    )
    assert result.returncode == 0, result.stdout + result.stderr
    compiled = output_dir / "kubeflow"
    return result, compiled / "taxi-tips.yaml", compiled / "taxi-tips.pipeline_job.json"


@pytest.fixture(scope="module")
def cloud_compile(tmp_path_factory):
    out = tmp_path_factory.mktemp("kfp")
    result, spec_path, job_path = _compile(
        out,
        "--pipeline-root=gs://example-bucket/tfx-root",
        "--data-uri=gs://example-bucket/taxi-data",
        "--beam-arg=--runner=DataflowRunner",
        "--beam-arg=--region=europe-west4",
    )
    return result, spec_path, job_path


def test_compile_writes_a_spec_the_kfp_sdk_loads(cloud_compile):
    result, spec_path, job_path = cloud_compile
    assert str(spec_path) in result.stdout and "--kfp-endpoint" in result.stdout
    spec_dict = yaml.safe_load(spec_path.read_text())
    json_format.ParseDict(
        spec_dict, pipeline_spec_pb2.PipelineSpec()
    )  # strict: unknown fields fail
    component = kfp.components.load_component_from_file(str(spec_path))
    assert component.name == "taxi-tips"
    job = json.loads(job_path.read_text())
    assert job["pipelineSpec"]["root"] == spec_dict["root"]


def test_one_task_per_component_with_the_local_dag_edges(cloud_compile):
    _, spec_path, _ = cloud_compile
    tasks = yaml.safe_load(spec_path.read_text())["root"]["dag"]["tasks"]
    local = {c.id: c for c in definition.create_pipeline(taxi_config()).components}
    resolver = "LatestBlessedModelResolver"
    assert set(tasks) == (set(local) - {resolver}) | RESOLVER_TASKS
    for node_id, component in local.items():
        if node_id == resolver:
            continue
        expected = {
            "LatestBlessedModelResolver-model-resolver"
            if c.producer_component_id == resolver
            else c.producer_component_id
            for c in component.inputs.values()
        }
        produced_by = {
            source["taskOutputArtifact"]["producerTask"]
            for source in tasks[node_id].get("inputs", {}).get("artifacts", {}).values()
        }
        assert produced_by == expected, node_id


def test_caching_image_beam_args_and_locations(cloud_compile):
    _, spec_path, job_path = cloud_compile
    spec = yaml.safe_load(spec_path.read_text())
    tasks = spec["root"]["dag"]["tasks"]
    for name, task in tasks.items():
        if name not in RESOLVER_TASKS:
            assert task["cachingOptions"]["enableCache"] is True, name
    containers = [
        e["container"] for e in spec["deploymentSpec"]["executors"].values() if "container" in e
    ]
    assert len(containers) == len(tasks) - len(RESOLVER_TASKS)
    assert {c["image"] for c in containers} == {IMAGE}
    # Every executor runs TFX's entry point behind the project's module (cloud extensions
    # deferred); ExampleGen's driver hook stays TFX's own.
    assert {tuple(c["command"]) for c in containers} == {tuple(kubeflow.TASK_COMMAND)}
    statistics_args = spec["deploymentSpec"]["executors"]["StatisticsGen_executor"]["container"][
        "args"
    ]
    assert (
        "--runner=DataflowRunner" in statistics_args and "--region=europe-west4" in statistics_args
    )
    assert spec["defaultPipelineRoot"] == "gs://example-bucket/tfx-root"
    assert (
        json.loads(job_path.read_text())["runtimeConfig"]["gcsOutputDirectory"]
        == "gs://example-bucket/tfx-root"
    )

    def parameter(task: str, name: str) -> str:
        return tasks[task]["inputs"]["parameters"][name]["runtimeValue"]["constantValue"][
            "stringValue"
        ]

    assert parameter("CsvExampleGen", "input_base") == "gs://example-bucket/taxi-data/labeled"
    assert (
        parameter("UnlabeledExampleGen", "input_base") == "gs://example-bucket/taxi-data/unlabeled"
    )
    push = json.loads(parameter("Pusher", "push_destination"))
    assert (
        push["filesystem"]["base_directory"]
        == "gs://example-bucket/tfx-root/serving_model/taxi-tips"
    )
    assert parameter("CuratedSchemaImporter", "schema_file") == "/pipeline/schema/schema.pbtxt"
    # User code is referenced by importable paths inside the image, never packaged at compile time.
    assert "components.model.run_fn" in parameter("Trainer", "run_fn")


def _compile_in_process(tmp_path: Path, locations=None, **settings) -> kubeflow.CompiledPipeline:
    """Compiles as `--orchestrator kubeflow` does, without a process of its own."""
    locations = locations or kubeflow_locations.task_locations(
        tmp_path, "taxi-tips", taxi_config().data_dir, taxi_config().curated_schema_file
    )
    config = taxi_config(output_dir=tmp_path, **locations, **settings)
    return kubeflow.compile_pipeline(
        config, IMAGE, tmp_path / "kubeflow", beam_mode.choose(config).beam_args
    )


def test_no_cache_switches_caching_off(tmp_path):
    compiled = _compile_in_process(tmp_path, enable_cache=False)
    tasks = yaml.safe_load(compiled.pipeline_spec.read_text())["root"]["dag"]["tasks"]
    assert all(not t.get("cachingOptions", {}).get("enableCache") for t in tasks.values())


def test_retries_become_every_tasks_retry_policy(tmp_path):
    compiled = _compile_in_process(tmp_path, retries=2)
    spec = yaml.safe_load(compiled.pipeline_spec.read_text())
    tasks = spec["root"]["dag"]["tasks"]
    assert len(tasks) > 10
    for task in tasks.values():
        assert task["retryPolicy"] == kubeflow.retry_policy(2)
    # KFP's own proto takes it (what the API server reads), in the spec and the Vertex job.
    parsed = json_format.ParseDict(spec, pipeline_spec_pb2.PipelineSpec())
    assert parsed.root.dag.tasks["Trainer"].retry_policy.max_retry_count == 2
    assert parsed.root.dag.tasks["Trainer"].retry_policy.backoff_duration.seconds == 30
    job = json.loads(compiled.pipeline_job.read_text())
    assert (
        job["pipelineSpec"]["root"]["dag"]["tasks"]["Trainer"]["retryPolicy"]["maxRetryCount"] == 2
    )
    # Without --retries, no policy: KFP's default, no retry.
    plain = _compile_in_process(tmp_path / "plain")
    plain_tasks = yaml.safe_load(plain.pipeline_spec.read_text())["root"]["dag"]["tasks"]
    assert not any("retryPolicy" in t for t in plain_tasks.values())


def test_default_locations_are_the_image_and_the_local_pipeline_root(tmp_path):
    locations = kubeflow_locations.task_locations(
        tmp_path, "taxi-tips", taxi_config().data_dir, taxi_config().curated_schema_file
    )
    assert locations == {
        "data_uri": "/pipeline/data",
        "pipeline_root_uri": str(tmp_path / "kubeflow" / "pipeline_root"),
        "serving_model_uri": f"{tmp_path}/kubeflow/pipeline_root/serving_model/taxi-tips",
        "curated_schema_uri": "/pipeline/schema/schema.pbtxt",
    }


def test_unreachable_endpoint_is_named(tmp_path):
    compiled = _compile_in_process(tmp_path)
    with pytest.raises(kubeflow.SubmitError, match="endpoint http://127.0.0.1:9: "):
        kubeflow.submit(compiled, "http://127.0.0.1:9")
    assert compiled.pipeline_spec.is_file()


def test_a_component_the_compiler_refuses_fails_with_its_message(tmp_path, monkeypatch):
    """Swapping in TFX's stock InfraValidator, which KubeflowV2DagRunner refuses: the compiler's
    message reaches the user, exit code 1, and no spec is written."""
    from tfx import v1 as tfx

    def stock_infra_validator(
        model, serving_spec, examples=None, request_spec=None, validation_spec=None, **_
    ):
        return tfx.components.InfraValidator(
            model=model,
            serving_spec=serving_spec,
            examples=examples,
            request_spec=request_spec,
            validation_spec=validation_spec,
        )

    monkeypatch.setattr(definition, "InfraValidator", stock_infra_validator)
    with pytest.raises(
        NotImplementedError, match="infra_validator.component.InfraValidator.* is not supported"
    ):
        kubeflow.compile_pipeline(taxi_config(output_dir=tmp_path), IMAGE, tmp_path / "kubeflow")
    assert not (tmp_path / "kubeflow" / "taxi-tips.yaml").exists()


def test_compiler_errors_reach_the_command_line(tmp_path):
    """The same refusal through `run_local.py --orchestrator kubeflow` on an edited copy."""
    project = copy_project(tmp_path / "project")
    definition_file = project / "pipeline" / "definition.py"
    definition_file.write_text(
        definition_file.read_text().replace(
            "from components.infra_validator.component import InfraValidator",
            "from tfx.components import InfraValidator as _Stock\n\n\n"
            "def InfraValidator(model_server_binary=None, request_timeout_seconds=None, **kwargs):\n"
            "    return _Stock(**kwargs)\n",
        )
    )
    result = run_cli("--orchestrator=kubeflow", f"--output-dir={tmp_path / 'out'}", cwd=project)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "error: the pipeline does not compile for Kubeflow: NotImplementedError" in result.stdout
    assert "is not supported" in result.stdout


@pytest.mark.e2e
def test_a_compiled_spec_runs_task_by_task_on_a_first_ever_span(sample_data_dir, tmp_path):
    """Every task of the compiled DAG, run with its own command line and fed like a KFP launcher
    (`run-spec`), on data with a single span: no drift baseline, empty `previous` splits through
    Transform, Trainer and Evaluator, and still a pushed model and scored batch."""
    data_dir = tmp_path / "data"
    shutil.copytree(sample_data_dir / "unlabeled", data_dir / "unlabeled")
    shutil.copytree(sample_data_dir / "labeled" / "span-1", data_dir / "labeled" / "span-1")
    locations = kubeflow_locations.task_locations(
        tmp_path,
        "taxi-tips",
        taxi_config().data_dir,
        taxi_config().curated_schema_file,
        image_project_dir=str(PROJECT_ROOT),
        pipeline_root=str(tmp_path / "root"),
        data_uri=str(data_dir),
    )
    job_path = _compile_in_process(
        tmp_path, locations, data_dir=data_dir, **FAST_RUN_SETTINGS
    ).pipeline_job
    result = run_cli(
        "run-spec", str(job_path), f"--pipeline-root={tmp_path / 'root'}", timeout=1800
    )
    assert result.returncode == 0, result.stdout + result.stderr
    spec = kfp_spec_runner.load_pipeline_spec(job_path)
    tasks = spec["root"]["dag"]["tasks"]
    assert f"All {len(tasks)} tasks ran." in result.stdout
    status = node_status(result.stdout)
    assert set(status) == set(tasks)
    for name, text in status.items():
        assert text.startswith("resolver" if name in RESOLVER_TASKS else "container"), name

    # What each task wrote, read back as the next task would (the launcher's output files).
    def outputs(task: str, key: str) -> dict:
        written = json.loads((tmp_path / "root" / task / "executor_output.json").read_text())
        return written["artifacts"][key]["artifacts"][0]

    examples = outputs("CsvExampleGen", "examples")["metadata"]
    assert examples["spans_latest"] == "1" and examples["spans_previous"] == ""
    assert outputs("Evaluator", "blessing")["metadata"]["blessed"] == 1.0
    assert outputs("InfraValidator", "blessing")["metadata"]["blessed"] == 1.0
    pushed = outputs("Pusher", "pushed_model")["metadata"]
    assert pushed["pushed"] == 1.0
    assert (Path(pushed["pushed_destination"]) / "saved_model.pb").is_file()
    assert "DataGate" in tasks["Transform"]["dependentTasks"]
    assert count_prediction_logs(str(tmp_path / "root" / "BulkInferrer" / "inference_result")) == (
        SAMPLE_UNLABELED_ROWS
    )


def test_task_order_respects_data_and_control_edges_and_names_a_cycle():
    spec = {
        "root": {
            "dag": {
                "tasks": {
                    "b": {
                        "inputs": {
                            "artifacts": {"x": {"taskOutputArtifact": {"producerTask": "a"}}}
                        }
                    },
                    "c": {"dependentTasks": ["b"]},
                    "a": {},
                }
            }
        }
    }
    assert kfp_spec_runner.task_order(spec) == ["a", "b", "c"]
    spec["root"]["dag"]["tasks"]["a"]["dependentTasks"] = ["c"]
    with pytest.raises(kfp_spec_runner.graphlib.CycleError):
        kfp_spec_runner.task_order(spec)


def test_dockerfile_copies_what_the_tasks_import():
    """Every COPY source exists, and the image installs the same lock the tests run on."""
    lines = (PROJECT_ROOT / "Dockerfile").read_text().splitlines()
    copies = [line.split()[1:-1] for line in lines if line.startswith("COPY ")]
    sources = {source.rstrip("/") for sources in copies for source in sources}
    assert {"requirements.lock", *CODE_FOLDERS, "schema", "data"} <= sources
    for source in sources:
        assert (PROJECT_ROOT / source).exists(), source
    assert any("--require-hashes" in line and "requirements.lock" in line for line in lines)
    assert any(line.startswith("FROM gcr.io/tfx-oss-public/tfx:1.16.0") for line in lines)

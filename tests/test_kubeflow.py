"""`--orchestrator kubeflow`: the same pipeline compiled to a KFP v2 spec, checked, and run."""

from __future__ import annotations

import json
from pathlib import Path

import kfp
import pytest
import yaml
from google.protobuf import json_format
from kfp.pipeline_spec import pipeline_spec_pb2

from pipeline import kfp_local_launcher, kubeflow_runner
from pipeline import pipeline as pipeline_module
from pipeline.config import PipelineConfig
from pipeline.run_summary import count_prediction_logs
from tests.conftest import FAST_RUN_ARGS, PROJECT_ROOT, SAMPLE_UNLABELED_ROWS, copy_project, run_cli

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
    local = {c.id: c for c in pipeline_module.create_pipeline(PipelineConfig()).components}
    resolver = pipeline_module.BLESSED_MODEL_RESOLVER
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


def test_no_cache_switches_caching_off(tmp_path):
    _, spec_path, _ = _compile(tmp_path, "--no-cache")
    tasks = yaml.safe_load(spec_path.read_text())["root"]["dag"]["tasks"]
    assert all(not t.get("cachingOptions", {}).get("enableCache") for t in tasks.values())


def test_unreachable_endpoint_is_named_and_the_spec_stays(tmp_path):
    result = run_cli(
        "--orchestrator=kubeflow", f"--output-dir={tmp_path}", "--kfp-endpoint=http://127.0.0.1:9"
    )
    assert result.returncode == 1
    assert "Could not submit to the Kubeflow Pipelines endpoint http://127.0.0.1:9" in result.stdout
    assert (tmp_path / "kubeflow" / "taxi-tips.yaml").is_file()
    assert "Traceback" not in result.stdout


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

    monkeypatch.setattr(pipeline_module, "InfraValidator", stock_infra_validator)
    with pytest.raises(
        NotImplementedError, match="infra_validator.component.InfraValidator.* is not supported"
    ):
        kubeflow_runner.compile_pipeline(
            PipelineConfig(output_dir=tmp_path), IMAGE, tmp_path / "kubeflow"
        )
    assert not (tmp_path / "kubeflow" / "taxi-tips.yaml").exists()


def test_compiler_errors_reach_the_command_line(tmp_path):
    """The same refusal through `run_local.py --orchestrator kubeflow` on an edited copy."""
    project = copy_project(tmp_path / "project")
    definition = project / "pipeline" / "pipeline.py"
    definition.write_text(
        definition.read_text().replace(
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
def test_the_compiled_spec_runs_task_by_task_through_the_container_entrypoint(
    sample_data_dir, tmp_path
):
    """Every task of the compiled DAG, run with its own command line, fed like a KFP launcher."""
    _, _, job_path = _compile(
        tmp_path,
        f"--pipeline-root={tmp_path / 'root'}",
        f"--data-uri={sample_data_dir}",
        f"--image-project-dir={PROJECT_ROOT}",
        *FAST_RUN_ARGS,
    )
    spec = kfp_local_launcher.load_pipeline_spec(job_path)
    results = kfp_local_launcher.run_spec(spec, tmp_path / "root", tmp_path / "task-logs")

    assert set(results) == set(spec["root"]["dag"]["tasks"])
    assert {r.name for r in results.values() if r.kind == "resolver"} == RESOLVER_TASKS
    examples = results["CsvExampleGen"].outputs["examples"][0]
    splits = ["latest_train", "latest_eval", "previous_train", "previous_eval"]
    assert json.loads(examples["metadata"]["split_names"]) == splits
    assert examples["metadata"]["spans_previous"] == "1"  # the window, in TFX's driver task
    anomalies = results["ExampleValidator"].outputs["anomalies"][0]["metadata"]
    assert anomalies["blessed"] == dict.fromkeys(splits, 1.0)
    drift = results["DriftValidator"].outputs["anomalies"][0]["metadata"]
    assert drift["blessed"] == {"latest_train_previous_train": 1.0}
    assert "DataGate" in spec["root"]["dag"]["tasks"]["Transform"]["dependentTasks"]
    assert results["Evaluator"].outputs["blessing"][0]["metadata"]["blessed"] == 1.0
    assert results["InfraValidator"].outputs["blessing"][0]["metadata"]["blessed"] == 1.0
    pushed = results["Pusher"].outputs["pushed_model"][0]["metadata"]
    assert pushed["pushed"] == 1.0
    assert (Path(pushed["pushed_destination"]) / "saved_model.pb").is_file()
    inference_uri = results["BulkInferrer"].outputs["inference_result"][0]["uri"]
    assert count_prediction_logs(inference_uri) == SAMPLE_UNLABELED_ROWS


def test_dockerfile_copies_what_the_tasks_import():
    """Every COPY source exists, and the image installs the same lock the tests run on."""
    lines = (PROJECT_ROOT / "Dockerfile").read_text().splitlines()
    copies = [line.split()[1:-1] for line in lines if line.startswith("COPY ")]
    sources = {source.rstrip("/") for sources in copies for source in sources}
    assert {"requirements.lock", "pipeline", "components", "schema", "data"} <= sources
    for source in sources:
        assert (PROJECT_ROOT / source).exists(), source
    assert any("--require-hashes" in line and "requirements.lock" in line for line in lines)
    assert any(line.startswith("FROM gcr.io/tfx-oss-public/tfx:1.16.0") for line in lines)

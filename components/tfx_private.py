"""Every private TFX (and TensorFlow/Keras) behaviour this project depends on, in one file.

Upgrading TFX? Read this file first. Each entry names what it relies on, why no public API does
the job, and the version it was checked against. Everything was checked against TFX 1.16.0
(TensorFlow 2.16.2, Keras 3.6.0), the versions `requirements.lock` pins. The rest of the project
reaches these internals only through the names defined here.
"""

from __future__ import annotations

import json
from typing import Any

from ml_metadata.proto import metadata_store_pb2

# Importing TFX's executors takes about 7 s; readers of ML Metadata (`inspect`, `report`) need only
# the light part of this file. The TFX modules are therefore imported where they are used, and
# the classes and functions that wrap them are built on first access (`__getattr__` below).

# ---- Importing `tfx.v1` without its Google Cloud extensions -----------------------------------
# TFX 1.16's tfx/v1/__init__.py imports tfx.v1.extensions, whose google_cloud_ai_platform imports
# the Vertex AI and BigQuery client libraries: about 5 s of every process that imports `tfx.v1`
# (measured with `python -X importtime`), for components this project does not use.
# `defer_cloud_extensions` registers `tfx.v1.extensions` first as a package that imports its two
# submodules on first use (a module `__getattr__`, PEP 562), from TFX's own folder. Called
# explicitly, before anything imports `tfx.v1`, by each entry point of a process that imports TFX:
# run_local.py, the node server (orchestration/node_server_preload.py) and every Kubeflow task
# (orchestration/kfp_task.py). A process that does not call it imports the extensions as TFX
# does: slower, nothing else changes.
_CLOUD_EXTENSIONS = "tfx.v1.extensions"


def defer_cloud_extensions() -> None:
    import importlib
    import importlib.machinery
    import importlib.util
    import sys
    import types
    from pathlib import Path

    if _CLOUD_EXTENSIONS in sys.modules or "tfx.v1" in sys.modules:
        return
    tfx_spec = importlib.util.find_spec("tfx")  # tfx/__init__.py itself imports nothing heavy
    if tfx_spec is None or not tfx_spec.submodule_search_locations:
        return
    v1_folders = [str(Path(folder, "v1")) for folder in tfx_spec.submodule_search_locations]
    spec = importlib.machinery.PathFinder.find_spec(_CLOUD_EXTENSIONS, v1_folders)
    if spec is None or not spec.submodule_search_locations:
        return
    extensions = types.ModuleType(_CLOUD_EXTENSIONS, "TFX extensions module, imported on use.")
    extensions.__spec__ = spec
    extensions.__path__ = list(spec.submodule_search_locations)
    extensions.__all__ = ["google_cloud_ai_platform", "google_cloud_big_query"]

    def import_on_use(name: str) -> types.ModuleType:
        if name not in extensions.__all__:
            raise AttributeError(f"module {_CLOUD_EXTENSIONS!r} has no attribute {name!r}")
        return importlib.import_module(f"{_CLOUD_EXTENSIONS}.{name}")

    extensions.__getattr__ = import_on_use
    sys.modules[_CLOUD_EXTENSIONS] = extensions


# ---- A Kubeflow task's entry point ---------------------------------------------------------
# TFX 1.16's KFP v2 container entry point (tfx/orchestration/kubeflow/v2/container/
# kubeflow_v2_run_executor.py) runs `app.run(main, flags_parser=_parse_flags)` under `__main__`;
# a task started from another module (orchestration/kfp_task.py, to defer the cloud extensions
# first) runs the same two functions, the second of them private.
def run_kubeflow_v2_executor() -> None:
    from absl import app
    from tfx.orchestration.kubeflow.v2.container import kubeflow_v2_run_executor

    app.run(kubeflow_v2_run_executor.main, flags_parser=kubeflow_v2_run_executor._parse_flags)


# ---- How TFX records a pipeline in ML Metadata ----------------------------------------------
# TFX 1.16 (tfx/orchestration/portable/mlmd/context_lib.py, resolver.py): every execution is
# attached to three contexts, of types "pipeline" (named after the pipeline), "pipeline_run"
# (named by the run id) and "node" (named "<pipeline>.<node id>"); a Resolver node's execution
# has this type name. The readers in metadata/ derive runs and node ids from these.
PIPELINE_CONTEXT = "pipeline"
PIPELINE_RUN_CONTEXT = "pipeline_run"
NODE_CONTEXT = "node"
RESOLVER_EXECUTION_TYPE = "tfx.dsl.components.common.resolver.Resolver"


def node_context_name(pipeline_name: str, node_id: str) -> str:
    """The name TFX 1.16 gives a node's context."""
    return f"{pipeline_name}.{node_id}"


def node_id_from_context_name(context_name: str) -> str:
    return context_name.split(".", 1)[-1]


# ---- Failure messages on executions ---------------------------------------------------------
# TFX 1.16 marks an execution FAILED when its executor raises but keeps no message. An executor
# *reporting* a failure gets an ExecutionResult stored as JSON in the custom property
# `__execution_result__` (tfx/orchestration/portable/mlmd/execution_lib.py, `_EXECUTION_RESULT`,
# `set_execution_result`). The runner stores raised failures the same way, so that one reader
# finds both.
_EXECUTION_RESULT_PROPERTY = "__execution_result__"


def set_execution_failure(
    execution: metadata_store_pb2.Execution, message: str, code: int = 2
) -> None:
    """Writes `message` as the execution's result (the caller puts it in the store); `code` is
    a canonical error code: 2 UNKNOWN for a failure, 1 CANCELLED for a stopped run."""
    from tfx.orchestration.portable.mlmd import execution_lib
    from tfx.proto.orchestration import execution_result_pb2

    execution_lib.set_execution_result(
        execution_result_pb2.ExecutionResult(code=code, result_message=message), execution
    )


def execution_failure(execution: metadata_store_pb2.Execution) -> str | None:
    """The failure message stored on an execution, or None."""
    value = execution.custom_properties.get(_EXECUTION_RESULT_PROPERTY)
    if value is None or not value.string_value:
        return None
    return json.loads(value.string_value).get("resultMessage")


# ---- Running the compiled pipeline node by node ----------------------------------------------
# TFX 1.16's LocalDagRunner.run() compiles the pipeline (tfx_runner.py, `_make_pipeline_proto`:
# each component's private `_resolve_pip_dependencies`, then the compiler), names the run
# `datetime.now().isoformat()` inside `run_with_ir` without telling the caller, and then launches
# the nodes one after the other (local_dag_runner.py: "TODO(b/171319478) ... run in parallel").
# The project's runner (orchestration/local_runner.py) does the same steps in public pieces:
# `compile_run` (compile, set the run-id runtime parameter the way `run_with_ir` does, record the
# run), `node_dependencies` (each node's upstream nodes, from the IR), and `launch_node` (one
# node's Launcher, built exactly as `run_with_ir` builds it), so that independent nodes can run
# at once, each in its own process.
def compile_run(pipeline: Any, run_id: str, run_properties: dict[str, str] | None = None) -> Any:
    """The pipeline's IR for run `run_id`. `run_properties` are recorded on the run's context in
    ML Metadata before any component starts (who runs it, where: readers of a shared store use
    them to tell a live run from an interrupted one)."""
    from tfx.dsl.compiler import compiler, constants
    from tfx.dsl.components.base import base_component
    from tfx.orchestration.portable import runtime_parameter_utils

    for component in pipeline.components:
        if isinstance(component, base_component.BaseComponent):
            component._resolve_pip_dependencies(pipeline.pipeline_info.pipeline_root)  # noqa: SLF001
    pipeline_ir = compiler.Compiler().compile(pipeline)
    runtime_parameter_utils.substitute_runtime_parameter(
        pipeline_ir, {constants.PIPELINE_RUN_ID_PARAMETER_NAME: run_id}
    )
    if run_properties:
        _record_run(pipeline.metadata_connection_config, pipeline_ir, run_id, run_properties)
    return pipeline_ir


def node_dependencies(pipeline_ir: Any) -> dict[str, set[str]]:
    """Node id -> the ids of the nodes it waits for, in the IR's (topological) order; nodes the
    IR marks to skip are left out, as LocalDagRunner skips them."""
    nodes = {}
    for node in pipeline_ir.nodes:
        pipeline_node = node.pipeline_node
        if pipeline_node.execution_options.HasField("skip"):
            continue
        nodes[pipeline_node.node_info.id] = set(pipeline_node.upstream_nodes)
    return {node_id: upstream & nodes.keys() for node_id, upstream in nodes.items()}


def launch_node(serialized_pipeline_ir: bytes, node_id: str) -> None:
    """Runs one node of a compiled pipeline (driver, executor, publisher), as LocalDagRunner
    1.16's `run_with_ir` does for each node. Raises what the component raised."""
    from tfx.orchestration import metadata
    from tfx.orchestration.local import runner_utils
    from tfx.orchestration.portable import launcher, partial_run_utils
    from tfx.proto.orchestration import pipeline_pb2
    from tfx.utils import telemetry_utils

    pipeline_ir = pipeline_pb2.Pipeline.FromString(serialized_pipeline_ir)
    deployment_config = runner_utils.extract_local_deployment_config(pipeline_ir)
    connection_config = getattr(
        deployment_config.metadata_connection_config,
        deployment_config.metadata_connection_config.WhichOneof("connection_config"),
    )
    node = next(
        n.pipeline_node for n in pipeline_ir.nodes if n.pipeline_node.node_info.id == node_id
    )
    component_launcher = launcher.Launcher(
        pipeline_node=node,
        mlmd_connection=metadata.Metadata(connection_config),
        pipeline_info=pipeline_ir.pipeline_info,
        pipeline_runtime_spec=pipeline_ir.runtime_spec,
        executor_spec=runner_utils.extract_executor_spec(deployment_config, node_id),
        custom_driver_spec=runner_utils.extract_custom_driver_spec(deployment_config, node_id),
    )
    with telemetry_utils.scoped_labels({telemetry_utils.LABEL_TFX_RUNNER: "local"}):
        if node.execution_options.run.perform_snapshot:
            with metadata.Metadata(connection_config) as handle:
                partial_run_utils.snapshot(handle, pipeline_ir)
        component_launcher.launch()


# TFX 1.16 creates the pipeline and run contexts (and the run's parent link) when the first node
# starts (context_lib.prepare_contexts, from each node's `contexts` in the compiled IR), and reuses
# contexts that exist. Calling it first, with the first node's context specs, creates exactly what
# TFX would, so the run's context exists, with our properties, before any component runs.
def _record_run(
    connection_config: metadata_store_pb2.ConnectionConfig,
    pipeline_ir: Any,
    run_id: str,
    run_properties: dict[str, str],
) -> None:
    from tfx.orchestration import metadata
    from tfx.orchestration.portable.mlmd import context_lib

    with metadata.Metadata(connection_config) as handle:
        context_lib.prepare_contexts(handle, pipeline_ir.nodes[0].pipeline_node.contexts)
        run = handle.store.get_context_by_type_and_name(PIPELINE_RUN_CONTEXT, run_id)
        for name, value in run_properties.items():
            run.custom_properties[name].string_value = value
        handle.store.put_contexts([run])


# ---- Beam options on the DirectRunner -------------------------------------------------------
# TFX 1.16 builds an sdist of itself for remote Beam workers before every Beam component unless
# a dependency option is set (tfx/utils/dependency_utils.py, `make_beam_dependency_flags`, which
# checks these flags). DirectRunner workers share this environment; naming an SDK image (which
# the DirectRunner never uses) skips the packaging, about 1.5 s per Beam component.
BEAM_DEPENDENCY_OPTIONS = (
    "--setup_file",
    "--extra_package",
    "--extra_packages",
    "--requirements_file",
    "--sdk_container_image",
)
SKIP_TFX_SDIST_BEAM_ARG = "--sdk_container_image=apache/beam_python3.10_sdk:2.59.0"


# ---- Batches whose boundaries do not depend on timing (deterministic runs) --------------------
# tf.Transform's analyzers, TFDV and TFMA read examples through tfx_bsl, which batches them with
# Beam's BatchElements: by default it tunes each batch's size to how long the last ones took,
# so where batches end differs from run to run, and so does the order in which float32
# partial sums (a mean, a variance) are added: a z-score's mean was 317.05603 in one run and
# 317.0561 in the next. tfx_bsl's absl flag `tfxio_use_byte_size_batching` (tfx_bsl 1.16.1,
# tfx_bsl/coders/batch_util.py `_UseByteSizeBatching`) batches by byte size instead: the same
# data gives the same batches. Flags are not parsed in a component's process, where tfx_bsl
# reads the flag's default, so that default is what is set (before the component builds its Beam
# pipeline).
# BulkInferrer's RunInference (tfx_bsl 1.16.1, tfx_bsl/beam/run_inference.py) batches with
# Beam's BatchElements too, through `_ModelHandlerWrapper`, which does not pass on its handler's
# `batch_elements_kwargs()` (the InferenceSpecType's batch_parameters, which TFX 1.16's
# BulkInferrer never sets either): batch sizes are tuned by timing, and a row's prediction differs
# in the last bits with the size of the batch it is computed in (TensorFlow's matrix kernels block
# by size; 2 of 1,001 answers moved by up to 6e-8 between two runs). Batches get a fixed size.
FIXED_INFERENCE_BATCH_SIZE = 1000


def batch_deterministically() -> None:
    from absl import flags
    from tfx_bsl.beam import run_inference
    from tfx_bsl.coders import batch_util  # noqa: F401 - defines the flag

    flags.FLAGS.set_default("tfxio_use_byte_size_batching", True)
    wrapper = run_inference._ModelHandlerWrapper  # noqa: SLF001

    def fixed_size_unless_given(self):
        return self._model_handler.batch_elements_kwargs() or {  # noqa: SLF001
            "min_batch_size": FIXED_INFERENCE_BATCH_SIZE,
            "max_batch_size": FIXED_INFERENCE_BATCH_SIZE,
        }

    wrapper.batch_elements_kwargs = fixed_size_unless_given


# ---- CsvExampleGen's reader and hash split --------------------------------------------------
# SpanCsvExampleGen reads each span with TFX's own CSV-to-tf.Example transform and splits it with
# TFX's own partition function, so a span is parsed and split exactly as CsvExampleGen would.
# TFX 1.16: `_CsvToExample` (csv_example_gen/executor.py) reads `_beam_pipeline_args` from the
# exec properties, which BaseExampleGenExecutor.GenerateExamplesByBeam puts there from the
# executor's private `_beam_pipeline_args`; `_PartitionFn` (base_example_gen_executor.py).
def _csv_to_example():
    from tfx.components.example_gen.csv_example_gen import executor as csv_executor

    return csv_executor._CsvToExample  # noqa: SLF001


def _hash_partition_fn():
    from tfx.components.example_gen import base_example_gen_executor

    return base_example_gen_executor._PartitionFn  # noqa: SLF001


# The fast CSV path (span_example_gen/fast_csv.py) must type each cell exactly as TFX does; for
# the cells its vectorized checks leave undecided it asks tfx_bsl 1.16.1's private
# `_InferValueType` (tfx_bsl/coders/csv_decoder.py), the function TFX's ColumnTypeInferrer uses
# per cell (INT, FLOAT, STRING, or UNKNOWN for an empty cell).
def infer_csv_value_type(cell: bytes) -> Any:
    from tfx_bsl.coders import csv_decoder

    return csv_decoder._InferValueType(cell)  # noqa: SLF001


def beam_args_for_csv_reader(executor: Any, exec_properties: dict[str, Any]) -> None:
    """Puts the executor's Beam options where `CsvToExample` looks for them."""
    exec_properties["_beam_pipeline_args"] = executor._beam_pipeline_args or []  # noqa: SLF001


def init_example_gen_with_spec(component: Any, spec: Any) -> None:
    """Initializes a FileBasedExampleGen subclass from a ready spec.

    TFX 1.16's FileBasedExampleGen.__init__ builds its own spec from fixed arguments and has no
    way to add parameters; BaseBeamComponent.__init__ (its grandparent) takes the spec as is.
    """
    from tfx.dsl.components.base import base_beam_component

    base_beam_component.BaseBeamComponent.__init__(component, spec=spec)


# ---- The Evaluator's baseline ---------------------------------------------------------------
# TFX 1.16's LatestBlessedModelStrategy does its matching of models to blessings in the private
# `_resolve(input_dict, model_channel_key, model_blessing_channel_key)`; the project's strategy
# filters the candidate out first and then calls it.
# ---- TFDV's statistics without Beam ------------------------------------------------------------
# TFDV 1.16 (tensorflow_data_validation/statistics/stats_impl.py): `generate_statistics_in_memory`
# runs the generators `get_generators(options, in_memory=True)` gives over one Arrow record batch
# (`add_input` to a new accumulator each) and turns the accumulators into statistics with
# `extract_statistics_output`; tfdv's public `generate_statistics_from_dataframe` wraps it for
# pandas frames only. The executor adds many batches to the same accumulators, as TFDV's Beam
# combiner does.
def statistics_generators(options: Any) -> list[Any]:
    from tensorflow_data_validation.statistics import stats_impl

    return stats_impl.get_generators(options, in_memory=True)


def statistics_from_accumulators(accumulators: list[Any], generators: list[Any]) -> Any:
    from tensorflow_data_validation.statistics import stats_impl

    return stats_impl.extract_statistics_output(accumulators, generators)


def latest_blessed_model(
    strategy: Any,
    input_dict: dict[str, list],
    model_key: str,
    model_blessing_key: str,
) -> dict[str, list]:
    return strategy._resolve(input_dict, model_key, model_blessing_key)  # noqa: SLF001


# ---- InfraValidator's executor and TF Serving client ----------------------------------------
def _infra_validator_executor_base():
    from tfx.components.infra_validator import executor as infra_validator_executor

    class InfraValidatorExecutorBase(infra_validator_executor.Executor):
        """TFX 1.16's InfraValidator executor with its private steps under public names.

        Its public `Do` parses the specs, installs the SIGTERM handler and cleans up, then calls the
        private `_Do` (build requests, prepare the model path, validate with retries, mark the
        blessing), which calls `_ValidateOnce` per attempt (start a server, wait, query, stop).
        Subclasses override `validate` and `validate_once` and use the helpers below.
        """

        def validate(self, model, examples, blessing, serving_spec, validation_spec, request_spec):
            return super()._Do(
                model, examples, blessing, serving_spec, validation_spec, request_spec
            )

        def validate_once(
            self, model_path, serving_binary, serving_spec, validation_spec, requests
        ):
            return super()._ValidateOnce(
                model_path, serving_binary, serving_spec, validation_spec, requests
            )

        def prepare_model_path(self, model, serving_spec) -> str:
            """The model in TF Serving's directory layout (copied to a temporary one if needed)."""
            return self._PrepareModelPath(model, serving_spec)

        def validate_with_retry(
            self, model_path, serving_binary, serving_spec, validation_spec, requests
        ) -> bool:
            return self._ValidateWithRetry(
                model_path=model_path,
                serving_binary=serving_binary,
                serving_spec=serving_spec,
                validation_spec=validation_spec,
                requests=requests,
            )

        def create_warmup_model(self, blessing, model_path, requests) -> None:
            self._CreateWarmupModel(blessing, model_path, warmup_requests=requests)

        # The private hooks TFX calls, routed to the public names above.
        def _Do(self, model, examples, blessing, serving_spec, validation_spec, request_spec):  # noqa: N802
            return self.validate(
                model, examples, blessing, serving_spec, validation_spec, request_spec
            )

        def _ValidateOnce(
            self, model_path, serving_binary, serving_spec, validation_spec, requests
        ):  # noqa: N802
            return self.validate_once(
                model_path, serving_binary, serving_spec, validation_spec, requests
            )

    return InfraValidatorExecutorBase


def _evaluator_executor():
    """TFX 1.16's Evaluator executor (TFMA, thresholds, blessing), not in `tfx.v1`."""
    from tfx.components.evaluator import executor as evaluator_executor

    return evaluator_executor.Executor


def _tensorflow_serving_client_base():
    from tfx.components.infra_validator.model_server_clients import tensorflow_serving_client

    class TensorFlowServingClientBase(tensorflow_serving_client.TensorFlowServingClient):
        """TFX 1.16's TF Serving client with its private stubs and hooks under public names.

        Its public `WaitUntilModelLoaded` and `SendRequests` call the private `_GetModelStatus` and
        `_SendRequest`; subclasses override `get_model_status` and `send_request`.
        """

        @property
        def model_name(self) -> str:
            return self._model_name

        @property
        def model_service(self):
            return self._model_service

        @property
        def prediction_service(self):
            return self._prediction_service

        def get_model_status(self):
            return super()._GetModelStatus()

        def send_request(self, request) -> None:
            super()._SendRequest(request)

        def _GetModelStatus(self):  # noqa: N802
            return self.get_model_status()

        def _SendRequest(self, request) -> None:  # noqa: N802
            self.send_request(request)

    return TensorFlowServingClientBase


# ---- Keras export ---------------------------------------------------------------------------
# Keras 3.6's ExportArchive saves only Keras variables and Keras lookup layers; tf.Transform's
# vocabulary tables live in the transform layer's loaded graph and must hang off the object the
# archive saves (`ExportArchive._tf_trackable`), or saving fails with "untracked resource".
def attach_to_export_archive(archive: Any, name: str, trackable: Any) -> None:
    setattr(archive._tf_trackable, name, trackable)  # noqa: SLF001


# ---- SavedModel signatures without loading the model ----------------------------------------
# TF 2.16 has no public parser for saved_model.pb; `loader_impl.parse_saved_model` reads it
# without building a graph or restoring variables (loading would take seconds per model).
def parse_saved_model(path: str):
    from tensorflow.python.saved_model import loader_impl

    return loader_impl.parse_saved_model(path)


_BUILT_ON_FIRST_USE = {
    "CsvToExample": _csv_to_example,
    "hash_partition_fn": _hash_partition_fn,
    "InfraValidatorExecutorBase": _infra_validator_executor_base,
    "TensorFlowServingClientBase": _tensorflow_serving_client_base,
    "EvaluatorExecutor": _evaluator_executor,
}


def __getattr__(name: str) -> Any:
    if name not in _BUILT_ON_FIRST_USE:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = globals()[name] = _BUILT_ON_FIRST_USE[name]()
    return value

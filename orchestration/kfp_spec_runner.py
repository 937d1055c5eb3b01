"""Runs a compiled KFP v2 pipeline spec on this machine, task by task, as a KFP launcher would.

For each task, once the tasks it depends on have run, it builds the `ExecutorInput` a KFP launcher builds (the task's
constant parameters, its upstream tasks' output artifacts with their metadata, its own output
artifact URIs under the pipeline root, an output file), runs the container's exact command and
arguments (`{{$}}` replaced by that JSON, the ExampleGen driver hook first when the spec has one),
and reads back the `ExecutorOutput` the task wrote to feed downstream tasks. Only the interpreter
differs: `python` is this environment's, standing in for the image's.

Resolver tasks (KFP system tasks that query the cluster's ML Metadata) resolve to nothing, as
they do on a pipeline's first run. This is a verification tool: it proves that what the compiler
wrote runs; it does not replace a cluster.
"""

from __future__ import annotations

import concurrent.futures
import copy
import dataclasses
import graphlib
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import yaml

PLACEHOLDER = "{{$}}"


@dataclasses.dataclass
class TaskResult:
    name: str
    kind: str  # "container" or "resolver"
    seconds: float
    outputs: dict[str, list[dict]]
    log_path: Path | None = None


class TaskFailed(Exception):
    def __init__(self, task: str, returncode: int, log_path: Path):
        super().__init__(f"task {task} exited with code {returncode}; its log: {log_path}")
        self.task, self.returncode, self.log_path = task, returncode, log_path


def load_pipeline_spec(path: Path) -> dict:
    """A PipelineSpec dict from TFX's PipelineJob JSON or a bare spec (JSON or YAML)."""
    text = path.read_text()
    document = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
    return document.get("pipelineSpec", document)


def _upstream(spec: dict) -> dict[str, set[str]]:
    """Each task of the root DAG -> the tasks it waits for (control and data edges)."""
    tasks = spec["root"]["dag"]["tasks"]
    upstream = {name: set(task.get("dependentTasks", [])) for name, task in tasks.items()}
    for name, task in tasks.items():
        for source in task.get("inputs", {}).get("artifacts", {}).values():
            producer = source.get("taskOutputArtifact", {}).get("producerTask")
            if producer:
                upstream[name].add(producer)
    return upstream


def _sorter(spec: dict) -> graphlib.TopologicalSorter:
    sorter = graphlib.TopologicalSorter(_upstream(spec))
    sorter.prepare()  # raises graphlib.CycleError, naming the cycle
    return sorter


def task_order(spec: dict) -> list[str]:
    """Tasks of the root DAG, each after every task it depends on."""
    sorter = _sorter(spec)
    order: list[str] = []
    while sorter.is_active():
        ready = sorted(sorter.get_ready())  # sorted: the same order every time
        order.extend(ready)
        sorter.done(*ready)
    return order


def run_spec(
    spec: dict,
    pipeline_root: Path,
    logs_dir: Path,
    only_tasks: set[str] | None = None,
    env: dict[str, str] | None = None,
    python: str = sys.executable,
    timeout: int = 1800,
    on_task_done: Callable[[int, TaskResult], None] | None = None,
    parallelism: int = os.cpu_count() or 1,
) -> dict[str, TaskResult]:
    """Runs the spec's tasks (all, or `only_tasks` and nothing downstream of a skipped one), up to
    `parallelism` at once as a cluster would run independent tasks; `on_task_done(position,
    result)` is called after each. When a task fails, the running ones finish and nothing new
    starts; TaskFailed names the task."""
    logs_dir.mkdir(parents=True, exist_ok=True)
    results: dict[str, TaskResult] = {}
    sorter = _sorter(spec)
    with concurrent.futures.ThreadPoolExecutor(max_workers=parallelism) as pool:
        running: dict[concurrent.futures.Future, str] = {}
        failure: TaskFailed | None = None
        while sorter.is_active() and failure is None:
            for name in sorted(sorter.get_ready()):
                if only_tasks is not None and name not in only_tasks:
                    sorter.done(name)
                    continue
                # Upstream results are complete before a task is submitted; only this thread
                # writes `results`.
                running[
                    pool.submit(
                        _run_task,
                        spec,
                        name,
                        dict(results),
                        pipeline_root,
                        logs_dir,
                        env,
                        python,
                        timeout,
                    )
                ] = name
            if not running:
                continue
            finished, _ = concurrent.futures.wait(
                running, return_when=concurrent.futures.FIRST_COMPLETED
            )
            for future in finished:
                name = running.pop(future)
                try:
                    results[name] = future.result()
                except TaskFailed as e:
                    failure = failure or e
                    continue
                sorter.done(name)
                if on_task_done:
                    on_task_done(len(results), results[name])
        concurrent.futures.wait(running)
    if failure is not None:
        raise failure
    return results


def _run_task(spec, name, results, pipeline_root, logs_dir, env, python, timeout) -> TaskResult:
    task = spec["root"]["dag"]["tasks"][name]
    component = spec["components"][task["componentRef"]["name"]]
    executor = spec["deploymentSpec"]["executors"][component["executorLabel"]]
    if "resolver" in executor:
        outputs = {key: [] for key in executor["resolver"]["outputArtifactQueries"]}
        return TaskResult(name, "resolver", 0.0, outputs)
    started = time.monotonic()
    executor_input = _executor_input(name, task, component, results, pipeline_root)
    log_path = logs_dir / f"{name}.log"
    container = executor["container"]
    hooks = [container["lifecycle"]["preCacheCheck"]] if "lifecycle" in container else []
    for hook in hooks:
        _run_container_step(hook, executor_input, python, log_path, env, timeout, name)
        _apply_driver_output(executor_input)
    _run_container_step(container, executor_input, python, log_path, env, timeout, name)
    outputs = _read_outputs(executor_input)
    return TaskResult(name, "container", time.monotonic() - started, outputs, log_path)


def _apply_driver_output(executor_input: dict) -> None:
    """What a KFP launcher does after the ExampleGen driver hook: the parameters it resolved
    (span, version, input fingerprint, the input config with the span filled in) replace the
    task's inputs before the executor runs."""
    output_file = Path(executor_input["outputs"]["outputFile"])
    resolved = json.loads(output_file.read_text()).get("parameterValues", {})
    for key, value in resolved.items():  # google.protobuf.Value JSON: a plain number or string
        if isinstance(value, str):
            parameter = {"stringValue": value}
        elif float(value).is_integer():
            parameter = {"intValue": int(value)}
        else:
            parameter = {"doubleValue": value}
        executor_input["inputs"]["parameters"][key] = parameter


def _executor_input(
    name: str, task: dict, component: dict, results: dict[str, TaskResult], root: Path
) -> dict:
    task_root = root / name
    inputs: dict = {"parameters": {}, "artifacts": {}}
    for key, value in task.get("inputs", {}).get("parameters", {}).items():
        inputs["parameters"][key] = value["runtimeValue"]["constantValue"]
    for key, source in task.get("inputs", {}).get("artifacts", {}).items():
        ref = source["taskOutputArtifact"]
        producer = results.get(ref["producerTask"])
        if producer is None:
            raise ValueError(f"task {name} needs {ref['producerTask']}, which did not run")
        inputs["artifacts"][key] = {
            "artifacts": copy.deepcopy(producer.outputs[ref["outputArtifactKey"]])
        }
    outputs: dict = {"artifacts": {}, "outputFile": str(task_root / "executor_output.json")}
    for key, definition in component.get("outputDefinitions", {}).get("artifacts", {}).items():
        schema = definition["artifactType"].get("instanceSchema", "")
        uri = task_root / key
        outputs["artifacts"][key] = {
            "artifacts": [
                {
                    "name": f"{name}-{key}",
                    "type": {"instanceSchema": schema} if schema else definition["artifactType"],
                    "uri": str(uri),
                    "metadata": {},
                }
            ]
        }
    task_root.mkdir(parents=True, exist_ok=True)
    return {"inputs": inputs, "outputs": outputs}


def _run_container_step(step, executor_input, python, log_path, env, timeout, name) -> None:
    command = [python if part == "python" else part for part in step["command"]]
    serialized = json.dumps(executor_input)
    args = [serialized if part == PLACEHOLDER else part for part in step.get("args", [])]
    with log_path.open("a") as log:
        log.write(f"$ {' '.join(command)} ...\n")
        log.flush()
        completed = subprocess.run(
            [*command, *args],
            stdout=log,
            stderr=subprocess.STDOUT,
            env={**os.environ, **(env or {})},
            timeout=timeout,
            check=False,
        )
    if completed.returncode != 0:
        raise TaskFailed(name, completed.returncode, log_path)


def _read_outputs(executor_input: dict) -> dict[str, list[dict]]:
    """The task's output artifacts, updated with what it wrote to its ExecutorOutput file."""
    outputs = {k: v["artifacts"] for k, v in executor_input["outputs"]["artifacts"].items()}
    output_file = Path(executor_input["outputs"]["outputFile"])
    if output_file.exists():
        written = json.loads(output_file.read_text() or "{}").get("artifacts", {})
        for key, artifact_list in written.items():
            if key in outputs:
                for mine, theirs in zip(
                    outputs[key], artifact_list.get("artifacts", []), strict=False
                ):
                    mine["metadata"].update(theirs.get("metadata", {}))
                    mine["uri"] = theirs.get("uri", mine["uri"])
    return outputs

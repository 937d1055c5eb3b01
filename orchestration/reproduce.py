"""Replaying a recorded run: what it depended on, checked against now, and the same run again.

`check_replay` reads what run R recorded in ML Metadata (pipeline/run_environment.py: code, lock,
versions, profile, settings, seeds; each ExampleGen's data files with their hashes; the model the
Evaluator compared with) and lists every difference with what is here now, data included: a file
changed or gone, a newer span that a run started now would read instead. `replay_config` is R's
configuration with a fresh output directory; `seed_baseline` gives the fresh store R's baseline
model, so that the replay's Evaluator compares with the same model R's did.
"""

from __future__ import annotations

import collections.abc
import dataclasses
import typing
from pathlib import Path
from types import MappingProxyType
from typing import Any

from ml_metadata.proto import metadata_store_pb2

from components import data_files
from components import profile as profiles
from components.span_example_gen import spans
from metadata import runs
from metadata.run_comparison import run_outputs_by_node
from metadata.store import (
    Artifact,
    StoreIndex,
    input_artifacts,
    open_store,
    properties,
)
from pipeline import node_ids, run_environment
from pipeline.config import PROFILE_SETTINGS, ConfigError, PipelineConfig
from pipeline.metadata_location import MetadataLocation
from pipeline.run_environment import Difference

REPRODUCTIONS_FOLDER = "reproductions"
_BASELINE_EXECUTION_TYPE = "ReplayedBaseline"


class CannotReproduce(Exception):
    """The run cannot be replayed at all (nothing recorded, its profile gone); the message says
    why and what to do."""


@dataclasses.dataclass
class Baseline:
    """The model run R's Evaluator compared with, and its blessing (None: R had none)."""

    model: Artifact
    model_type: metadata_store_pb2.ArtifactType
    blessing: Artifact
    blessing_type: metadata_store_pb2.ArtifactType


@dataclasses.dataclass
class ReplayCheck:
    run_id: str
    pipeline_name: str
    recorded: dict[str, Any]
    output_dir: Path  # where run R wrote
    differences: list[Difference]
    data_files_checked: int
    baseline: Baseline | None

    @property
    def refusals(self) -> list[Difference]:
        return [d for d in self.differences if not d.informational]


def check_replay(index: StoreIndex, run_ref: str) -> ReplayCheck:
    """Run `run_ref` (id, prefix or position) and every difference between what it recorded
    and what is here now."""
    run = runs.find_run(index, run_ref)
    run_id = run["run_id"]
    context = runs.run_context(index, run_id)
    recorded = runs.recorded_environment(context)
    if recorded is None:
        raise CannotReproduce(
            f"run {run_id} has no record of what it depended on (code, lock, versions, settings): "
            "it ran before runs recorded them, or on Kubeflow. Runs from now on can be reproduced."
        )
    output_dir = Path(run["output_dir"] or ".")
    config = replay_config(recorded, output_dir)
    now = run_environment.capture(config)
    # The replay uses the recorded settings; a setting the profile gives differs only when the
    # profile does, which its own differences name key by key.
    differences = run_environment.differences(recorded, now, with_settings=False)
    outputs = run_outputs_by_node(index, run_id)
    data, checked = _data_differences(outputs, config)
    differences += data
    baseline, baseline_difference = _baseline(index, outputs, run_id)
    differences += baseline_difference
    return ReplayCheck(
        run_id, config.pipeline_name, recorded, output_dir, differences, checked, baseline
    )


# ---- the configuration ---------------------------------------------------------------------------
def _restored(hint: Any, value: Any) -> Any:
    """A recorded setting's JSON value as PipelineConfig holds it (`hint`: the field's type)."""
    if value is None:
        return None
    if hint is Path or Path in typing.get_args(hint):
        return Path(value)
    origin = typing.get_origin(hint)
    if origin is tuple:
        return tuple(value)
    if origin in (collections.abc.Mapping, dict):
        return MappingProxyType(dict(value))
    return value


def replay_config(
    recorded: dict[str, Any], output_dir: Path, metadata: MetadataLocation | None = None
) -> PipelineConfig:
    """Run R's configuration writing to `output_dir`: its profile as it is now, with the settings
    R had that do not come from the profile (or that R gave instead of the profile's)."""
    settings = recorded["settings"]
    overrides = set(recorded.get("profile_overrides", ()))
    profile_dir = Path(settings["profile_dir"])
    hints = typing.get_type_hints(PipelineConfig)
    kept = {
        name: _restored(hints[name], value)
        for name, value in settings.items()
        if name not in PROFILE_SETTINGS or name in overrides
    }
    try:
        return PipelineConfig.from_profile(
            profile_dir, **kept, output_dir=output_dir, metadata=metadata
        )
    except profiles.ProfileError as e:
        raise CannotReproduce(f"the run's profile cannot be read now: {e}") from e
    except ConfigError as e:
        raise CannotReproduce(f"the run's setting {e.setting} {e.problem}") from e


def default_replay_dir(check: ReplayCheck) -> Path:
    """<the run's output dir>/reproductions/<run id>, numbered when taken."""
    base = check.output_dir / REPRODUCTIONS_FOLDER / check.run_id.replace(":", "-")
    candidate, number = base, 2
    while candidate.exists():
        candidate = base.with_name(f"{base.name}.{number}")
        number += 1
    return candidate


# ---- data -----------------------------------------------------------------------------------------
def _data_differences(
    outputs: dict[str, Artifact], config: PipelineConfig
) -> tuple[list[Difference], int]:
    """The data files run R read (as its ExampleGens recorded them) against the files a run of
    `config` started now reads; returns the differences and how many recorded files were checked."""
    recorded: dict[str, dict[str, Any]] = {}
    differences = []
    for node, input_dir, window in (
        (node_ids.LABELED_EXAMPLE_GEN, config.labeled_data_dir, config.training_spans),
        (node_ids.UNLABELED_EXAMPLE_GEN, config.unlabeled_data_dir, None),
    ):
        examples = outputs.get(f"{node}.examples")
        if examples is None:
            continue
        files = data_files.parse(properties(examples).get(data_files.DATA_FILES_PROPERTY))
        if not files:
            detail = (
                "were written before ExampleGen recorded the hashes of the files it read: the "
                "run's data cannot be checked"
            )
            return [Difference("data", f"{node}'s examples", None, None, detail=detail)], 0
        recorded.update({f["path"]: f for f in files})
        read_spans = ", ".join(
            str(s) for s in sorted({f["span"] for f in files if f["span"] is not None})
        )
        now_read = spans.files_a_run_reads(str(input_dir), config.span_pattern, window)
        for span, paths in now_read.items():
            differences += [
                Difference(
                    "data",
                    path,
                    None,
                    "present",
                    detail=f"is new: a run started now reads it (span {span}; the run read "
                    f"span(s) {read_spans or 'none'})",
                )
                for path in paths
                if path not in recorded
            ]
    for path, record in sorted(recorded.items()):
        if not Path(path).is_file():
            differences.append(Difference("data", path, record["sha256"], None))
            continue
        digest = data_files.file_record(path, record["span"])["sha256"]
        if digest != record["sha256"]:
            differences.append(Difference("data", path, record["sha256"], digest))
    return differences, len(recorded)


# ---- the Evaluator's baseline ----------------------------------------------------------------------
def _baseline(
    index: StoreIndex, outputs: dict[str, Artifact], run_id: str
) -> tuple[Baseline | None, list[Difference]]:
    """The model (and its blessing) run R's Evaluator compared with."""
    blessing = outputs.get(f"{node_ids.EVALUATOR}.blessing")
    if blessing is None:
        return None, []
    execution_id = index.producing_execution.get(blessing.id)
    inputs = input_artifacts(index.store, execution_id) if execution_id else {}
    models = inputs.get("baseline_model") or []
    if not models:
        return None, []
    model = models[0]
    blessings = [
        a
        for a in index.store.get_artifacts_by_type("ModelBlessing")
        if properties(a).get("current_model_id") == model.id and properties(a).get("blessed") == 1
    ]
    if not blessings:
        return None, []
    if not Path(model.uri).exists():
        return None, [
            Difference(
                "baseline",
                f"model {model.id}",
                model.uri,
                None,
                detail=f"(the model run {run_id} was compared with) is gone from {model.uri}",
            )
        ]
    type_of = {t.id: t for t in index.store.get_artifact_types()}
    return Baseline(
        model, type_of[model.type_id], blessings[-1], type_of[blessings[-1].type_id]
    ), []


def seed_baseline(location: MetadataLocation, pipeline_name: str, baseline: Baseline) -> None:
    """Records run R's baseline model and its blessing in the replay's fresh store, where the
    Evaluator's baseline resolver finds it (an execution of the pipeline's context outputs them),
    pointing at R's files."""
    store = open_store(location, writable=True)

    def new_type(artifact_type: metadata_store_pb2.ArtifactType) -> int:
        copied = metadata_store_pb2.ArtifactType()
        copied.CopyFrom(artifact_type)
        copied.ClearField("id")
        return store.put_artifact_type(copied, can_add_fields=True, can_omit_fields=True)

    def new_artifact(artifact: Artifact, type_id: int) -> Artifact:
        copied = Artifact()
        copied.CopyFrom(artifact)
        for field in ("id", "type", "create_time_since_epoch", "last_update_time_since_epoch"):
            copied.ClearField(field)
        copied.type_id = type_id
        copied.state = Artifact.LIVE
        return copied

    context_type_id = store.put_context_type(
        metadata_store_pb2.ContextType(name="pipeline"), can_add_fields=True, can_omit_fields=True
    )
    context = store.get_context_by_type_and_name("pipeline", pipeline_name)
    if context is None:
        context = metadata_store_pb2.Context(type_id=context_type_id, name=pipeline_name)
        [context.id] = store.put_contexts([context])
    model = new_artifact(baseline.model, new_type(baseline.model_type))
    [model.id] = store.put_artifacts([model])
    blessing = new_artifact(baseline.blessing, new_type(baseline.blessing_type))
    blessing.custom_properties["current_model_id"].int_value = model.id
    blessing.custom_properties["replayed_from_model_id"].int_value = baseline.model.id
    execution_type_id = store.put_execution_type(
        metadata_store_pb2.ExecutionType(name=_BASELINE_EXECUTION_TYPE)
    )
    execution = metadata_store_pb2.Execution(
        type_id=execution_type_id, last_known_state=metadata_store_pb2.Execution.COMPLETE
    )
    output = metadata_store_pb2.Event.OUTPUT

    def event(key: str) -> metadata_store_pb2.Event:
        made = metadata_store_pb2.Event(type=output)
        made.path.steps.add().key = key
        made.path.steps.add().index = 0
        return made

    store.put_execution(
        execution, [(model, event("model")), (blessing, event("blessing"))], [context]
    )

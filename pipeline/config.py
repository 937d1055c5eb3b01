"""The one typed, frozen settings object every runner hands to `create_pipeline()`.

Defaults and allowed ranges live here, next to each setting, and are checked once, when the
object is built: an invalid value raises `ConfigError` naming the setting. The settings a dataset
profile gives (its data, schema, name, thresholds, user code and budgets) have no default here:
`PipelineConfig.from_profile(profile_dir, **overrides)` builds the config of a profile, and the
command line chooses which profile is the default (cli/options.py). Importing this module reads
no file.
"""

from __future__ import annotations

import dataclasses
import posixpath
from collections.abc import Mapping
from pathlib import Path
from types import MappingProxyType

from components import profile as profiles
from components.profile import Profile
from pipeline.metadata_location import MetadataLocation, sqlite_location

PROJECT_ROOT = Path(__file__).resolve().parent.parent
# Where a run writes when not told otherwise: metadata.db, pipeline_root/, serving_model/, logs/.
DEFAULT_OUTPUT_DIR = PROJECT_ROOT / "outputs"


def metadata_path_in(output_dir: Path) -> Path:
    """The output directory's own SQLite store: the default ML Metadata location."""
    return output_dir / "metadata.db"


class ConfigError(ValueError):
    """A setting out of its allowed range; `setting` is the PipelineConfig field's name."""

    def __init__(self, setting: str, problem: str):
        super().__init__(f"{setting} {problem}")
        self.setting = setting
        self.problem = problem


def _at_least(minimum: float, default):
    """A field whose value must be >= `minimum`."""
    return dataclasses.field(default=default, metadata={"min": minimum})


def _fraction(default: float):
    """A field whose value must be within [0, 1]."""
    return dataclasses.field(default=default, metadata={"min": 0.0, "max": 1.0})


def _from_profile(**metadata):
    """A required field: a profile gives it (`profile_settings`); the command line may override
    it."""
    return dataclasses.field(metadata={"from_profile": True, **metadata})


# Beam's DirectRunner modes; "auto" lets the orchestration choose by data size (see
# orchestration/beam_mode.py). Another runner is chosen with an extra Beam option (--runner=...).
BEAM_MODES = ("auto", "in_memory", "multi_processing")


def profile_settings(profile_dir: Path, profile: Profile) -> dict:
    """PipelineConfig settings a profile gives: paths relative to its file, its name, budgets,
    thresholds and user code (the fields `PROFILE_SETTINGS` names)."""
    base = profiles.profile_file(profile_dir).resolve().parent
    return {
        "profile": profile,
        "profile_dir": base,
        "pipeline_name": profile.name,
        "data_dir": (base / profile.data_dir).resolve(),
        "curated_schema_file": (base / profile.schema_file).resolve(),
        "drift_thresholds": MappingProxyType(dict(profile.data_checks.drift)),
        "skew_thresholds": MappingProxyType(profile.skew),
        "preprocessing_fn": profile.code.preprocessing_fn,
        "run_fn": profile.code.run_fn,
        "tuner_fn": profile.code.tuner_fn,
        "search_space_fn": profile.code.search_space_fn,
        "tuner_trials": profile.training.tuner_trials,
        "tuner_train_steps": profile.training.tuner_train_steps,
        "train_steps": profile.training.train_steps,
        "eval_steps": profile.training.eval_steps,
    }


@dataclasses.dataclass(frozen=True, kw_only=True)
class PipelineConfig:
    """Everything that decides what a run does and where it reads and writes."""

    # The dataset profile (components/profile.py) and the folder its paths are relative to. The
    # settings a profile gives (`_from_profile()`) are required: `from_profile()` fills them in
    # from a profile, and a keyword given to it overrides the profile's value.
    profile: Profile = _from_profile()
    profile_dir: Path = _from_profile()
    data_dir: Path = _from_profile()
    output_dir: Path = DEFAULT_OUTPUT_DIR
    curated_schema_file: Path = _from_profile()
    pipeline_name: str = _from_profile()  # Kubeflow: [a-z0-9][a-z0-9-]*
    # Spans: one folder per batch under labeled/ and unlabeled/, matched by this pattern ({SPAN}
    # is the span number). A run ingests the latest span and trains on the latest
    # `training_spans` spans; the span before the latest is the drift baseline.
    span_pattern: str = "span-{SPAN}/*.csv"
    training_spans: int = _at_least(1, 2)
    drift_thresholds: Mapping[str, float] = _from_profile()
    skew_thresholds: Mapping[str, float] = _from_profile()
    # User code, as importable dotted paths (the same paths work inside a Kubeflow image).
    preprocessing_fn: str = _from_profile()
    run_fn: str = _from_profile()
    tuner_fn: str = _from_profile()
    # The search space tuner_fn explores: with the tuner_fn module, the Tuner's cache key.
    search_space_fn: str = _from_profile()
    # Force a new search even when data and search space are unchanged (any new value does).
    retune_token: str | None = None
    # Training budget.
    tuner_trials: int = _from_profile(min=1)
    tuner_train_steps: int = _from_profile(min=1)
    train_steps: int = _from_profile(min=1)
    eval_steps: int = _from_profile(min=1)
    seed: int = 42
    # Bit-identical results for the same data, code and settings: TensorFlow's op determinism in
    # Tuner and Trainer, every trial seeded, a fixed hash seed in the component processes
    # (pipeline/run_environment.py records what a run depended on; `reproduce` replays it).
    deterministic: bool = True
    # ExampleGen's deterministic hash split, train:eval buckets.
    train_buckets: int = _at_least(1, 3)
    eval_buckets: int = _at_least(1, 1)
    # InfraValidator: the real `tensorflow_model_server` to use (None: one on PATH, else the
    # project's model server), how long a model may take to load, per-request timeout, attempts.
    model_server_binary: str | None = None
    infra_max_loading_seconds: int = _at_least(1, 120)
    infra_request_timeout_seconds: float = _at_least(0.001, 30.0)
    infra_num_tries: int = _at_least(1, 2)
    infra_num_requests: int = _at_least(1, 10)
    beam_mode: str = dataclasses.field(default="auto", metadata={"choices": BEAM_MODES})
    # Beam pipeline options of the user's, after the ones the orchestration sets (later win).
    extra_beam_args: tuple[str, ...] = ()
    enable_cache: bool = True
    # Transient faults (README, Faults and what happens): a component that failed from one (its
    # process killed, ML Metadata's server lost) is run again up to `retries` times, locally and
    # as Kubeflow's retry policy; ML Metadata calls that cannot reach the database are retried
    # with back-off for up to `metadata_retry_seconds` before the run gives up.
    retries: int = _at_least(0, 0)
    metadata_retry_seconds: float = _at_least(0.0, 60.0)
    # ML Metadata for local runs: None is the output directory's SQLite file (`metadata_path`);
    # a MySQL or PostgreSQL database is shared by many runs and machines.
    metadata: MetadataLocation | None = None
    # Where the pipeline reads and writes when it runs elsewhere (Kubeflow): object-store URIs
    # (gs://, s3://, ...) or paths inside the container image. None: the local paths above.
    data_uri: str | None = None
    pipeline_root_uri: str | None = None
    serving_model_uri: str | None = None
    curated_schema_uri: str | None = None

    @classmethod
    def from_profile(cls, profile_dir: Path, **settings) -> PipelineConfig:
        """The config of the profile in `profile_dir`; `settings` override what it gives."""
        profile = profiles.load(profile_dir)
        return cls(**{**profile_settings(profile_dir, profile), **settings})

    def __post_init__(self) -> None:
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            low, high = field.metadata.get("min"), field.metadata.get("max")
            choices = field.metadata.get("choices")
            if choices is not None and value not in choices:
                raise ConfigError(field.name, f"must be one of {', '.join(choices)}, got {value!r}")
            if low is not None and value < low:
                raise ConfigError(field.name, f"must be at least {low}, got {value}")
            if high is not None and value > high:
                raise ConfigError(field.name, f"must be at most {high}, got {value}")
        for name, thresholds in (
            ("drift_thresholds", self.drift_thresholds),
            ("skew_thresholds", self.skew_thresholds),
        ):
            for feature, threshold in thresholds.items():
                if not 0 <= threshold:
                    raise ConfigError(name, f"must be non-negative, got {threshold} for {feature}")

    # --- Locations create_pipeline() uses: strings, local paths or URIs alike. ---
    @property
    def labeled_data_location(self) -> str:
        return posixpath.join(self.data_uri or str(self.data_dir), "labeled")

    @property
    def unlabeled_data_location(self) -> str:
        return posixpath.join(self.data_uri or str(self.data_dir), "unlabeled")

    @property
    def pipeline_root_location(self) -> str:
        return self.pipeline_root_uri or str(self.pipeline_root)

    @property
    def serving_model_location(self) -> str:
        return self.serving_model_uri or str(self.serving_model_dir)

    @property
    def curated_schema_location(self) -> str:
        return self.curated_schema_uri or str(self.curated_schema_file)

    # --- Local paths: this machine's data, outputs and ML Metadata store. ---

    @property
    def labeled_data_dir(self) -> Path:
        """CSV files with the label column: ExampleGen's input for training and evaluation."""
        return self.data_dir / "labeled"

    @property
    def unlabeled_data_dir(self) -> Path:
        """CSV files without the label column: the batch BulkInferrer scores."""
        return self.data_dir / "unlabeled"

    @property
    def metadata_path(self) -> Path:
        """The output directory's own SQLite store: the default ML Metadata location."""
        return metadata_path_in(self.output_dir)

    @property
    def metadata_location(self) -> MetadataLocation:
        return self.metadata or sqlite_location(self.metadata_path)

    @property
    def pipeline_root(self) -> Path:
        return self.output_dir / "pipeline_root"

    @property
    def serving_model_dir(self) -> Path:
        """TF Serving layout: <serving_model_dir>/<version>/saved_model.pb."""
        return self.output_dir / "serving_model" / self.pipeline_name

    @property
    def logs_dir(self) -> Path:
        return self.output_dir / "logs"


# The settings a profile gives: required fields, filled in by `from_profile()`.
PROFILE_SETTINGS = frozenset(
    field.name for field in dataclasses.fields(PipelineConfig) if field.metadata.get("from_profile")
)

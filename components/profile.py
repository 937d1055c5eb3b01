"""Dataset profiles: one YAML file that says what a dataset is and how the chain treats it.

A profile names the data and curated schema, the label and the task (binary, multiclass,
regression), each column's kind, the evaluation slices, the drift and skew thresholds, model size,
training budgets, blessing thresholds and, optionally, user code by dotted path. It is read with
PyYAML and validated with pydantic: a mistake is reported with the key it is under
(`features.fare.kind: ...`).

The pipeline hands the parts each component needs to it in `custom_config` (Transform: label and
features; Tuner and Trainer: also model and budgets), so the same validated object is rebuilt
inside a Kubeflow task, and a change to a part re-runs only the components that read it.
"""

from __future__ import annotations

import dataclasses
import enum
import re
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

PROFILE_FILE_NAME = "profile.yaml"
# Kubeflow pipeline names (and so profile names): lower-case letters, digits and dashes.
PIPELINE_NAME_PATTERN = r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$"

TASKS = ("binary", "multiclass", "regression")

# The metric names a profile's blessing thresholds use, per task, and TFMA's metric for each:
# (TFMA MetricConfig class name, metric key TFMA writes).
METRICS: dict[str, dict[str, tuple[str, str]]] = {
    "binary": {
        "auc": ("AUC", "auc"),
        "accuracy": ("BinaryAccuracy", "binary_accuracy"),
        "precision": ("Precision", "precision"),
        "recall": ("Recall", "recall"),
    },
    "multiclass": {
        "accuracy": ("SparseCategoricalAccuracy", "sparse_categorical_accuracy"),
    },
    "regression": {
        "mse": ("MeanSquaredError", "mean_squared_error"),
        "mae": ("MeanAbsoluteError", "mean_absolute_error"),
        "rmse": ("RootMeanSquaredError", "root_mean_squared_error"),
    },
}
# The metric the trivial-predictor margin and the no-regression check apply to.
HEADLINE_METRIC = {"binary": "auc", "multiclass": "accuracy", "regression": "rmse"}
LOWER_IS_BETTER = {"mse", "mae", "rmse"}


class ProfileError(ValueError):
    """A profile that cannot be used; the message names the file and the key."""


class FeatureKind(str, enum.Enum):
    NUMERIC = "numeric"  # z-score
    BUCKETIZED = "bucketized"  # quantile buckets, embedded
    INTEGER_CATEGORY = "integer_category"  # 0..max used as ids directly, embedded
    VOCABULARY = "vocabulary"  # a vocabulary computed by tf.Transform, embedded
    BOOLEAN = "boolean"  # true/false as text (True/False, yes/no, y/n, t/f) or 0/1, embedded
    DATETIME = "datetime"  # dates or times: cyclical parts and an age (DATETIME_PARTS)
    TEXT = "text"  # free text: a vocabulary of its words, their embeddings averaged
    IGNORED = "ignored"  # in the data, not used by the model


# How a datetime column is written: ISO 8601 dates or date-times (2024-03-01, 2024-03-01 14:30,
# 2024-03-01T14:30:00Z; a time zone offset is read as written, not converted), or seconds or
# milliseconds since 1970-01-01 UTC.
DATETIME_FORMATS = ("iso", "epoch_seconds", "epoch_milliseconds")
# What Transform makes of a datetime: day of week, month and hour as points on a circle (sine
# and cosine, so that Sunday is next to Monday and December to January), and the age: the
# date's days since 1970, z-scored over the training data (newer is higher).
DATETIME_PARTS = ("day_of_week", "month", "hour", "age")
# Spellings of a boolean column's values (lower-cased), true first.
BOOLEAN_SPELLINGS = (("true", "false"), ("yes", "no"), ("y", "n"), ("t", "f"), ("1", "0"))
TRUE_VALUES = tuple(true for true, _ in BOOLEAN_SPELLINGS)
FALSE_VALUES = tuple(false for _, false in BOOLEAN_SPELLINGS)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Feature(_Strict):
    kind: FeatureKind
    buckets: Annotated[int, Field(ge=2, le=1000)] = 10  # bucketized
    max: Annotated[int, Field(ge=0)] | None = None  # integer_category: the largest id
    # vocabulary: most frequent values kept; text: most frequent words kept
    top_k: Annotated[int, Field(ge=1)] = 1000
    oov_buckets: Annotated[int, Field(ge=1)] = 10  # vocabulary, text: ids for the rest
    max_tokens: Annotated[int, Field(ge=1, le=1024)] = 32  # text: words read from each value
    format: Literal["iso", "epoch_seconds", "epoch_milliseconds"] = "iso"  # datetime
    parts: list[Literal["day_of_week", "month", "hour", "age"]] = [  # datetime
        "day_of_week",
        "month",
        "age",
    ]
    why: str | None = None  # a note for reviewers (init explains its guesses here)

    @model_validator(mode="after")
    def _settings_fit_the_kind(self) -> Feature:
        if self.kind == FeatureKind.INTEGER_CATEGORY and self.max is None:
            raise ValueError("an integer_category feature needs `max` (its largest value)")
        if self.kind == FeatureKind.DATETIME:
            if not self.parts:
                raise ValueError(
                    f"a datetime feature needs `parts` (some of {', '.join(DATETIME_PARTS)})"
                )
            if len(set(self.parts)) != len(self.parts):
                raise ValueError("`parts` lists a part twice")
        return self


@dataclasses.dataclass(frozen=True)
class ModelInput:
    """One Transform output the model reads: `numeric` (a float per row), `categorical` (an id
    per row, below `size`) or `tokens` (`length` ids per row below `size`, 0 for no word)."""

    name: str
    kind: Literal["numeric", "categorical", "tokens"]
    column: str  # the raw column it is made from
    size: int = 0
    length: int = 0


class PositiveWhen(_Strict):
    """A derived binary label: positive when `column > greater_than` (times `times_column`)."""

    greater_than: float
    times_column: str | None = None


class Label(_Strict):
    column: str
    task: Literal["binary", "multiclass", "regression"]
    # Class values as they appear in the column (strings or integers), in id order; a binary
    # label's second class is the positive one. Not used by regression or a derived label.
    classes: list[str] | None = None
    positive_when: PositiveWhen | None = None

    @field_validator("classes", mode="before")
    @classmethod
    def _classes_as_strings(cls, value: Any) -> Any:
        if isinstance(value, list):
            return [class_text(v) for v in value]
        return value

    @model_validator(mode="after")
    def _classes_fit_the_task(self) -> Label:
        if self.positive_when is not None and self.task != "binary":
            raise ValueError("positive_when derives a binary label; set task: binary")
        if self.task == "regression" and self.classes:
            raise ValueError("a regression label has no classes; remove `classes`")
        if self.task == "binary" and self.positive_when is None:
            if not self.classes or len(self.classes) != 2:
                raise ValueError(
                    "a binary label needs `classes` with its two values (the positive one "
                    "second), or `positive_when` to derive it"
                )
        if self.task == "multiclass" and (not self.classes or len(self.classes) < 2):
            raise ValueError("a multiclass label needs `classes` with at least two values")
        if self.classes and len(set(self.classes)) != len(self.classes):
            raise ValueError("`classes` lists a value twice")
        return self

    @property
    def class_names(self) -> list[str]:
        """What the exported classification signature returns, in id order."""
        if self.task == "regression":
            return []
        return list(self.classes) if self.classes else ["0", "1"]


class ModelSize(_Strict):
    """The network's size when not tuned, and the centre of the Tuner's search."""

    hidden_layers: Annotated[int, Field(ge=1, le=8)] = 2
    hidden_units: Annotated[int, Field(ge=1, le=4096)] = 64
    embedding_dim: Annotated[int, Field(ge=1, le=512)] = 8
    learning_rate: Annotated[float, Field(gt=0, le=1)] = 3e-3
    # A linear model of the same inputs added to the network's output (wide and deep).
    linear_part: bool = True


class Budgets(_Strict):
    tuner_trials: Annotated[int, Field(ge=1)] = 2
    tuner_train_steps: Annotated[int, Field(ge=1)] = 150
    train_steps: Annotated[int, Field(ge=1)] = 800
    eval_steps: Annotated[int, Field(ge=1)] = 20
    batch_size: Annotated[int, Field(ge=1)] = 128
    # Training is checked on the eval split this many times (at even steps); the weights of the
    # best check on the headline metric are kept, and training stops after `patience` checks
    # without a better one. false: train every step and keep the last weights.
    early_stopping: bool = True
    checks: Annotated[int, Field(ge=2, le=100)] = 8
    patience: Annotated[int, Field(ge=1)] = 3
    # balanced: each class's examples weigh total / (classes x its count) in the loss, so that
    # a rare class counts as much as a common one (imbalanced labels); none: every example 1.
    class_weights: Literal["none", "balanced"] = "none"


class Blessing(_Strict):
    # The candidate must beat the trivial predictor from the training statistics (AUC 0.5; the
    # majority class's accuracy; the training mean's RMSE) by this much: AUC and accuracy in
    # absolute points, RMSE as a fraction of the trivial predictor's.
    margin_over_trivial: Annotated[float, Field(ge=0, le=1)] = 0.05
    at_least: dict[str, float] = {}
    at_most: dict[str, float] = {}
    # No regression against the latest blessed model, on the headline metric: AUC or accuracy
    # may drop by at most this (absolute); RMSE may grow by at most this fraction.
    max_regression: Annotated[float, Field(ge=0)] = 0.01
    # The candidate may be at most this below the linear baseline (a linear model fitted on the
    # same transformed features, scored on the same eval split) on the headline metric: AUC or
    # accuracy in absolute points, RMSE as a fraction of the baseline's. None (the default):
    # the baseline is reported, not required.
    vs_linear_baseline: Annotated[float, Field(ge=0)] | None = None


class DataChecks(_Strict):
    # Largest allowed distance per column: the new span against the previous one (drift) and
    # the batch to score against the training data (skew). L-infinity distance for string and
    # categorical columns, approximate Jensen-Shannon divergence for numeric ones.
    drift: dict[str, Annotated[float, Field(ge=0)]] = {}
    # None: the drift thresholds without the label (the batch to score has none).
    skew: dict[str, Annotated[float, Field(ge=0)]] | None = None


class LiveQuality(_Strict):
    """Live quality, from labels joined to logged answers, against the Evaluator's figure for
    the served version on the headline metric."""

    # Fewer labelled rows in the window: the figures are shown, not judged.
    min_labels: Annotated[int, Field(ge=1)] = 50
    # AUC or accuracy may drop by at most this (absolute); RMSE may grow by this fraction.
    max_drop: Annotated[float, Field(ge=0)] = 0.05


class Monitoring(_Strict):
    """What `monitor` judges the served traffic by. The distance thresholds default to the data
    checks' (skew: training data against live traffic; drift: the previous window against this
    one), so that one contract holds from ingestion to live traffic."""

    # Fewer rows in a window: its distributions are not compared (too few to tell a shift from
    # chance); the schema is still checked.
    min_rows: Annotated[int, Field(ge=1)] = 100
    skew: dict[str, Annotated[float, Field(ge=0)]] | None = None
    drift: dict[str, Annotated[float, Field(ge=0)]] | None = None
    # Jensen-Shannon divergence (base 2) between the model's answers on the eval split and live,
    # over ten bins at the eval answers' deciles (predicted classes for multiclass).
    prediction_drift: Annotated[float, Field(ge=0, le=1)] = 0.1
    quality: LiveQuality = LiveQuality()


class ReleaseGuards(_Strict):
    """What a candidate must hold against the stable version, on the requests split between
    them (canary) or copied to it (shadow), to be promoted. Breaching any one rolls it back."""

    # Server errors (the model's call failing, not a client's bad request) per request.
    max_error_rate: Annotated[float, Field(ge=0, le=1)] = 0.01
    # The candidate's p99 latency may be at most this many times the stable version's ...
    max_p99_ratio: Annotated[float, Field(ge=1)] = 2.0
    # ... unless it is within this many milliseconds of it (a ratio of two small figures
    # measures noise).
    p99_slack_ms: Annotated[float, Field(ge=0)] = 10.0
    # Jensen-Shannon divergence (base 2) between the two versions' answers, over ten bins at
    # the stable version's deciles (predicted classes for multiclass).
    max_answer_distance: Annotated[float, Field(ge=0, le=1)] = 0.1
    # With labels (the feedback endpoint): the candidate's live headline metric may be at most
    # this below the stable version's (RMSE: this fraction above), once each has min_labels; a
    # larger drop counts only beyond two standard errors of the difference (chance).
    quality_max_drop: Annotated[float, Field(ge=0)] = 0.05
    min_labels: Annotated[int, Field(ge=1)] = 50


class Release(_Strict):
    """How `serve` releases a newly pushed version (release/)."""

    # manual: a pushed version is served only after `models approve VERSION --by NAME`.
    approval: Literal["auto", "manual"] = "auto"
    # all_at_once: the new version takes all traffic; canary: canary_percent of it, then all
    # if the guards hold; shadow: copies of the requests, answered by the stable version.
    strategy: Literal["all_at_once", "canary", "shadow"] = "all_at_once"
    canary_percent: Annotated[float, Field(gt=0, lt=100)] = 10.0
    # The candidate is judged once it has answered this many requests ...
    min_requests: Annotated[int, Field(ge=1)] = 200
    # ... or this long after its release began, whichever comes first; fewer requests by then
    # than min_requests is not enough evidence, and the candidate is rolled back.
    max_minutes: Annotated[float, Field(gt=0)] = 60.0
    guards: ReleaseGuards = ReleaseGuards()


class Code(_Strict):
    """User code by importable dotted path; a module beside profile.yaml is importable too."""

    preprocessing_fn: str = "components.preprocessing.preprocessing_fn"
    run_fn: str = "components.model.run_fn"
    tuner_fn: str = "components.tuning.tuner_fn"
    search_space_fn: str = "components.model.search_space"

    @field_validator("*")
    @classmethod
    def _dotted_path(cls, value: str) -> str:
        if not re.fullmatch(r"[A-Za-z_]\w*(\.[A-Za-z_]\w*)+", value):
            raise ValueError(f"{value!r} is not a dotted path like package.module.function")
        return value


class Profile(_Strict):
    name: Annotated[str, Field(pattern=PIPELINE_NAME_PATTERN)]
    description: str = ""
    data_dir: str = "data"  # holds labeled/ and unlabeled/, one folder per span in each
    schema_file: str = Field("schema.pbtxt", alias="schema")
    label: Label
    features: dict[str, Feature]
    slices: list[str] = []
    data_checks: DataChecks = DataChecks()
    model: ModelSize = ModelSize()
    training: Budgets = Budgets()
    blessing: Blessing = Blessing()
    monitoring: Monitoring = Monitoring()
    release: Release = Release()
    code: Code = Code()
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    @field_validator("features", mode="before")
    @classmethod
    def _kind_shorthand(cls, value: Any) -> Any:
        """`fare: numeric` is short for `fare: {kind: numeric}`."""
        if isinstance(value, dict):
            return {k: {"kind": v} if isinstance(v, str) else v for k, v in value.items()}
        return value

    @model_validator(mode="after")
    def _names_agree(self) -> Profile:
        columns = set(self.features)
        if self.label.column in columns:
            raise ValueError(f"the label column {self.label.column!r} is also listed in features")
        if not self.model_features:
            raise ValueError("features: at least one feature must have a kind other than ignored")
        rule = self.label.positive_when
        if rule and rule.times_column and rule.times_column not in columns:
            raise ValueError(
                f"label.positive_when.times_column {rule.times_column!r} is not in features"
            )
        for name in self.slices:
            if name not in columns:
                raise ValueError(f"slices: {name!r} is not in features")
        known = columns | {self.label.column}
        for key, thresholds in (("drift", self.data_checks.drift), ("skew", self.skew)):
            for name in thresholds:
                if name not in known:
                    raise ValueError(f"data_checks.{key}: {name!r} is not a column of the profile")
        if self.label.column in self.skew:
            raise ValueError("data_checks.skew: the batch to score has no label column")
        for key in ("skew", "drift"):
            for name in getattr(self.monitoring, key) or {}:
                if name not in columns:
                    raise ValueError(
                        f"monitoring.{key}: {name!r} is not a feature of the profile (live "
                        "traffic has no label column)"
                    )
        allowed = METRICS[self.label.task]
        for key in ("at_least", "at_most"):
            for metric in getattr(self.blessing, key):
                if metric not in allowed:
                    raise ValueError(
                        f"blessing.{key}: {metric!r} is not a {self.label.task} metric "
                        f"(one of {', '.join(allowed)})"
                    )
        transformed = [i.name for i in self.model_inputs()]
        transformed.append(self.transformed_label)
        clashes = {n for n in transformed if transformed.count(n) > 1}
        if clashes:
            raise ValueError(
                f"features: columns whose names differ only in case or punctuation map to the "
                f"same model input {sorted(clashes)}; rename or ignore one"
            )
        return self

    # ---- what the components read ----
    @property
    def task(self) -> str:
        return self.label.task

    @property
    def skew(self) -> dict[str, float]:
        if self.data_checks.skew is not None:
            return dict(self.data_checks.skew)
        return {k: v for k, v in self.data_checks.drift.items() if k != self.label.column}

    @property
    def monitoring_skew(self) -> dict[str, float]:
        """Thresholds of live traffic against the training data: monitoring.skew, else the
        data checks' skew thresholds."""
        if self.monitoring.skew is not None:
            return dict(self.monitoring.skew)
        return self.skew

    @property
    def monitoring_drift(self) -> dict[str, float]:
        """Thresholds of live traffic against the previous window: monitoring.drift, else the
        data checks' drift thresholds without the label."""
        if self.monitoring.drift is not None:
            return dict(self.monitoring.drift)
        return {k: v for k, v in self.data_checks.drift.items() if k != self.label.column}

    def of_kind(self, kind: FeatureKind) -> list[str]:
        return [name for name, f in self.features.items() if f.kind == kind]

    def model_inputs(self) -> list[ModelInput]:
        """What Transform makes of the features, in profile order: the model's inputs (and
        the linear baseline's)."""
        inputs: list[ModelInput] = []
        for column, feature in self.features.items():
            name = transformed_name(column)
            kind = feature.kind
            if kind == FeatureKind.NUMERIC:
                inputs.append(ModelInput(name, "numeric", column))
            elif kind == FeatureKind.BUCKETIZED:
                inputs.append(ModelInput(name, "categorical", column, feature.buckets + 1))
            elif kind == FeatureKind.INTEGER_CATEGORY:
                # 0..max, plus one id for out-of-range values
                inputs.append(ModelInput(name, "categorical", column, feature.max + 2))
            elif kind == FeatureKind.VOCABULARY:
                size = feature.top_k + feature.oov_buckets
                inputs.append(ModelInput(name, "categorical", column, size))
            elif kind == FeatureKind.BOOLEAN:
                inputs.append(ModelInput(name, "categorical", column, 3))  # false, true, neither
            elif kind == FeatureKind.TEXT:
                size = feature.top_k + feature.oov_buckets + 1  # 0: no word
                inputs.append(ModelInput(name, "tokens", column, size, feature.max_tokens))
            elif kind == FeatureKind.DATETIME:
                inputs += [
                    ModelInput(part_name, "numeric", column)
                    for part_name in datetime_part_names(column, feature.parts)
                ]
        return inputs

    @property
    def model_features(self) -> list[str]:
        return [name for name, f in self.features.items() if f.kind != FeatureKind.IGNORED]

    @property
    def transformed_label(self) -> str:
        return transformed_name(self.label.column)

    @property
    def headline_metric(self) -> str:
        return HEADLINE_METRIC[self.task]

    def transform_part(self) -> dict[str, Any]:
        """What Transform reads (its cache key): the label and the features."""
        return self.model_dump(mode="json", include={"name", "label", "features"}, by_alias=True)

    def training_part(self) -> dict[str, Any]:
        """What Tuner and Trainer read (their cache key): also model size and budgets."""
        return self.model_dump(
            mode="json", include={"name", "label", "features", "model", "training"}, by_alias=True
        )


def transformed_name(column: str) -> str:
    """The Transform output (and model input) for raw `column`: lower-case letters, digits
    and underscores, so that any CSV header makes a valid Keras and TensorFlow name."""
    safe = re.sub(r"[^a-z0-9]+", "_", column.lower()).strip("_") or "column"
    if safe[0].isdigit():
        safe = f"f_{safe}"
    return f"{safe}_xf"


def datetime_part_names(column: str, parts: list[str]) -> list[str]:
    """The Transform outputs of a datetime column's parts: a sine and a cosine for each
    cyclical part, one number for the age."""
    base = transformed_name(column).removesuffix("_xf")
    names = []
    for part in parts:
        if part == "age":
            names.append(f"{base}_age_xf")
        else:
            names += [f"{base}_{part}_sin_xf", f"{base}_{part}_cos_xf"]
    return names


def class_text(value: Any) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def from_config(part: dict[str, Any]) -> Profile:
    """The profile (or the part of it) a component got in its `custom_config['profile']`."""
    return Profile.model_validate(part)


def _error_text(error: ValidationError) -> str:
    lines = []
    for item in error.errors():
        where = ".".join(str(p) for p in item["loc"]) or "(top level)"
        message = item["msg"].removeprefix("Value error, ")
        if item["type"] == "extra_forbidden":
            message = "not a profile setting (check its spelling and level)"
        lines.append(f"{where}: {message}")
    return "; ".join(lines)


def parse(text: str, source: str) -> Profile:
    """A validated profile from YAML `text`; `source` names it in errors."""
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise ProfileError(f"{source} is not valid YAML: {e}") from e
    if not isinstance(raw, dict):
        raise ProfileError(f"{source} must be a YAML mapping of settings (name, label, features)")
    try:
        return Profile.model_validate(raw)
    except ValidationError as e:
        raise ProfileError(f"{source}: {_error_text(e)}") from e


def profile_file(location: Path) -> Path:
    """profile.yaml in folder `location`, or `location` itself when it is a file."""
    return location / PROFILE_FILE_NAME if location.is_dir() else location


def load(location: Path) -> Profile:
    """The profile in folder `location` (its profile.yaml), or the file `location`."""
    path = profile_file(location)
    if not path.is_file():
        raise ProfileError(
            f"No profile at {path}: give --profile a folder with a {PROFILE_FILE_NAME} "
            "(`python run_local.py init --csv FILE --label COLUMN --out DIR` makes one)."
        )
    return parse(path.read_text(), str(path))

"""The pipeline definition: one `create_pipeline()`, with no orchestrator choice in it.

What differs between orchestrators comes in as arguments: the metadata connection (None on
Kubeflow, which brings its own) and whether the Evaluator's baseline excludes the candidate.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import tensorflow_model_analysis as tfma
from google.protobuf import text_format
from ml_metadata.proto import metadata_store_pb2
from tensorflow_metadata.proto.v0 import path_pb2, schema_pb2
from tfx import v1 as tfx
from tfx.proto import distribution_validator_pb2

from components import model
from components import profile as profiles
from components.csv_example_gen.component import csv_example_gen_component
from components.curated_schema.component import CuratedSchemaImporter, content_fingerprint
from components.data_gate.component import DataGate
from components.data_gate.distribution_validator import DistributionValidator
from components.data_gate.training_checks import Settings as TrainingChecks
from components.evaluator.component import Evaluator
from components.evaluator.linear_baseline import Settings as LinearBaseline
from components.evaluator.trivial_baseline import Settings as TrivialBaseline
from components.infra_validator.component import InfraValidator
from components.profile import FeatureKind, Profile
from components.pusher.component import pusher_component
from components.span_example_gen import spans
from components.span_example_gen.component import SpanCsvExampleGen
from components.statistics_gen.component import statistics_gen_component
from pipeline import node_ids
from pipeline.baseline import CANDIDATE_KEY, LatestBlessedOtherModelStrategy
from pipeline.config import PipelineConfig
from pipeline.fingerprint import code_fingerprint, tuning_fingerprint

UNLABELED_SPLIT = "unlabeled"


def _threshold(profile: Profile, metric: str) -> tfma.MetricThreshold | None:
    """The profile's bounds on `metric`, plus no regression on the headline metric."""
    blessing = profile.blessing
    lower, upper = blessing.at_least.get(metric), blessing.at_most.get(metric)
    if profile.task == "binary" and metric == "auc":
        # A constant score has AUC 0.5: the trivial-predictor margin, checked by TFMA itself.
        lower = max(lower or 0.0, 0.5 + blessing.margin_over_trivial)
    threshold = tfma.MetricThreshold()
    if lower is not None:
        threshold.value_threshold.lower_bound.value = lower
    if upper is not None:
        threshold.value_threshold.upper_bound.value = upper
    if metric == profile.headline_metric:
        change = threshold.change_threshold
        if metric in profiles.LOWER_IS_BETTER:
            change.direction = tfma.MetricDirection.LOWER_IS_BETTER
            change.relative.value = blessing.max_regression
        else:
            change.direction = tfma.MetricDirection.HIGHER_IS_BETTER
            change.absolute.value = -blessing.max_regression
    return threshold if threshold.ByteSize() else None


def _metric(class_name: str, threshold: tfma.MetricThreshold | None = None) -> tfma.MetricConfig:
    return tfma.MetricConfig(class_name=class_name, threshold=threshold)


# Metrics beside the thresholded ones, per task.
_EXTRA_METRICS = {
    "binary": ("Calibration", "MeanLabel", "MeanPrediction", "CalibrationPlot"),
    "multiclass": ("MultiClassConfusionMatrixPlot",),
    "regression": ("MeanLabel", "MeanPrediction"),
}


def eval_config(profile: Profile) -> tfma.EvalConfig:
    """TFMA settings for the profile's task: its metrics overall and per slice, the profile's
    absolute thresholds, and no regression on the headline metric against the latest blessed
    model (AUC for binary, accuracy for multiclass, RMSE for regression)."""
    task = profile.task
    metrics = [
        # Every evaluation has a value threshold, so TFMA always validates and writes a blessing
        # (the first run has no baseline, and a task may have no absolute thresholds).
        _metric(
            "ExampleCount",
            tfma.MetricThreshold(
                value_threshold=tfma.GenericValueThreshold(lower_bound={"value": 1})
            ),
        )
    ]
    for name, (class_name, _) in profiles.METRICS[task].items():
        metrics.append(_metric(class_name, _threshold(profile, name)))
    metrics.extend(_metric(name) for name in _EXTRA_METRICS[task])
    metrics_specs = [tfma.MetricsSpec(metrics=metrics)]
    if task == "multiclass":
        # Precision and recall of each class, one against the rest.
        metrics_specs.append(
            tfma.MetricsSpec(
                binarize=tfma.BinarizationOptions(
                    class_ids={"values": list(range(len(profile.label.class_names)))}
                ),
                metrics=[_metric("Precision"), _metric("Recall")],
            )
        )
    return tfma.EvalConfig(
        model_specs=[
            tfma.ModelSpec(
                # Said, not detected: TFMA detects a model's type by loading it as a Keras model
                # first (1.4 s of the Evaluator; ours is a plain SavedModel with signatures).
                model_type=tfma.TF_GENERIC,
                signature_name=model.SERVING_SIGNATURE,
                prediction_key=model.PREDICTION_KEYS[task],
                label_key=profile.transformed_label,
                preprocessing_function_names=[model.TRANSFORM_SIGNATURE],
            )
        ],
        slicing_specs=[tfma.SlicingSpec()]
        + [tfma.SlicingSpec(feature_keys=[key]) for key in profile.slices],
        metrics_specs=metrics_specs,
    )


def trivial_baseline_settings(profile: Profile, training_spans: int) -> TrivialBaseline:
    """What the Evaluator's trivial-predictor check compares, and on which splits."""
    headline = profile.headline_metric
    return TrivialBaseline(
        task=profile.task,
        label=profile.label.column,
        classes=profile.label.class_names,
        metric=headline,
        metric_key=profiles.METRICS[profile.task][headline][1],
        margin=profile.blessing.margin_over_trivial,
        train_splits=spans.training_split_names(training_spans, spans.TRAIN),
        eval_splits=spans.training_split_names(training_spans, spans.EVAL),
    )


def linear_baseline_settings(profile: Profile, training_spans: int) -> LinearBaseline:
    """What the Evaluator's linear baseline is fitted on and compared by."""
    return LinearBaseline(
        profile=profile.transform_part(),
        metric=profile.headline_metric,
        max_gap=profile.blessing.vs_linear_baseline,
        train_splits=spans.training_split_names(training_spans, spans.TRAIN),
        eval_splits=spans.training_split_names(training_spans, spans.EVAL),
    )


def _categorical_columns_by_type(schema_file: Path) -> tuple[set[str], set[str]]:
    """(string columns, integer columns marked `is_categorical`) of the curated schema, read once."""
    schema = text_format.Parse(schema_file.read_text(), schema_pb2.Schema())
    strings = {f.name for f in schema.feature if f.type == schema_pb2.BYTES}
    integers = {
        f.name for f in schema.feature if f.HasField("int_domain") and f.int_domain.is_categorical
    }
    return strings, integers


def categorical_columns(schema_file: Path) -> set[str]:
    """Columns of the curated schema whose statistics are categorical: strings, and integers
    marked `is_categorical`."""
    strings, integers = _categorical_columns_by_type(schema_file)
    return strings | integers


def distribution_config(
    thresholds: Mapping[str, float], categorical: set[str]
) -> distribution_validator_pb2.DistributionValidatorConfig:
    """DistributionValidator's per-feature thresholds: L-infinity distance for categorical
    columns, approximate Jensen-Shannon divergence for numeric ones."""
    comparators = []
    for feature, threshold in sorted(thresholds.items()):
        if feature in categorical:
            comparator = schema_pb2.FeatureComparator(
                infinity_norm=schema_pb2.InfinityNorm(threshold=threshold)
            )
        else:
            comparator = schema_pb2.FeatureComparator(
                jensen_shannon_divergence=schema_pb2.JensenShannonDivergence(threshold=threshold)
            )
        comparators.append(
            distribution_validator_pb2.FeatureComparator(
                path=path_pb2.Path(step=[feature]), distribution_comparator=comparator
            )
        )
    return distribution_validator_pb2.DistributionValidatorConfig(
        default_slice_config=distribution_validator_pb2.DistributionValidatorConfig.DatasetConfig(
            feature=comparators
        )
    )


def create_pipeline(
    config: PipelineConfig,
    *,
    beam_pipeline_args: Sequence[str] = (),
    unlabeled_beam_args: Sequence[str] = (),
    metadata_connection_config: metadata_store_pb2.ConnectionConfig | None = None,
    exclude_candidate_from_baseline: bool = True,
) -> tfx.dsl.Pipeline:
    """The whole chain, from CSV ingestion to a pushed model and batch predictions.

    Reads and writes only the config's `*_location`s. The orchestrator supplies the Beam options
    (the DirectRunner mode it chose, then the config's extra ones; `unlabeled_beam_args` are
    added for the components that read only the batch to score), the metadata connection (None
    on Kubeflow, which brings its own) and chooses the Evaluator's baseline:
    the latest blessed model other than the candidate (local; an unchanged re-run is then fully
    cached instead of evaluating the model against itself), or TFX's stock latest blessed model
    (Kubeflow, whose compiler accepts only TFX's own resolver strategies).
    """
    split_config = tfx.proto.SplitConfig(
        splits=[
            tfx.proto.SplitConfig.Split(name="train", hash_buckets=config.train_buckets),
            tfx.proto.SplitConfig.Split(name="eval", hash_buckets=config.eval_buckets),
        ]
    )
    profile = config.profile
    strings, categorical_integers = _categorical_columns_by_type(config.curated_schema_file)
    categorical = strings | categorical_integers
    example_gen = SpanCsvExampleGen(
        input_base=config.labeled_data_location,
        span_pattern=config.span_pattern,
        training_spans=config.training_spans,
        split_config=split_config,
    ).with_id(node_ids.LABELED_EXAMPLE_GEN)
    train_splits = spans.training_split_names(config.training_spans, spans.TRAIN)
    eval_splits = spans.training_split_names(config.training_spans, spans.EVAL)

    # The fingerprint of the local file: the same file the image carries (see Dockerfile).
    curated_schema = CuratedSchemaImporter(
        schema_file=config.curated_schema_location,
        fingerprint=content_fingerprint(config.curated_schema_file),
    ).with_id(node_ids.CURATED_SCHEMA)
    # When the curated schema marks integer columns categorical (an integer class label, say),
    # the statistics read it, to count those columns per value (the trivial predictor's majority
    # class, L-infinity drift comparisons). Otherwise they do without, so that a schema edit does
    # not recompute them.
    statistics_schema = {"schema": curated_schema.outputs["schema"]} if categorical_integers else {}
    # TFX's StatisticsGen; small inputs are computed without Beam (components/statistics_gen).
    statistics_gen = statistics_gen_component(
        examples=example_gen.outputs["examples"], **statistics_schema
    )
    inferred_schema_gen = tfx.components.SchemaGen(
        statistics=statistics_gen.outputs["statistics"], infer_feature_shape=False
    )
    example_validator = tfx.components.ExampleValidator(
        statistics=statistics_gen.outputs["statistics"], schema=curated_schema.outputs["schema"]
    )

    # Drift: the new span against the previous one (both inside ExampleGen's output).
    drift_validator = DistributionValidator(
        statistics=statistics_gen.outputs["statistics"],
        baseline_statistics=statistics_gen.outputs["statistics"],
        config=distribution_config(config.drift_thresholds, categorical),
        include_split_pairs=[
            (
                spans.split_name(spans.LATEST, spans.TRAIN),
                spans.split_name(spans.PREVIOUS, spans.TRAIN),
            )
        ],
    ).with_id(node_ids.DRIFT_VALIDATOR)
    data_gate = DataGate(
        examples=example_gen.outputs["examples"],
        anomalies=example_validator.outputs["anomalies"],
        drift_anomalies=drift_validator.outputs["anomalies"],
        statistics=statistics_gen.outputs["statistics"],
        training_checks=TrainingChecks(
            label=profile.label.column,
            task=profile.task,
            derived_label=profile.label.positive_when is not None,
            text_columns=profile.of_kind(FeatureKind.TEXT),
            train_splits=spans.training_split_names(config.training_spans, spans.TRAIN),
            eval_splits=spans.training_split_names(config.training_spans, spans.EVAL),
        ),
    ).with_id(node_ids.DATA_GATE)

    # Transform only analyzes (vocabularies, quantiles, means) and writes its graph: Tuner and
    # Trainer read ExampleGen's raw examples and apply that graph as they batch them
    # (model.input_dataset), as the exported model does at serving time. Writing transformed
    # copies of every split cost a second read of the training splits and a third of the run.
    transform = tfx.components.Transform(
        examples=example_gen.outputs["examples"],
        schema=curated_schema.outputs["schema"],
        preprocessing_fn=config.preprocessing_fn,
        splits_config=tfx.proto.SplitsConfig(analyze=train_splits),
        materialize=False,
        # StatisticsGen already describes the raw data; Transform's own statistics double its cost.
        disable_statistics=True,
        # Nothing feeds the analyzer cache back in; writing it also made Transform analyze each
        # split on its own instead of all of them in one pass.
        disable_analyzer_cache=True,
        custom_config={
            "profile": profile.transform_part(),
            "code_fingerprint": code_fingerprint(config.preprocessing_fn),
        },
    )
    # The gate: nothing downstream of Transform runs for data the gate refused.
    transform.add_upstream_node(data_gate)

    tuner = tfx.components.Tuner(
        tuner_fn=config.tuner_fn,
        examples=example_gen.outputs["examples"],
        transform_graph=transform.outputs["transform_graph"],
        train_args=tfx.proto.TrainArgs(splits=train_splits, num_steps=config.tuner_train_steps),
        eval_args=tfx.proto.EvalArgs(splits=eval_splits, num_steps=config.eval_steps),
        custom_config={
            "profile": profile.training_part(),
            "max_trials": config.tuner_trials,
            "seed": config.seed,
            "deterministic": config.deterministic,
            "code_fingerprint": tuning_fingerprint(config.tuner_fn, config.search_space_fn),
            **({"retune": config.retune_token} if config.retune_token else {}),
        },
    )

    trainer = tfx.components.Trainer(
        run_fn=config.run_fn,
        examples=example_gen.outputs["examples"],
        transform_graph=transform.outputs["transform_graph"],
        schema=curated_schema.outputs["schema"],
        hyperparameters=tuner.outputs["best_hyperparameters"],
        train_args=tfx.proto.TrainArgs(splits=train_splits, num_steps=config.train_steps),
        eval_args=tfx.proto.EvalArgs(splits=eval_splits, num_steps=config.eval_steps),
        custom_config={
            "profile": profile.training_part(),
            "seed": config.seed,
            "deterministic": config.deterministic,
            "code_fingerprint": code_fingerprint(config.run_fn),
        },
    )

    candidate = {CANDIDATE_KEY: trainer.outputs["model"]} if exclude_candidate_from_baseline else {}
    blessed_model_resolver = tfx.dsl.Resolver(
        strategy_class=LatestBlessedOtherModelStrategy
        if exclude_candidate_from_baseline
        else tfx.dsl.experimental.LatestBlessedModelStrategy,
        model=tfx.dsl.Channel(type=tfx.types.standard_artifacts.Model),
        model_blessing=tfx.dsl.Channel(type=tfx.types.standard_artifacts.ModelBlessing),
        **candidate,
    ).with_id(node_ids.BLESSED_MODEL_RESOLVER)

    evaluator = Evaluator(
        examples=example_gen.outputs["examples"],
        model=trainer.outputs["model"],
        baseline_model=blessed_model_resolver.outputs["model"],
        eval_config=eval_config(profile),
        example_splits=eval_splits,
        statistics=statistics_gen.outputs["statistics"],
        trivial_baseline=trivial_baseline_settings(profile, config.training_spans),
        transform_graph=transform.outputs["transform_graph"],
        linear_baseline=linear_baseline_settings(profile, config.training_spans),
    ).with_id(node_ids.EVALUATOR)

    infra_validator = InfraValidator(
        model=trainer.outputs["model"],
        examples=example_gen.outputs["examples"],
        serving_spec=tfx.proto.ServingSpec(
            tensorflow_serving=tfx.proto.TensorFlowServing(tags=["latest"]),
            model_name=config.pipeline_name,
        ),
        validation_spec=tfx.proto.ValidationSpec(
            max_loading_time_seconds=config.infra_max_loading_seconds,
            num_tries=config.infra_num_tries,
        ),
        request_spec=tfx.proto.RequestSpec(
            # A request to every signature the task's model exports (Predict, and Classify or
            # Regress or both): every API `serve` answers with.
            tensorflow_serving=tfx.proto.TensorFlowServingRequestSpec(
                signature_names=model.serving_signatures(profile.task)
            ),
            split_name=spans.split_name(spans.LATEST, spans.EVAL),
            num_examples=config.infra_num_requests,
        ),
        model_server_binary=config.model_server_binary,
        request_timeout_seconds=config.infra_request_timeout_seconds,
    )

    pusher = pusher_component(
        model=trainer.outputs["model"],
        model_blessing=evaluator.outputs["blessing"],
        infra_blessing=infra_validator.outputs["blessing"],
        push_destination=tfx.proto.PushDestination(
            filesystem=tfx.proto.PushDestination.Filesystem(
                base_directory=config.serving_model_location
            )
        ),
    )

    # The batch to score: the latest span of unlabeled/, checked for skew against training data.
    # TFX's CsvExampleGen, converting and writing as components/csv_example_gen does.
    unlabeled_example_gen = csv_example_gen_component(
        input_base=config.unlabeled_data_location,
        input_config=tfx.proto.Input(
            splits=[tfx.proto.Input.Split(name=UNLABELED_SPLIT, pattern=config.span_pattern)]
        ),
        output_config=tfx.proto.Output(
            split_config=tfx.proto.SplitConfig(
                splits=[tfx.proto.SplitConfig.Split(name=UNLABELED_SPLIT, hash_buckets=1)]
            )
        ),
    ).with_id(node_ids.UNLABELED_EXAMPLE_GEN)
    unlabeled_statistics_gen = statistics_gen_component(
        examples=unlabeled_example_gen.outputs["examples"], **statistics_schema
    ).with_id(node_ids.UNLABELED_STATISTICS_GEN)
    skew_validator = DistributionValidator(
        statistics=unlabeled_statistics_gen.outputs["statistics"],
        baseline_statistics=statistics_gen.outputs["statistics"],
        config=distribution_config(config.skew_thresholds, categorical),
        include_split_pairs=[(UNLABELED_SPLIT, spans.split_name(spans.LATEST, spans.TRAIN))],
    ).with_id(node_ids.SKEW_VALIDATOR)

    bulk_inferrer = tfx.components.BulkInferrer(
        examples=unlabeled_example_gen.outputs["examples"],
        model=trainer.outputs["model"],
        model_blessing=evaluator.outputs["blessing"],
        data_spec=tfx.proto.DataSpec(example_splits=[UNLABELED_SPLIT]),
        model_spec=tfx.proto.ModelSpec(model_signature_name=[model.SERVING_SIGNATURE]),
    )

    if unlabeled_beam_args:
        for component in (unlabeled_example_gen, unlabeled_statistics_gen, bulk_inferrer):
            component.with_beam_pipeline_args(list(unlabeled_beam_args))

    return tfx.dsl.Pipeline(
        pipeline_name=config.pipeline_name,
        pipeline_root=config.pipeline_root_location,
        components=[
            example_gen,
            statistics_gen,
            inferred_schema_gen,
            curated_schema,
            example_validator,
            drift_validator,
            data_gate,
            transform,
            tuner,
            trainer,
            blessed_model_resolver,
            evaluator,
            infra_validator,
            pusher,
            unlabeled_example_gen,
            unlabeled_statistics_gen,
            skew_validator,
            bulk_inferrer,
        ],
        enable_cache=config.enable_cache,
        metadata_connection_config=metadata_connection_config,
        beam_pipeline_args=list(beam_pipeline_args),
    )

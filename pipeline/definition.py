"""The pipeline definition: one `create_pipeline()`, with no orchestrator choice in it.

What differs between orchestrators comes in as arguments: the metadata connection (None on
Kubeflow, which brings its own) and whether the Evaluator's baseline excludes the candidate.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import tensorflow_model_analysis as tfma
from ml_metadata.proto import metadata_store_pb2
from tensorflow_metadata.proto.v0 import path_pb2, schema_pb2
from tfx import v1 as tfx
from tfx.proto import distribution_validator_pb2

from components import features, model
from components.curated_schema.component import CuratedSchemaImporter, content_fingerprint
from components.data_gate.component import DataGate
from components.data_gate.distribution_validator import DistributionValidator
from components.infra_validator.component import InfraValidator
from components.span_example_gen import spans
from components.span_example_gen.component import SpanCsvExampleGen
from pipeline import node_ids
from pipeline.baseline import CANDIDATE_KEY, LatestBlessedOtherModelStrategy
from pipeline.config import PipelineConfig
from pipeline.fingerprint import code_fingerprint, tuning_fingerprint

UNLABELED_SPLIT = "unlabeled"


def eval_config(config: PipelineConfig) -> tfma.EvalConfig:
    """TFMA settings: metrics overall and per slice, an absolute AUC/accuracy floor, and a
    maximum AUC regression against the latest blessed model."""
    higher_is_better = tfma.MetricDirection.HIGHER_IS_BETTER
    return tfma.EvalConfig(
        model_specs=[
            tfma.ModelSpec(
                signature_name=model.SERVING_SIGNATURE,
                prediction_key=model.PREDICTION_KEY,
                label_key=features.TRANSFORMED_LABEL_KEY,
                preprocessing_function_names=[model.TRANSFORM_SIGNATURE],
            )
        ],
        slicing_specs=[tfma.SlicingSpec()]
        + [tfma.SlicingSpec(feature_keys=[key]) for key in features.SLICE_FEATURE_KEYS],
        metrics_specs=[
            tfma.MetricsSpec(
                metrics=[
                    tfma.MetricConfig(class_name="ExampleCount"),
                    tfma.MetricConfig(
                        class_name="AUC",
                        threshold=tfma.MetricThreshold(
                            value_threshold=tfma.GenericValueThreshold(
                                lower_bound={"value": config.min_auc}
                            ),
                            change_threshold=tfma.GenericChangeThreshold(
                                direction=higher_is_better,
                                absolute={"value": -config.max_auc_regression},
                            ),
                        ),
                    ),
                    tfma.MetricConfig(
                        class_name="BinaryAccuracy",
                        threshold=tfma.MetricThreshold(
                            value_threshold=tfma.GenericValueThreshold(
                                lower_bound={"value": config.min_binary_accuracy}
                            )
                        ),
                    ),
                    tfma.MetricConfig(class_name="Precision"),
                    tfma.MetricConfig(class_name="Recall"),
                    tfma.MetricConfig(class_name="Calibration"),
                    tfma.MetricConfig(class_name="MeanLabel"),
                    tfma.MetricConfig(class_name="MeanPrediction"),
                    tfma.MetricConfig(class_name="CalibrationPlot"),
                ]
            )
        ],
    )


def distribution_config(
    thresholds: Mapping[str, float],
) -> distribution_validator_pb2.DistributionValidatorConfig:
    """DistributionValidator's per-feature thresholds: L-infinity distance for string features,
    approximate Jensen-Shannon divergence for numeric ones."""
    comparators = []
    for feature, threshold in sorted(thresholds.items()):
        if feature in features.STRING_FEATURE_KEYS:
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
    metadata_connection_config: metadata_store_pb2.ConnectionConfig | None = None,
    exclude_candidate_from_baseline: bool = True,
) -> tfx.dsl.Pipeline:
    """The whole chain, from CSV ingestion to a pushed model and batch predictions.

    Reads and writes only the config's `*_location`s. The orchestrator supplies the Beam options
    (the DirectRunner mode it chose, then the config's extra ones), the metadata connection (None
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
    example_gen = SpanCsvExampleGen(
        input_base=config.labeled_data_location,
        span_pattern=config.span_pattern,
        training_spans=config.training_spans,
        split_config=split_config,
    ).with_id(node_ids.LABELED_EXAMPLE_GEN)
    train_splits = spans.training_split_names(config.training_spans, spans.TRAIN)
    eval_splits = spans.training_split_names(config.training_spans, spans.EVAL)

    statistics_gen = tfx.components.StatisticsGen(examples=example_gen.outputs["examples"])
    inferred_schema_gen = tfx.components.SchemaGen(
        statistics=statistics_gen.outputs["statistics"], infer_feature_shape=False
    )
    # The fingerprint of the local file: the same file the image carries (see Dockerfile).
    curated_schema = CuratedSchemaImporter(
        schema_file=config.curated_schema_location,
        fingerprint=content_fingerprint(config.curated_schema_file),
    ).with_id(node_ids.CURATED_SCHEMA)
    example_validator = tfx.components.ExampleValidator(
        statistics=statistics_gen.outputs["statistics"], schema=curated_schema.outputs["schema"]
    )

    # Drift: the new span against the previous one (both inside ExampleGen's output).
    drift_validator = DistributionValidator(
        statistics=statistics_gen.outputs["statistics"],
        baseline_statistics=statistics_gen.outputs["statistics"],
        config=distribution_config(config.drift_thresholds),
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
    ).with_id(node_ids.DATA_GATE)

    transform = tfx.components.Transform(
        examples=example_gen.outputs["examples"],
        schema=curated_schema.outputs["schema"],
        preprocessing_fn=config.preprocessing_fn,
        splits_config=tfx.proto.SplitsConfig(
            analyze=train_splits, transform=train_splits + eval_splits
        ),
        # StatisticsGen already describes the raw data; Transform's own statistics double its cost.
        disable_statistics=True,
        custom_config={"code_fingerprint": code_fingerprint(config.preprocessing_fn)},
    )
    # The gate: nothing downstream of Transform runs for data the gate refused.
    transform.add_upstream_node(data_gate)

    tuner = tfx.components.Tuner(
        tuner_fn=config.tuner_fn,
        examples=transform.outputs["transformed_examples"],
        transform_graph=transform.outputs["transform_graph"],
        train_args=tfx.proto.TrainArgs(splits=train_splits, num_steps=config.tuner_train_steps),
        eval_args=tfx.proto.EvalArgs(splits=eval_splits, num_steps=config.eval_steps),
        custom_config={
            "max_trials": config.tuner_trials,
            "seed": config.seed,
            "code_fingerprint": tuning_fingerprint(config.tuner_fn, config.search_space_fn),
            **({"retune": config.retune_token} if config.retune_token else {}),
        },
    )

    trainer = tfx.components.Trainer(
        run_fn=config.run_fn,
        examples=transform.outputs["transformed_examples"],
        transform_graph=transform.outputs["transform_graph"],
        schema=curated_schema.outputs["schema"],
        hyperparameters=tuner.outputs["best_hyperparameters"],
        train_args=tfx.proto.TrainArgs(splits=train_splits, num_steps=config.train_steps),
        eval_args=tfx.proto.EvalArgs(splits=eval_splits, num_steps=config.eval_steps),
        custom_config={"seed": config.seed, "code_fingerprint": code_fingerprint(config.run_fn)},
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

    evaluator = tfx.components.Evaluator(
        examples=example_gen.outputs["examples"],
        model=trainer.outputs["model"],
        baseline_model=blessed_model_resolver.outputs["model"],
        eval_config=eval_config(config),
        example_splits=eval_splits,
    )

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
            # Predict, Classify and Regress requests: every API `serve` answers with.
            tensorflow_serving=tfx.proto.TensorFlowServingRequestSpec(
                signature_names=[
                    model.SERVING_SIGNATURE,
                    model.CLASSIFY_SIGNATURE,
                    model.REGRESS_SIGNATURE,
                ]
            ),
            split_name=spans.split_name(spans.LATEST, spans.EVAL),
            num_examples=config.infra_num_requests,
        ),
        model_server_binary=config.model_server_binary,
        request_timeout_seconds=config.infra_request_timeout_seconds,
    )

    pusher = tfx.components.Pusher(
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
    unlabeled_example_gen = tfx.components.CsvExampleGen(
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
    unlabeled_statistics_gen = tfx.components.StatisticsGen(
        examples=unlabeled_example_gen.outputs["examples"]
    ).with_id(node_ids.UNLABELED_STATISTICS_GEN)
    skew_validator = DistributionValidator(
        statistics=unlabeled_statistics_gen.outputs["statistics"],
        baseline_statistics=statistics_gen.outputs["statistics"],
        config=distribution_config(config.skew_thresholds),
        include_split_pairs=[(UNLABELED_SPLIT, spans.split_name(spans.LATEST, spans.TRAIN))],
    ).with_id(node_ids.SKEW_VALIDATOR)

    bulk_inferrer = tfx.components.BulkInferrer(
        examples=unlabeled_example_gen.outputs["examples"],
        model=trainer.outputs["model"],
        model_blessing=evaluator.outputs["blessing"],
        data_spec=tfx.proto.DataSpec(example_splits=[UNLABELED_SPLIT]),
        model_spec=tfx.proto.ModelSpec(model_signature_name=[model.SERVING_SIGNATURE]),
    )

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

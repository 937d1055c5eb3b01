"""The pipeline definition: one `create_pipeline()`, with no orchestrator choice in it."""

from __future__ import annotations

import tensorflow_model_analysis as tfma
from ml_metadata.proto import metadata_store_pb2
from tfx import v1 as tfx

from components import features, model
from components.infra_validator.component import InfraValidator
from pipeline.config import PipelineConfig
from pipeline.fingerprint import code_fingerprint

# Node ids, as they appear in ML Metadata, the console and the Kubeflow spec.
LABELED_EXAMPLE_GEN = "CsvExampleGen"
UNLABELED_EXAMPLE_GEN = "UnlabeledExampleGen"
CURATED_SCHEMA = "CuratedSchemaImporter"
BLESSED_MODEL_RESOLVER = "LatestBlessedModelResolver"
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


def create_pipeline(
    config: PipelineConfig,
    metadata_connection_config: metadata_store_pb2.ConnectionConfig | None = None,
) -> tfx.dsl.Pipeline:
    """The whole chain, from CSV ingestion to a pushed model and batch predictions.

    Reads and writes only the config's `*_location`s; the orchestrator supplies the metadata
    connection (None on Kubeflow, which brings its own).
    """
    split_config = tfx.proto.SplitConfig(
        splits=[
            tfx.proto.SplitConfig.Split(name="train", hash_buckets=config.train_buckets),
            tfx.proto.SplitConfig.Split(name="eval", hash_buckets=config.eval_buckets),
        ]
    )
    example_gen = tfx.components.CsvExampleGen(
        input_base=config.labeled_data_location,
        output_config=tfx.proto.Output(split_config=split_config),
    ).with_id(LABELED_EXAMPLE_GEN)

    statistics_gen = tfx.components.StatisticsGen(examples=example_gen.outputs["examples"])
    inferred_schema_gen = tfx.components.SchemaGen(
        statistics=statistics_gen.outputs["statistics"], infer_feature_shape=False
    )
    curated_schema = tfx.components.ImportSchemaGen(
        schema_file=config.curated_schema_location
    ).with_id(CURATED_SCHEMA)
    example_validator = tfx.components.ExampleValidator(
        statistics=statistics_gen.outputs["statistics"], schema=curated_schema.outputs["schema"]
    )

    transform = tfx.components.Transform(
        examples=example_gen.outputs["examples"],
        schema=curated_schema.outputs["schema"],
        preprocessing_fn=config.preprocessing_fn,
        # StatisticsGen already describes the raw data; Transform's own statistics double its cost.
        disable_statistics=True,
        custom_config={"code_fingerprint": code_fingerprint(config.preprocessing_fn)},
    )

    tuner = tfx.components.Tuner(
        tuner_fn=config.tuner_fn,
        examples=transform.outputs["transformed_examples"],
        transform_graph=transform.outputs["transform_graph"],
        train_args=tfx.proto.TrainArgs(num_steps=config.tuner_train_steps),
        eval_args=tfx.proto.EvalArgs(num_steps=config.eval_steps),
        custom_config={
            "max_trials": config.tuner_trials,
            "seed": config.seed,
            "code_fingerprint": code_fingerprint(config.tuner_fn),
        },
    )

    trainer = tfx.components.Trainer(
        run_fn=config.run_fn,
        examples=transform.outputs["transformed_examples"],
        transform_graph=transform.outputs["transform_graph"],
        schema=curated_schema.outputs["schema"],
        hyperparameters=tuner.outputs["best_hyperparameters"],
        train_args=tfx.proto.TrainArgs(num_steps=config.train_steps),
        eval_args=tfx.proto.EvalArgs(num_steps=config.eval_steps),
        custom_config={"seed": config.seed, "code_fingerprint": code_fingerprint(config.run_fn)},
    )

    blessed_model_resolver = tfx.dsl.Resolver(
        strategy_class=tfx.dsl.experimental.LatestBlessedModelStrategy,
        model=tfx.dsl.Channel(type=tfx.types.standard_artifacts.Model),
        model_blessing=tfx.dsl.Channel(type=tfx.types.standard_artifacts.ModelBlessing),
    ).with_id(BLESSED_MODEL_RESOLVER)

    evaluator = tfx.components.Evaluator(
        examples=example_gen.outputs["examples"],
        model=trainer.outputs["model"],
        baseline_model=blessed_model_resolver.outputs["model"],
        eval_config=eval_config(config),
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
            tensorflow_serving=tfx.proto.TensorFlowServingRequestSpec(
                signature_names=[model.SERVING_SIGNATURE]
            ),
            split_name="eval",
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

    unlabeled_example_gen = tfx.components.CsvExampleGen(
        input_base=config.unlabeled_data_location,
        output_config=tfx.proto.Output(
            split_config=tfx.proto.SplitConfig(
                splits=[tfx.proto.SplitConfig.Split(name=UNLABELED_SPLIT, hash_buckets=1)]
            )
        ),
    ).with_id(UNLABELED_EXAMPLE_GEN)

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
            transform,
            tuner,
            trainer,
            blessed_model_resolver,
            evaluator,
            infra_validator,
            pusher,
            unlabeled_example_gen,
            bulk_inferrer,
        ],
        enable_cache=config.enable_cache,
        metadata_connection_config=metadata_connection_config,
        beam_pipeline_args=list(config.beam_args),
    )

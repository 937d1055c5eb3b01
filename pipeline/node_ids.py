"""Node ids of the pipeline, as they appear in ML Metadata, on the console and in the Kubeflow spec.

A light module (no TFX import): the readers of ML Metadata and the console name nodes with it.
"""

LABELED_EXAMPLE_GEN = "CsvExampleGen"
STATISTICS_GEN = "StatisticsGen"
INFERRED_SCHEMA_GEN = "SchemaGen"
CURATED_SCHEMA = "CuratedSchemaImporter"
EXAMPLE_VALIDATOR = "ExampleValidator"
DRIFT_VALIDATOR = "DriftValidator"
DATA_GATE = "DataGate"
TRANSFORM = "Transform"
TUNER = "Tuner"
TRAINER = "Trainer"
BLESSED_MODEL_RESOLVER = "LatestBlessedModelResolver"
EVALUATOR = "Evaluator"
INFRA_VALIDATOR = "InfraValidator"
PUSHER = "Pusher"
UNLABELED_EXAMPLE_GEN = "UnlabeledExampleGen"
UNLABELED_STATISTICS_GEN = "UnlabeledStatisticsGen"
SKEW_VALIDATOR = "SkewValidator"
BULK_INFERRER = "BulkInferrer"

# Every node of create_pipeline() (TFX orders them topologically).
ALL = frozenset(
    {
        LABELED_EXAMPLE_GEN,
        STATISTICS_GEN,
        INFERRED_SCHEMA_GEN,
        CURATED_SCHEMA,
        EXAMPLE_VALIDATOR,
        DRIFT_VALIDATOR,
        DATA_GATE,
        TRANSFORM,
        TUNER,
        TRAINER,
        BLESSED_MODEL_RESOLVER,
        EVALUATOR,
        INFRA_VALIDATOR,
        PUSHER,
        UNLABELED_EXAMPLE_GEN,
        UNLABELED_STATISTICS_GEN,
        SKEW_VALIDATOR,
        BULK_INFERRER,
    }
)

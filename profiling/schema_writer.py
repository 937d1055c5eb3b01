"""The curated schema: TFDV's statistics and schema of the labeled rows as the pipeline reads them,
curated for this pipeline, and schema.pbtxt's text. TensorFlow, Beam and TFDV load only here,
inside the functions.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from components.profile import FeatureKind
from profiling.report import MOSTLY_EMPTY, InitReport
from profiling.task import Task
from profiling.text import comment
from profiling.value_types import SCHEMA_TYPE, ValueType


def example_statistics(labeled_file: Path) -> Any:
    """TFDV statistics of `labeled_file` read as the pipeline reads it: TFX's CSV-to-tf.Example
    transform, as in SpanCsvExampleGen, then statistics of those examples, as in StatisticsGen.

    Not tfdv.generate_statistics_from_csv: it counts an empty cell as a missing feature, where
    CsvExampleGen writes the feature with no value (so a schema from it would refuse every empty
    cell: "fewer values than expected"), and it cannot read a quoted value that spans lines.
    """
    # Beam and TFDV import TensorFlow (seconds): loaded only when a schema is made.
    import apache_beam as beam
    import tensorflow_data_validation as tfdv

    from components import tfx_private

    with tempfile.TemporaryDirectory(prefix="init-examples-") as scratch:
        reader_settings = {"input_base": str(labeled_file.parent), "_beam_pipeline_args": []}
        with beam.Pipeline() as pipeline:  # the DirectRunner
            _ = (
                pipeline
                | "ReadCsv" >> tfx_private.CsvToExample(reader_settings, labeled_file.name)
                | "Serialize" >> beam.Map(lambda example: example.SerializeToString())
                | "Write"
                >> beam.io.WriteToTFRecord(f"{scratch}/examples", file_name_suffix=".tfrecord")
            )
        return tfdv.generate_statistics_from_tfrecord(f"{scratch}/examples*")


def curated_schema(
    statistics: Any, report: InitReport, chosen: Task, types: dict[str, ValueType]
) -> tuple[Any, list[str]]:
    """TFDV's schema of the labeled split, curated for this pipeline (see schema_text), and
    the feature columns left with a closed list of values."""
    import tensorflow_data_validation as tfdv
    from tensorflow_metadata.proto.v0 import schema_pb2

    # No shapes: a column may be empty in some row, and Transform fills a default for it.
    schema = tfdv.infer_schema(statistics, infer_feature_shape=False)
    choices = {c.name: c for c in report.columns}
    domains = {d.name: d for d in schema.string_domain}
    string_domains = []
    for feature in schema.feature:
        expected = SCHEMA_TYPE.get(types[feature.name])
        typed = schema_pb2.FeatureType.Name(feature.type)
        if expected and typed != expected:
            raise AssertionError(f"TFDV typed {feature.name!r} {typed}, init expected {expected}")
        choice = choices.get(feature.name)
        if choice is not None and choice.kind in (
            FeatureKind.DATETIME.value,
            FeatureKind.TEXT.value,
        ):
            if feature.HasField("domain"):
                # Dates and free text take new values in every span: no closed list.
                schema.string_domain.remove(domains[feature.domain])
                feature.ClearField("domain")
        elif choice is not None and choice.kind == FeatureKind.IGNORED.value:
            if feature.HasField("domain"):
                # Not used by the model: a new value there should not stop a run.
                schema.string_domain.remove(domains[feature.domain])
                feature.ClearField("domain")
            if choice.missing > MOSTLY_EMPTY * report.labeled_rows:
                # A span may have no value at all; CSV ingestion then drops the column.
                feature.presence.min_fraction = 0.0
                feature.presence.min_count = 0
        elif choice is not None and choice.kind == FeatureKind.INTEGER_CATEGORY.value:
            # Counted per value: statistics show each value, drift is an L-infinity distance.
            feature.int_domain.is_categorical = True
        elif choice is not None and (feature.HasField("domain") or feature.HasField("bool_domain")):
            string_domains.append(feature.name)
        if feature.name == report.label:
            feature.not_in_environment.append("SERVING")
            if chosen.classes and chosen.label_type == ValueType.INT:
                # The classes, counted per class; another value stops the run at the data gate.
                ids = [int(c) for c in chosen.classes]
                feature.int_domain.min = min(ids)
                feature.int_domain.max = max(ids)
                feature.int_domain.is_categorical = True
            elif chosen.classes and chosen.label_type == ValueType.TEXT and not feature.domain:
                schema.string_domain.add(name=feature.name, value=chosen.classes)
                feature.domain = feature.name
    schema.default_environment.extend(["TRAINING", "SERVING"])
    anomalies = tfdv.validate_statistics(statistics, schema, environment="TRAINING")
    if anomalies.anomaly_info:
        raise AssertionError(
            "init's curated schema refuses the data it was made from: "
            + "; ".join(f"{k}: {v.description}" for k, v in anomalies.anomaly_info.items())
        )
    return schema, string_domains


def schema_text(schema: Any, report: InitReport) -> str:
    """schema.pbtxt: the house header (see schema/schema.pbtxt), then the text proto."""
    from google.protobuf import text_format

    header = [
        "# proto-file: tensorflow_metadata/proto/v0/schema.proto",
        "# proto-message: Schema",
        *comment(
            "",
            f"The curated schema of {report.csv_path.name}, made by `init`: inferred by TFDV from "
            f"the {report.labeled_rows} labeled rows as CsvExampleGen reads them, then curated as "
            "below. ExampleValidator checks every span against it and Transform reads it: review "
            "it like code. `python run_local.py schema diff|accept` proposes changes from new "
            "data.",
            "- presence 1.0: CsvExampleGen writes every column in every row (an empty cell as a "
            "feature with no value);",
            "- value_count min 1: the column had a value in every labeled row, so a span with an "
            "empty cell there is refused; without it the column may be empty (Transform fills a "
            "default);",
            "- string_domain: the values a text column may take; a new value is refused at the "
            "data gate (remove the list, and the feature's `domain:` line, to accept any value);",
            "- no ranges for numbers: add int_domain / float_domain min and max where you know "
            "them; they are the numeric columns' guard, as those have no drift threshold;",
            "- is_categorical: an integer counted per value (statistics, L-infinity drift);",
            "- the columns the profile ignores keep their type and no value list;",
            f"- {report.label!r} is the label: required for TRAINING, absent for SERVING (the "
            "batch to score).",
        ),
    ]
    return "\n".join(header) + "\n" + text_format.MessageToString(schema)

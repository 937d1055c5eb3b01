"""Invariants of the features module that every component relies on."""

import csv

from google.protobuf import text_format
from tensorflow_metadata.proto.v0 import schema_pb2

from components import features
from tests.conftest import DATA_DIR, PROJECT_ROOT


def test_label_is_not_a_model_feature():
    assert features.LABEL_KEY not in features.MODEL_FEATURE_KEYS
    assert features.LABEL_KEY not in features.UNUSED_FEATURE_KEYS


def test_no_feature_is_named_twice():
    assert len(set(features.RAW_COLUMNS)) == len(features.RAW_COLUMNS)
    transformed = [features.transformed_name(k) for k in features.RAW_COLUMNS]
    assert len(set(transformed)) == len(transformed)
    assert not set(transformed) & set(features.RAW_COLUMNS)


def test_every_data_column_has_a_role():
    labeled = sorted((DATA_DIR / "labeled").glob("span-*/*.csv"))
    unlabeled = sorted((DATA_DIR / "unlabeled").glob("span-*/*.csv"))
    assert len(labeled) >= 2 and unlabeled  # two spans, so drift has something to compare
    for path in labeled + unlabeled:
        with path.open(newline="") as f:
            header = next(csv.reader(f))
        expected = set(features.RAW_COLUMNS) - (set() if path in labeled else {features.LABEL_KEY})
        assert sorted(header) == sorted(expected), path


def test_curated_schema_names_exactly_the_raw_columns():
    schema = text_format.Parse(
        (PROJECT_ROOT / "schema" / "schema.pbtxt").read_text(), schema_pb2.Schema()
    )
    assert sorted(f.name for f in schema.feature) == sorted(features.RAW_COLUMNS)
    label = next(f for f in schema.feature if f.name == features.LABEL_KEY)
    assert "SERVING" in label.not_in_environment


def test_slice_features_are_raw_features():
    assert set(features.SLICE_FEATURE_KEYS) <= set(features.MODEL_FEATURE_KEYS)

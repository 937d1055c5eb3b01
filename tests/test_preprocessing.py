"""`preprocessing_fn` run for real with tf.Transform on a handful of rows."""

import functools

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_transform.beam as tft_beam
from tensorflow_transform.tf_metadata import dataset_metadata, schema_utils

from components import preprocessing
from components.profile import FeatureKind, transformed_name
from tests.conftest import taxi_config

TAXI = taxi_config().profile
RAW_COLUMNS = [*TAXI.features, TAXI.label.column]

# Six trips: two big tippers (tips > 20% of fare), missing coordinates, company and trip_seconds
# in some rows, and one out-of-range hour.
ROWS = [
    dict(
        fare=10.0,
        tips=3.0,
        trip_miles=1.0,
        trip_seconds=600,
        payment_type="Credit Card",
        company="Flash Cab",
        trip_start_hour=23,
        pickup_latitude=41.9,
    ),
    dict(
        fare=20.0,
        tips=0.0,
        trip_miles=5.0,
        trip_seconds=None,
        payment_type="Cash",
        company=None,
        trip_start_hour=0,
        pickup_latitude=None,
    ),
    dict(
        fare=30.0,
        tips=1.0,
        trip_miles=9.0,
        trip_seconds=1800,
        payment_type="Cash",
        company="Flash Cab",
        trip_start_hour=12,
        pickup_latitude=41.8,
    ),
    dict(
        fare=5.0,
        tips=2.0,
        trip_miles=0.5,
        trip_seconds=300,
        payment_type="Credit Card",
        company="Taxi Affiliation Services",
        trip_start_hour=99,
        pickup_latitude=42.0,
    ),
    dict(
        fare=40.0,
        tips=0.0,
        trip_miles=12.0,
        trip_seconds=2400,
        payment_type="Cash",
        company=None,
        trip_start_hour=7,
        pickup_latitude=41.7,
    ),
    dict(
        fare=15.0,
        tips=0.0,
        trip_miles=3.0,
        trip_seconds=900,
        payment_type="Cash",
        company="Flash Cab",
        trip_start_hour=18,
        pickup_latitude=41.95,
    ),
]

FLOAT_KEYS = (
    "fare",
    "tips",
    "trip_miles",
    "pickup_latitude",
    "pickup_longitude",
    "dropoff_latitude",
    "dropoff_longitude",
)
STRING_KEYS = ("payment_type", "company")


def _raw_feature_spec():
    spec = {}
    for key in RAW_COLUMNS:
        if key in FLOAT_KEYS:
            spec[key] = tf.io.VarLenFeature(tf.float32)
        elif key in STRING_KEYS:
            spec[key] = tf.io.VarLenFeature(tf.string)
        else:
            spec[key] = tf.io.VarLenFeature(tf.int64)
    return spec


def _instances():
    instances = []
    for row in ROWS:
        instance = {}
        for key in RAW_COLUMNS:
            value = row.get(key)
            if key in ("trip_start_day", "trip_start_month"):
                value = 3
            if value is None:
                instance[key] = []
            else:
                instance[key] = [value.encode() if isinstance(value, str) else value]
        instances.append(instance)
    return instances


@pytest.fixture(scope="module")
def transformed(tmp_path_factory):
    temp_dir = str(tmp_path_factory.mktemp("tft"))
    metadata = dataset_metadata.DatasetMetadata(
        schema_utils.schema_from_feature_spec(_raw_feature_spec())
    )
    with tft_beam.Context(temp_dir=temp_dir, force_tf_compat_v1=False):
        (output, _), transform_fn = (_instances(), metadata) | tft_beam.AnalyzeAndTransformDataset(
            functools.partial(
                preprocessing.preprocessing_fn, custom_config={"profile": TAXI.transform_part()}
            ),
            output_record_batches=False,
        )
    return output, transform_fn


def _column(output, key):
    return np.array([row[transformed_name(key)] for row in output])


def test_label_is_tip_over_twenty_percent_of_fare(transformed):
    output, _ = transformed
    assert TAXI.label.positive_when.greater_than == 0.2
    expected = [int(r["tips"] > 0.2 * r["fare"]) for r in ROWS]
    assert list(_column(output, "tips")) == expected == [1, 0, 0, 1, 0, 0]


def test_numerics_become_z_scores(transformed):
    output, _ = transformed
    fare = _column(output, "fare")
    raw = np.array([r["fare"] for r in ROWS])
    np.testing.assert_allclose(fare, (raw - raw.mean()) / raw.std(), rtol=1e-5)
    assert abs(_column(output, "trip_seconds").mean()) < 1e-5  # missing filled before scaling


def test_vocabularies_give_ids_and_missing_values_get_one(transformed):
    output, _ = transformed
    payment = _column(output, "payment_type")
    assert set(payment) == {0, 1}  # two distinct values, most frequent first
    assert payment[1] == payment[2] == 0  # "Cash" is most frequent
    company = _column(output, "company")
    assert company[1] == company[4]  # both missing: the same id for the empty value
    assert company[0] == company[2] == company[5]


def test_out_of_range_hour_gets_its_own_id(transformed):
    output, _ = transformed
    hour = _column(output, "trip_start_hour")
    assert list(hour) == [
        23,
        0,
        12,
        TAXI.features["trip_start_hour"].max + 1,
        7,
        18,
    ]


def test_coordinates_are_bucketized(transformed):
    output, _ = transformed
    buckets = _column(output, "pickup_latitude")
    assert buckets.dtype == np.int64
    assert buckets.min() >= 0 and buckets.max() < TAXI.features["pickup_latitude"].buckets
    # Ordered like the raw latitudes (41.7 < 41.8 < 41.9 < 41.95 < 42.0).
    assert buckets[4] <= buckets[2] <= buckets[0] <= buckets[5] <= buckets[3]


def test_every_output_is_a_named_transformed_feature(transformed):
    output, _ = transformed
    expected = {transformed_name(k) for k in TAXI.model_features}
    expected.add(TAXI.transformed_label)
    assert set(output[0]) == expected
    assert not {transformed_name(k) for k in TAXI.of_kind(FeatureKind.IGNORED)} & set(output[0])


def _transform_rows(profile, rows, spec, tmp_path):
    metadata = dataset_metadata.DatasetMetadata(schema_utils.schema_from_feature_spec(spec))
    with tft_beam.Context(temp_dir=str(tmp_path), force_tf_compat_v1=False):
        (output, _), _ = (rows, metadata) | tft_beam.AnalyzeAndTransformDataset(
            functools.partial(
                preprocessing.preprocessing_fn,
                custom_config={"profile": profile.transform_part()},
            ),
            output_record_batches=False,
        )
    return output


def _profile(text):
    from components import profile

    return profile.parse(text, "test profile")


def test_string_class_labels_become_ids_in_the_profiles_order(tmp_path):
    profile = _profile(
        """
name: owners
label: {column: Pet Kind, task: multiclass, classes: [dog, cat, "bird/parrot"]}
features:
  Weight (kg): numeric
  Home/City: vocabulary
"""
    )
    spec = {
        "Pet Kind": tf.io.VarLenFeature(tf.string),
        "Weight (kg)": tf.io.VarLenFeature(tf.float32),
        "Home/City": tf.io.VarLenFeature(tf.string),
    }
    rows = [
        {"Pet Kind": [b"cat"], "Weight (kg)": [4.0], "Home/City": [b"Oslo"]},
        {"Pet Kind": [b"bird/parrot"], "Weight (kg)": [0.3], "Home/City": []},
        {"Pet Kind": [b"dog"], "Weight (kg)": [], "Home/City": [b"Oslo"]},
    ]
    output = _transform_rows(profile, rows, spec, tmp_path)
    assert [row["pet_kind_xf"] for row in output] == [1, 2, 0]
    assert {"weight_kg_xf", "home_city_xf"} <= set(output[0])


def test_integer_class_labels_and_a_regression_label(tmp_path):
    classes = _profile(
        "name: p\nlabel: {column: species, task: multiclass, classes: [0, 1, 2]}\n"
        "features: {x: numeric}"
    )
    spec = {"species": tf.io.VarLenFeature(tf.int64), "x": tf.io.VarLenFeature(tf.float32)}
    rows = [{"species": [2], "x": [1.0]}, {"species": [0], "x": [2.0]}]
    assert [r["species_xf"] for r in _transform_rows(classes, rows, spec, tmp_path / "a")] == [2, 0]

    regression = _profile(
        "name: r\nlabel: {column: price, task: regression}\nfeatures: {x: numeric}"
    )
    spec = {"price": tf.io.VarLenFeature(tf.float32), "x": tf.io.VarLenFeature(tf.float32)}
    rows = [{"price": [12.5], "x": [1.0]}, {"price": [-3.0], "x": [2.0]}]
    output = _transform_rows(regression, rows, spec, tmp_path / "b")
    assert [r["price_xf"] for r in output] == [12.5, -3.0]

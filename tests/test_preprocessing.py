"""`preprocessing_fn` run for real with tf.Transform on a handful of rows."""

import functools
import tempfile

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


NEW_KINDS_PROFILE = """
name: new-kinds
label: {column: label, task: binary, classes: ["0", "1"]}
features:
  joined: {kind: datetime, format: iso, parts: [day_of_week, month, hour, age]}
  seen: {kind: datetime, format: epoch_milliseconds, parts: [day_of_week, hour]}
  active: boolean
  notes: {kind: text, top_k: 3, oov_buckets: 1, max_tokens: 4}
"""
NEW_KINDS_SPEC = {
    "joined": tf.io.VarLenFeature(tf.string),
    "seen": tf.io.VarLenFeature(tf.int64),
    "active": tf.io.VarLenFeature(tf.string),
    "notes": tf.io.VarLenFeature(tf.string),
    "label": tf.io.VarLenFeature(tf.int64),
}
NEW_KINDS_ROWS = [
    # 2024-03-04 was a Monday; 1_700_000_000_000 ms is Tuesday 2023-11-14 22:13:20 UTC.
    {
        "joined": [b"2024-03-04 18:30:00"],
        "seen": [1_700_000_000_000],
        "active": [b"Yes"],
        "notes": [b"Slow, slow delivery!"],
        "label": [1],
    },
    {
        "joined": [b"2024-12-29"],
        "seen": [0],
        "active": [b"no"],
        "notes": [b"slow app"],
        "label": [0],
    },
    {"joined": [b"03/14/2024"], "seen": [], "active": [], "notes": [], "label": [0]},
    {
        "joined": [],
        "seen": [86_400_000 * 4],
        "active": [b"maybe"],
        "notes": [b"refund please, slow app again and again"],
        "label": [1],
    },
]


def test_dates_booleans_and_text_become_model_inputs():
    """Days of week, months and hours on the circle, a z-scored age, missing or unreadable
    dates at the centre; booleans in any spelling; words as ids of the most frequent, padded."""
    from components import profile as profiles

    profile = profiles.parse(NEW_KINDS_PROFILE, "test profile")
    metadata = dataset_metadata.DatasetMetadata(
        schema_utils.schema_from_feature_spec(NEW_KINDS_SPEC)
    )
    with tft_beam.Context(temp_dir=tempfile.mkdtemp(), force_tf_compat_v1=False):
        (rows, _), _ = (NEW_KINDS_ROWS, metadata) | tft_beam.AnalyzeAndTransformDataset(
            functools.partial(
                preprocessing.preprocessing_fn,
                custom_config={"profile": profile.transform_part()},
            ),
            output_record_batches=False,
        )
    names = {i.name for i in profile.model_inputs()}
    assert set(rows[0]) == names | {profile.transformed_label}

    def angle(row, part):
        return np.arctan2(row[f"joined_{part}_sin_xf"], row[f"joined_{part}_cos_xf"])

    monday = rows[0]
    assert np.isclose(angle(monday, "day_of_week"), 0.0, atol=1e-6)  # Monday: 0
    assert np.isclose(angle(monday, "month"), 2 * np.pi * 2 / 12)  # March: 2 of 0..11
    assert np.isclose(angle(monday, "hour"), 2 * np.pi * 18 / 24 - 2 * np.pi)
    sunday = rows[1]  # a date alone: hour 0; December: 11 of 0..11
    assert np.isclose(angle(sunday, "day_of_week"), 2 * np.pi * 6 / 7 - 2 * np.pi)
    assert np.isclose(angle(sunday, "month"), 2 * np.pi * 11 / 12 - 2 * np.pi)
    assert np.isclose(sunday["joined_hour_cos_xf"], 1.0)
    # Not ISO, and missing: no value, at the circle's centre, of mean age.
    for row in rows[2:]:
        assert row["joined_day_of_week_sin_xf"] == 0 and row["joined_day_of_week_cos_xf"] == 0
        assert row["joined_age_xf"] == 0
    # The two readable dates z-score to -1 and +1.
    assert np.isclose(monday["joined_age_xf"], -1.0) and np.isclose(sunday["joined_age_xf"], 1.0)
    # Epoch milliseconds: a Tuesday at 22:00; 1970-01-05 was a Monday at midnight.
    tuesday = np.arctan2(rows[0]["seen_day_of_week_sin_xf"], rows[0]["seen_day_of_week_cos_xf"])
    assert np.isclose(tuesday, 2 * np.pi / 7)
    assert np.isclose(
        np.arctan2(rows[0]["seen_hour_sin_xf"], rows[0]["seen_hour_cos_xf"]),
        2 * np.pi * 22 / 24 - 2 * np.pi,
    )
    assert np.isclose(rows[3]["seen_day_of_week_cos_xf"], 1.0)
    assert rows[2]["seen_hour_sin_xf"] == 0 and rows[2]["seen_hour_cos_xf"] == 0

    assert [int(r["active_xf"]) for r in rows] == [1, 0, 2, 2]

    # "slow" (4 rows' worth), then "app" (2), then "again" (2; ties broken by tf.Transform):
    # ids 1.. for the 3 kept, 4 for every other word (one out-of-vocabulary id), 0 pads.
    notes = [list(r["notes_xf"]) for r in rows]
    assert all(len(n) == 4 for n in notes)
    assert notes[0] == [1, 1, 4, 0]  # slow, slow, delivery (not kept)
    assert notes[1][:2] == [1, notes[3][3]] and notes[1][2:] == [0, 0]  # slow, app
    assert notes[2] == [0, 0, 0, 0]
    assert notes[3][0] == 4 and notes[3][2] == 1  # refund (not kept), please, slow ...: 4 words

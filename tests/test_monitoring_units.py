"""The pieces of `monitor` on their own: windows, labels and their join, distances, the label a
profile reads, and feedback written by the request logger (tests/test_monitoring.py runs it
whole against a real server)."""

from __future__ import annotations

import datetime

import numpy as np
import pytest
import tensorflow as tf

from components.profile import Profile
from monitoring import checks, monitor, traffic
from serving import rest_api
from serving.inference import ServingError
from serving.request_log import RequestLogger, RequestLogOptions

NOW = datetime.datetime(2026, 12, 6, 18, 0, tzinfo=datetime.timezone.utc)


def test_a_window_bound_is_an_iso_time_or_a_duration_back_from_now():
    assert monitor.parse_time("30m", NOW, "--since") == NOW - datetime.timedelta(minutes=30)
    assert monitor.parse_time("2h", NOW, "--since") == NOW - datetime.timedelta(hours=2)
    assert monitor.parse_time("1d", NOW, "--since") == NOW - datetime.timedelta(days=1)
    assert monitor.parse_time("2026-12-06T17:00", NOW, "--since") == NOW - datetime.timedelta(
        hours=1
    )
    assert monitor.parse_time("2026-12-06T18:00:00+01:00", NOW, "--until") == NOW - (
        datetime.timedelta(hours=1)
    )
    with pytest.raises(monitor.MonitorError, match="--until: 'soon' is neither an ISO time"):
        monitor.parse_time("soon", NOW, "--until")


def _traffic(*requests: tuple[int, str, int]) -> traffic.Traffic:
    """Traffic of (version, request id, rows) requests."""
    by_version: dict[int, traffic.Rows] = {}
    for version, request_id, rows in requests:
        by_version.setdefault(version, traffic.Rows(version)).add(
            request_id, 0, 1.0, [b""] * rows, [np.array([0.5])] * rows
        )
    return traffic.Traffic(NOW, NOW, by_version, 1, [], 0, 0)


def test_labels_join_by_request_id_and_row_and_the_rest_are_counted():
    window = _traffic((1, "a", 2), (1, "b", 1), (2, "c", 1))
    labels = [
        traffic.Label("a", 1, 5.0, "f"),
        traffic.Label("b", 0, 1.0, "f"),
        traffic.Label("b", 0, 2.0, "f"),  # a later label for the same row replaces the earlier
        traffic.Label("c", 0, 3.0, "f"),
        traffic.Label("a", 7, 1.0, "f"),  # no such row
        traffic.Label("zzz", 0, 1.0, "f"),
    ]
    joined, unmatched = traffic.join_labels(window, labels)
    assert joined[1].rows == [1, 2] and joined[1].values == [5.0, 2.0]
    assert joined[2].rows == [0] and joined[2].values == [3.0]
    assert [(u.request_id, u.row) for u in unmatched] == [("a", 7), ("zzz", 0)]


def test_a_labels_file_without_its_columns_is_named(tmp_path):
    good = tmp_path / "labels.csv"
    good.write_text("request_id,label\nabc,1.5\ndef,0\n")
    assert [(x.request_id, x.row, x.value) for x in traffic.labels_file(str(good))] == [
        ("abc", 0, "1.5"),
        ("def", 0, "0"),
    ]
    bad = tmp_path / "bad.csv"
    bad.write_text("id,label\nabc,1\n")
    with pytest.raises(traffic.TrafficError, match=f"--labels: {bad} has no request_id column"):
        traffic.labels_file(str(bad))
    rows = tmp_path / "rows.csv"
    rows.write_text("request_id,row,label\nabc,first,1\n")
    with pytest.raises(traffic.TrafficError, match="line 2: row 'first' is not a row index"):
        traffic.labels_file(str(rows))
    with pytest.raises(traffic.TrafficError, match="does not exist"):
        traffic.labels_file(str(tmp_path / "missing.csv"))


def test_jensen_shannon_is_zero_for_equal_and_one_for_disjoint_histograms():
    assert checks.jensen_shannon(np.array([1.0, 2.0, 3.0]), np.array([2.0, 4.0, 6.0])) == 0
    assert checks.jensen_shannon(np.array([1.0, 0.0]), np.array([0.0, 1.0])) == pytest.approx(1)


def test_prediction_drift_bins_at_the_eval_answers_deciles():
    rng = np.random.default_rng(0)
    reference = rng.uniform(0, 1, 5000)
    same = checks.prediction_drift(rng.uniform(0, 1, 1000), reference, "binary", 0.1)
    assert same["distance"] < 0.02 and same["findings"] == []
    assert len(same["bin_edges"]) == 9 and sum(same["eval_share"]) == pytest.approx(1)
    shifted = checks.prediction_drift(rng.uniform(0.8, 1, 1000), reference, "binary", 0.1)
    assert shifted["distance"] > 0.5
    (finding,) = shifted["findings"]
    assert finding.check == "prediction_drift" and "drifted" in finding.message
    classes = checks.prediction_drift(np.array([0.0, 0, 2]), np.array([0.0, 1, 2]), "multiclass", 1)
    assert classes["live_share"] == [0.6667, 0.0, 0.3333]  # shares to four decimals


def _profile(**label) -> Profile:
    return Profile.model_validate(
        {"name": "p", "label": label, "features": {"fare": "numeric", "kind": "vocabulary"}}
    )


def _fare(fare: float) -> bytes:
    return tf.train.Example(
        features=tf.train.Features(
            feature={"fare": tf.train.Feature(float_list=tf.train.FloatList(value=[fare]))}
        )
    ).SerializeToString()


def test_a_label_is_read_as_the_profile_reads_its_label_column():
    fare_12 = _fare(12.0)
    derived = _profile(
        column="tips", task="binary", positive_when={"greater_than": 0.2, "times_column": "fare"}
    )
    assert checks.target_of(3.0, derived, fare_12) == 1.0  # 3 > 0.2 * 12
    assert checks.target_of("2.0", derived, fare_12) == 0.0
    # As Transform: float32, and a missing fare read as 0.
    assert 0.23 > 1.15 * 0.2  # in float64; not in float32, where training decided it
    assert checks.target_of(0.23, derived, _fare(1.15)) == 0.0
    assert checks.target_of(0.01, derived, tf.train.Example().SerializeToString()) == 1.0
    with pytest.raises(checks.LabelError, match="'many' is not a number"):
        checks.target_of("many", derived, fare_12)
    classes = _profile(
        column="species", task="multiclass", classes=["Adelie", "Gentoo", "Chinstrap"]
    )
    assert checks.target_of("Gentoo", classes, b"") == 1.0
    with pytest.raises(checks.LabelError, match="'Emperor' is not one of the classes"):
        checks.target_of("Emperor", classes, b"")
    ids = _profile(column="y", task="binary", classes=[0, 1])
    assert checks.target_of("1.0", ids, b"") == 1.0  # as a CSV writes it


def test_live_quality_is_judged_against_the_evaluators_figure():
    profile = _profile(column="y", task="binary", classes=[0, 1])
    targets = np.array([0.0, 1.0] * 30)
    good = [np.array([0.2]), np.array([0.9])] * 30
    quality = checks.live_quality(targets, good, profile, {"auc": 0.95})
    assert quality["metrics"] == {"accuracy": 1.0, "auc": 1.0} and quality["findings"] == []
    bad = [np.array([0.9]), np.array([0.2])] * 30
    quality = checks.live_quality(targets, bad, profile, {"auc": 0.95})
    (finding,) = quality["findings"]
    assert "live auc 0.0000 on 60 labelled rows, against the Evaluator's 0.9500" in finding.message
    few = checks.live_quality(targets[:10], bad[:10], profile, {"auc": 0.95})
    assert not few["judged"] and few["findings"] == []


def test_feedback_is_checked_then_written_for_monitor_to_read(tmp_path):
    assert rest_api._feedback_entry({"request_id": "r1", "label": 2.5}, "") == {
        "request_id": "r1",
        "label": 2.5,
        "row": 0,
    }
    for entry, message in (
        ({"label": 1}, '"request_id" must be'),
        ({"request_id": "r", "label": None}, '"label" must be'),
        ({"request_id": "r", "label": [1]}, '"label" must be'),
        ({"request_id": "r", "label": 1, "row": -1}, '"row" must be'),
        ({"request_id": "r", "label": 1, "weight": 2}, "Unknown key 'weight'"),
    ):
        with pytest.raises(ServingError, match=message):
            rest_api._feedback_entry(entry, "[3]")
    logger = RequestLogger(RequestLogOptions(directory=str(tmp_path)), "taxi")
    assert logger.log_feedback([{"request_id": "r1", "label": 2.5, "row": 1}])
    logger.stop()
    (label,) = traffic.feedback_labels(str(tmp_path))
    assert (label.request_id, label.row, label.value) == ("r1", 1, 2.5)
    assert traffic.logger_counts(str(tmp_path))["feedback"] == 1

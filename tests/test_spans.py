"""Spans, the training window, file checks and the drift/skew settings, without running TFX."""

from __future__ import annotations

from google.protobuf import json_format
from tfx import v1 as tfx

from components.span_example_gen import csv_checks, spans
from pipeline import definition as pipeline_module
from tests.conftest import taxi_config


def test_span_plan_reads_latest_previous_and_the_older_spans_of_the_window():
    plan = spans.SpanPlan.make(latest=5, training_spans=4)
    assert (plan.latest, plan.previous, plan.older) == (5, 4, (2, 3))
    assert plan.all_spans() == (2, 3, 4, 5)
    # A window of one still reads the previous span: it is the drift baseline.
    assert spans.SpanPlan.make(latest=5, training_spans=1).all_spans() == (4, 5)
    assert spans.training_roles(1) == ("latest",)
    assert spans.output_split_names(2) == [
        "latest_train",
        "latest_eval",
        "previous_train",
        "previous_eval",
    ]


def test_span_folders_follow_the_pattern(tmp_path):
    for name in ("span-1", "span-2", "span-10", "notes", "span-x"):
        (tmp_path / name).mkdir()
    assert sorted(spans.span_folders(str(tmp_path), "span-{SPAN}/*.csv")) == [1, 2, 10]
    assert spans.pattern_for_span("span-{SPAN:3}/*.csv", 7) == "span-007/*.csv"
    assert spans.span_folder_regex("data-{SPAN}.csv") is None  # span in the file name


def _write(tmp_path, content: bytes):
    path = tmp_path / "taxi.csv"
    path.write_bytes(content)
    return str(path)


def test_csv_checks_accept_quoted_fields_across_lines(tmp_path):
    path = _write(tmp_path, b'a,b,c\n1,"two, or\nthree",3\n4,5,6\n')
    assert csv_checks.check_csv_file(path) == []


def test_csv_checks_name_the_line_of_a_row_with_too_few_fields(tmp_path):
    path = _write(tmp_path, b"a,b,c\n1,2,3\n4,5\n")
    assert csv_checks.check_csv_file(path) == [
        f"{path}, line 3: 2 fields, but the header has 3; fix the row (a stray comma or quote?) "
        "or remove it"
    ]


def test_csv_checks_reject_a_header_with_repeated_or_empty_names(tmp_path):
    problems = csv_checks.check_csv_file(_write(tmp_path, b"a,a,\n1,2,3\n"))
    assert any("empty column name" in p for p in problems)
    assert any("repeats column(s) a" in p for p in problems)


def test_csv_checks_report_every_bad_file_at_once(tmp_path):
    good = tmp_path / "good.csv"
    good.write_bytes(b"a\n1\n")
    empty = tmp_path / "empty.csv"
    empty.write_bytes(b"")
    try:
        csv_checks.check_span_files([str(good), str(empty), str(empty)])
    except csv_checks.InvalidInputData as e:
        assert str(e).count("is empty (0 bytes)") == 2
        assert "nothing was ingested" in str(e)
    else:
        raise AssertionError("an empty file must be refused")


def test_training_window_reaches_transform_tuner_trainer_and_evaluator(tmp_path):
    config = taxi_config(output_dir=tmp_path, training_spans=3)
    by_id = {c.id: c for c in pipeline_module.create_pipeline(config).components}
    train = ["latest_train", "previous_train", "older_train"]
    evaluation = ["latest_eval", "previous_eval", "older_eval"]
    splits_config = json_format.Parse(
        by_id["Transform"].exec_properties["splits_config"], tfx.proto.SplitsConfig()
    )
    assert list(splits_config.analyze) == train
    assert list(splits_config.transform) == []  # nothing materialized (test_pipeline)
    for node in ("Tuner", "Trainer"):
        train_args = json_format.Parse(
            by_id[node].exec_properties["train_args"], tfx.proto.TrainArgs()
        )
        eval_args = json_format.Parse(
            by_id[node].exec_properties["eval_args"], tfx.proto.EvalArgs()
        )
        assert list(train_args.splits) == train and list(eval_args.splits) == evaluation
    assert by_id["Evaluator"].exec_properties["example_splits"] == (
        '["latest_eval", "previous_eval", "older_eval"]'
    )
    assert by_id["CsvExampleGen"].exec_properties["training_spans"] == 3
    assert by_id["CsvExampleGen"].exec_properties["span_pattern"] == config.span_pattern


def test_drift_and_skew_thresholds_pick_the_comparator_by_feature_kind():
    categorical = pipeline_module.categorical_columns(taxi_config().curated_schema_file)
    assert "payment_type" in categorical and "trip_start_hour" not in categorical
    config = pipeline_module.distribution_config(
        {"payment_type": 0.1, "trip_start_hour": 0.05}, categorical
    )
    by_feature = {
        f.path.step[0]: f.distribution_comparator for f in config.default_slice_config.feature
    }
    assert by_feature["payment_type"].infinity_norm.threshold == 0.1
    assert by_feature["trip_start_hour"].jensen_shannon_divergence.threshold == 0.05
    defaults = taxi_config()
    assert "tips" in defaults.drift_thresholds and "tips" not in defaults.skew_thresholds

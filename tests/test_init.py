"""`init`: a CSV and its label column in, a profile folder that loads out (real TFDV on small
CSVs); bad input refused with one clear line, exit code 2, and nothing written."""

from __future__ import annotations

import csv
import random
from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner, Result
from google.protobuf import text_format
from tensorflow_metadata.proto.v0 import schema_pb2

from cli import exit_codes
from cli.init_command import init
from components import profile as profiles
from profiling import folder
from profiling.init import init_profile, profile_name
from profiling.split import split_rows
from profiling.value_types import ValueType, value_type

SCHEMA_HEADER = [
    "# proto-file: tensorflow_metadata/proto/v0/schema.proto",
    "# proto-message: Schema",
]
LAYOUT = {
    "profile.yaml",
    "schema.pbtxt",
    "data/labeled/span-1/data.csv",
    "data/unlabeled/span-1/data.csv",
}
BINARY_HEADER = ["customer id", "Plan / Tier", "Monthly Spend", "support calls", "source", "answer"]
BINARY_ROWS = 200
UNLABELED_EVERY = 50  # every 50th row has no label: 4 of 200


def write_csv(path: Path, header: list[str], rows: list[list[object]]) -> Path:
    with path.open("w", newline="") as f:
        writer = csv.writer(f, lineterminator="\n")
        writer.writerow(header)
        writer.writerows(rows)
    return path


def read_csv(path: Path) -> list[list[str]]:
    with path.open(newline="") as f:
        return list(csv.reader(f))


def run_init(*args: object) -> Result:
    return CliRunner().invoke(init, [str(a) for a in args], catch_exceptions=False)


def binary_rows(count: int = BINARY_ROWS) -> list[list[object]]:
    """A learnable yes/no label; a text feature with empty cells; an ID and a constant column."""
    rng = random.Random(3)
    rows = []
    for i in range(count):
        plan = rng.choice(["basic", "plus", "pro", ""])
        spend = round(rng.uniform(5, 120), 2)
        calls = rng.randint(0, 9)
        answer = "yes" if calls * 0.5 + (plan == "basic") + rng.gauss(0, 1) > 2.5 else "no"
        rows.append(
            [1000 + i, plan, spend, calls, "web", "" if i % UNLABELED_EVERY == 7 else answer]
        )
    return rows


@pytest.fixture(scope="module")
def binary(tmp_path_factory):
    """One init of the binary CSV, shared by the tests that read its output."""
    root = tmp_path_factory.mktemp("binary")
    rows = binary_rows()
    source = write_csv(root / "customers.csv", BINARY_HEADER, rows)
    out = root / "Churn Profile"
    result = run_init("--csv", source, "--label", "answer", "--out", out)
    assert result.exit_code == 0, result.output
    return {"root": root, "rows": rows, "out": out, "result": result}


def test_binary_init_writes_the_folder_and_splits_every_labeled_row_once(binary):
    out, rows = binary["out"], binary["rows"]
    written = {str(p.relative_to(out)) for p in out.rglob("*") if p.is_file()}
    assert written == LAYOUT
    assert sorted(p.name for p in binary["root"].iterdir()) == ["Churn Profile", "customers.csv"]

    labeled = read_csv(out / "data/labeled/span-1/data.csv")
    unlabeled = read_csv(out / "data/unlabeled/span-1/data.csv")
    assert labeled[0] == BINARY_HEADER  # names verbatim, the label included
    assert unlabeled[0] == BINARY_HEADER[:-1]  # no label column
    with_label = [[str(v) for v in row] for row in rows if row[-1] != ""]
    assert len(with_label) == BINARY_ROWS - BINARY_ROWS // UNLABELED_EVERY
    assert len(labeled) - 1 + len(unlabeled) - 1 == len(with_label)
    assert len(unlabeled) - 1 == len(with_label) // 10
    # Every labeled row lands in exactly one split, values as they were (empty cells empty).
    source = Counter(map(tuple, with_label))
    in_labeled = Counter(map(tuple, labeled[1:]))
    assert in_labeled <= source
    assert Counter(map(tuple, unlabeled[1:])) == Counter(
        r[:-1] for r in (source - in_labeled).elements()
    )
    assert any(row[1] == "" for row in labeled[1:])


def test_binary_schema_is_curated_for_the_pipeline(binary):
    text = (binary["out"] / "schema.pbtxt").read_text()
    assert text.splitlines()[:2] == SCHEMA_HEADER
    schema = text_format.Parse(text, schema_pb2.Schema())
    features = {f.name: f for f in schema.feature}
    assert set(features) == set(BINARY_HEADER)
    domains = {d.name: list(d.value) for d in schema.string_domain}

    label = features["answer"]
    assert list(label.not_in_environment) == ["SERVING"]  # the batch to score has no label
    assert list(schema.default_environment) == ["TRAINING", "SERVING"]
    assert domains[label.domain] == ["no", "yes"]
    # CsvExampleGen writes an empty cell as a feature with no value: present, may be empty.
    plan = features["Plan / Tier"]
    assert plan.presence.min_fraction == 1.0 and plan.value_count.min == 0
    assert domains[plan.domain] == ["basic", "plus", "pro"]
    assert features["Monthly Spend"].value_count.min == 1  # never empty in the data
    assert features["support calls"].int_domain.is_categorical
    assert not features["source"].domain  # ignored: no value list to refuse a new value
    assert schema_pb2.FeatureType.Name(features["customer id"].type) == "INT"


def test_binary_profile_loads_with_a_kind_and_a_reason_for_every_column(binary):
    profile = profiles.load(binary["out"])
    assert profile.name == "churn-profile"
    assert profile.label.column == "answer" and profile.task == "binary"
    assert profile.label.classes == ["no", "yes"]
    kinds = {name: f.kind.value for name, f in profile.features.items()}
    assert kinds == {
        "customer id": "ignored",
        "Plan / Tier": "vocabulary",
        "Monthly Spend": "numeric",
        "support calls": "integer_category",
        "source": "ignored",
    }
    assert profile.features["customer id"].why == "an identifier: every row differs"
    assert profile.features["source"].why.startswith("constant")
    assert profile.features["support calls"].max == 9
    assert profile.features["Plan / Tier"].top_k == 3
    assert all(f.why for f in profile.features.values())
    assert profile.slices == ["Plan / Tier"]
    assert profile.data_checks.drift == {"Plan / Tier": 0.1, "support calls": 0.1, "answer": 0.1}
    assert profile.skew == {"Plan / Tier": 0.1, "support calls": 0.1}
    # About 200 rows: small batches, 300 passes of 5 batches over the ~150 training rows, early
    # stopping to keep the best check; two balanced classes need no class weights.
    assert profile.training.batch_size == 32 and profile.training.train_steps == 1500
    assert profile.training.early_stopping and profile.training.class_weights == "none"
    assert profile.model.hidden_units == 32 and profile.model.linear_part
    assert profile.blessing.at_least == {} and profile.blessing.margin_over_trivial == 0.05
    assert profile.schema_file == "schema.pbtxt" and profile.data_dir == "data"
    assert (
        'The second class, "yes", is the positive one'
        in (binary["out"] / "profile.yaml").read_text()
    )


def test_binary_report_says_what_was_decided_and_what_to_run(binary):
    output, out = binary["result"].output, binary["out"]
    assert "4 without a label left out" in output
    assert "'answer': binary (auto: text with 2 distinct values)" in output
    assert "positive class: 'yes'" in output
    assert "customer id" in output and "an identifier: every row differs" in output
    assert "What to review" in output and "closed value lists" in output
    assert output.rstrip().endswith(f"python run_local.py --profile '{out}'")


@pytest.fixture(scope="module")
def multiclass(tmp_path_factory):
    root = tmp_path_factory.mktemp("multiclass")
    rng = np.random.default_rng(5)
    rows = []
    for _ in range(150):
        species = int(rng.integers(0, 3))
        rows.append([round(float(rng.normal(species, 0.5)), 3), rng.choice(["x", "y"]), species])
    source = write_csv(root / "species.csv", ["length_mm", "island", "species"], rows)
    out = root / "species"
    result = run_init("--csv", source, "--label", "species", "--out", out)
    assert result.exit_code == 0, result.output
    return out, result


def test_integer_labels_with_three_values_are_multiclass_and_categorical(multiclass):
    out, result = multiclass
    profile = profiles.load(out)
    assert profile.task == "multiclass" and profile.label.classes == ["0", "1", "2"]
    assert "multiclass (auto: whole numbers with 3 distinct values" in result.output
    schema = text_format.Parse((out / "schema.pbtxt").read_text(), schema_pb2.Schema())
    label = next(f for f in schema.feature if f.name == "species")
    assert label.int_domain.is_categorical
    assert (label.int_domain.min, label.int_domain.max) == (0, 2)
    assert profile.data_checks.drift["species"] == 0.1


def test_float_labels_are_regression_without_classes(tmp_path):
    rng = np.random.default_rng(9)
    rows = [
        [x := round(float(rng.uniform(0, 10)), 2), round(2 * x + float(rng.normal()), 3)]
        for _ in range(60)
    ]
    source = write_csv(tmp_path / "prices.csv", ["size", "price"], rows)
    out = tmp_path / "prices"
    result = run_init("--csv", source, "--label", "price", "--out", out)
    assert result.exit_code == 0, result.output
    profile = profiles.load(out)
    assert profile.task == "regression" and profile.label.classes is None
    assert "price" not in profile.data_checks.drift
    assert "# at_most: {rmse:" in (out / "profile.yaml").read_text()


# ---- bad input: one line, exit 2, nothing written ------------------------------------------------
def _three_classes(path: Path) -> Path:
    rows = [[i, ["a", "b", "c"][i % 3]] for i in range(30)]
    return write_csv(path, ["x", "kind"], rows)


def _binary(path: Path, edit=None) -> Path:
    rows = binary_rows(40)
    if edit:
        rows = [edit(list(r)) for r in rows]
    return write_csv(path, BINARY_HEADER, rows)


def _mixed_dates(path: Path) -> Path:
    """A date column written as ISO dates in 3 rows of 4 and as 3/14/2024 in the others."""
    rows = [
        r[:-1] + [f"2024-03-{1 + i % 28:02d}" if i % 4 else f"{1 + i % 12}/14/2024", r[-1]]
        for i, r in enumerate(binary_rows(40))
    ]
    return write_csv(path, [*BINARY_HEADER[:-1], "signed up", "answer"], rows)


BAD_INPUTS = {
    "dates in mixed formats": (
        _mixed_dates,
        ["--label", "answer"],
        [
            "column 'signed up' holds dates in mixed formats",
            "like '2024-03-02'",
            "like '1/14/2024'",
            "write every value as an ISO date (2024-03-14)",
        ],
    ),
    "no such column": (
        lambda p: _binary(p),
        ["--label", "answr"],
        ["'answr' is not a column", "Did you mean 'answer'?", "'Plan / Tier'"],
    ),
    "one label value": (
        lambda p: _binary(p, lambda r: r[:-1] + ["yes"]),
        ["--label", "answer"],
        ["'answer' has only one value ('yes')"],
    ),
    "label all missing": (
        lambda p: _binary(p, lambda r: r[:-1] + [""]),
        ["--label", "answer"],
        ["'answer' is empty in every row"],
    ),
    "empty file": (
        lambda p: p.write_bytes(b""),
        ["--label", "answer"],
        ["is empty (0 bytes)"],
    ),
    "header only": (
        lambda p: write_csv(p, BINARY_HEADER, []),
        ["--label", "answer"],
        ["has a header row but no data rows"],
    ),
    "not a CSV": (
        lambda p: p.write_bytes(bytes(range(256)) * 8),
        ["--label", "answer"],
        ["is not a CSV text file"],
    ),
    "one column": (
        lambda p: p.write_text("a;b;answer\n1;2;yes\n"),
        ["--label", "answer"],
        ["has only one column", "separated by semicolons"],
    ),
    "too few rows": (
        lambda p: write_csv(p, BINARY_HEADER, binary_rows(12)),  # row 7 has no label
        ["--label", "answer"],
        ["only 11 of its 12 rows have a value in the label column 'answer'", "at least 20"],
    ),
    "binary on three classes": (
        _three_classes,
        ["--label", "kind", "--task", "binary"],
        ["--task binary needs a label with exactly 2 values", "has 3 ('a', 'b', 'c')"],
    ),
    "regression on text": (
        _three_classes,
        ["--label", "kind", "--task", "regression"],
        ["--task regression needs a numeric label"],
    ),
    "comma in a column name": (
        lambda p: write_csv(p, ["a,b", "answer"], [[i, i % 2] for i in range(30)]),
        ["--label", "answer"],
        ["'a,b'", "comma"],
    ),
}


@pytest.mark.parametrize("case", BAD_INPUTS, ids=list(BAD_INPUTS))
def test_bad_input_is_one_clear_line_and_writes_nothing(tmp_path, case):
    make, args, expected = BAD_INPUTS[case]
    source = tmp_path / "input.csv"
    make(source)
    out = tmp_path / "profile"
    result = run_init("--csv", source, "--out", out, *args)
    assert result.exit_code == exit_codes.BAD_SETTINGS, result.output
    assert result.stdout == ""
    assert result.stderr.startswith("error: ") and result.stderr.count("\n") == 1, result.stderr
    for text in expected:
        assert text in result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["input.csv"]


def test_missing_file_is_refused(tmp_path):
    result = run_init("--csv", tmp_path / "nope.csv", "--label", "y", "--out", tmp_path / "p")
    assert result.exit_code == exit_codes.BAD_SETTINGS
    assert "nope.csv: no such file" in result.stderr
    assert list(tmp_path.iterdir()) == []


def test_an_existing_folder_with_files_is_left_alone(tmp_path):
    source = _binary(tmp_path / "input.csv")
    out = tmp_path / "profile"
    out.mkdir()
    (out / "mine.txt").write_text("keep me")
    result = run_init("--csv", source, "--label", "answer", "--out", out)
    assert result.exit_code == exit_codes.BAD_SETTINGS
    assert "already exists and is not empty" in result.stderr
    assert [p.name for p in out.iterdir()] == ["mine.txt"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["input.csv", "profile"]


def test_a_failure_while_building_leaves_nothing_behind(tmp_path, monkeypatch):
    def broken(_labeled_file):
        raise RuntimeError("statistics failed")

    monkeypatch.setattr(folder, "example_statistics", broken)
    source = _binary(tmp_path / "input.csv")
    with pytest.raises(RuntimeError, match="statistics failed"):
        init_profile(source, "answer", tmp_path / "new" / "deeper" / "profile")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["input.csv"]


# ---- the pure parts ------------------------------------------------------------------------------
def test_the_split_is_seeded_and_keeps_every_class_labeled():
    labeled = pd.DataFrame({"x": [str(i) for i in range(100)], "y": ["a"] * 99 + ["rare"]})
    types = {"x": ValueType.INT, "y": ValueType.TEXT}
    held, _ = split_rows(labeled, "y", ["a", "rare"], types, seed=1)
    again, _ = split_rows(labeled, "y", ["a", "rare"], types, seed=1)
    other, _ = split_rows(labeled, "y", ["a", "rare"], types, seed=2)
    assert held.sum() == 10 and (held == again).all() and not (held == other).all()
    for seed in range(20):  # the one "rare" row is never held out
        assert not split_rows(labeled, "y", ["a", "rare"], types, seed)[0][99]


def test_a_text_column_with_numbers_reads_as_text_in_both_splits():
    """TFX's CSV reader types each split on its own: both need a text value in the column."""
    codes = ["12", "7", "n/a-code", "n/a-code"] + [str(i) for i in range(96)]
    labeled = pd.DataFrame({"code": codes, "y": ["a", "b"] * 50})
    types = {"code": ValueType.TEXT, "y": ValueType.TEXT}
    for seed in range(10):
        held, _ = split_rows(labeled, "y", ["a", "b"], types, seed)
        assert "n/a-code" in set(labeled["code"][held]) and "n/a-code" in set(
            labeled["code"][~held]
        )


def test_value_types_follow_tfx_csv_reading():
    assert [value_type(v) for v in ["", "3", "-3", "3.0", "1e3", "abc", " 4", str(2**64)]] == [
        ValueType.EMPTY,
        ValueType.INT,
        ValueType.INT,
        ValueType.FLOAT,
        ValueType.FLOAT,
        ValueType.TEXT,
        ValueType.INT,
        ValueType.TEXT,
    ]


def test_profile_names_are_pipeline_names():
    assert profile_name(Path("/x/My Data_2024")) == "my-data-2024"
    assert profile_name(Path("/x/___")) == "dataset"


# ---- kinds beyond numbers and categories ----------------------------------------------------
MESSY_ROWS = 400
WORDS = "the app was slow and support said they would call back about my bill soon".split()


def messy_rows() -> list[list[object]]:
    """Dates, epoch seconds, booleans as words, free text in half the rows, a category with many
    rare values, dates written one non-ISO way, and a label that is yes in about one row in
    eight."""
    rng = random.Random(5)
    rows = []
    for i in range(MESSY_ROWS):
        churn = rng.random() < 0.13
        signed_up = f"2023-{1 + i % 12:02d}-{1 + (i * 7) % 28:02d}"
        created_at = 1_690_000_000 + i * 3_607 * 11
        autopay = "False" if churn and rng.random() < 0.7 else "True"
        words = rng.sample(WORDS, rng.randint(4, 9)) + (["cancel"] if churn else [])
        notes = " ".join(words).capitalize() + "." if i % 2 else ""
        city = f"Town {rng.randint(0, 29)}" if rng.random() < 0.8 else f"Hamlet {i}"
        renewal = f"{1 + i % 12}/{1 + i % 28}/2025"
        rows.append(
            [
                f"A{i:04d}",
                signed_up,
                created_at,
                autopay,
                notes,
                city,
                renewal,
                "yes" if churn else "no",
            ]
        )
    return rows


MESSY_HEADER = [
    "Account",
    "Signed Up",
    "created_at",
    "Autopay",
    "Notes",
    "City",
    "Renewal",
    "Churned",
]


@pytest.fixture(scope="module")
def messy(tmp_path_factory):
    root = tmp_path_factory.mktemp("messy")
    source = write_csv(root / "accounts.csv", MESSY_HEADER, messy_rows())
    out = root / "accounts"
    result = run_init("--csv", source, "--label", "Churned", "--out", out)
    assert result.exit_code == 0, result.output
    return {"out": out, "result": result, "profile": profiles.load(out)}


def test_dates_epochs_booleans_and_free_text_get_kinds_of_their_own(messy):
    features = messy["profile"].features
    kinds = {name: f.kind.value for name, f in features.items()}
    assert kinds == {
        "Account": "ignored",
        "Signed Up": "datetime",
        "created_at": "datetime",
        "Autopay": "boolean",
        "Notes": "text",
        "City": "vocabulary",
        "Renewal": "vocabulary",
    }
    signed_up, created = features["Signed Up"], features["created_at"]
    assert signed_up.format == "iso" and signed_up.parts == ["day_of_week", "month", "age"]
    assert signed_up.why.startswith("ISO dates from 2023-01-01 to 2023-12-")
    assert created.format == "epoch_seconds"
    assert created.parts == ["day_of_week", "month", "hour", "age"]
    assert "seconds since 1970 from 2023-07-22" in created.why
    assert features["Autopay"].why.startswith("yes/no values ('True' and 'False')")
    notes = features["Notes"]
    assert 10 <= notes.top_k <= len(WORDS) + 1 and 8 <= notes.max_tokens <= 12
    assert "free text in" in notes.why and "embedded and averaged" in notes.why
    # 30 towns in most rows, a hamlet in each of the others: the hamlets are left to the
    # out-of-vocabulary ids.
    city = features["City"]
    assert city.top_k == 30 and city.oov_buckets == 10
    assert "a vocabulary of the 30 seen in at least 3 labeled rows" in city.why


def test_an_imbalanced_label_gets_class_weights_and_the_review_says_why(messy):
    training = messy["profile"].training
    assert training.class_weights == "balanced" and training.early_stopping
    output = messy["result"].output
    assert "the label is imbalanced: training.class_weights is balanced" in output
    assert "'Renewal' looks like dates written as 03/14/2024 or 14/03/2024" in output
    assert "free text, split into lower-cased words" in output and "'Notes'" in output
    schema = text_format.Parse(
        (messy["out"] / "schema.pbtxt").read_text().split("\n", 2)[2], schema_pb2.Schema()
    )
    by_name = {f.name: f for f in schema.feature}
    # Dates and free text take new values in every span: no closed list of values.
    assert not by_name["Signed Up"].HasField("domain") and not by_name["Notes"].HasField("domain")


def test_free_text_in_too_few_rows_is_ignored_with_the_reason(tmp_path):
    rows = messy_rows()
    for i, row in enumerate(rows):
        row[4] = row[4] if i < 40 and i % 2 else ""  # 20 rows of text
    source = write_csv(tmp_path / "few.csv", MESSY_HEADER, rows)
    result = run_init("--csv", source, "--label", "Churned", "--out", tmp_path / "few")
    assert result.exit_code == 0, result.output
    notes = profiles.load(tmp_path / "few").features["Notes"]
    assert notes.kind.value == "ignored"
    assert notes.why.startswith("free text in only ")
    assert notes.why.endswith(" labeled rows: too few to learn words from (at least 30)")

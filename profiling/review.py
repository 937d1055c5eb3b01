"""The review notes: what a person should look at in the new profile before the first run."""

from __future__ import annotations

import math
from typing import Any

from components.profile import FeatureKind
from profiling.report import CATEGORICAL_DRIFT, MARGIN_OVER_TRIVIAL, InitReport

# The measurement behind CATEGORICAL_DRIFT: categorical columns of two random 1,250-row halves of
# the taxi data stay under 0.06 L-infinity distance. Sampling noise scales as 1/sqrt(rows), so
# smaller samples swing further by chance.
MEASURED_NOISE, MEASURED_ROWS = 0.06, 1250


def review(
    report: InitReport, schema: Any, string_domains: list[str], split_notes: list[str]
) -> list[str]:
    """What a person should look at before the first run."""
    never_empty = [
        f.name
        for f in schema.feature
        if f.value_count.min >= 1 and f.name != report.label and not _ignored(report, f.name)
    ]
    items = [
        "schema.pbtxt: the types, presence and value lists TFDV saw in the labeled rows are now "
        "the contract every new span must meet; it sets no ranges for numbers: add the "
        "min/max you know",
    ]
    if string_domains:
        items.append(
            f"closed value lists (a new value stops the run at the data gate): "
            f"{', '.join(map(repr, string_domains))}"
        )
    if never_empty:
        items.append(
            f"never empty in the labeled rows, so required (value_count min 1): "
            f"{', '.join(map(repr, never_empty[:12]))}{' ...' if len(never_empty) > 12 else ''}"
        )
    for kind, note in (
        (
            FeatureKind.DATETIME.value,
            "dates and times, read by Transform as day of week, month, hour (as points on a "
            "circle) and age (features.<column>.parts); a value in another format counts as "
            "no value",
        ),
        (
            FeatureKind.TEXT.value,
            "free text, split into lower-cased words; top_k words are kept (the rest share "
            "oov_buckets ids) and max_tokens words of each value are read: set kind: ignored to "
            "leave a column out, or vocabulary to treat each whole value as a category",
        ),
        (
            FeatureKind.BOOLEAN.value,
            "yes/no columns (any of true/false, yes/no, y/n, t/f, 1/0, in any case): another "
            "value counts as no value",
        ),
    ):
        named = [c.name for c in report.columns if c.kind == kind]
        if named:
            items.append(f"{note}: {', '.join(map(repr, named))}")
    if report.training.get("class_weights") == "balanced":
        items.append(
            "the label is imbalanced: training.class_weights is balanced (rare classes weigh "
            "more in the loss, which favours recall of the rare class and moves the predicted "
            "probabilities up for it); set it to none for calibrated probabilities"
        )
    items += report.date_notes
    ignored = [c for c in report.columns if c.kind == FeatureKind.IGNORED.value]
    if ignored:
        items.append(
            "ignored columns (give one a kind to use it): "
            + "; ".join(f"{c.name!r} ({c.why})" for c in ignored)
        )
    if report.positive_class is not None:
        items.append(
            f"the positive class is {report.positive_class!r} (the second in label.classes); "
            "swap the two to predict the other"
        )
    items.append(
        f"thresholds: drift {CATEGORICAL_DRIFT} on categorical columns, none on numeric ones; "
        f"blessing: {MARGIN_OVER_TRIVIAL} over the trivial predictor and no absolute floor yet "
        "(blessing.at_least / at_most)"
    )
    if report.drift:
        items += _noise_notes(report)
    if report.rows_without_label:
        items.append(f"{report.rows_without_label} row(s) without a label were left out")
    return items + split_notes


def sampling_noise(rows_a: int, rows_b: int) -> float:
    """The L-infinity distance two samples of these sizes may show by chance, scaled from the
    taxi measurement (MEASURED_NOISE between two MEASURED_ROWS-row halves)."""
    return MEASURED_NOISE * math.sqrt((1 / rows_a + 1 / rows_b) * MEASURED_ROWS / 2)


def _noise_notes(report: InitReport) -> list[str]:
    notes = []
    span_noise = sampling_noise(report.labeled_rows, report.labeled_rows)
    if span_noise > 0.8 * CATEGORICAL_DRIFT:
        notes.append(
            f"the drift thresholds ({CATEGORICAL_DRIFT}) were measured on {MEASURED_ROWS:,}-row "
            f"samples; between two spans of {report.labeled_rows} rows, chance alone gives "
            f"L-infinity distances up to about {span_noise:.2f}, so raise them if a new span is "
            "refused for drift on a column whose values look right"
        )
    batch_noise = sampling_noise(report.unlabeled_rows, report.labeled_rows)
    if batch_noise > 0.8 * CATEGORICAL_DRIFT:
        notes.append(
            f"the batch to score has {report.unlabeled_rows} rows: its skew distances reach "
            f"about {batch_noise:.2f} by chance, so expect skew findings (reported, not gated) "
            "or set data_checks.skew higher"
        )
    return notes


def _ignored(report: InitReport, name: str) -> bool:
    return any(c.name == name and c.kind == FeatureKind.IGNORED.value for c in report.columns)

"""Which span folders a run reads, and what each is for.

Data arrives in spans (batches), one folder per span, named by a pattern such as
`span-{SPAN}/*.csv`. A run reads the latest span (the new data), the span before it (the baseline
the new data is compared with for drift), and, with a training window of N spans, the N-2 spans
before those. Each span's rows are hash-split into train and eval, and every output split is named
by the span's role, not its number, so that the pipeline's wiring does not change as spans arrive:

    latest_train, latest_eval       the newest span
    previous_train, previous_eval   the span before it
    older_train, older_eval         spans before that, when the training window reaches back
"""

from __future__ import annotations

import dataclasses
import os
import re

# TFX's span spec in file patterns: {SPAN}, or {SPAN:N} for zero-padding to N digits
# (tfx.components.example_gen.utils.SPAN_FULL_REGEX). Kept here so that this module does not
# import TensorFlow: the command line reads it before the run's log file is set up.
SPAN_FULL_REGEX = r"{SPAN}|{SPAN:(?P<width>.*?)}"

LATEST, PREVIOUS, OLDER = "latest", "previous", "older"
TRAIN, EVAL = "train", "eval"
HASH_SPLITS = (TRAIN, EVAL)
# Custom properties on SpanCsvExampleGen's Examples: the span numbers read per role, e.g.
# `spans_latest` = "2", `spans_previous` = "1" ("" when there is none).
SPANS_PROPERTY_PREFIX = "spans_"


def spans_property(role: str) -> str:
    return SPANS_PROPERTY_PREFIX + role


def roles_for(training_spans: int) -> tuple[str, ...]:
    """Roles a run reads: latest and previous always (previous is the drift baseline)."""
    return (LATEST, PREVIOUS, OLDER) if training_spans >= 3 else (LATEST, PREVIOUS)


def split_name(role: str, hash_split: str) -> str:
    return f"{role}_{hash_split}"


def output_split_names(training_spans: int) -> list[str]:
    return [split_name(role, s) for role in roles_for(training_spans) for s in HASH_SPLITS]


def training_roles(training_spans: int) -> tuple[str, ...]:
    """Roles whose rows train and evaluate the model: the latest `training_spans` spans."""
    return (LATEST, PREVIOUS, OLDER)[: min(training_spans, 3)]


def training_split_names(training_spans: int, hash_split: str) -> list[str]:
    return [split_name(role, hash_split) for role in training_roles(training_spans)]


@dataclasses.dataclass(frozen=True)
class SpanPlan:
    """Span numbers per role for one run, given the latest span."""

    latest: int
    previous: int | None
    older: tuple[int, ...]

    @classmethod
    def make(cls, latest: int, training_spans: int) -> SpanPlan:
        previous = latest - 1 if latest - 1 >= 0 else None
        first_older = max(0, latest - training_spans + 1)
        return cls(latest, previous, tuple(range(first_older, latest - 1)))

    def spans_of(self, role: str) -> tuple[int, ...]:
        if role == LATEST:
            return (self.latest,)
        if role == PREVIOUS:
            return (self.previous,) if self.previous is not None else ()
        return self.older

    def all_spans(self) -> tuple[int, ...]:
        return tuple(sorted({s for r in (LATEST, PREVIOUS, OLDER) for s in self.spans_of(r)}))


def pattern_for_span(span_pattern: str, span: int) -> str:
    """`span-{SPAN}/*.csv` -> `span-3/*.csv`; `{SPAN:3}` zero-pads (`span-003`), as TFX does."""

    def number(match: re.Match) -> str:
        width = match.group("width")
        return str(span).zfill(int(width)) if width else str(span)

    return re.sub(SPAN_FULL_REGEX, number, span_pattern)


def span_folder_regex(span_pattern: str) -> re.Pattern | None:
    """Regex for span folder names, when the pattern's first folder holds the span number."""
    first, _, rest = span_pattern.partition("/")
    if not rest or not re.search(SPAN_FULL_REGEX, first):
        return None
    sentinel = "\0"
    literal = re.escape(re.sub(SPAN_FULL_REGEX, sentinel, first))
    return re.compile("^" + literal.replace(re.escape(sentinel), r"(\d+)") + "$")


def span_folders(input_base: str, span_pattern: str) -> dict[int, str]:
    """Span number -> folder path, for every span folder under `input_base` (empty ones too).

    Local folders are listed with `os` (no TensorFlow import: the command line uses this before
    a run starts); URIs (gs://, s3://, ...) with TensorFlow's file system.
    """
    regex = span_folder_regex(span_pattern)
    if regex is None:
        return {}
    if "://" in input_base:
        import tensorflow as tf

        names = tf.io.gfile.listdir(input_base) if tf.io.gfile.isdir(input_base) else []
    else:
        names = os.listdir(input_base) if os.path.isdir(input_base) else []
    folders = {}
    for name in names:
        match = regex.match(name.rstrip("/"))
        if match:
            folders[int(match.group(1))] = os.path.join(input_base, name.rstrip("/"))
    return folders


def plan_spans_with_files(
    plan: SpanPlan, role: str, files_by_span: dict[int, list[str]]
) -> list[int]:
    """The role's spans that exist (a training window may reach back before the first span)."""
    return [span for span in plan.spans_of(role) if files_by_span.get(span)]


def files_a_run_reads(
    input_base: str, span_pattern: str, training_spans: int | None = None
) -> dict[int, list[str]]:
    """Span -> the files a run started now would read from the local folder `input_base`: the
    latest span that holds files (as TFX's driver resolves it) and, given `training_spans`, every
    span of that span's plan; without it only the latest (the unlabeled batch)."""
    import glob

    def files(span: int) -> list[str]:
        return sorted(glob.glob(os.path.join(input_base, pattern_for_span(span_pattern, span))))

    with_files = [span for span in span_folders(input_base, span_pattern) if files(span)]
    if not with_files:
        return {}
    latest = max(with_files)
    wanted = SpanPlan.make(latest, training_spans).all_spans() if training_spans else (latest,)
    return {span: found for span in wanted if (found := files(span))}

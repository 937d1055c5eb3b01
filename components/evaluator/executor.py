"""The Evaluator's executor: TFX's, then the trivial-predictor check and the linear baseline on
its results."""

from __future__ import annotations

import json
import logging
import os
from typing import Any

from components import tfx_private
from components.evaluator import lean_extracts, linear_baseline, trivial_baseline

TRIVIAL_BASELINE_KEY = "trivial_baseline"
LINEAR_BASELINE_KEY = "linear_baseline"
STATISTICS_KEY = "statistics"
TRANSFORM_GRAPH_KEY = "transform_graph"
# Custom properties on the ModelBlessing, read by the run summary, `inspect` and the report.
BEATS_TRIVIAL_PROPERTY = "beats_trivial_predictor"
LINEAR_BASELINE_PROPERTY = "linear_baseline"  # the baseline's headline metric
WITHIN_LINEAR_BASELINE_PROPERTY = "within_linear_baseline"  # 1/0, when the profile requires it

# TFX's blessing marker files and properties (tfx.components.evaluator.constants).
BLESSED_FILE, NOT_BLESSED_FILE, BLESSED_PROPERTY = "BLESSED", "NOT_BLESSED", "blessed"


def _candidate_value(evaluation_uri: str, metric_key: str) -> float | None:
    """The candidate's overall value of `metric_key` in TFMA's output."""
    import tensorflow_model_analysis as tfma

    for per_slice in tfma.load_metrics(evaluation_uri):
        if per_slice.slice_key.single_slice_keys:
            continue
        for entry in per_slice.metric_keys_and_values:
            key = entry.key
            if (
                key.name == metric_key
                and key.model_name in ("", "candidate")
                and not key.is_diff
                and entry.value.HasField("double_value")
            ):
                return entry.value.double_value.value
    return None


class _Reads:
    """What both checks read, read once: StatisticsGen's split statistics and the candidate's
    overall metrics in TFMA's output."""

    def __init__(self, evaluation_uri: str, statistics_uri: str | None):
        self._evaluation_uri, self._statistics_uri = evaluation_uri, statistics_uri
        self._statistics: dict[str, Any] = {}
        self._values: dict[str, float | None] = {}

    def statistics(self, splits: list[str]) -> dict[str, Any]:
        """The splits' statistics ({} without a StatisticsGen input)."""
        if self._statistics_uri is None:
            return {}
        missing = [s for s in splits if s not in self._statistics]
        if missing:
            self._statistics.update(
                trivial_baseline.load_split_statistics(self._statistics_uri, missing)
            )
        return {s: self._statistics[s] for s in splits}

    def candidate_value(self, metric_key: str) -> float | None:
        if metric_key not in self._values:
            self._values[metric_key] = _candidate_value(self._evaluation_uri, metric_key)
        return self._values[metric_key]


class Executor(tfx_private.EvaluatorExecutor):
    """Runs TFX's Evaluator, then withdraws the blessing of a candidate that does not beat the
    trivial predictor, or (when the profile requires it) falls too far below the linear
    baseline; their figures go to the evaluation as trivial_baseline.json and
    linear_baseline.json."""

    def Do(self, input_dict: dict[str, list], output_dict: dict[str, list], exec_properties):  # noqa: N802
        # TFMA's extractors with the batches trimmed before they are split per example
        # (lean_extracts.py), through the hook TFX's executor reads from its properties.
        super().Do(
            input_dict,
            output_dict,
            {
                lean_extracts.CUSTOM_EXTRACTORS_PROPERTY: lean_extracts.CUSTOM_EXTRACTORS_PATH,
                **exec_properties,
            },
        )
        evaluation_uri = output_dict["evaluation"][0].uri
        blessing = output_dict["blessing"][0]
        statistics = input_dict.get(STATISTICS_KEY) or []
        reads = _Reads(evaluation_uri, statistics[0].uri if statistics else None)
        raw = exec_properties.get(TRIVIAL_BASELINE_KEY)
        if raw:
            self._trivial_check(raw, reads, evaluation_uri, blessing)
        raw = exec_properties.get(LINEAR_BASELINE_KEY)
        if raw and input_dict.get(TRANSFORM_GRAPH_KEY):
            self._linear_baseline(raw, input_dict, reads, evaluation_uri, blessing)

    def _trivial_check(self, raw: str, reads: _Reads, evaluation_uri: str, blessing) -> None:
        settings = trivial_baseline.Settings(**json.loads(raw))
        split_statistics: dict[str, Any] = {}
        if settings.task != "binary":
            split_statistics = reads.statistics(settings.train_splits + settings.eval_splits)
        result = trivial_baseline.check(
            settings, split_statistics, reads.candidate_value(settings.metric_key)
        )
        with open(os.path.join(evaluation_uri, trivial_baseline.RESULT_FILE), "w") as f:
            record = {
                **result.__dict__,
                "reason": "" if result.passed else result.reason(),
                "classes": settings.classes,  # class id -> name, for the readers
            }
            json.dump(record, f, indent=1)
        logging.info("Trivial predictor check: %s", result)
        blessing.set_int_custom_property(BEATS_TRIVIAL_PROPERTY, int(result.passed))
        if not result.passed:
            _withdraw_blessing(blessing)

    def _linear_baseline(
        self, raw: str, input_dict, reads: _Reads, evaluation_uri: str, blessing
    ) -> None:
        settings = linear_baseline.Settings(**json.loads(raw))
        counts = {
            split: sum(d.num_examples for d in stats.datasets)
            for split, stats in reads.statistics(
                settings.train_splits + settings.eval_splits
            ).items()
        }
        result = linear_baseline.check(
            settings,
            input_dict["examples"][0].uri,
            input_dict[TRANSFORM_GRAPH_KEY][0].uri,
            counts,
            reads.candidate_value(profile_metric_key(settings)),
        )
        with open(os.path.join(evaluation_uri, linear_baseline.RESULT_FILE), "w") as f:
            json.dump(linear_baseline.as_record(result), f, indent=1)
        logging.info("Linear baseline: %s", result)
        if result.linear_value is not None:
            blessing.set_float_custom_property(LINEAR_BASELINE_PROPERTY, result.linear_value)
        if result.passed is not None:
            blessing.set_int_custom_property(WITHIN_LINEAR_BASELINE_PROPERTY, int(result.passed))
        if result.passed is False:
            _withdraw_blessing(blessing)


def profile_metric_key(settings: linear_baseline.Settings) -> str:
    """The key TFMA writes the settings' headline metric under."""
    from components import profile as profiles

    task = settings.profile["label"]["task"]
    return profiles.METRICS[task][settings.metric][1]


def _withdraw_blessing(blessing) -> None:
    """Turns TFX's BLESSED marker into NOT_BLESSED (Pusher and the resolver read both)."""
    blessed_file = os.path.join(blessing.uri, BLESSED_FILE)
    if os.path.exists(blessed_file):
        os.remove(blessed_file)
        with open(os.path.join(blessing.uri, NOT_BLESSED_FILE), "w"):
            pass
    blessing.set_int_custom_property(BLESSED_PROPERTY, 0)

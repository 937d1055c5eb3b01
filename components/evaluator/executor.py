"""The Evaluator's executor: TFX's, then the trivial-predictor check on its results."""

from __future__ import annotations

import json
import logging
import os
from typing import Any

from components import tfx_private
from components.evaluator import trivial_baseline

TRIVIAL_BASELINE_KEY = "trivial_baseline"
STATISTICS_KEY = "statistics"
# Custom properties on the ModelBlessing, read by the run summary, `inspect` and the report.
BEATS_TRIVIAL_PROPERTY = "beats_trivial_predictor"

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


class Executor(tfx_private.EvaluatorExecutor):
    """Runs TFX's Evaluator, then withdraws the blessing of a candidate that does not beat the
    trivial predictor; the check's figures go to the evaluation as trivial_baseline.json."""

    def Do(self, input_dict: dict[str, list], output_dict: dict[str, list], exec_properties):  # noqa: N802
        super().Do(input_dict, output_dict, exec_properties)
        raw = exec_properties.get(TRIVIAL_BASELINE_KEY)
        if not raw:
            return
        settings = trivial_baseline.Settings(**json.loads(raw))
        statistics = input_dict.get(STATISTICS_KEY) or []
        split_statistics: dict[str, Any] = {}
        if settings.task != "binary":
            split_statistics = trivial_baseline.load_split_statistics(
                statistics[0].uri, settings.train_splits + settings.eval_splits
            )
        evaluation_uri = output_dict["evaluation"][0].uri
        result = trivial_baseline.check(
            settings, split_statistics, _candidate_value(evaluation_uri, settings.metric_key)
        )
        with open(os.path.join(evaluation_uri, trivial_baseline.RESULT_FILE), "w") as f:
            record = {
                **result.__dict__,
                "reason": "" if result.passed else result.reason(),
                "classes": settings.classes,  # class id -> name, for the readers
            }
            json.dump(record, f, indent=1)
        logging.info("Trivial predictor check: %s", result)

        blessing = output_dict["blessing"][0]
        blessing.set_int_custom_property(BEATS_TRIVIAL_PROPERTY, int(result.passed))
        blessed_file = os.path.join(blessing.uri, BLESSED_FILE)
        if not result.passed and os.path.exists(blessed_file):
            os.remove(blessed_file)
            with open(os.path.join(blessing.uri, NOT_BLESSED_FILE), "w"):
                pass
            blessing.set_int_custom_property(BLESSED_PROPERTY, 0)

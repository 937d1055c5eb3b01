"""The data gate's executor: refuses the run when the data broke the schema or drifted."""

from __future__ import annotations

import json

from absl import logging
from tfx.dsl.components.base import base_executor
from tfx.types import artifact_utils

from components.data_gate import training_checks
from components.data_gate.anomalies import gate_findings, refusal_message
from components.span_example_gen.spans import LATEST, PREVIOUS, spans_property

ANOMALIES_KEY = "anomalies"
DRIFT_ANOMALIES_KEY = "drift_anomalies"
EXAMPLES_KEY = "examples"
STATISTICS_KEY = "statistics"
TRAINING_CHECKS_KEY = "training_checks"
PREVIOUS_SPANS_PROPERTY = spans_property(PREVIOUS)
LATEST_SPANS_PROPERTY = spans_property(LATEST)


class DataRefused(Exception):
    """The data gate found problems; the message lists each one and what to do."""


class Executor(base_executor.BaseExecutor):
    def Do(self, input_dict, output_dict, exec_properties) -> None:
        self._log_startup(input_dict, output_dict, exec_properties)
        examples = artifact_utils.get_single_instance(input_dict[EXAMPLES_KEY])
        anomalies = artifact_utils.get_single_instance(input_dict[ANOMALIES_KEY])
        drift = artifact_utils.get_single_instance(input_dict[DRIFT_ANOMALIES_KEY])
        found = gate_findings(
            anomalies.uri,
            artifact_utils.decode_split_names(anomalies.split_names),
            drift.uri,
            artifact_utils.decode_split_names(drift.split_names),
            bool(examples.get_string_custom_property(PREVIOUS_SPANS_PROPERTY)),
        )
        raw_checks = exec_properties.get(TRAINING_CHECKS_KEY)
        if raw_checks and input_dict.get(STATISTICS_KEY):
            found += training_checks.findings(
                training_checks.Settings(**json.loads(raw_checks)),
                artifact_utils.get_single_instance(input_dict[STATISTICS_KEY]).uri,
            )
        if not examples.get_string_custom_property(PREVIOUS_SPANS_PROPERTY):
            logging.warning("No previous span: drift was not checked (first span).")
        if found:
            span = examples.get_string_custom_property(LATEST_SPANS_PROPERTY)
            raise DataRefused(refusal_message(found, span))
        logging.info("Data gate: no schema anomaly and no drift past a threshold.")

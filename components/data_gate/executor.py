"""The data gate's executor: refuses the run when the data broke the schema or drifted."""

from __future__ import annotations

from absl import logging
from tfx.dsl.components.base import base_executor
from tfx.types import artifact_utils

from components.data_gate.anomalies import Finding, findings
from components.span_example_gen.executor import SPANS_PROPERTY_PREFIX

ANOMALIES_KEY = "anomalies"
DRIFT_ANOMALIES_KEY = "drift_anomalies"
EXAMPLES_KEY = "examples"
PREVIOUS_SPANS_PROPERTY = SPANS_PROPERTY_PREFIX + "previous"
LATEST_SPANS_PROPERTY = SPANS_PROPERTY_PREFIX + "latest"


class DataRefused(Exception):
    """The data gate found problems; the message lists each one and what to do."""


def gate_findings(
    anomalies_uri: str,
    anomalies_splits: list[str],
    drift_uri: str,
    drift_splits: list[str],
    has_previous_span: bool,
) -> list[Finding]:
    """Schema findings of every split, plus drift findings when there is a previous span."""
    found = findings("schema", anomalies_uri, anomalies_splits)
    if has_previous_span:
        found += findings("drift", drift_uri, drift_splits)
    return found


def refusal_message(found: list[Finding], span: str) -> str:
    lines = [f"The data gate refused span {span}: {len(found)} problem(s) found."]
    lines += [f"  - {finding.line()}" for finding in found]
    lines.append("What to do:")
    lines.append("  - fix the data (the span's CSV files) and re-run")
    if any(f.check == "schema" for f in found):
        lines.append(
            "  - or, if the change is expected, accept it into the curated schema: "
            "`python run_local.py schema diff` shows it, `python run_local.py schema accept` "
            "writes schema/schema.pbtxt for review"
        )
    if any(f.check == "drift" for f in found):
        lines.append(
            "  - or, if the shift is expected, raise the feature's drift threshold "
            "(`drift_thresholds` in pipeline/config.py)"
        )
    return "\n".join(lines)


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
        if not examples.get_string_custom_property(PREVIOUS_SPANS_PROPERTY):
            logging.warning("No previous span: drift was not checked (first span).")
        if found:
            span = examples.get_string_custom_property(LATEST_SPANS_PROPERTY)
            raise DataRefused(refusal_message(found, span))
        logging.info("Data gate: no schema anomaly and no drift past a threshold.")

"""The data gate's executor: refuses the run when the data broke the schema or drifted."""

from __future__ import annotations

from absl import logging
from tfx.dsl.components.base import base_executor
from tfx.types import artifact_utils

from components.data_gate.anomalies import Finding, findings

ANOMALIES_KEY = "anomalies"
DRIFT_ANOMALIES_KEY = "drift_anomalies"
EXAMPLES_KEY = "examples"
PREVIOUS_SPANS_PROPERTY = "spans_previous"
LATEST_SPANS_PROPERTY = "spans_latest"


class DataRefused(Exception):
    """The data gate found problems; the message lists each one and what to do."""


def gate_findings(anomalies, drift_anomalies, examples) -> list[Finding]:
    """Schema findings of every split, plus drift findings when there is a previous span."""
    found = findings(
        "schema", anomalies.uri, artifact_utils.decode_split_names(anomalies.split_names)
    )
    if examples.get_string_custom_property(PREVIOUS_SPANS_PROPERTY):
        found += findings(
            "drift",
            drift_anomalies.uri,
            artifact_utils.decode_split_names(drift_anomalies.split_names),
        )
    return found


def refusal_message(found: list[Finding], examples) -> str:
    span = examples.get_string_custom_property(LATEST_SPANS_PROPERTY) or "?"
    lines = [f"The data gate refused span {span}: {len(found)} problem(s) found."]
    lines += [f"  - {finding.line()}" for finding in found]
    lines.append("What to do:")
    lines.append("  - fix the data (the span's CSV files) and re-run;")
    if any(f.check == "schema" for f in found):
        lines.append(
            "  - or, if the change is expected, accept it into the curated schema: "
            "`python run_local.py schema diff` shows it, `python run_local.py schema accept` "
            "writes schema/schema.pbtxt for review;"
        )
    if any(f.check == "drift" for f in found):
        lines.append(
            "  - or, if the shift is expected, raise the feature's drift threshold "
            "(`drift_thresholds` in pipeline/config.py)."
        )
    return "\n".join(lines)


class Executor(base_executor.BaseExecutor):
    def Do(self, input_dict, output_dict, exec_properties) -> None:
        self._log_startup(input_dict, output_dict, exec_properties)
        examples = artifact_utils.get_single_instance(input_dict[EXAMPLES_KEY])
        found = gate_findings(
            artifact_utils.get_single_instance(input_dict[ANOMALIES_KEY]),
            artifact_utils.get_single_instance(input_dict[DRIFT_ANOMALIES_KEY]),
            examples,
        )
        if not examples.get_string_custom_property(PREVIOUS_SPANS_PROPERTY):
            logging.warning("No previous span: drift was not checked (first span).")
        if found:
            raise DataRefused(refusal_message(found, examples))
        logging.info("Data gate: no schema anomaly and no drift past a threshold.")

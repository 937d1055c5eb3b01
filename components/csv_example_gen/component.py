"""CsvExampleGen: TFX's component, run by this folder's executor (see executor.py)."""

from __future__ import annotations

from tfx import v1 as tfx
from tfx.dsl.components.base import executor_spec

from components.csv_example_gen import executor


def csv_example_gen_component(**arguments) -> tfx.components.CsvExampleGen:
    """TFX's CsvExampleGen with `arguments` (its own), run by executor.Executor: the same
    component, spec, driver and outputs, so that everything reading its examples is unchanged."""
    component = tfx.components.CsvExampleGen(**arguments)
    component.executor_spec = executor_spec.BeamExecutorSpec(executor.Executor)
    return component

"""Local driver: TFX's file-based span resolution, with a fingerprint of every span read.

TFX's driver fingerprints only the latest span's files; this executor also reads the previous
and older spans, so their files join the fingerprint, and an edit to any span read re-runs
ExampleGen instead of reusing a cached result. (A Kubeflow run uses TFX's own driver task, which
fingerprints the latest span only: spans are immutable once written, TFX's convention.)
"""

from __future__ import annotations

import os
from typing import Any

from tfx.components.example_gen import driver as example_gen_driver
from tfx.components.example_gen import utils as example_gen_utils
from tfx.types import standard_component_specs
from tfx.utils import io_utils

from components.span_example_gen import spans
from components.span_example_gen.executor import SPAN_PATTERN_KEY, TRAINING_SPANS_KEY


class SpanWindowDriver(example_gen_driver.FileBasedDriver):
    def resolve_exec_properties(
        self, exec_properties: dict[str, Any], pipeline_info, component_info
    ):
        exec_properties = super().resolve_exec_properties(
            exec_properties, pipeline_info, component_info
        )
        plan = spans.SpanPlan.make(
            exec_properties[example_gen_utils.SPAN_PROPERTY_NAME],
            exec_properties[TRAINING_SPANS_KEY],
        )
        input_base = exec_properties[standard_component_specs.INPUT_BASE_KEY]
        fingerprints = [exec_properties[example_gen_utils.FINGERPRINT_PROPERTY_NAME]]
        for span in plan.all_spans():
            if span == plan.latest:
                continue
            pattern = spans.pattern_for_span(exec_properties[SPAN_PATTERN_KEY], span)
            fingerprints.append(
                io_utils.generate_fingerprint(f"span-{span}", os.path.join(input_base, pattern))
            )
        exec_properties[example_gen_utils.FINGERPRINT_PROPERTY_NAME] = "\n".join(fingerprints)
        return exec_properties

"""Which DirectRunner mode a local run uses: chosen from the size of the data it will read.

`in_memory` runs every Beam stage in the pipeline's own process: no start-up or pickling cost,
fastest on small data (1.47x faster than `multi_processing` on the 14k-row default). Large data
goes to `multi_processing`, one worker per core, which spreads the CPU work and keeps each
process's memory bounded. The cut-over is a size of labeled CSV read by the run (README
"Performance" has the measurements); `--beam-mode` overrides it.
"""

from __future__ import annotations

import os
from pathlib import Path

from components.span_example_gen import spans

MODES = ("auto", "in_memory", "multi_processing")
# About 400k rows of the taxi data.
MULTI_PROCESSING_FROM_BYTES = 64 * 2**20


def labeled_bytes_read(labeled_dir: Path, span_pattern: str, training_spans: int) -> int:
    """Bytes of CSV in the spans a run reads (the training window and the drift baseline)."""
    folders = spans.span_folders(str(labeled_dir), span_pattern)
    if not folders:
        return 0
    plan = spans.SpanPlan.make(max(folders), training_spans)
    total = 0
    for span in plan.all_spans():
        pattern = spans.pattern_for_span(span_pattern, span)
        total += sum(p.stat().st_size for p in labeled_dir.glob(pattern) if p.is_file())
    return total


def resolve(mode: str, data_bytes: int) -> str:
    if mode != "auto":
        return mode
    return "multi_processing" if data_bytes >= MULTI_PROCESSING_FROM_BYTES else "in_memory"


# TFX packages its own source as an sdist for remote Beam workers before every Beam component runs
# (about 1.5 s each, seven times a run) unless a dependency option is set. DirectRunner workers
# share this environment and need none; naming the SDK image (unused by the DirectRunner) skips it.
# Only for the DirectRunner: another runner brings its own dependency options.
_SKIP_TFX_SDIST = "--sdk_container_image=apache/beam_python3.10_sdk:2.59.0"


def direct_runner_args(mode: str) -> tuple[str, ...]:
    if mode == "in_memory":
        return ("--direct_running_mode=in_memory", "--direct_num_workers=1")
    return ("--direct_running_mode=multi_processing", f"--direct_num_workers={os.cpu_count() or 1}")


def local_beam_args(mode: str, extra: tuple[str, ...]) -> tuple[str, ...]:
    """DirectRunner options for `mode`, then the user's (later options win)."""
    other_runner = any(
        arg.startswith("--runner=") and arg != "--runner=DirectRunner" for arg in extra
    )
    dependency_set = any(
        arg.split("=")[0]
        in (
            "--setup_file",
            "--extra_package",
            "--extra_packages",
            "--requirements_file",
            "--sdk_container_image",
        )
        for arg in extra
    )
    skip = () if other_runner or dependency_set else (_SKIP_TFX_SDIST,)
    return direct_runner_args(mode) + skip + tuple(extra)

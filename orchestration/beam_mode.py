"""Which DirectRunner mode a local run uses: chosen from the size of the data it will read.

`in_memory` runs every Beam stage in the pipeline's own process: no start-up or pickling cost,
fastest on small data (1.47x faster than `multi_processing` on the 14k-row default). Large data
goes to `multi_processing`, one worker per core, which spreads the CPU work and keeps each
process's memory bounded. The cut-over is a size of labeled CSV read by the run (README
"Performance" has the measurements); `--beam-mode` overrides it.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

from components import beam_runner, tfx_private
from components.span_example_gen import spans
from pipeline.config import BEAM_MODES, PipelineConfig

AUTO, IN_MEMORY, MULTI_PROCESSING = BEAM_MODES
# About 400k rows of the taxi data.
MULTI_PROCESSING_FROM_BYTES = 64 * 2**20


def _span_bytes(folder: Path, span_pattern: str, span: int) -> int:
    pattern = spans.pattern_for_span(span_pattern, span)
    return sum(p.stat().st_size for p in folder.glob(pattern) if p.is_file())


def labeled_bytes_read(labeled_dir: Path, span_pattern: str, training_spans: int) -> int:
    """Bytes of CSV in the spans a run reads (the training window and the drift baseline)."""
    folders = spans.span_folders(str(labeled_dir), span_pattern)
    if not folders:
        return 0
    plan = spans.SpanPlan.make(max(folders), training_spans)
    return sum(_span_bytes(labeled_dir, span_pattern, span) for span in plan.all_spans())


def unlabeled_bytes_read(unlabeled_dir: Path, span_pattern: str) -> int:
    """Bytes of CSV in the batch to score (the latest unlabeled span)."""
    folders = spans.span_folders(str(unlabeled_dir), span_pattern)
    return _span_bytes(unlabeled_dir, span_pattern, max(folders)) if folders else 0


def resolve(mode: str, data_bytes: int) -> str:
    if mode != AUTO:
        return mode
    return MULTI_PROCESSING if data_bytes >= MULTI_PROCESSING_FROM_BYTES else IN_MEMORY


def direct_runner_args(mode: str) -> tuple[str, ...]:
    if mode == IN_MEMORY:
        return ("--direct_running_mode=in_memory", "--direct_num_workers=1")
    return ("--direct_running_mode=multi_processing", f"--direct_num_workers={os.cpu_count() or 1}")


def local_beam_args(mode: str, extra: tuple[str, ...]) -> tuple[str, ...]:
    """DirectRunner options for `mode`, then the user's (later options win).

    TFX's packaging of itself for remote workers is skipped on the DirectRunner only: another
    runner, or options of the user's own that ship dependencies, keep it.
    """
    other_runner = beam_runner.names_another_runner(extra)
    dependency_set = any(arg.split("=")[0] in tfx_private.BEAM_DEPENDENCY_OPTIONS for arg in extra)
    skip = () if other_runner or dependency_set else (tfx_private.SKIP_TFX_SDIST_BEAM_ARG,)
    return direct_runner_args(mode) + skip + tuple(extra)


@dataclasses.dataclass(frozen=True)
class BeamChoice:
    """The DirectRunner mode a local run uses, and why."""

    requested: str  # auto, in_memory or multi_processing
    mode: str  # in_memory or multi_processing
    labeled_bytes: int
    beam_args: tuple[str, ...]  # the DirectRunner's options, then the user's
    # For the Beam components that read only the batch to score (its ExampleGen, its statistics
    # and BulkInferrer): the mode the batch's own size picks, when "auto" picked another for the
    # labeled data. A batch of 100k rows scores in one process faster than two workers start
    # (each imports TensorFlow).
    unlabeled_mode: str | None = None

    @property
    def unlabeled_beam_args(self) -> tuple[str, ...]:
        """Options added after `beam_args` for those components (none: the same mode)."""
        return direct_runner_args(self.unlabeled_mode) if self.unlabeled_mode else ()

    def describe(self) -> str:
        chosen = "auto, " if self.requested == AUTO else ""
        unlabeled = f"; the batch to score {self.unlabeled_mode}" if self.unlabeled_mode else ""
        return (
            f"DirectRunner {self.mode} ({chosen}{self.labeled_bytes / 2**20:.1f} MiB of labeled "
            f"CSV to read){unlabeled}"
        )


def choose(config: PipelineConfig) -> BeamChoice:
    """The mode for a run of `config` (its `beam_mode`, "auto" deciding by the data it reads)."""
    size = labeled_bytes_read(config.labeled_data_dir, config.span_pattern, config.training_spans)
    mode = resolve(config.beam_mode, size)
    unlabeled_mode = None
    users_direct_options = any(
        arg.startswith(("--direct_running_mode", "--direct_num_workers", "--runner"))
        for arg in config.extra_beam_args
    )
    if config.beam_mode == AUTO and not users_direct_options:
        by_size = resolve(
            AUTO, unlabeled_bytes_read(config.unlabeled_data_dir, config.span_pattern)
        )
        unlabeled_mode = by_size if by_size != mode else None
    return BeamChoice(
        config.beam_mode, mode, size, local_beam_args(mode, config.extra_beam_args), unlabeled_mode
    )

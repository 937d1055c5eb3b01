"""Which Beam runner a component's Beam options name, read as Beam itself parses them."""

from __future__ import annotations

from collections.abc import Iterable

# Names Beam's `--runner` takes for its local DirectRunner.
DIRECT_RUNNER_NAMES = ("DirectRunner", "direct")


def names_another_runner(beam_args: Iterable[str]) -> bool:
    """Whether `beam_args` choose a runner other than the DirectRunner (`--runner=X` or
    `--runner X`); no runner named is the DirectRunner."""
    beam_args = list(beam_args)
    if not any(arg.startswith("--runner") for arg in beam_args):
        return False
    # Beam is imported only to parse a runner option: the command line calls this at start-up,
    # before anything else needs Beam (its import takes seconds).
    from apache_beam.options.pipeline_options import PipelineOptions, StandardOptions

    runner = PipelineOptions(beam_args).view_as(StandardOptions).runner
    return runner is not None and runner not in DIRECT_RUNNER_NAMES

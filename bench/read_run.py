"""What one finished pipeline run did, as JSON, for the benchmark harness.

    python bench/read_run.py METADATA_DB --json-out FILE [--upstream-of Trainer]

Reads the latest run in the ML Metadata store with the project's own readers
(`pipeline.run_summary.summarize_run`, `pipeline.metadata_reader`): per-component state and
duration, the Evaluator's overall metrics, blessing and push. With `--upstream-of NODE` it also
lists every node the pipeline definition places upstream of NODE (data and control edges,
transitively), from `pipeline.pipeline.create_pipeline`.

The harness runs this as a subprocess so that it never imports TensorFlow itself: its own memory
stays out of the way, and a reader failure cannot take the harness down.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import traceback
from pathlib import Path

from pipeline import metadata_reader as mr
from pipeline.config import PipelineConfig


def _number(value) -> float | None:
    """JSON-safe float (NaN and infinities become None)."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def components_of(executions: list[mr.NodeExecution]) -> list[dict]:
    return [
        {"node_id": e.node_id, "state": e.state, "seconds": round(e.seconds, 3)} for e in executions
    ]


def read_run(metadata_path: Path, pipeline_name: str) -> dict:
    """Facts of the latest run; on a reader error, the executions alone and the error."""
    from pipeline.run_summary import summarize_run

    try:
        summary = summarize_run(metadata_path, pipeline_name)
    except Exception as e:  # noqa: BLE001 - a partial answer beats none; the error is kept
        facts: dict = {"read_error": f"{type(e).__name__}: {e}", "components": []}
        try:
            store = mr.open_store(metadata_path)
            runs = mr.run_contexts(store, pipeline_name)
            if runs:
                facts["run_id"] = runs[0].name
                facts["components"] = components_of(mr.run_executions(store, runs[0].id))
        except Exception as inner:  # noqa: BLE001
            facts["read_error"] += f"; executions not readable either: {inner}"
        return facts
    return {
        "run_id": summary.run_id,
        "components": components_of(summary.executions),
        "metrics": {
            name: number
            for name, value in sorted(summary.metrics.items())
            if (number := _number(value)) is not None
        },
        "blessed": summary.blessed,
        "blessing_reasons": summary.blessing_reasons,
        "infra_blessed": summary.infra_blessed,
        "pushed_version": summary.pushed_version,
        "predictions": summary.predictions,
        "gate_refused": summary.gate_refused,
        "data_span": summary.data_span,
        "training_spans": summary.training_spans,
    }


def upstream_of(node_id: str) -> list[str]:
    """Every node upstream of `node_id` in the pipeline definition, in pipeline order."""
    from pipeline.pipeline import create_pipeline

    components = create_pipeline(PipelineConfig()).components
    by_id = {c.id: c for c in components}
    if node_id not in by_id:
        raise LookupError(f"no node {node_id} in the pipeline ({', '.join(by_id)})")
    found: set[str] = set()
    pending = [by_id[node_id]]
    while pending:
        for parent in pending.pop().upstream_nodes:
            if parent.id not in found:
                found.add(parent.id)
                pending.append(parent)
    return [c.id for c in components if c.id in found]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("metadata", type=Path, help="the run's metadata.db")
    parser.add_argument("--json-out", type=Path, required=True, help="where to write the JSON")
    parser.add_argument("--upstream-of", default=None, metavar="NODE")
    args = parser.parse_args(argv)
    facts = read_run(args.metadata, PipelineConfig().pipeline_name)
    if args.upstream_of:
        try:
            facts["upstream_of"] = {args.upstream_of: upstream_of(args.upstream_of)}
        except Exception:  # noqa: BLE001
            facts["upstream_error"] = traceback.format_exc(limit=3)
    args.json_out.write_text(json.dumps(facts, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""What one finished pipeline run did, as JSON, for the benchmark harness.

    python bench/read_run.py METADATA_DB --json-out FILE [--upstream-of Trainer]
    python bench/read_run.py METADATA_DB --json-out FILE --pipeline-name NAME

Reads the latest run in the ML Metadata store with the project's own readers
(`metadata.run_summary.summarize_run`, `metadata.runs`): per-component state and duration, the
Evaluator's overall metrics, blessing and push. With `--upstream-of NODE` it also lists every node
the pipeline definition places upstream of NODE (data and control edges, transitively), from
`pipeline.definition.create_pipeline`.

With `--pipeline-name` naming another pipeline than the project's (the benchmark's reference, TFX's
own taxi example), only what any TFX pipeline records is read: each component's state and
duration, and the overall metrics, blessing and push of the run's Evaluator and Pusher if it has
them (their output artifacts, read with `metadata.artifact_readers`).

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

from cli.options import DEFAULT_PROFILE_DIR
from metadata import artifact_readers
from metadata.run_summary import summarize_run
from metadata.runs import describe_run, run_contexts, run_executions
from metadata.store import NodeExecution, StoreIndex, custom_property, output_artifacts
from pipeline.config import PipelineConfig
from pipeline.definition import create_pipeline


def _number(value) -> float | None:
    """JSON-safe float (NaN and infinities become None)."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def components_of(executions: list[NodeExecution]) -> list[dict]:
    return [
        {
            "node_id": e.node_id,
            "state": e.state,
            "seconds": round(e.seconds, 3),
            # When it started (Unix seconds): which stages ran at the run's memory peak.
            "started_epoch": e.execution.create_time_since_epoch / 1000,
        }
        for e in executions
    ]


def read_run(metadata_path: Path, pipeline_name: str) -> dict:
    """Facts of the latest run; on a reader error, the executions alone and the error."""
    run_id = None
    try:
        index = StoreIndex.open(metadata_path)
        runs = run_contexts(index.store, pipeline_name)
        run_id = runs[0].name if runs else None
        if run_id is None:
            raise LookupError(f"no run of {pipeline_name} in {metadata_path}")
        summary = summarize_run(index, run_id)
        described = describe_run(index, runs[0])
    except Exception as e:  # noqa: BLE001 - a partial answer beats none; the error is kept
        facts: dict = {"read_error": f"{type(e).__name__}: {e}", "components": []}
        if run_id is not None:
            try:
                facts["run_id"] = run_id
                facts["components"] = components_of(run_executions(index, runs[0].id))
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
        "parallelism": described["parallelism"],
        "most_at_once": described["most_at_once"],
    }


def read_other_run(metadata_path: Path, pipeline_name: str) -> dict:
    """Facts of the latest run of any TFX pipeline: components, and the Evaluator's overall
    metrics, blessing and the push where the run has them."""
    try:
        index = StoreIndex.open(metadata_path)
        runs = run_contexts(index.store, pipeline_name)
        if not runs:
            raise LookupError(f"no run of {pipeline_name} in {metadata_path}")
        executions = run_executions(index, runs[0].id)
    except Exception as e:  # noqa: BLE001 - the error is the answer
        return {"read_error": f"{type(e).__name__}: {e}", "components": []}
    facts: dict = {
        "run_id": runs[0].name,
        "components": components_of(executions),
        "metrics": {},
        "blessed": None,
        "pushed_version": None,
    }
    errors = []
    for node in executions:
        outputs = output_artifacts(index.store, node.execution.id)
        try:
            if "evaluation" in outputs:
                overall = artifact_readers.evaluation(outputs["evaluation"][0].uri)["overall"]
                facts["metrics"] = {
                    name: number
                    for name, value in sorted(overall.items())
                    if (number := _number(value)) is not None
                }
            if "blessing" in outputs and node.node_id == "Evaluator":
                facts["blessed"] = custom_property(outputs["blessing"][0], "blessed") == 1
            if "pushed_model" in outputs:
                pushed = outputs["pushed_model"][0]
                if custom_property(pushed, "pushed") == 1:
                    facts["pushed_version"] = custom_property(pushed, "pushed_version")
        except Exception as e:  # noqa: BLE001 - keep what else can be read
            errors.append(f"{node.node_id}: {type(e).__name__}: {e}")
    if errors:
        facts["read_error"] = "; ".join(errors)
    return facts


def upstream_of(node_id: str) -> list[str]:
    """Every node upstream of `node_id` in the pipeline definition, in pipeline order."""
    components = create_pipeline(PipelineConfig.from_profile(DEFAULT_PROFILE_DIR)).components
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
    parser.add_argument(
        "--pipeline-name",
        default=None,
        metavar="NAME",
        help="read the latest run of this pipeline (default: the project's)",
    )
    args = parser.parse_args(argv)
    own_name = PipelineConfig.from_profile(DEFAULT_PROFILE_DIR).pipeline_name
    if args.pipeline_name in (None, own_name):
        facts = read_run(args.metadata, own_name)
    else:
        facts = read_other_run(args.metadata, args.pipeline_name)
    if args.upstream_of:
        try:
            facts["upstream_of"] = {args.upstream_of: upstream_of(args.upstream_of)}
        except Exception:  # noqa: BLE001
            facts["upstream_error"] = traceback.format_exc(limit=3)
    args.json_out.write_text(json.dumps(facts, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Compares SpanCsvExampleGen's vectorized CSV conversion with TFX's `_CsvToExample` (issue #15).

    python bench/ingestion_compare.py --files DIR/labeled/span-1/*.csv [--mode in_memory]
        [--only tfx|fast] [--out /tmp/x]

Runs each conversion as its own Beam pipeline on the DirectRunner (the project's options for the
mode), writes (partition index, deterministic serialization) of every example, times each, and
checks that the multisets of examples, and the split of each, are identical.
"""

from __future__ import annotations

import argparse
import collections
import glob
import json
import os
import resource
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import apache_beam as beam  # noqa: E402
from apache_beam.options.pipeline_options import PipelineOptions  # noqa: E402
from tfx.proto import example_gen_pb2  # noqa: E402

from components import tfx_private  # noqa: E402
from components.span_example_gen import fast_csv  # noqa: E402
from orchestration import beam_mode  # noqa: E402

SPLIT = example_gen_pb2.SplitConfig(
    splits=[
        example_gen_pb2.SplitConfig.Split(name="train", hash_buckets=3),
        example_gen_pb2.SplitConfig.Split(name="eval", hash_buckets=1),
    ]
)
BUCKETS = [3, 4]


def _tag(record) -> bytes:
    partition = tfx_private.hash_partition_fn(record, 2, BUCKETS, SPLIT)
    data = record if isinstance(record, bytes) else record.SerializeToString(deterministic=True)
    return bytes([partition]) + data


def run(which: str, files: list[str], mode: str, out: str) -> float:
    options = PipelineOptions(list(beam_mode.direct_runner_args(mode)))
    start = time.perf_counter()
    with beam.Pipeline(options=options) as pipeline:
        if which == "tfx":
            folder = os.path.dirname(files[0])
            exec_properties = {"input_base": folder, "_beam_pipeline_args": []}
            examples = pipeline | tfx_private.CsvToExample(exec_properties, "*.csv")
        else:
            examples = pipeline | fast_csv.CsvToSerializedExamples(files)
        _ = (
            examples
            | "Tag" >> beam.Map(_tag).with_output_types(bytes)
            | "Write" >> beam.io.WriteToTFRecord(out, file_name_suffix=".tfrecord")
        )
    return time.perf_counter() - start


def read(prefix: str) -> collections.Counter:
    import tensorflow as tf

    records = collections.Counter()
    for path in glob.glob(prefix + "*.tfrecord"):
        for record in tf.data.TFRecordDataset(path).as_numpy_iterator():
            records[record] += 1
    return records


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--files", nargs="+", required=True)
    parser.add_argument("--mode", default=None, help="in_memory or multi_processing (auto)")
    parser.add_argument("--only", choices=["tfx", "fast"], default=None)
    parser.add_argument("--out", default="/tmp/ingestion_compare")
    parser.add_argument("--no-compare", action="store_true")
    args = parser.parse_args()
    files = sorted(args.files)
    size = sum(os.path.getsize(f) for f in files)
    mode = args.mode or beam_mode.resolve("auto", size)
    os.makedirs(args.out, exist_ok=True)
    results = {"files": files, "bytes": size, "mode": mode}
    for which in ("tfx", "fast") if args.only is None else (args.only,):
        prefix = os.path.join(args.out, which)
        for old in glob.glob(prefix + "*.tfrecord"):
            os.remove(old)
        if which == "fast":
            problems = {f: fast_csv.fast_path_problem(f) for f in files}
            results["fast_path_problems"] = {f: p for f, p in problems.items() if p}
        results[f"{which}_seconds"] = round(run(which, files, mode, prefix), 2)
        print(json.dumps(results), flush=True)
    if args.only is None and not args.no_compare:
        tfx, fast = read(os.path.join(args.out, "tfx")), read(os.path.join(args.out, "fast"))
        results["examples"] = sum(tfx.values())
        results["identical"] = tfx == fast
        if tfx != fast:
            results["only_tfx"] = sum((tfx - fast).values())
            results["only_fast"] = sum((fast - tfx).values())
    usage = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    results["peak_rss_gib_self"] = round(usage, 2)
    print(json.dumps(results), flush=True)
    return 0 if results.get("identical", True) else 1


if __name__ == "__main__":
    sys.exit(main())

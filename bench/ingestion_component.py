"""Times SpanCsvExampleGen's executor (checks, conversion, split, write) on a data folder.

    python bench/ingestion_component.py --data-dir DIR --out OUT --path fast|tfx [--mode M]
    python bench/ingestion_component.py --compare OUT_A OUT_B

`--path tfx` makes every span take TFX's `_CsvToExample` (today's conversion), `fast` the
vectorized one. `--compare` parses the written splits of two runs and checks that every split
holds the same multiset of examples (deterministic serializations, as `_PartitionFn` hashes them).
"""

from __future__ import annotations

import argparse
import collections
import glob
import json
import os
import resource
import shutil
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def run(data_dir: str, out: str, path: str, mode: str | None) -> dict:
    from tfx.components.example_gen import utils as example_gen_utils
    from tfx.dsl.components.base import base_beam_executor
    from tfx.proto import example_gen_pb2
    from tfx.types import standard_artifacts, standard_component_specs
    from tfx.utils import proto_utils

    from components.span_example_gen import executor as span_executor
    from components.span_example_gen import fast_csv, spans
    from orchestration import beam_mode

    labeled = os.path.join(data_dir, "labeled")
    span_pattern = "span-{SPAN}/*.csv"
    latest = max(spans.span_folders(labeled, span_pattern))
    size = beam_mode.labeled_bytes_read(Path(labeled), span_pattern, 2)
    mode = mode or beam_mode.resolve("auto", size)
    if path == "tfx":
        fast_csv.fast_path_problem = lambda _: "forced TFX path"  # today's conversion
    shutil.rmtree(out, ignore_errors=True)
    examples = standard_artifacts.Examples()
    examples.uri = out
    split_config = example_gen_pb2.SplitConfig(
        splits=[
            example_gen_pb2.SplitConfig.Split(name="train", hash_buckets=3),
            example_gen_pb2.SplitConfig.Split(name="eval", hash_buckets=1),
        ]
    )
    exec_properties = {
        standard_component_specs.INPUT_BASE_KEY: labeled,
        standard_component_specs.INPUT_CONFIG_KEY: proto_utils.proto_to_json(
            example_gen_pb2.Input(
                splits=[example_gen_pb2.Input.Split(name="span", pattern=span_pattern)]
            )
        ),
        standard_component_specs.OUTPUT_CONFIG_KEY: proto_utils.proto_to_json(
            example_gen_pb2.Output(split_config=split_config)
        ),
        standard_component_specs.OUTPUT_DATA_FORMAT_KEY: example_gen_pb2.FORMAT_TF_EXAMPLE,
        standard_component_specs.OUTPUT_FILE_FORMAT_KEY: example_gen_pb2.FORMAT_TFRECORDS_GZIP,
        example_gen_utils.SPAN_PROPERTY_NAME: latest,
        example_gen_utils.VERSION_PROPERTY_NAME: None,
        span_executor.SPAN_PATTERN_KEY: span_pattern,
        span_executor.TRAINING_SPANS_KEY: 2,
    }
    context = base_beam_executor.BaseBeamExecutor.Context(
        beam_pipeline_args=list(beam_mode.local_beam_args(mode, ())), tmp_dir="/tmp/ingest/tmp"
    )
    start = time.perf_counter()
    span_executor.Executor(context).Do({}, {"examples": [examples]}, exec_properties)
    seconds = time.perf_counter() - start
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 2**20
    return {
        "path": path,
        "mode": mode,
        "labeled_bytes": size,
        "seconds": round(seconds, 1),
        "peak_rss_gib_self": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, 2),
        "peak_rss_gib_largest_child": round(children, 2),
    }


def read_splits(out: str) -> dict[str, collections.Counter]:
    import tensorflow as tf

    result = {}
    for folder in sorted(glob.glob(os.path.join(out, "Split-*"))):
        counter = collections.Counter()
        for path in glob.glob(os.path.join(folder, "*.gz")):
            for record in tf.data.TFRecordDataset(path, compression_type="GZIP"):
                example = tf.train.Example.FromString(record.numpy())
                counter[example.SerializeToString(deterministic=True)] += 1
        result[os.path.basename(folder)] = counter
    return result


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--data-dir")
    parser.add_argument("--out")
    parser.add_argument("--path", choices=["fast", "tfx"])
    parser.add_argument("--mode", default=None)
    parser.add_argument("--compare", nargs=2)
    args = parser.parse_args()
    if args.compare:
        a, b = (read_splits(out) for out in args.compare)
        report = {name: sum(counter.values()) for name, counter in a.items()}
        identical = a == b
        print(json.dumps({"splits": report, "identical": identical}))
        return 0 if identical else 1
    print(json.dumps(run(args.data_dir, args.out, args.path, args.mode)))
    return 0


if __name__ == "__main__":
    sys.exit(main())

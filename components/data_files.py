"""The data files an ExampleGen read, each with its content hash, recorded on its Examples.

Every ExampleGen of the pipeline (the labeled spans' and the unlabeled batch's) writes a
`data_files` custom property on the Examples artifact it outputs: a JSON list of
`{"span", "path", "sha256", "bytes"}`, one per file read. It is what `reproduce` checks the data
of a recorded run against (a file changed or gone, a newer span that a replay would read instead).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

DATA_FILES_PROPERTY = "data_files"
_BLOCK_BYTES = 1 << 20


def sha256_and_size(path: str | Path) -> tuple[str, int]:
    """The SHA-256 (hex) and size of the file at `path`, a local path or a URI TensorFlow's file
    systems read (gs://, s3://, ...), read a block at a time."""
    digest = hashlib.sha256()
    size = 0
    if "://" in str(path):  # an object store: TensorFlow's file systems read it
        import tensorflow as tf

        opened = tf.io.gfile.GFile(str(path), "rb")
    else:
        opened = open(path, "rb")  # noqa: SIM115 - closed by the with below
    with opened as f:
        while block := f.read(_BLOCK_BYTES):
            digest.update(block)
            size += len(block)
    return digest.hexdigest(), size


def file_record(path: str, span: int | None) -> dict[str, Any]:
    """The file at `path`: its span, SHA-256 and size."""
    digest, size = sha256_and_size(path)
    return {"span": span, "path": path, "sha256": digest, "bytes": size}


def record(examples: Any, files_by_span: Mapping[int | None, Sequence[str]]) -> None:
    """Writes the `data_files` property of the Examples artifact `examples`."""
    files = [
        file_record(path, span)
        for span, paths in sorted(files_by_span.items(), key=lambda item: item[0] or 0)
        for path in paths
    ]
    examples.set_string_custom_property(DATA_FILES_PROPERTY, json.dumps(files))


def parse(value: str | None) -> list[dict[str, Any]]:
    """The records of a `data_files` property's value (none for Examples written before it)."""
    return json.loads(value) if value else []

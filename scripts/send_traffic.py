"""Sends rows of a CSV to a running `serve` as REST Predict requests, the way a client would, and
writes the labels of what it sent as a CSV for `monitor --labels` (request_id,row,label).

    python scripts/send_traffic.py --csv data/labeled/span-2/taxi.csv --rows 400 \
        --labels-out outputs/labels.csv
    python scripts/send_traffic.py --csv data/labeled/span-2/taxi.csv --rows 400 \
        --shift pickup_latitude=+1.5 --set company="Brand New Cab Co"      # drifted traffic
    python scripts/send_traffic.py --csv data/labeled/span-2/taxi.csv --rows 2000 \
        --per-request 1 --post-labels        # each answer's label posted back at once

With --post-labels each request's labels go to `serve`'s feedback endpoint right after its
answer, as a client that learns the outcome would send them (`monitor` and a release's quality
guard join them to the logged answers).

Values are typed by the served model's own schema (GET .../metadata gives the signature; the
schema is read from the version folder's assets.extra/schema.pbtxt). Only the standard library:
run it with the project's Python or any other.
"""

from __future__ import annotations

import argparse
import csv
import json
import random
import sys
import urllib.error
import urllib.request
from pathlib import Path


def _post(url: str, body: dict) -> tuple[dict, str]:
    request = urllib.request.Request(
        url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=60) as answer:
        return json.load(answer), answer.headers["X-Request-Id"]


def _schema_types(schema_file: Path) -> dict[str, str]:
    """Feature name -> INT, FLOAT or BYTES, read from a text Schema without protobuf."""
    types, name = {}, None
    for line in schema_file.read_text().splitlines():
        line = line.strip()
        if line.startswith("name:") and name is None:
            name = line.split(":", 1)[1].strip().strip('"')
        elif line.startswith("type:") and name is not None:
            types[name] = line.split(":", 1)[1].strip()
        elif line == "feature {":
            name = None
    return types


def _typed(value: str, kind: str | None):
    if value == "":
        return None
    if kind == "INT":
        return int(float(value))
    if kind == "FLOAT":
        return float(value)
    return value


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--csv", required=True, type=Path, help="rows to send (a header row first)")
    parser.add_argument("--rows", type=int, default=400, help="rows to send, drawn at random")
    parser.add_argument("--per-request", type=int, default=8, help="rows per request")
    parser.add_argument("--url", default="http://127.0.0.1:8501/v1/models/taxi-tips")
    parser.add_argument(
        "--model-dir",
        type=Path,
        default=Path("outputs/serving_model/taxi-tips"),
        help="the served model's folder (its latest version's schema types the values)",
    )
    parser.add_argument("--label", default="tips", help="the label column (not sent)")
    parser.add_argument("--labels-out", type=Path, help="write request_id,row,label here")
    parser.add_argument(
        "--post-labels",
        action="store_true",
        help="post each request's labels to the server's feedback endpoint after its answer",
    )
    parser.add_argument("--shift", action="append", default=[], metavar="COLUMN=+DELTA")
    parser.add_argument("--set", action="append", default=[], metavar="COLUMN=VALUE")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    versions = sorted(
        (p for p in args.model_dir.iterdir() if p.name.isdigit()), key=lambda p: int(p.name)
    )
    if not versions:
        print(
            f"error: {args.model_dir} holds no version folder; push a model first", file=sys.stderr
        )
        return 2
    types = _schema_types(versions[-1] / "assets.extra" / "schema.pbtxt")
    with args.csv.open(newline="") as f:
        rows = list(csv.DictReader(f))
    rows = random.Random(args.seed).sample(rows, min(args.rows, len(rows)))
    shifts = {c: float(d) for c, d in (s.split("=", 1) for s in args.shift)}
    fixed = dict(s.split("=", 1) for s in args.set)
    sent, labels = 0, []
    for start in range(0, len(rows), args.per_request):
        chunk = rows[start : start + args.per_request]
        instances = []
        for row in chunk:
            instance = {c: _typed(v, types.get(c)) for c, v in row.items() if c in types}
            for column, delta in shifts.items():
                if instance.get(column) is not None:
                    instance[column] += delta
            instance.update({c: _typed(v, types.get(c)) for c, v in fixed.items()})
            instances.append(instance)
        try:
            _, request_id = _post(f"{args.url}:predict", {"instances": instances})
        except urllib.error.HTTPError as e:
            print(
                f"error: {args.url}:predict answered {e.code}: {e.read().decode()}", file=sys.stderr
            )
            return 1
        except urllib.error.URLError as e:
            print(
                f"error: cannot reach {args.url} ({e.reason}): is `serve` running?", file=sys.stderr
            )
            return 1
        sent += 1
        given = [(request_id, i, row.get(args.label, "")) for i, row in enumerate(chunk)]
        labels += given
        if args.post_labels:
            feedback = [
                {"request_id": r, "row": i, "label": _typed(label, "FLOAT")}
                for r, i, label in given
                if label != ""
            ]
            if feedback:
                _post(f"{args.url}/feedback", feedback)
    if args.labels_out:
        with args.labels_out.open("w", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(["request_id", "row", "label"])
            writer.writerows(labels)
    print(
        f"Sent {len(rows)} rows in {sent} requests to {args.url}"
        + (f"; their labels are in {args.labels_out}" if args.labels_out else "")
        + ("; labels posted to its feedback endpoint" if args.post_labels else "")
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())

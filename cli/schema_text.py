"""`schema diff` and `schema accept`: the review in words, and the accepted schema written out."""

from __future__ import annotations

from pathlib import Path


def diff_text(p: dict) -> str:
    """What `schema diff` prints for a review (metadata.schema_review.review)."""
    lines = [
        f"Curated schema:  {p['curated_file']}",
        f"Inferred schema: SchemaGen of run {p['run_id']} ({p['inferred_uri']})",
    ]
    if p["only_in_data"]:
        lines.append("In the data, not in the curated schema: " + ", ".join(p["only_in_data"]))
    if p["only_in_curated"]:
        lines.append("In the curated schema, not in the data: " + ", ".join(p["only_in_curated"]))
    for name, d in p["differences"].items():
        lines.append(f"  {name}: curated {d['curated']}; inferred {d['inferred']}")
    if not (p["only_in_data"] or p["only_in_curated"] or p["differences"]):
        lines.append("Same features, types and presence (domains are curated by hand).")
    if p["anomalies"]:
        lines.append("Anomalies of the latest data against the curated schema:")
        lines += [f"  - {a}" for a in p["anomalies"]]
    else:
        lines.append("The latest data has no anomaly against the curated schema.")
    if p["accept_diff"]:
        lines.append("`schema accept` would write:")
        lines.append(p["accept_diff"].rstrip("\n"))
        for name in p["deprecated_model_features"]:
            lines.append(
                f"warning: accepting deprecates '{name}', which the model code uses "
                "(the profile's features or label): Transform needs it. Fix the data, or change the model "
                "code too."
            )
    else:
        lines.append("`schema accept` would change nothing.")
    return "\n".join(lines)


def accept(p: dict) -> str:
    """Writes the accepted schema over the curated file; returns what to tell the user."""
    if not p["accept_diff"]:
        return f"Nothing to accept: {p['curated_file']} already accepts the latest data."
    Path(p["curated_file"]).write_text(p["accepted_text"])
    return (
        p["accept_diff"].rstrip("\n")
        + f"\nWrote {p['curated_file']}. Review the change (git diff) and commit it; the next run "
        "validates the data against it. Comments inside feature blocks are not kept."
    )

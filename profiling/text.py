"""Text that more than one of init's steps writes: `#` comment blocks (schema.pbtxt and
profile.yaml) and short lists of values (messages and review notes).
"""

from __future__ import annotations

import textwrap
from typing import Any

COMMENT_WIDTH = 98


def comment(*paragraphs: str, indent: str = "") -> list[str]:
    """`paragraphs` as wrapped `#` comment lines; a paragraph starting "- " is a list item."""
    lines = []
    for paragraph in paragraphs:
        if not paragraph:
            lines.append(f"{indent}#")
            continue
        item = paragraph.startswith("- ")
        lines += textwrap.wrap(
            paragraph,
            width=COMMENT_WIDTH,
            initial_indent=f"{indent}# ",
            subsequent_indent=f"{indent}#   " if item else f"{indent}# ",
            break_long_words=False,
            break_on_hyphens=False,
        )
    return lines


def some(values: list[Any], shown: int = 10) -> str:
    text = ", ".join(repr(v) if isinstance(v, str) else str(v) for v in values[:shown])
    return text + (", ..." if len(values) > shown else "")

"""Markdown -> sanitized HTML for model cards and card details (markdown-it-py + nh3)."""

from __future__ import annotations

import nh3
from markdown_it import MarkdownIt

_MD = MarkdownIt("commonmark", {"html": False}).enable("table")


def to_html(markdown: str) -> str:
    return nh3.clean(_MD.render(markdown))

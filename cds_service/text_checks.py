"""The one rule for control characters in text that callers send us.

Such characters have no place in identifiers, URLs or reasons, and they are how log injection
and broken downstream parsers start; a free-text comment may keep its line breaks and tabs.
"""

from __future__ import annotations

import re

_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_CONTROL_EXCEPT_LINE_BREAKS = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def has_control_characters(text: str, *, allow_line_breaks: bool = False) -> bool:
    """True when ``text`` holds a control character (tab, LF and CR allowed on request)."""
    pattern = _CONTROL_EXCEPT_LINE_BREAKS if allow_line_breaks else _CONTROL
    return pattern.search(text) is not None

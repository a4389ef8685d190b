"""The SMART app's words per language (``app_phrases.toml``, ``CDS_LANGUAGE``) and its one time
format (the cards' ``format_time`` in ``CDS_DISPLAY_TIMEZONE``), so the page a physician opens
from a Dutch card is Dutch from heading to error page, and its times match the card's.

The file is read when this module is imported: a phrase missing in one language stops the
service at start-up.
"""

from __future__ import annotations

import re
from datetime import datetime
from pathlib import Path
from typing import Any

from cds_service.cds_hooks.language import DEFAULT_ZONE, format_time, load_phrases

__all__ = ["PHRASES_FILE", "Words", "measurement_name"]

PHRASES_FILE = Path(__file__).with_name("app_phrases.toml")
_DOC: dict[str, Any] = load_phrases(PHRASES_FILE)


class Words:
    """One deployment's language and display time zone, as the page's parts need them."""

    __slots__ = ("language", "zone")

    def __init__(self, language: str = "en", zone: str = DEFAULT_ZONE) -> None:
        self.language = language
        self.zone = zone

    def __call__(self, key: str, **fields: object) -> str:
        text: str = _DOC[self.language][key]
        return text.format(**fields) if fields else text

    def time(self, moment: datetime) -> str:
        return format_time(moment, self.zone)

    def message(self, english: str) -> str:
        """A title or message the code words in English (for the log), in this language
        (``[[messages]]``); one no pattern matches is shown as it is."""
        for rule in _DOC["messages"]:
            match = re.fullmatch(rule["pattern"], english)
            if match:
                return str(rule[self.language]).format(**match.groupdict())
        return english


def measurement_name(code: str, language: str) -> str | None:
    """A chart's title for a measurement code (``[[measurements]]``), if the file names it."""
    for entry in _DOC["measurements"]:
        if code in entry["codes"]:
            return str(entry[language])
    return None

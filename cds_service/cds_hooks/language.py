"""The words and the clock of a card: fixed phrases per language (``card_phrases.toml``), the one
time format, numbers as a clinician in that language writes them.

A deployment picks one language (``CDS_LANGUAGE``) and one display time zone
(``CDS_DISPLAY_TIMEZONE``, default Europe/Amsterdam); every time a card shows goes through
``format_time`` so a physician never has to convert UTC at the bedside.
"""

from __future__ import annotations

import re
import tomllib
from datetime import datetime, timedelta
from functools import cache
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from fhir_mappers.spec_fields import LANGUAGES

__all__ = [
    "DEFAULT_ZONE",
    "LANGUAGES",
    "elapsed_text",
    "format_time",
    "load_phrases",
    "missing_reason_text",
    "number_text",
    "phrase",
    "unit_text",
]

DEFAULT_ZONE = "Europe/Amsterdam"
TIME_FORMAT = "%Y-%m-%d %H:%M %Z"  # unambiguous in Dutch and English: 2026-12-04 15:02 CET
_PHRASES = Path(__file__).with_name("card_phrases.toml")


@cache
def load_phrases(path: Path) -> dict[str, Any]:
    """A phrase file (cards' ``card_phrases.toml``, the SMART app's ``app_phrases.toml``): one
    table per language with the same keys, and lists of rules (``[[missing_reasons]]``) whose
    every entry words itself in every language; a missing translation is a ``ValueError`` when
    the file is first read, at start-up, never a half-English page at the bedside."""
    doc = tomllib.loads(path.read_text(encoding="utf-8"))
    keys = set(doc[LANGUAGES[0]])
    for lang in LANGUAGES:
        if set(doc.get(lang, {})) != keys:
            missing = sorted(keys ^ set(doc.get(lang, {})))
            raise ValueError(
                f"{path.name}: [{lang}] must have the keys of [{LANGUAGES[0]}] ({missing})"
            )
    for name, rules in doc.items():
        if name in LANGUAGES or not isinstance(rules, list):
            continue
        for n, rule in enumerate(rules):
            absent = [lang for lang in LANGUAGES if not str(rule.get(lang, "")).strip()]
            if absent:
                raise ValueError(f"{path.name}: [[{name}]] entry {n + 1} has no {absent} text")
    return doc


def _phrases() -> dict[str, Any]:
    return load_phrases(_PHRASES)


def phrase(language: str, key: str, **fields: str) -> str:
    text: str = _phrases()[language][key]
    return text.format(**fields) if fields else text


def format_time(moment: datetime, zone: str = DEFAULT_ZONE) -> str:
    """The one way a card writes a moment: local date and clock time with the zone's name."""
    return moment.astimezone(ZoneInfo(zone)).strftime(TIME_FORMAT)


def _iso_time(text: str, zone: str) -> str:
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return text
    return format_time(moment, zone) if moment.tzinfo is not None else text


def number_text(value: float, language: str, decimals: int | None = None) -> str:
    """12, 37.8, 0.93 (Dutch: 37,8); ``decimals`` from the feature's display rule."""
    if decimals is not None:
        text = f"{round(value, decimals):.{decimals}f}"
    elif value == int(value) and abs(value) < 1e6:
        text = str(int(value))
    else:
        text = f"{value:.3g}" if abs(value) < 1000 else f"{value:.0f}"
    if text in ("-0", "-0.0"):
        text = text[1:]
    return text.replace(".", ",") if language == "nl" else text


_UNITS = {"mm[Hg]": "mmHg", "Cel": "°C", "10*9/L": "×10⁹/L"}
_UNIT_WORDS = {"a": "years", "d": "days", "{score}": "points"}


def unit_text(unit: str | None, language: str, value: float | None = None) -> str:
    """' mmHg', ' days' (' dag' for one day in Dutch); nothing for counts and ratios."""
    if not unit or unit in ("{count}", "1"):
        return ""
    if unit in _UNIT_WORDS:
        word = _UNIT_WORDS[unit]
        if word == "days" and value is not None and abs(value) == 1:
            word = "day"
        return " " + phrase(language, word)
    if unit in ("%", "/min"):  # 95%, 128/min
        return unit
    return " " + _UNITS.get(unit, unit)


def missing_reason_text(reason: str | None, language: str, zone: str = DEFAULT_ZONE) -> str:
    """The mapper's reason (English, for the audit row) as the card's language words it."""
    text = reason or "missing"
    for rule in _phrases()["missing_reasons"]:
        match = re.match(rule["pattern"], text)
        if match:
            fields = match.groupdict()
            if "time" in fields:
                fields["time"] = _iso_time(fields["time"], zone)
            if language == "nl":
                fields = {k: v.replace(".", ",") if k != "time" else v for k, v in fields.items()}
            return str(rule[language]).format(**fields)
    return text


def elapsed_text(delta: timedelta, language: str = "en") -> str:
    """'0 min', '40 min', '1 h', '1 h 20 min', '2 d 3 h' (Dutch '1 u 20 min')."""
    d, h, m = (phrase(language, f"elapsed_{u}") for u in ("day", "hour", "minute"))
    minutes = max(0, int(delta.total_seconds() // 60))
    days, rest = divmod(minutes, 1440)
    hours, mins = divmod(rest, 60)
    if days:
        return f"{days} {d} {hours} {h}" if hours else f"{days} {d}"
    if hours:
        return f"{hours} {h} {mins} {m}" if mins else f"{hours} {h}"
    return f"{mins} {m}"

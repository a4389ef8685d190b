"""The field-level rules of a feature spec: each parser takes one raw TOML value and returns it
typed, or raises SpecError naming the file and feature. spec.py combines them per table.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from fhir_mappers.timeutil import parse_duration

# An Encounter element path ("hospitalization.admitSource") or one extension ("extension:<url>").
ELEMENT = re.compile(r"^(extension:https?://\S+|[a-z][A-Za-z]*(\.[a-z][A-Za-z]*)*)$")


class SpecError(ValueError):
    """A feature spec that cannot be used; the message names the file and the feature."""


@dataclass(frozen=True, slots=True)
class Window:
    """Half-open interval ``(index + start, index + end]`` for the data a feature may use."""

    start: timedelta
    end: timedelta


def no_unknown_keys(raw: dict[str, Any], allowed: set[str], where: str) -> None:
    unknown = set(raw) - allowed
    if unknown:
        raise SpecError(f"{where}: unknown keys {sorted(unknown)}")


def parse_window(raw: Any, where: str) -> Window:
    if not (isinstance(raw, list) and len(raw) == 2 and all(isinstance(x, str) for x in raw)):
        raise SpecError(f"{where}: window must be two ISO 8601 durations, e.g. ['-PT6H', 'PT0S']")
    try:
        start, end = parse_duration(raw[0]), parse_duration(raw[1])
    except ValueError as exc:
        raise SpecError(f"{where}: {exc}") from exc
    if start >= end:
        raise SpecError(f"{where}: window start must be before its end")
    return Window(start, end)


def parse_codes(raw: Any, where: str) -> tuple[str, ...]:
    if not isinstance(raw, list) or not all(isinstance(c, str) and "|" in c for c in raw):
        raise SpecError(f"{where}: codes must be a list of 'system|code' strings")
    return tuple(raw)


def require_text(raw: dict[str, Any], keys: tuple[str, ...], where: str) -> None:
    for key in keys:
        if not isinstance(raw.get(key), str) or not raw[key]:
            raise SpecError(f"{where}: '{key}' is required")


def parse_encounter_elements(
    raw: Any, source: str, value_map: dict[str, float], where: str
) -> tuple[str, ...]:
    """Second places a coded observation answer is found: Encounter elements, mapped through the
    same value_map, so one feature reads arrival mode wherever a hospital records it."""
    if raw == []:
        return ()
    if source != "observation" or not value_map:
        raise SpecError(f"{where}: encounter_elements need a coded observation (value_map)")
    if not isinstance(raw, list) or not all(isinstance(e, str) and ELEMENT.match(e) for e in raw):
        raise SpecError(
            f"{where}: encounter_elements are Encounter paths such as "
            "'hospitalization.admitSource' or 'extension:<url>'"
        )
    return tuple(raw)


def parse_plausible(raw: Any, where: str) -> tuple[float, float] | None:
    if raw is None:
        return None
    valid = isinstance(raw, list) and len(raw) == 2
    valid = valid and all(isinstance(x, int | float) and not isinstance(x, bool) for x in raw)
    if not (valid and raw[0] < raw[1]):
        raise SpecError(f"{where}: plausible must be [low, high]")
    return (float(raw[0]), float(raw[1]))


def parse_required(raw: Any, where: str) -> bool:
    if not isinstance(raw, bool):
        raise SpecError(f"{where}: required must be true or false")
    return raw


def parse_molar_mass(raw: Any, where: str) -> float | None:
    if raw is None:
        return None
    if not (isinstance(raw, int | float) and raw > 0):
        raise SpecError(f"{where}: molar_mass must be a positive number in g/mol")
    return float(raw)


LANGUAGES = ("en", "nl")
_SHOW_KEYS = {"label", "words", "scale", "decimals", "time", "unit"}


@dataclass(frozen=True, slots=True)
class DisplayRule:
    """How a clinician writes a feature's value (``[features.show]``): a label per language,
    words for coded numbers (sex, yes/no), a named scale, rounding, and whether the time of the
    measurement belongs beside it (not for counts or patient attributes). Display only: it is
    left out of the spec hash, so a wording fix needs no retraining."""

    label: dict[str, str]
    words: dict[float, dict[str, str]]
    scale: dict[str, str]
    decimals: int | None = None
    time: bool | None = None  # None: by aggregation (a count or a duration has no one moment)
    unit: str | None = None  # UCUM unit to write after the value when the feature has none


NO_DISPLAY_RULE = DisplayRule({}, {}, {})


def _per_language(raw: Any, where: str) -> dict[str, str]:
    ok = isinstance(raw, dict) and raw and set(raw) <= set(LANGUAGES)
    if not ok or not all(isinstance(v, str) and v for v in raw.values()):
        raise SpecError(f"{where}: a text per language, e.g. {{ en = '...', nl = '...' }}")
    return dict(raw)


def parse_show(raw: Any, where: str) -> DisplayRule:
    if raw is None:
        return NO_DISPLAY_RULE
    if not isinstance(raw, dict):
        raise SpecError(f"{where}: show is a table")
    no_unknown_keys(raw, _SHOW_KEYS, f"{where} show")
    words_raw = raw.get("words", {})
    if not isinstance(words_raw, dict):
        raise SpecError(f"{where}: show.words maps a value ('1') to a text per language")
    words = {}
    for key, texts in words_raw.items():
        try:
            number = float(key)
        except ValueError:
            raise SpecError(f"{where}: show.words key {key!r} is not a number") from None
        words[number] = _per_language(texts, f"{where} show.words.{key}")
    decimals = raw.get("decimals")
    if decimals is not None and (not isinstance(decimals, int) or not 0 <= decimals <= 3):
        raise SpecError(f"{where}: show.decimals must be 0 to 3")
    time = raw.get("time")
    if time is not None and not isinstance(time, bool):
        raise SpecError(f"{where}: show.time must be true or false")
    unit = raw.get("unit")
    if unit is not None and (not isinstance(unit, str) or not unit):
        raise SpecError(f"{where}: show.unit is a UCUM unit, e.g. 'a' or 'd'")
    return DisplayRule(
        unit=unit,
        label=_per_language(raw["label"], f"{where} show.label") if "label" in raw else {},
        words=words,
        scale=_per_language(raw["scale"], f"{where} show.scale") if "scale" in raw else {},
        decimals=decimals,
        time=time,
    )

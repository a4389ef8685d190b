"""FHIR date/time and ISO 8601 duration parsing.

FHIR ``dateTime`` values may be a year, a year-month, a date, or a full instant. EHR exports are
not always compliant (missing offsets); a naive timestamp is read as UTC and reported, so that a
feature window is never silently shifted by the server's local zone.
"""

from __future__ import annotations

import re
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

_DURATION = re.compile(
    r"^(?P<sign>-)?P(?:(?P<weeks>\d+(?:\.\d+)?)W)?(?:(?P<days>\d+(?:\.\d+)?)D)?"
    r"(?:T(?:(?P<hours>\d+(?:\.\d+)?)H)?(?:(?P<minutes>\d+(?:\.\d+)?)M)?"
    r"(?:(?P<seconds>\d+(?:\.\d+)?)S)?)?$"
)


def parse_duration(text: str) -> timedelta:
    """Parse a signed ISO 8601 duration without years or months (their length is ambiguous)."""
    match = _DURATION.match(text.strip())
    if match is None or text.strip() in {"P", "-P", "PT", "-PT"}:
        raise ValueError(f"not an ISO 8601 duration in weeks/days/hours/minutes/seconds: {text!r}")
    parts = {k: float(v) for k, v in match.groupdict().items() if v is not None and k != "sign"}
    delta = timedelta(**parts)
    return -delta if match.group("sign") else delta


def format_duration(delta: timedelta) -> str:
    seconds = int(delta.total_seconds())
    sign = "-" if seconds < 0 else ""
    seconds = abs(seconds)
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    out = f"{sign}P{days}D" if days else f"{sign}P"
    if hours or minutes or secs or not days:
        out += "T" + (f"{hours}H" if hours else "") + (f"{minutes}M" if minutes else "")
        out += f"{secs}S" if secs or not (hours or minutes) else ""
    return out


class FhirTime:
    """Result of parsing: the instant (UTC) and whether the source lacked an explicit offset."""

    __slots__ = ("naive", "value")

    def __init__(self, value: datetime, naive: bool) -> None:
        self.value = value
        self.naive = naive


def parse_fhir_datetime(text: object) -> FhirTime | None:
    """Return the UTC instant a FHIR date/dateTime/instant denotes, or None when unparseable.

    Partial dates (``2024`` or ``2024-05``) resolve to their first instant.
    """
    if not isinstance(text, str) or not text:
        return None
    try:
        if len(text) == 4:
            return FhirTime(datetime(int(text), 1, 1, tzinfo=UTC), False)
        if len(text) == 7:
            return FhirTime(datetime(int(text[:4]), int(text[5:7]), 1, tzinfo=UTC), False)
        parsed = datetime.fromisoformat(text)
    except ValueError:
        return None
    if len(text) == 10:
        return FhirTime(parsed.replace(tzinfo=UTC), False)
    if parsed.tzinfo is None:
        return FhirTime(parsed.replace(tzinfo=UTC), True)
    try:
        return FhirTime(parsed.astimezone(UTC), False)
    except OverflowError:  # e.g. 0001-01-01T00:00+01:00: no representable UTC instant
        return None


def as_utc(moment: datetime) -> datetime:
    """Timestamps read back from SQLite come naive but were written in UTC; make them aware."""
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def ensure_utc(moment: datetime) -> datetime:
    """Index times must be aware; reject naive ones at the edge rather than guess their zone."""
    if moment.tzinfo is None:
        raise ValueError("index time must be timezone-aware")
    return moment.astimezone(UTC)


# Parsing with a bounded cache, for the mapper's hot path.
_TIME_CACHE: dict[str, tuple[datetime, bool] | None] = {}
_MISS: tuple[datetime, bool] = (datetime.min.replace(tzinfo=UTC), False)
_TIME_CACHE_MAX = 50_000


def cached_time(value: Any, warnings: Counter[str]) -> datetime | None:
    """Parse with a bounded cache: a prefetch repeats the same few timestamps many times."""
    if type(value) is not str:
        return None
    hit = _TIME_CACHE.get(value, _MISS)
    if hit is _MISS:
        parsed = parse_fhir_datetime(value)
        hit = None if parsed is None else (parsed.value, parsed.naive)
        if len(_TIME_CACHE) >= _TIME_CACHE_MAX:
            _TIME_CACHE.clear()
        _TIME_CACHE[value] = hit
    if hit is None:
        return None
    if hit[1]:
        warnings["timestamp_without_offset"] += 1
    return hit[0]


def observation_time(obs: dict[str, Any], warnings: Counter[str]) -> datetime | None:
    """When the observation was clinically true; ``issued`` only when no effective[x] exists."""
    for key in ("effectiveDateTime", "effectiveInstant"):
        if key in obs:
            return cached_time(obs[key], warnings)
    period = obs.get("effectivePeriod")
    if isinstance(period, dict):
        return cached_time(period.get("end") or period.get("start"), warnings)
    if "issued" in obs:
        warnings["time_from_issued"] += 1
        return cached_time(obs["issued"], warnings)
    return None

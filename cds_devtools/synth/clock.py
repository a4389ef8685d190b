"""Time for the synthetic export: integer epoch seconds inside, Dutch civil time outside.

Everything is integer seconds since the epoch (UTC) internally: cheap to add and compare, and
formatting is the only place where the Dutch civil offset (+01:00 / +02:00) appears. Times are
offsets from a fixed date, never the wall clock, so the cohort does not depend on "now".
"""

from __future__ import annotations

from bisect import bisect_right
from datetime import UTC, date, datetime, timedelta, timezone
from typing import Final

CET: Final = timezone(timedelta(hours=1))
_CEST: Final = timezone(timedelta(hours=2))
#: The export's transactionTime. All data lie before it, so the cohort never depends on "now".
BASE_TIME: Final = datetime(2026, 1, 1, tzinfo=CET)
END: Final = int(BASE_TIME.timestamp())
MINUTE: Final = 60
HOUR: Final = 3600
DAY: Final = 86400
YEAR: Final = 365.2425 * DAY
_EPOCH_ORDINAL: Final = date(1970, 1, 1).toordinal()


def _last_sunday_0100_utc(year: int, month: int) -> int:
    last = date(year, month, 31)
    last -= timedelta(days=(last.weekday() + 1) % 7)
    return int(datetime(last.year, last.month, last.day, 1, tzinfo=UTC).timestamp())


# EU summer time: last Sunday of March to last Sunday of October, switching at 01:00 UTC.
# Sorted [start, end, start, end, ...] so an odd bisect index means "summer".
_DST_BOUNDS: Final = [
    b
    for year in range(1990, 2040)
    for b in (_last_sunday_0100_utc(year, 3), _last_sunday_0100_utc(year, 10))
]


def _nl_offset(t: int) -> int:
    return 7200 if bisect_right(_DST_BOUNDS, t) & 1 else 3600


_HH_MM: Final = tuple(f"{m // 60:02d}:{m % 60:02d}" for m in range(1440))
_DAY_TEXT: dict[int, str] = {}


def _stamp(t: int, suffix: str) -> str:
    """ISO 8601 text of epoch seconds ``t`` (already shifted to local time); the hot path.

    ``datetime`` formatting costs several times more, and a million observations carry three
    timestamps each.
    """
    day, sec = divmod(t, DAY)
    text = _DAY_TEXT.get(day)
    if text is None:
        text = _DAY_TEXT[day] = date.fromordinal(day + _EPOCH_ORDINAL).isoformat() + "T"
    return f"{text}{_HH_MM[sec // 60]}:{sec % 60:02d}{suffix}"


def local_time(t: int) -> str:
    """Amsterdam civil time with its offset, the way Dutch EHRs write timestamps."""
    if bisect_right(_DST_BOUNDS, t) & 1:
        return _stamp(t + 7200, "+02:00")
    return _stamp(t + 3600, "+01:00")


def utc_time(t: int) -> str:
    return _stamp(t, "Z")


def local_ordinal(t: int) -> int:
    return (t + _nl_offset(t)) // DAY + _EPOCH_ORDINAL


def local_to_epoch(ordinal: int, seconds: float) -> int:
    """Epoch of a local wall-clock time; home measurements follow the clock, not UTC."""
    naive = (ordinal - _EPOCH_ORDINAL) * DAY + int(seconds)
    return naive - _nl_offset(naive - HOUR)


def date_text(t: int) -> str:
    return date.fromordinal(local_ordinal(t)).isoformat()

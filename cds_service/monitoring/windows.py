"""Time windows of a monitoring run: fixed steps, aligned to UTC so reruns recompute the same
windows (and so raise no alert twice)."""

from __future__ import annotations

import math
import re
from datetime import UTC, datetime, timedelta

__all__ = ["parse_duration", "recent_windows", "split_windows", "utc_aware"]


def utc_aware(value: datetime, what: str) -> datetime:
    """``value`` in UTC; a naive time is refused (its zone would be a guess)."""
    if value.tzinfo is None:
        raise ValueError(f"{what} must be timezone-aware")
    return value.astimezone(UTC)


def split_windows(
    start: datetime, end: datetime, step: timedelta | None
) -> list[tuple[datetime, datetime]]:
    """[start, end) in consecutive windows of ``step`` (the last may be shorter); one window
    when ``step`` is None."""
    if step is None:
        return [(start, end)]
    if step <= timedelta(0):
        raise ValueError("window must be positive")
    out = []
    ws = start
    while ws < end:
        out.append((ws, min(ws + step, end)))
        ws += step
    return out


def recent_windows(
    now: datetime, *, days: float, window_hours: float
) -> tuple[datetime, datetime, timedelta]:
    """[start, end) covering the last ``days`` of complete windows of ``window_hours``, aligned to
    multiples of the window since 1970-01-01 UTC (so 24 h windows are UTC calendar days and
    repeated runs recompute the same windows)."""
    step = timedelta(hours=window_hours)
    if step <= timedelta(0) or days <= 0:
        raise ValueError("days and window_hours must be positive")
    epoch = datetime(1970, 1, 1, tzinfo=UTC)
    end = epoch + step * ((utc_aware(now, "now") - epoch) // step)
    count = max(1, math.ceil(timedelta(days=days) / step))
    return end - step * count, end, step


def parse_duration(text: str) -> timedelta:
    """'90m', '6h', '1d', '2w' (or a bare number of hours) as a timedelta; for the CLI."""
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([mhdw]?)\s*", text)
    if not m:
        raise ValueError(f"not a duration: {text!r} (use e.g. 30m, 6h, 1d, 2w)")
    amount, unit = float(m.group(1)), m.group(2) or "h"
    delta = {"m": timedelta(minutes=amount), "h": timedelta(hours=amount)}.get(unit)
    if delta is None:
        delta = timedelta(days=amount * (7 if unit == "w" else 1))
    if delta <= timedelta(0):
        raise ValueError("duration must be positive")
    return delta

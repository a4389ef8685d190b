"""Alert burden by threshold: for a grid of candidate thresholds, how many cards would alert per
day and per clinician shift, and (where outcomes are in) the sensitivity, PPV and number needed
to alert (NNA) at each, over the audited cards of a period (live, or a shadow run before go-live).

The database does the counting: one query groups the period's risk cards by UTC hour with one
conditional sum per threshold, so a year of cards returns at most 24 x 366 rows. Python only
maps each hour to the hospital's local day and shift. The audit rows record no ward (the CDS
Hooks context carries none), so the burden is split by shift (hour of day, local time).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from cds_service.db.tables import Outcome
from cds_service.db.views import V_CARDS, risk_cards_between

__all__ = [
    "DEFAULT_GRID",
    "DEFAULT_SHIFTS",
    "AlertBurden",
    "ThresholdFigures",
    "alert_burden",
    "parse_shifts",
]

OUTCOMES: sa.Table = Outcome.__table__  # type: ignore[attr-defined]
DEFAULT_GRID: tuple[float, ...] = tuple(round(0.05 * i, 2) for i in range(1, 20))
# Shift name -> local start hour; a shift lasts until the next one starts (night wraps midnight).
DEFAULT_SHIFTS: dict[str, int] = {"day": 7, "evening": 15, "night": 23}


@dataclass(slots=True)
class ThresholdFigures:
    """Cards with risk >= threshold ("alerts") and what is known of their outcomes."""

    threshold: float
    alerts: int = 0
    by_shift: dict[str, int] = field(default_factory=dict)
    by_day: dict[str, int] = field(default_factory=dict)
    labelled_alerts: int = 0
    true_alerts: int = 0

    @property
    def peak_day(self) -> int:
        return max(self.by_day.values(), default=0)


@dataclass(slots=True)
class AlertBurden:
    model: str
    role: str
    start: datetime
    end: datetime
    timezone: str
    shifts: dict[str, int]
    days: int
    risk_cards: int = 0
    labelled: int = 0
    positives: int = 0
    versions: list[str] = field(default_factory=list)
    rows: list[ThresholdFigures] = field(default_factory=list)
    environment: str | None = None  # None: every environment


def parse_shifts(text: str) -> dict[str, int]:
    """``day=7,evening=15,night=23`` -> {"day": 7, ...}; hours 0-23, distinct."""
    shifts: dict[str, int] = {}
    for part in text.split(","):
        name, _, hour = part.partition("=")
        if not name.strip() or not hour.strip().isdigit() or not 0 <= int(hour) <= 23:
            raise ValueError(f"shift {part!r} is not name=hour (0-23)")
        shifts[name.strip()] = int(hour)
    if len(set(shifts.values())) != len(shifts):
        raise ValueError("two shifts start at the same hour")
    return shifts


def _shift_of(hour: int, shifts: Mapping[str, int]) -> str:
    ordered = sorted(shifts.items(), key=lambda kv: kv[1])
    current = ordered[-1][0]  # before the first start: the last shift of the previous day
    for name, start in ordered:
        if hour >= start:
            current = name
    return current


def _hour_bucket(conn: Connection, column: sa.ColumnElement[Any]) -> sa.ColumnElement[str]:
    """'YYYY-MM-DD HH' of a UTC timestamp, as text on both databases."""
    if conn.dialect.name == "postgresql":
        return sa.func.to_char(sa.func.timezone("UTC", column), "YYYY-MM-DD HH24")
    return sa.func.substr(sa.cast(column, sa.Text), 1, 13)


def _label_of_version(versions: Sequence[str], labels: Mapping[str, str]) -> sa.ColumnElement[Any]:
    """The outcome label that belongs to each card's model version (from its manifest)."""
    known = {v: labels[v] for v in versions if v in labels}
    if not known:
        return sa.null()
    return sa.case(known, value=V_CARDS.c.model_version, else_=sa.null())


def alert_burden(
    engine: Engine,
    model: str,
    start: datetime,
    end: datetime,
    *,
    labels: Mapping[str, str],
    grid: Sequence[float] = DEFAULT_GRID,
    role: str = "live",
    version: str | None = None,
    environment: str | None = None,
    timezone: str = "UTC",
    shifts: Mapping[str, int] = DEFAULT_SHIFTS,
) -> AlertBurden:
    """The burden grid of ``model``'s risk cards requested in [start, end). ``labels`` maps a
    model version to its outcome label name (cards of other versions count as unlabelled)."""
    zone = ZoneInfo(timezone)
    c = V_CARDS
    where = risk_cards_between(
        model, start, end, role=role, version=version, environment=environment
    )
    local_days = (end.astimezone(zone).date() - start.astimezone(zone).date()).days
    out = AlertBurden(
        model,
        role,
        start,
        end,
        timezone,
        dict(shifts),
        max(local_days, 1),
        rows=[ThresholdFigures(t) for t in grid],
        environment=environment,
    )
    with engine.connect() as conn:
        out.versions = sorted(
            conn.execute(sa.select(c.c.model_version).where(*where).distinct()).scalars()
        )
        o = OUTCOMES
        label = o.c.label
        labelled = label.is_not(None)

        def count(cond: sa.ColumnElement[bool]) -> sa.ColumnElement[Any]:
            return sa.func.coalesce(sa.func.sum(sa.case((cond, 1), else_=0)), 0)

        columns: list[sa.ColumnElement[Any]] = [
            sa.func.count().label("risk_cards"),
            count(labelled).label("labelled"),
            count(label == 1).label("positives"),
        ]
        for i, t in enumerate(grid):
            flagged = c.c.risk >= t
            columns += [
                count(flagged).label(f"f{i}"),
                count(sa.and_(flagged, labelled)).label(f"l{i}"),
                count(sa.and_(flagged, label == 1)).label(f"p{i}"),
            ]
        hour = _hour_bucket(conn, c.c.requested_at).label("hour")
        joined = c.outerjoin(
            o,
            sa.and_(
                o.c.card_uuid == c.c.card_uuid,
                o.c.label_name == _label_of_version(out.versions, labels),
            ),
        )
        query = sa.select(hour, *columns).select_from(joined).where(*where).group_by(hour)
        by_day: dict[int, defaultdict[str, int]] = {i: defaultdict(int) for i in range(len(grid))}
        for row in conn.execute(query):
            moment = datetime.strptime(row.hour, "%Y-%m-%d %H").replace(tzinfo=UTC)
            local = moment.astimezone(zone)
            day, shift = local.date().isoformat(), _shift_of(local.hour, shifts)
            out.risk_cards += row.risk_cards
            out.labelled += row.labelled
            out.positives += row.positives
            for i, figures in enumerate(out.rows):
                n = int(row._mapping[f"f{i}"])
                figures.alerts += n
                figures.by_shift[shift] = figures.by_shift.get(shift, 0) + n
                by_day[i][day] += n
                figures.labelled_alerts += int(row._mapping[f"l{i}"])
                figures.true_alerts += int(row._mapping[f"p{i}"])
        for i, figures in enumerate(out.rows):
            figures.by_day = dict(by_day[i])
            for name in shifts:
                figures.by_shift.setdefault(name, 0)
    return out

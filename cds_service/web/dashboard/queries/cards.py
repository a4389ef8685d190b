"""Card-level aggregates from v_cards, v_daily_volume, v_feedback and v_outcomes: volume, latency,
the risk histogram, missing inputs, feedback and the shadow comparison. All GROUP BY or LIMIT."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from cds_service.db.views import (
    V_CARDS,
    V_DAILY_VOLUME,
    V_FEEDBACK,
    V_OUTCOMES,
    shadow_live_pairing,
)
from cds_service.serving.hook_defs import HookDefinition
from cds_service.web.dashboard.queries.filters import (
    MAX_RANGE_DAYS,
    Filters,
    card_filters,
    count_if,
    day_expression,
    model_filters,
    version_key,
)

HISTOGRAM_BINS = 20
LIMIT_REASONS = 12
LIMIT_SCATTER = 400


@dataclass(slots=True)
class DayVolume:
    day: date
    cards: int = 0
    risk_cards: int = 0
    no_risk_cards: int = 0
    alerting_cards: int = 0
    mean_risk: float | None = None

    @property
    def other_risk_cards(self) -> int:
        return max(0, self.risk_cards - self.alerting_cards)


def volume_by_day(conn: Connection, f: Filters) -> list[DayVolume]:
    v = V_DAILY_VOLUME
    conds = [
        v.c.service_id == f.service_id,
        v.c.environment == f.environment,
        v.c.role == f.role,
        v.c.day >= f.start.isoformat(),
        v.c.day <= f.end.isoformat(),
        *model_filters(v, f),
    ]
    rows = conn.execute(
        sa.select(
            v.c.day,
            sa.func.sum(v.c.cards),
            sa.func.sum(v.c.risk_cards),
            sa.func.sum(v.c.no_risk_cards),
            sa.func.sum(v.c.alerting_cards),
            sa.func.sum(v.c.mean_risk * v.c.risk_cards),
        )
        .where(*conds)
        .group_by(v.c.day)
        .order_by(v.c.day)
        .limit(MAX_RANGE_DAYS + 1)
    )
    by_day = {
        r[0]: DayVolume(
            day=date.fromisoformat(r[0]),
            cards=int(r[1] or 0),
            risk_cards=int(r[2] or 0),
            no_risk_cards=int(r[3] or 0),
            alerting_cards=int(r[4] or 0),
            mean_risk=float(r[5]) / int(r[2]) if r[5] is not None and r[2] else None,
        )
        for r in rows
    }
    out = []
    for day in f.days:
        item = by_day.get(day.isoformat(), DayVolume(day))
        out.append(item)
    return out


def latency_mean(conn: Connection, f: Filters) -> float | None:
    c = V_CARDS
    value = conn.execute(sa.select(sa.func.avg(c.c.latency_ms)).where(*card_filters(c, f)))
    result = value.scalar()
    return float(result) if result is not None else None


@dataclass(slots=True)
class Histogram:
    edges: list[float]
    counts: list[int]
    bands: list[tuple[str, float, str]]  # (name, upper bound, indicator)
    total: int = 0
    band_counts: dict[str, int] = field(default_factory=dict)


def risk_histogram(
    conn: Connection, f: Filters, hook_def: HookDefinition | None, bins: int = HISTOGRAM_BINS
) -> Histogram:
    c = V_CARDS
    edges = [round(i / bins, 6) for i in range(bins + 1)]
    # A CASE ladder rather than floor()/CAST: CAST(float AS INTEGER) rounds on PostgreSQL and
    # truncates on SQLite; comparisons mean the same everywhere.
    which = sa.case(*((c.c.risk < edges[i + 1], i) for i in range(bins - 1)), else_=bins - 1)
    rows = conn.execute(
        sa.select(which.label("bin"), sa.func.count())
        .where(*card_filters(c, f), c.c.card_kind == "risk", c.c.risk.is_not(None))
        .group_by(which)
    )
    counts = [0] * bins
    for b, n in rows:
        counts[int(b)] = int(n)
    bands = [(b.name, b.below, b.indicator) for b in hook_def.bands] if hook_def else []
    band_counts = {
        str(name): int(n)
        for name, n in conn.execute(
            sa.select(c.c.risk_band, sa.func.count())
            .where(*card_filters(c, f), c.c.card_kind == "risk")
            .group_by(c.c.risk_band)
            .limit(50)
        )
        if name is not None
    }
    return Histogram(edges, counts, bands, sum(counts), band_counts)


def _like_token(name: str) -> str:
    escaped = name.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f'%"{escaped}"%'


@dataclass(slots=True)
class MissingRate:
    feature: str
    label: str
    missing: int
    cards: int
    reference_rate: float | None
    required: bool

    @property
    def rate(self) -> float | None:
        return self.missing / self.cards if self.cards else None


def missing_rates(
    conn: Connection,
    f: Filters,
    features: Sequence[tuple[str, str, bool]],
    reference: dict[str, float],
) -> list[MissingRate]:
    """Share of the selection's cards in which each feature was missing, counted in SQL from
    the JSON list ``missing_features`` (one LIKE per feature name, in one pass)."""
    c = V_CARDS
    if not features:
        return []
    columns = [
        count_if(c.c.missing_features.like(_like_token(name), escape="\\"))
        for name, _label, _req in features
    ]
    row = conn.execute(sa.select(sa.func.count(), *columns).where(*card_filters(c, f))).one()
    total = int(row[0] or 0)
    return [
        MissingRate(name, label, int(row[i + 1] or 0), total, reference.get(name), req)
        for i, (name, label, req) in enumerate(features)
    ]


@dataclass(slots=True)
class Feedback:
    total: int = 0
    accepted: int = 0
    overridden: int = 0
    with_suggestion: int = 0  # accepted with a suggestion of the card (e.g. risk recorded)
    reasons: list[tuple[str, int]] = field(default_factory=list)
    by_band: dict[str, tuple[int, int]] = field(default_factory=dict)  # band -> (acc, over)
    by_day: dict[date, tuple[int, int]] = field(default_factory=dict)

    @property
    def acceptance_rate(self) -> float | None:
        return self.accepted / self.total if self.total else None

    @property
    def override_rate(self) -> float | None:
        return self.overridden / self.total if self.total else None


def feedback(conn: Connection, f: Filters) -> Feedback:
    v = V_FEEDBACK
    conds = [*card_filters(v, f), v.c.is_current]  # one answer per card and user counts
    out = Feedback()
    accepted, overridden = v.c.outcome == "accepted", v.c.outcome == "overridden"
    day = day_expression(conn, v.c.requested_at)
    for band, n_acc, n_over, n in conn.execute(
        sa.select(v.c.risk_band, count_if(accepted), count_if(overridden), sa.func.count())
        .where(*conds)
        .group_by(v.c.risk_band)
        .limit(50)
    ):
        out.total += int(n)
        out.accepted += int(n_acc)
        out.overridden += int(n_over)
        out.by_band[band or "(no risk)"] = (int(n_acc), int(n_over))
    for d, n_acc, n_over in conn.execute(
        sa.select(day, count_if(accepted), count_if(overridden))
        .where(*conds)
        .group_by(day)
        .order_by(day)
        .limit(MAX_RANGE_DAYS + 1)
    ):
        out.by_day[date.fromisoformat(d)] = (int(n_acc), int(n_over))
    took = accepted & v.c.accepted_suggestions.is_not(None)
    took = took & v.c.accepted_suggestions.not_in(["[]", ""])
    out.with_suggestion = int(conn.execute(sa.select(count_if(took)).where(*conds)).scalar() or 0)
    reason = sa.func.coalesce(v.c.override_reason_display, v.c.override_reason_code)
    out.reasons = [
        (str(r) if r is not None else "(no reason given)", int(n))
        for r, n in conn.execute(
            sa.select(reason, sa.func.count())
            .where(*conds, overridden)
            .group_by(reason)
            .order_by(sa.func.count().desc())
            .limit(LIMIT_REASONS)
        )
    ]
    return out


def outcome_counts(conn: Connection, f: Filters) -> tuple[int, int]:
    """(cards with a known outcome, of which positive) in the selection."""
    o = V_OUTCOMES
    n, positives = conn.execute(
        sa.select(sa.func.count(), count_if(o.c.label == 1)).where(*card_filters(o, f))
    ).one()
    return int(n or 0), int(positives or 0)


@dataclass(slots=True)
class ShadowVersion:
    version: str
    pairs: int
    same_band: int
    both_risk: int
    mean_abs_diff: float | None

    @property
    def agreement(self) -> float | None:
        return self.same_band / self.pairs if self.pairs else None


@dataclass(slots=True)
class Shadow:
    versions: list[ShadowVersion] = field(default_factory=list)
    bands: dict[tuple[str, str], int] = field(default_factory=dict)  # (live, shadow) -> n
    sample: list[tuple[float, float]] = field(default_factory=list)  # (live, shadow) risk
    sample_version: str | None = None


def shadow_comparison(conn: Connection, f: Filters) -> Shadow:
    """Shadow predictions paired with the live card of the same hook call (as monitoring pairs
    them): agreement on the risk band, mean absolute risk difference, the band cross-table and a
    bounded sample of (live, shadow) risk pairs for a scatter plot. ``model_version`` selects the
    shadow version when it is one."""
    s, live = V_CARDS.alias("s"), V_CARDS.alias("l")
    join = s.join(live, shadow_live_pairing(s, live))
    conds = [
        s.c.role == "shadow",
        s.c.service_id == f.service_id,
        *([s.c.model_name == f.model_name] if f.model_name else []),
        s.c.environment == f.environment,
        s.c.requested_at >= f.start_at,
        s.c.requested_at < f.end_at,
    ]
    out = Shadow()
    same = sa.func.coalesce(s.c.risk_band, "") == sa.func.coalesce(live.c.risk_band, "")
    both = sa.and_(s.c.risk.is_not(None), live.c.risk.is_not(None))
    rows = conn.execute(
        sa.select(
            s.c.model_version,
            sa.func.count(),
            count_if(same),
            count_if(both),
            sa.func.avg(sa.case((both, sa.func.abs(s.c.risk - live.c.risk)), else_=None)),
        )
        .select_from(join)
        .where(*conds)
        .group_by(s.c.model_version)
        .limit(20)
    )
    for version, pairs, agree, n_both, diff in rows:
        out.versions.append(
            ShadowVersion(
                version, int(pairs), int(agree), int(n_both), None if diff is None else float(diff)
            )
        )
    if not out.versions:
        return out
    out.versions.sort(key=lambda v: version_key(v.version))
    chosen = f.model_version if f.model_version in {v.version for v in out.versions} else None
    out.sample_version = chosen or out.versions[-1].version
    conds.append(s.c.model_version == out.sample_version)
    for lb, sb, n in conn.execute(
        sa.select(live.c.risk_band, s.c.risk_band, sa.func.count())
        .select_from(join)
        .where(*conds)
        .group_by(live.c.risk_band, s.c.risk_band)
        .limit(400)
    ):
        out.bands[(lb or "(none)", sb or "(none)")] = int(n)
    out.sample = [
        (float(a), float(b))
        for a, b in conn.execute(
            sa.select(live.c.risk, s.c.risk)
            .select_from(join)
            .where(*conds, both)
            .order_by(s.c.requested_at.desc())
            .limit(LIMIT_SCATTER)
        )
    ]
    return out

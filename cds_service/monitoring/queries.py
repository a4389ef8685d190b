"""SQL for monitoring (SQLAlchemy Core, the same statements on SQLite and PostgreSQL).

Counts are aggregated in the database (GROUP BY); only the per-row work that SQL cannot do on
both databases alike (feature values inside the JSON text, bin counts, samples) streams to Python,
one window at a time, selecting only the columns it needs.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from cds_service.db.tables import Alert, CardAudit, CardFeedback, Outcome
from cds_service.db.views import shadow_live_pairing

CARDS: sa.Table = CardAudit.__table__  # type: ignore[attr-defined]
FEEDBACK: sa.Table = CardFeedback.__table__  # type: ignore[attr-defined]
OUTCOMES: sa.Table = Outcome.__table__  # type: ignore[attr-defined]
ALERTS: sa.Table = Alert.__table__  # type: ignore[attr-defined]

ALERTING_INDICATORS = ("warning", "critical")


def group_columns(t: sa.FromClause) -> list[sa.ColumnElement[Any]]:
    return [t.c.service_id, t.c.model_name, t.c.model_version, t.c.environment, t.c.role]


def _in_window(t: sa.FromClause, start: datetime, end: datetime) -> sa.ColumnElement[bool]:
    return sa.and_(t.c.requested_at >= start, t.c.requested_at < end)


def _label_for_model(t: sa.FromClause, labels: Mapping[str, str]) -> sa.ColumnElement[Any]:
    """The outcome label name that belongs to each card's model (from its manifest)."""
    if not labels:
        return sa.null()
    return sa.case(dict(labels), value=t.c.model_name, else_=sa.null())


def card_counts(start: datetime, end: datetime) -> sa.Select[Any]:
    """Per group: cards, no-risk cards, risk cards, and risk cards with an alerting indicator."""
    c = CARDS
    is_risk = c.c.card_kind == "risk"

    def count_if(cond: sa.ColumnElement[bool]) -> sa.ColumnElement[Any]:
        return sa.func.coalesce(sa.func.sum(sa.case((cond, 1), else_=0)), 0)

    return (
        sa.select(
            *group_columns(c),
            sa.func.count().label("volume"),
            count_if(c.c.card_kind == "no-risk").label("no_risk"),
            count_if(is_risk).label("risk_cards"),
            count_if(sa.and_(is_risk, c.c.indicator.in_(ALERTING_INDICATORS))).label("alerting"),
        )
        .where(_in_window(c, start, end))
        .group_by(*group_columns(c))
    )


def current_answer(f: sa.Table) -> sa.ColumnElement[bool]:
    """v_feedback's ``is_current`` on the table: no later answer by the same user (unknown users
    grouped per card) on the same card (docs/quality-views.md, the feedback rules)."""
    later = f.alias("later")
    same_user = sa.func.coalesce(later.c.user_pseudonym, "") == sa.func.coalesce(
        f.c.user_pseudonym, ""
    )
    newer = sa.or_(
        later.c.outcome_timestamp > f.c.outcome_timestamp,
        sa.and_(later.c.outcome_timestamp == f.c.outcome_timestamp, later.c.id > f.c.id),
    )
    return ~sa.exists().where(later.c.card_uuid == f.c.card_uuid, same_user, newer)


def feedback_counts(start: datetime, end: datetime) -> sa.Select[Any]:
    """Current answers (one per card and user) on the window's cards, per group, outcome and
    override reason."""
    c, f = CARDS, FEEDBACK
    return (
        sa.select(
            *group_columns(c),
            f.c.outcome,
            f.c.override_reason_code,
            f.c.override_reason_display,
            sa.func.count().label("n"),
        )
        .select_from(f.join(c, c.c.card_uuid == f.c.card_uuid))
        .where(_in_window(c, start, end), current_answer(f))
        .group_by(
            *group_columns(c), f.c.outcome, f.c.override_reason_code, f.c.override_reason_display
        )
    )


def shadow_pairs(start: datetime, end: datetime) -> sa.Select[Any]:
    """Per shadow group: shadow rows paired with the live row of the same hook_instance (same
    service and environment), how many have the same risk band (both without a band counts as
    the same), and the summed absolute risk difference where both have a risk."""
    s = CARDS.alias("s")
    live = CARDS.alias("l")
    same_band = sa.func.coalesce(s.c.risk_band, "") == sa.func.coalesce(live.c.risk_band, "")
    both = sa.and_(s.c.risk.is_not(None), live.c.risk.is_not(None))
    return (
        sa.select(
            *group_columns(s),
            sa.func.count().label("pairs"),
            sa.func.coalesce(sa.func.sum(sa.case((same_band, 1), else_=0)), 0).label("agree"),
            sa.func.coalesce(sa.func.sum(sa.case((both, 1), else_=0)), 0).label("both_risk"),
            sa.func.sum(sa.case((both, sa.func.abs(s.c.risk - live.c.risk)), else_=None)).label(
                "abs_diff"
            ),
        )
        .select_from(
            s.join(
                live,
                shadow_live_pairing(s, live),
            )
        )
        .where(s.c.role == "shadow", _in_window(s, start, end))
        .group_by(*group_columns(s))
    )


def card_rows(
    start: datetime,
    end: datetime,
    labels: Mapping[str, str],
    groups: Sequence[Sequence[str]],
) -> sa.Select[Any]:
    """Every card of the window with only what monitoring needs: the index of its group in
    ``groups`` (-1 for none), card_uuid, is-a-risk-card and has-an-alerting-indicator (0/1),
    risk, outcome label and the features JSON.

    The label is the outcome row of this card with the label name of the model's manifest
    (``cds-service outcomes`` derives one for every risk card, live or shadow)."""
    c, o = CARDS, OUTCOMES
    # A correlated lookup by primary key rather than a join: its cost follows the window, not the
    # size of the outcomes table (PostgreSQL would hash the whole table for every window).
    label = (
        sa.select(o.c.label)
        .where(o.c.card_uuid == c.c.card_uuid, o.c.label_name == _label_for_model(c, labels))
        .scalar_subquery()
    )
    cols = group_columns(c)
    group_id = sa.case(
        *[
            (sa.and_(*[col == value for col, value in zip(cols, g, strict=True)]), i)
            for i, g in enumerate(groups)
        ],
        else_=-1,
    )
    is_risk = c.c.card_kind == "risk"
    alerting = sa.and_(is_risk, c.c.indicator.in_(ALERTING_INDICATORS))
    return sa.select(
        group_id.label("group_id"),
        c.c.card_uuid,
        sa.case((is_risk, 1), else_=0).label("is_risk"),
        sa.case((alerting, 1), else_=0).label("alerting"),
        c.c.risk,
        label.label("label"),
        c.c.features,
    ).where(_in_window(c, start, end))


def alerts_between(start: datetime, end: datetime) -> sa.Select[Any]:
    a = ALERTS
    return sa.select(
        a.c.service_id,
        a.c.model_name,
        a.c.model_version,
        a.c.environment,
        a.c.window_start,
        a.c.window_end,
        a.c.metric,
        a.c.feature,
        a.c.subgroup,
        a.c.severity,
    ).where(a.c.window_start >= start, a.c.window_end <= end)

"""The SQL behind the PMS report: each query reads one documented view (docs/quality-views.md)
for one model and period, so the report shows nothing the quality team could not query
themselves. Estimated (label-free) figures are the ``estimated_*`` rows of monitoring_results."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from cds_service.db.deployments import RETENTION_RECORD, TERMINOLOGY_RECORD
from cds_service.db.tables import MonitoringResult
from cds_service.db.views import (
    V_ALERTS,
    V_CARDS,
    V_DEPLOYMENTS,
    V_DRIFT,
    V_FEEDBACK,
    V_PERFORMANCE,
    V_SUBGROUPS,
)

__all__ = [
    "ESTIMATED_PREFIX",
    "alerts",
    "deployments",
    "drift",
    "estimated",
    "feedback_outcomes",
    "override_reasons",
    "performance",
    "results",
    "subgroups",
    "use",
]

RESULTS: sa.Table = MonitoringResult.__table__  # type: ignore[attr-defined]
ESTIMATED_PREFIX = "estimated_"
Row = dict[str, Any]
PERFORMANCE = (
    "outcomes",
    "auroc",
    "auprc",
    "brier",
    "calibration_intercept",
    "calibration_slope",
    "ece",
    "alert_rate",
    "override_rate",
    "acceptance_rate",
)


def _rows(conn: Connection, query: sa.Select[Any]) -> list[Row]:
    return [dict(r._mapping) for r in conn.execute(query)]


def use(conn: Connection, model: str, start: datetime, end: datetime) -> list[Row]:
    """Cards per version, environment, role and kind, with the distinct patients among them."""
    c = V_CARDS.c
    return _rows(
        conn,
        sa.select(
            c.model_version,
            c.environment,
            c.role,
            c.card_kind,
            sa.func.count().label("cards"),
            sa.func.count(sa.distinct(c.patient_pseudonym)).label("patients"),
        )
        .where(c.model_name == model, c.requested_at >= start, c.requested_at < end)
        .group_by(c.model_version, c.environment, c.role, c.card_kind)
        .order_by(c.model_version, c.environment, c.role, c.card_kind),
    )


def results(
    conn: Connection,
    view: sa.TableClause,
    model: str,
    start: datetime,
    end: datetime,
    metrics: tuple[str, ...],
) -> list[Row]:
    """Monitoring figures of windows inside the period, from one of the result views."""
    v = view.c
    return _rows(
        conn,
        sa.select(
            v.model_version,
            v.environment,
            v.role,
            v.window_start,
            v.window_end,
            v.metric,
            v.feature,
            v.subgroup,
            v.value,
            v.n,
        )
        .where(
            v.model_name == model,
            v.window_start >= start,
            v.window_end <= end,
            v.metric.in_(metrics),
        )
        .order_by(v.window_start, v.model_version, v.environment, v.role, v.subgroup, v.feature),
    )


def performance(conn: Connection, model: str, start: datetime, end: datetime) -> list[Row]:
    return results(conn, V_PERFORMANCE, model, start, end, PERFORMANCE)


def drift(conn: Connection, model: str, start: datetime, end: datetime) -> list[Row]:
    metrics = ("psi", "prediction_psi", "missing_rate", "missing_rate_reference")
    return results(conn, V_DRIFT, model, start, end, metrics)


def subgroups(conn: Connection, model: str, start: datetime, end: datetime) -> list[Row]:
    return results(conn, V_SUBGROUPS, model, start, end, ("volume", "alert_rate", "auroc"))


def estimated(conn: Connection, model: str, start: datetime, end: datetime) -> list[Row]:
    r = RESULTS.c
    return _rows(
        conn,
        sa.select(
            r.model_version,
            r.environment,
            r.role,
            r.window_start,
            r.window_end,
            r.metric,
            r.value,
            r.n,
        )
        .where(
            r.model_name == model,
            r.window_start >= start,
            r.window_end <= end,
            r.subgroup == "",
            r.metric.like(f"{ESTIMATED_PREFIX}%"),
        )
        .order_by(r.window_start, r.model_version, r.environment, r.role, r.metric),
    )


def alerts(conn: Connection, model: str, start: datetime, end: datetime) -> list[Row]:
    a = V_ALERTS.c
    return _rows(
        conn,
        sa.select(
            a.created_at,
            a.model_version,
            a.environment,
            a.window_start,
            a.window_end,
            a.metric,
            a.feature,
            a.subgroup,
            a.value,
            a.threshold,
            a.severity,
        )
        .where(a.model_name == model, a.window_start >= start, a.window_end <= end)
        .order_by(a.created_at, a.alert_id),
    )


def _current_feedback(model: str, start: datetime, end: datetime) -> list[Any]:
    f = V_FEEDBACK.c
    return [f.model_name == model, f.requested_at >= start, f.requested_at < end, f.is_current]


def feedback_outcomes(conn: Connection, model: str, start: datetime, end: datetime) -> list[Row]:
    f = V_FEEDBACK.c
    return _rows(
        conn,
        sa.select(f.outcome, sa.func.count().label("n"))
        .where(*_current_feedback(model, start, end))
        .group_by(f.outcome)
        .order_by(f.outcome),
    )


def override_reasons(conn: Connection, model: str, start: datetime, end: datetime) -> list[Row]:
    f = V_FEEDBACK.c
    return _rows(
        conn,
        sa.select(f.override_reason_code, f.override_reason_display, sa.func.count().label("n"))
        .where(*_current_feedback(model, start, end), f.outcome == "overridden")
        .group_by(f.override_reason_code, f.override_reason_display)
        .order_by(sa.func.count().desc(), f.override_reason_code),
    )


def deployments(conn: Connection, model: str, end: datetime) -> list[Row]:
    """The model's whole trail up to the period's end, with the site-wide terminology and
    retention records (they change what every model sees or keeps)."""
    d = V_DEPLOYMENTS.c
    names = (model, TERMINOLOGY_RECORD, RETENTION_RECORD)
    return _rows(
        conn,
        sa.select(
            d.seq,
            d.created_at,
            d.model_name,
            d.model_version,
            d.environment,
            d.role,
            d.action,
            d.decided_by,
            d.reason,
            d.override,
            d.override_reason,
            d.evidence,
        )
        .where(d.model_name.in_(names), d.created_at < end)
        .order_by(d.seq),
    )

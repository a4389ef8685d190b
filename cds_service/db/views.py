"""The quality team's views: name -> columns, declared once.

The views are a contract (docs/quality-views.md, docs/monitoring.md): columns may be added, never
renamed or dropped. The released migrations that create them stay as they were (a migration is
never edited once shipped); tests/db/test_views.py checks that the migrated views have exactly
these columns, in this order, on SQLite and PostgreSQL, and that the docs list them. The dashboard
queries the views through these declarations, so a column it uses is a column the views have.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa

__all__ = [
    "VIEWS",
    "V_ALERTS",
    "V_CALIBRATION",
    "V_CARDS",
    "V_DAILY_VOLUME",
    "V_DEPLOYMENTS",
    "V_DRIFT",
    "V_FEEDBACK",
    "V_OUTCOMES",
    "V_PERFORMANCE",
    "V_SUBGROUPS",
    "risk_cards_between",
    "shadow_live_pairing",
]

_TS = sa.DateTime(timezone=True)
_STR = sa.String()
_TEXT = sa.Text()
_FLOAT = sa.Float()
_INT = sa.Integer()


def _view(name: str, *columns: tuple[str, sa.types.TypeEngine[Any]]) -> sa.TableClause:
    return sa.table(name, *(sa.column(c, t) for c, t in columns))


V_CARDS = _view(
    "v_cards",
    ("card_uuid", _STR),
    ("hook_instance", _STR),
    ("service_id", _STR),
    ("hook", _STR),
    ("model_name", _STR),
    ("model_version", _STR),
    ("artifact_sha256", _STR),
    ("environment", _STR),
    ("role", _STR),
    ("shown", sa.Boolean()),
    ("card_kind", _STR),
    ("patient_pseudonym", _STR),
    ("encounter_pseudonym", _STR),
    ("requested_at", _TS),
    ("risk", _FLOAT),
    ("risk_band", _STR),
    ("indicator", _STR),
    ("latency_ms", _FLOAT),
    ("features", _TEXT),
    ("missing_features", _TEXT),
    ("summary", _TEXT),
    ("terminology_sha256", _STR),
)
V_FEEDBACK = _view(
    "v_feedback",
    ("feedback_id", _INT),
    ("card_uuid", _STR),
    ("service_id", _STR),
    ("outcome", _STR),
    ("override_reason_system", _STR),
    ("override_reason_code", _STR),
    ("override_reason_display", _STR),
    ("user_comment", _TEXT),
    ("accepted_suggestions", _TEXT),
    ("outcome_timestamp", _TS),
    ("received_at", _TS),
    ("channel", _STR),
    ("model_name", _STR),
    ("model_version", _STR),
    ("environment", _STR),
    ("role", _STR),
    ("risk", _FLOAT),
    ("risk_band", _STR),
    ("indicator", _STR),
    ("patient_pseudonym", _STR),
    ("requested_at", _TS),
    ("user_pseudonym", _STR),
    ("is_current", sa.Boolean()),
)
V_DEPLOYMENTS = _view(
    "v_deployments",
    ("seq", _INT),
    ("model_name", _STR),
    ("model_version", _STR),
    ("artifact_sha256", _STR),
    ("environment", _STR),
    ("role", _STR),
    ("action", _STR),
    ("decided_by", _STR),
    ("reason", _TEXT),
    ("override", sa.Boolean()),
    ("override_reason", _TEXT),
    ("evidence", _TEXT),
    ("created_at", _TS),
    ("prev_hash", _STR),
    ("record_hash", _STR),
)
V_OUTCOMES = _view(
    "v_outcomes",
    ("card_uuid", _STR),
    ("label_name", _STR),
    ("label", _INT),
    ("source", _STR),
    ("derived_at", _TS),
    ("patient_pseudonym", _STR),
    ("service_id", _STR),
    ("model_name", _STR),
    ("model_version", _STR),
    ("environment", _STR),
    ("role", _STR),
    ("risk", _FLOAT),
    ("risk_band", _STR),
    ("requested_at", _TS),
)
V_DAILY_VOLUME = _view(
    "v_daily_volume",
    ("day", _STR),
    ("service_id", _STR),
    ("model_name", _STR),
    ("model_version", _STR),
    ("environment", _STR),
    ("role", _STR),
    ("cards", _INT),
    ("risk_cards", _INT),
    ("no_risk_cards", _INT),
    ("alerting_cards", _INT),
    ("mean_risk", _FLOAT),
    ("mean_latency_ms", _FLOAT),
)
# v_drift, v_performance, v_calibration and v_subgroups: rows of monitoring_results by metric.
_RESULT_COLUMNS: tuple[tuple[str, sa.types.TypeEngine[Any]], ...] = (
    ("run_id", _STR),
    ("service_id", _STR),
    ("model_name", _STR),
    ("model_version", _STR),
    ("environment", _STR),
    ("role", _STR),
    ("window_start", _TS),
    ("window_end", _TS),
    ("metric", _STR),
    ("feature", _STR),
    ("subgroup", _STR),
    ("value", _FLOAT),
    ("n", _INT),
    ("details", _TEXT),
)
V_DRIFT = _view("v_drift", *_RESULT_COLUMNS)
V_PERFORMANCE = _view("v_performance", *_RESULT_COLUMNS)
V_CALIBRATION = _view("v_calibration", *_RESULT_COLUMNS)
V_SUBGROUPS = _view("v_subgroups", *_RESULT_COLUMNS)
V_ALERTS = _view(
    "v_alerts",
    ("alert_id", _INT),
    ("run_id", _STR),
    ("created_at", _TS),
    ("service_id", _STR),
    ("model_name", _STR),
    ("model_version", _STR),
    ("environment", _STR),
    ("window_start", _TS),
    ("window_end", _TS),
    ("metric", _STR),
    ("feature", _STR),
    ("subgroup", _STR),
    ("value", _FLOAT),
    ("threshold", _FLOAT),
    ("severity", _STR),
    ("message", _TEXT),
)

VIEWS: dict[str, sa.TableClause] = {
    v.name: v
    for v in (
        V_CARDS,
        V_FEEDBACK,
        V_DEPLOYMENTS,
        V_OUTCOMES,
        V_DAILY_VOLUME,
        V_DRIFT,
        V_PERFORMANCE,
        V_CALIBRATION,
        V_SUBGROUPS,
        V_ALERTS,
    )
}


def shadow_live_pairing(shadow: sa.FromClause, live: sa.FromClause) -> sa.ColumnElement[bool]:
    """A shadow row pairs with the live card of the same hook call: the one rule that monitoring
    (over ``card_audit``) and the dashboard (over ``v_cards``) both use."""
    return sa.and_(
        live.c.hook_instance == shadow.c.hook_instance,
        live.c.service_id == shadow.c.service_id,
        live.c.environment == shadow.c.environment,
        live.c.role == "live",
    )


def risk_cards_between(
    model: str,
    start: datetime,
    end: datetime,
    *,
    role: str,
    version: str | None = None,
    environment: str | None = None,
) -> list[sa.ColumnElement[bool]]:
    """The cards of ``model`` that showed a risk, requested in [start, end): the population of
    every per-threshold figure (alert burden, fairness), so they count the same cards."""
    c = V_CARDS.c
    where = [
        c.model_name == model,
        c.role == role,
        c.card_kind == "risk",
        c.risk.is_not(None),
        c.requested_at >= start,
        c.requested_at < end,
    ]
    if version is not None:
        where.append(c.model_version == version)
    if environment is not None:
        where.append(c.environment == environment)
    return where

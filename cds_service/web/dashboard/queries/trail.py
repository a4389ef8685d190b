"""The alerts and the deployment trail shown on the page (bounded lists)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from cds_service.db.views import (
    V_ALERTS,
    V_DEPLOYMENTS,
)
from cds_service.web.dashboard.queries.filters import Filters, model_filters
from cds_service.web.dashboard.queries.monitoring import WindowKey
from fhir_mappers.timeutil import as_utc

LIMIT_ALERTS = 100
LIMIT_DEPLOYMENTS = 50


@dataclass(frozen=True, slots=True)
class AlertItem:
    created_at: datetime
    window: WindowKey
    model_version: str
    metric: str
    feature: str
    subgroup: str
    value: float | None
    threshold: float | None
    severity: str
    message: str


def alerts(conn: Connection, f: Filters) -> list[AlertItem]:
    a = V_ALERTS
    conds = [
        a.c.service_id == f.service_id,
        a.c.environment == f.environment,
        a.c.window_end > f.start_at,
        a.c.window_start < f.end_at,
        *model_filters(a, f),
    ]
    rows = conn.execute(
        sa.select(
            a.c.created_at,
            a.c.window_start,
            a.c.window_end,
            a.c.model_version,
            a.c.metric,
            a.c.feature,
            a.c.subgroup,
            a.c.value,
            a.c.threshold,
            a.c.severity,
            a.c.message,
        )
        .where(*conds)
        .order_by(a.c.window_start.desc(), a.c.alert_id.desc())
        .limit(LIMIT_ALERTS)
    )
    return [
        AlertItem(
            as_utc(r[0]),
            WindowKey(as_utc(r[1]), as_utc(r[2])),
            r[3],
            r[4],
            r[5] or "",
            r[6] or "",
            *r[7:],
        )
        for r in rows
    ]


@dataclass(frozen=True, slots=True)
class DeploymentItem:
    seq: int
    created_at: datetime
    model_version: str
    role: str
    action: str
    decided_by: str
    reason: str
    override: bool
    override_reason: str | None
    artifact_sha256: str
    record_hash: str
    gate: str  # short summary of the validation evidence


def _gate_summary(evidence: str | None) -> str:
    try:
        data = json.loads(evidence or "{}")
    except ValueError:
        return ""
    if not isinstance(data, dict):
        return ""
    parts = []
    failures = data.get("failures")
    metrics = data.get("metrics")
    if isinstance(metrics, dict) and isinstance(metrics.get("auroc"), int | float):
        rows = data.get("rows")
        parts.append(
            f"AUROC {metrics['auroc']:.3f}" + (f" on {rows} held-out rows" if rows else "")
        )
    if isinstance(failures, list):
        parts.insert(0, "gate passed" if not failures else f"gate failed ({len(failures)})")
    return ", ".join(parts)


def deployments(conn: Connection, model_name: str | None, environment: str) -> list[DeploymentItem]:
    if model_name is None:
        return []
    d = V_DEPLOYMENTS
    rows = conn.execute(
        sa.select(
            d.c.seq,
            d.c.created_at,
            d.c.model_version,
            d.c.role,
            d.c.action,
            d.c.decided_by,
            d.c.reason,
            d.c.override,
            d.c.override_reason,
            d.c.artifact_sha256,
            d.c.record_hash,
            d.c.evidence,
        )
        .where(d.c.model_name == model_name, d.c.environment == environment)
        .order_by(d.c.seq.desc())
        .limit(LIMIT_DEPLOYMENTS)
    )
    return [
        DeploymentItem(
            seq=int(r.seq),
            created_at=as_utc(r.created_at),
            model_version=r.model_version,
            role=r.role,
            action=r.action,
            decided_by=r.decided_by,
            reason=r.reason,
            override=bool(r.override),
            override_reason=r.override_reason,
            artifact_sha256=r.artifact_sha256,
            record_hash=r.record_hash,
            gate=_gate_summary(r.evidence),
        )
        for r in rows
    ]

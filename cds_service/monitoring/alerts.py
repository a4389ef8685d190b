"""Alerts: their message, and the rule that an alert already raised (by this run or an earlier
one, for the same group, window, metric, feature, subgroup and severity) is not raised again,
so rerunning a window does not page anyone twice."""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

from sqlalchemy.engine import Connection

from cds_service.monitoring import queries as q
from cds_service.monitoring.report import AlertRecord, GroupKey, MonitorReport
from fhir_mappers.timeutil import as_utc

__all__ = ["AlertBook", "alert_message"]

log = logging.getLogger("cds_service.monitoring.run")


def alert_message(
    group: GroupKey,
    start: datetime,
    end: datetime,
    what: str,
    value: float,
    threshold: float,
    severity: str,
    comparison: str,
    n: int,
) -> str:
    """The log line and the alert row's text: everything a reader needs, no patient data."""
    return (
        f"{what} is {value:.4g}, {comparison} {threshold:.4g} ({severity} threshold, "
        f"n={n}); model {group.model_name} {group.model_version}, service {group.service_id}, "
        f"{group.environment}/{group.role}, window {start:%Y-%m-%d %H:%M} to "
        f"{end:%Y-%m-%d %H:%M} UTC"
    )


def _key(a: AlertRecord) -> tuple[Any, ...]:
    g = a.group
    return (
        g.service_id,
        g.model_name,
        g.model_version,
        g.environment,
        a.window_start,
        a.window_end,
        a.metric,
        a.feature,
        a.subgroup,
        a.severity,
    )


class AlertBook:
    """The run's alerts: new ones wait in ``pending`` until written; repeats are only counted."""

    def __init__(self, report: MonitorReport) -> None:
        self.report = report
        self.existing: set[tuple[Any, ...]] = set()
        self.pending: list[AlertRecord] = []

    def load_existing(self, conn: Connection, start: datetime, end: datetime) -> None:
        for r in conn.execute(q.alerts_between(start, end)):
            self.existing.add((*r[:4], as_utc(r[4]), as_utc(r[5]), r[6], r[7], r[8], r[9]))

    def raise_alert(self, alert: AlertRecord) -> None:
        key = _key(alert)
        if key in self.existing:
            self.report.repeated_alerts += 1
            log.info("monitoring alert still open (%s): %s", alert.severity, alert.message)
            return
        self.existing.add(key)
        self.pending.append(alert)
        self.report.alerts.append(alert)
        log.warning("monitoring alert (%s): %s", alert.severity, alert.message)

    def take_rows(self, run_id: str, created: datetime) -> list[dict[str, Any]]:
        """Rows for the alerts table; empties ``pending``."""
        rows = [
            {
                "run_id": run_id,
                "created_at": created,
                **a.group._asdict(),
                "window_start": a.window_start,
                "window_end": a.window_end,
                "metric": a.metric,
                "feature": a.feature,
                "subgroup": a.subgroup,
                "value": a.value,
                "threshold": a.threshold,
                "severity": a.severity,
                "message": a.message,
            }
            for a in self.pending
        ]
        for row in rows:
            del row["role"]  # alerts are per environment, whichever role raised them
        self.pending = []
        return rows

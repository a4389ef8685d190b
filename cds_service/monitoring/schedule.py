"""The scheduled monitoring run (CLI ``cds-service monitor`` and the in-service schedule): the
complete windows of the last days, by one replica at a time."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from cds_service.db.locks import AdvisoryLock, session_lock
from cds_service.db.tables import MonitoringRun
from cds_service.monitoring.report import MonitorReport
from cds_service.monitoring.run import run_monitoring
from cds_service.monitoring.thresholds import Thresholds
from cds_service.monitoring.windows import recent_windows

__all__ = ["run_recent"]

log = logging.getLogger("cds_service.monitoring.run")


def run_recent(
    engine: Engine,
    models_dir: Path,
    *,
    days: float = 7.0,
    window_hours: float = 24.0,
    now: datetime | None = None,
    thresholds: Thresholds | None = None,
    min_interval: timedelta | None = None,
) -> MonitorReport | None:
    """The complete windows of the last ``days``. On PostgreSQL only one replica runs at a time
    (advisory lock); the others return None at once. With ``min_interval`` (the in-service
    schedule), a run is also skipped when any replica started one less than that long ago: every
    replica keeps its own clock, and the lock alone only keeps their runs from overlapping."""
    moment = now or datetime.now(UTC)
    start, end, step = recent_windows(moment, days=days, window_hours=window_hours)
    with session_lock(engine, AdvisoryLock.MONITORING) as held:
        if not held:
            log.info("monitoring: another replica is running the monitor; skipped")
            return None
        if min_interval is not None and _ran_since(engine, moment - min_interval):
            log.info("monitoring: a replica ran the monitor within the interval; skipped")
            return None
        return run_monitoring(
            engine,
            models_dir,
            window_start=start,
            window_end=end,
            window=step,
            now=now,
            thresholds=thresholds,
        )


def _ran_since(engine: Engine, since: datetime) -> bool:
    runs: sa.Table = MonitoringRun.__table__  # type: ignore[attr-defined]
    query = sa.select(sa.func.count()).select_from(runs).where(runs.c.started_at >= since)
    with engine.connect() as conn:
        return bool(conn.execute(query).scalar())

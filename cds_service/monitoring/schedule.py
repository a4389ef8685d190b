"""The scheduled monitoring run (CLI ``cds-service monitor`` and the in-service schedule): the
complete windows of the last days, by one replica at a time."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy.engine import Engine

from cds_service.db.locks import AdvisoryLock, session_lock
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
) -> MonitorReport | None:
    """The complete windows of the last ``days``. On PostgreSQL only one replica runs at a time
    (advisory lock); the others return None at once."""
    start, end, step = recent_windows(
        now or datetime.now(UTC), days=days, window_hours=window_hours
    )
    with session_lock(engine, AdvisoryLock.MONITORING) as held:
        if not held:
            log.info("monitoring: another replica is running the monitor; skipped")
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

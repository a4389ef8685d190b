"""The database: engines for SQLite and PostgreSQL, the Alembic migrations, the tables, the
quality views' columns, the advisory locks and the hash-chained deployment trail (read by the
serving registry, written by lifecycle), and retention: the policy per table (retention), the
Parquet archive (archive) and the purge that records itself in the trail (purge). tests/db
checks that the tables and views declared here are what the migrations build."""

from cds_service.db.engine import MIGRATIONS, make_engine, normalize_url, upgrade
from cds_service.db.locks import AdvisoryLock, session_lock, transaction_lock
from cds_service.db.tables import (
    Alert,
    CardAudit,
    CardFeedback,
    Deployment,
    MonitoringResult,
    MonitoringRun,
    Outcome,
    SeenJti,
    WebSession,
)
from cds_service.db.views import VIEWS

__all__ = [
    "MIGRATIONS",
    "VIEWS",
    "AdvisoryLock",
    "Alert",
    "CardAudit",
    "CardFeedback",
    "Deployment",
    "MonitoringResult",
    "MonitoringRun",
    "Outcome",
    "SeenJti",
    "WebSession",
    "make_engine",
    "normalize_url",
    "session_lock",
    "transaction_lock",
    "upgrade",
]

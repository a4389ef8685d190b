"""Audit writer: one committed row per card (and per shadow prediction), spooled on outage."""

from __future__ import annotations

import logging
import threading
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Engine
from sqlalchemy.exc import DataError, DBAPIError, IntegrityError, SQLAlchemyError, StatementError

from cds_service.audit.spool import Spool
from cds_service.db.tables import CardAudit, CardFeedback, Outcome

log = logging.getLogger("cds_service.audit.writer")

TABLES: dict[str, sa.Table] = {
    "card_audit": CardAudit.__table__,  # type: ignore[attr-defined]
    "card_feedback": CardFeedback.__table__,  # type: ignore[attr-defined]
    "outcomes": Outcome.__table__,  # type: ignore[attr-defined]
}
_DATETIME_COLUMNS = {
    "card_audit": ("requested_at",),
    "card_feedback": ("outcome_timestamp", "received_at"),
    "outcomes": ("derived_at",),
}


def _to_json_row(table: str, row: dict[str, Any]) -> dict[str, Any]:
    out = dict(row)
    for col in _DATETIME_COLUMNS[table]:
        if isinstance(out.get(col), datetime):
            out[col] = out[col].isoformat()
    return out


def _from_json_row(table: str, row: dict[str, Any]) -> dict[str, Any]:
    out = dict(row)
    for col in _DATETIME_COLUMNS[table]:
        if isinstance(out.get(col), str):
            out[col] = datetime.fromisoformat(out[col])
    return out


def _permanent(exc: StatementError) -> bool:
    """Bad data (the database will refuse it again), as opposed to an outage."""
    if isinstance(exc, DataError | IntegrityError):
        return not exc.connection_invalidated
    return not isinstance(exc, DBAPIError)  # Python-side conversion of a value failed


class AuditWriter:
    def __init__(self, engine: Engine, spool: Spool) -> None:
        self.engine = engine
        self.spool = spool
        self._replay_lock = threading.Lock()

    def _insert_ignore(self, conn: sa.Connection, table: str, rows: list[dict[str, Any]]) -> None:
        tbl = TABLES[table]
        stmt: Any
        if conn.dialect.name == "postgresql":
            stmt = postgresql.insert(tbl).on_conflict_do_nothing()
        elif conn.dialect.name == "sqlite":
            stmt = sqlite.insert(tbl).on_conflict_do_nothing()
        else:  # pragma: no cover - only SQLite and PostgreSQL are supported
            stmt = tbl.insert()
        conn.execute(stmt, rows)

    def write(self, table: str, rows: list[dict[str, Any]]) -> bool:
        """True when committed to the database, False when spooled (never raises on outage)."""
        if not rows:
            return True
        try:
            with self.engine.begin() as conn:
                self._insert_ignore(conn, table, rows)
            return True
        except SQLAlchemyError as exc:
            log.warning(
                "audit database unavailable, %d %s row(s) spooled (%s)",
                len(rows),
                table,
                type(exc).__name__,
            )
            for row in rows:
                self.spool.append(table, _to_json_row(table, row))
            return False

    def _write_replayed(self, table: str, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Write spooled rows; returns those the database refuses for good (bad data, not an
        outage), found by retrying one row at a time after a batch fails that way."""
        try:
            with self.engine.begin() as conn:
                self._insert_ignore(conn, table, [_from_json_row(table, r) for r in rows])
            return []
        except StatementError as exc:
            if not _permanent(exc):
                raise
        rejected = []
        for row in rows:
            try:
                with self.engine.begin() as conn:
                    self._insert_ignore(conn, table, [_from_json_row(table, row)])
            except StatementError as exc:
                if not _permanent(exc):
                    raise
                log.error(
                    "audit row refused by the database, kept in dead-letter (%s)",
                    type(exc).__name__,
                )
                rejected.append(row)
        return rejected

    def replay(self) -> int:
        """Replay spooled rows; returns how many were written (0 while the database is down)."""
        if not self._replay_lock.acquire(blocking=False):
            return 0
        try:
            count = self.spool.replay(self._write_replayed)
            if count:
                log.info("audit spool replayed: %d row(s)", count)
            return count
        except (SQLAlchemyError, OSError, ValueError) as exc:
            # the database is away, or a spool file could not be read: try again next round
            log.warning("audit spool replay postponed (%s)", type(exc).__name__)
            return 0
        finally:
            self._replay_lock.release()

"""Audit writer: one committed row per card (and per shadow prediction), spooled on outage."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import datetime
from typing import Any

import anyio
import anyio.to_thread
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Engine
from sqlalchemy.exc import DataError, DBAPIError, IntegrityError, SQLAlchemyError, StatementError

from cds_service.audit.spool import Spool
from cds_service.db.health import DatabaseHealth, DatabaseUnavailable
from cds_service.db.tables import CardAudit, CardFeedback, Outcome, SeenJti

log = logging.getLogger("cds_service.audit.writer")

TABLES: dict[str, sa.Table] = {
    "card_audit": CardAudit.__table__,  # type: ignore[attr-defined]
    "card_feedback": CardFeedback.__table__,  # type: ignore[attr-defined]
    "outcomes": Outcome.__table__,  # type: ignore[attr-defined]
    # jtis accepted from memory during an outage, written to the shared store when it is back
    "seen_jti": SeenJti.__table__,  # type: ignore[attr-defined]
}
_DATETIME_COLUMNS = {
    "card_audit": ("requested_at",),
    "card_feedback": ("outcome_timestamp", "received_at"),
    "outcomes": ("derived_at",),
    "seen_jti": ("expires_at",),
}


_STATEMENTS: dict[tuple[str, str], Any] = {}


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


# Runs first in a row's transaction (the call's jti insert); False rolls the transaction back.
Guard = Callable[[sa.Connection], bool]


class GuardRefused(Exception):
    """The guard said no: nothing of the transaction was kept (a replayed token's call)."""


def _permanent(exc: StatementError) -> bool:
    """Bad data (the database will refuse it again), as opposed to an outage."""
    if isinstance(exc, DataError | IntegrityError):
        return not exc.connection_invalidated
    return not isinstance(exc, DBAPIError)  # Python-side conversion of a value failed


class AuditWriter:
    def __init__(self, engine: Engine, spool: Spool, health: DatabaseHealth | None = None) -> None:
        self.engine = engine
        self.spool = spool
        self.health = health or DatabaseHealth(budget_seconds=0.2)
        self._replay_lock = threading.Lock()
        # Spooling has threads of its own: worker threads stuck on a stalled database (shadow
        # rows, the replay) must never delay the fallback that lets a call return.
        self._spool_threads = anyio.CapacityLimiter(4)

    def _insert_ignore(self, conn: sa.Connection, table: str, rows: list[dict[str, Any]]) -> None:
        key = (conn.dialect.name, table)
        stmt = _STATEMENTS.get(key)
        if stmt is None:
            stmt = _STATEMENTS[key] = self._insert_ignore_statement(conn, table)
        conn.execute(stmt, rows)

    @staticmethod
    def _insert_ignore_statement(conn: sa.Connection, table: str) -> Any:
        """Built once per dialect and table: rebuilding it on every call cost ~0.1 ms."""
        tbl = TABLES[table]
        stmt: Any
        if conn.dialect.name == "postgresql":
            stmt = postgresql.insert(tbl)
        elif conn.dialect.name == "sqlite":
            stmt = sqlite.insert(tbl)
        else:  # pragma: no cover - only SQLite and PostgreSQL are supported
            return tbl.insert()
        if table == "seen_jti":
            # an expired leftover of the same token id must not hide the later use: keep the
            # later expiry (the same rule as the replay store's own slot reuse)
            later = sa.case(
                (stmt.excluded.expires_at > tbl.c.expires_at, stmt.excluded.expires_at),
                else_=tbl.c.expires_at,
            )
            stmt = stmt.on_conflict_do_update(
                index_elements=[tbl.c.jti_hash], set_={"expires_at": later}
            )
        else:
            stmt = stmt.on_conflict_do_nothing()
        return stmt

    def _commit(self, table: str, rows: list[dict[str, Any]], guard: Guard | None = None) -> None:
        with self.engine.begin() as conn:
            if guard is not None and not guard(conn):
                raise GuardRefused
            self._insert_ignore(conn, table, rows)

    def spool_rows(self, table: str, rows: list[dict[str, Any]]) -> None:
        """Blocking (fsync): call from a worker thread, never on the event loop."""
        for row in rows:
            self.spool.append(table, _to_json_row(table, row))

    def write(self, table: str, rows: list[dict[str, Any]]) -> bool:
        """Blocking write for worker threads (shadow scoring, feedback): True when committed,
        False when spooled (never raises on outage)."""
        if not rows:
            return True
        if not self.health.available:  # known to be away: do not tie up a thread on it
            self.spool_rows(table, rows)
            return False
        try:
            self._commit(table, rows)
            return True
        except SQLAlchemyError as exc:
            self.health.mark_down(type(exc).__name__)
            log.warning(
                "audit database unavailable, %d %s row(s) spooled (%s)",
                len(rows),
                table,
                type(exc).__name__,
            )
            self.spool_rows(table, rows)
            return False

    async def write_within_budget(
        self, table: str, rows: list[dict[str, Any]], guard: Guard | None = None
    ) -> bool:
        """The request path's write: off the event loop, at most the budget long. Past the budget
        the rows are spooled and the late database write, if it still lands, is harmless: every
        write is an insert-ignore on the row's key, so the replay cannot add a second copy.
        ``guard`` runs first in the same transaction (one commit per call); GuardRefused when it
        says no. Spooled rows did not run it: the caller falls back for it."""
        if not rows:
            return True
        try:
            await self.health.call(lambda: self._commit(table, rows, guard))
            return True
        except DatabaseUnavailable as exc:
            log.warning(
                "audit database unavailable, %d %s row(s) spooled (%s)", len(rows), table, exc
            )
        await anyio.to_thread.run_sync(self.spool_rows, table, rows, limiter=self._spool_threads)
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

    def _replay_unlocked(self) -> int | None:
        try:
            count = self.spool.replay(self._write_replayed)
        except SQLAlchemyError as exc:
            # the database is away: calls spool at once instead of each paying the budget
            self.health.mark_down(type(exc).__name__)
            log.warning("audit spool replay postponed (%s)", type(exc).__name__)
            return None
        except (OSError, ValueError) as exc:
            # a spool file could not be read: try again next round
            log.warning("audit spool replay postponed (%s)", type(exc).__name__)
            return None
        if count:
            log.info("audit spool replayed: %d row(s)", count)
        return count

    def replay(self) -> int:
        """Replay spooled rows; returns how many were written (0 while the database is down)."""
        if not self._replay_lock.acquire(blocking=False):
            return 0
        try:
            return self._replay_unlocked() or 0
        finally:
            self._replay_lock.release()

    def heal(self) -> None:
        """Background round (blocking): replay the spool (a write is the real test of an
        outage's end) and, when the database answers again, mark it available so that the
        request path stops spooling. On that recovery it replays once more at once: the rows
        calls spooled while the round ran go in now, not a replay interval later."""
        if not self._replay_lock.acquire(blocking=False):
            return
        try:
            was_down = not self.health.available
            if self._replay_unlocked() is None:
                return
            if self.health.probe(self.engine) and was_down:
                self._replay_unlocked()
        finally:
            self._replay_lock.release()

"""``jti`` replay protection in the database, so that every replica sees every token id.

The check runs off the event loop within the database budget. During a database outage (or a
stall past the budget) it falls back to this process's memory (logged): the service keeps
answering, and replay protection narrows to one replica. Each jti accepted that way is also put in
the durable spool, and the background replay writes it to the shared store when the database is
back, so from then on a replay is refused on every replica.

A CDS service call does not pay a commit of its own for its jti: the jti is reserved in memory
when the token is verified (``claim``) and inserted in the same transaction as the call's audit
row (``record_in``), one commit per call. The insert decides atomically, so of two replicas
that got the same token at once only one commits, and only that one returns its card. A call that
fails before its audit row records its jti alone (``record_within_budget``), so a token spent on
a refused call cannot be replayed with another body.
"""

from __future__ import annotations

import hashlib
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

import anyio
import anyio.to_thread
import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import IntegrityError, SQLAlchemyError

from cds_service.db.health import DatabaseHealth, DatabaseUnavailable
from cds_service.db.tables import SeenJti
from fhir_mappers.timeutil import as_utc

log = logging.getLogger("cds_service.security.replay")
_TABLE: sa.Table = SeenJti.__table__  # type: ignore[attr-defined]


# (jti hash, expiry) -> durable record of a jti accepted from memory (blocking)
Remember = Callable[[str, datetime], None]


@dataclass(slots=True)
class JtiClaim:
    """A jti reserved in this process's memory, not yet in the shared store."""

    key: str
    expires_at: datetime
    now: datetime
    recorded: bool = False


# The same text on SQLite and PostgreSQL; built once (a Core upsert rebuilt per call cost more
# CPU than the insert itself). Typed parameters: times stored as the column stores them.
_CLAIM = sa.text(
    "INSERT INTO seen_jti (jti_hash, expires_at) VALUES (:key, :expires_at) "
    "ON CONFLICT (jti_hash) DO UPDATE SET expires_at = excluded.expires_at "
    "WHERE seen_jti.expires_at <= :now RETURNING jti_hash"
).bindparams(
    sa.bindparam("expires_at", type_=_TABLE.c.expires_at.type),
    sa.bindparam("now", type_=_TABLE.c.expires_at.type),
)


def record_in(conn: Connection, claim: JtiClaim) -> bool:
    """Blocking, inside the caller's transaction: True when this is the first use in the shared
    store (a new row, or an expired leftover's slot reused), False for a replay. One statement,
    so concurrent transactions cannot both win: the second waits on the first's row."""
    params = {"key": claim.key, "expires_at": claim.expires_at, "now": claim.now}
    return conn.execute(_CLAIM, params).first() is not None


class ReplayStore:
    def __init__(
        self,
        engine: Engine,
        health: DatabaseHealth | None = None,
        remember: Remember | None = None,
    ) -> None:
        self._engine = engine
        self._health = health or DatabaseHealth(budget_seconds=0.2)
        self._remember = remember
        self._remember_threads = anyio.CapacityLimiter(2)  # never queued behind stuck threads
        self._memory: dict[str, datetime] = {}
        self._lock = threading.Lock()
        self._inserts = 0

    @staticmethod
    def _key(iss: str, jti: str) -> str:
        return hashlib.sha256(f"{iss}\0{jti}".encode()).hexdigest()

    def _in_memory(self, key: str, now: datetime) -> bool:
        with self._lock:
            remembered = self._memory.get(key)
            return remembered is not None and remembered > now

    def _first_in_database(self, key: str, expires_at: datetime, now: datetime) -> bool:
        """Blocking: True when this is the first use in the shared store; raises on outage."""
        try:
            with self._engine.begin() as conn:
                if conn.dialect.name == "postgresql":
                    # No fsync wait for this row: a database crash in the next few milliseconds
                    # could forget a jti, while every call would otherwise pay a second flush.
                    conn.execute(sa.text("SET LOCAL synchronous_commit TO OFF"))
                conn.execute(_TABLE.insert().values(jti_hash=key, expires_at=expires_at))
            return True
        except IntegrityError:
            pass
        with self._engine.begin() as conn:
            row = conn.execute(
                sa.select(_TABLE.c.expires_at).where(_TABLE.c.jti_hash == key)
            ).first()
        if row is not None and as_utc(row[0]) > now:
            return False
        with self._engine.begin() as conn:  # an expired leftover: reuse the slot
            conn.execute(
                _TABLE.update().where(_TABLE.c.jti_hash == key).values(expires_at=expires_at)
            )
        return True

    def _accept(self, key: str, expires_at: datetime, now: datetime) -> None:
        with self._lock:
            self._memory[key] = expires_at
            self._inserts += 1
            if self._inserts % 1000 == 0:
                self._memory = {k: v for k, v in self._memory.items() if v > now}

    def _accept_from_memory(self, key: str, expires_at: datetime, now: datetime) -> bool:
        """Outage: decide from this process's memory; False for a replay seen here."""
        with self._lock:
            if key in self._memory and self._memory[key] > now:
                return False
            self._memory[key] = expires_at  # claimed before the (slow) durable record
        return True

    def first_use(self, iss: str, jti: str, expires_at: datetime, now: datetime) -> bool:
        """Blocking check (worker threads, tests): True the first time (iss, jti) is seen before
        it expires; False for a replay."""
        key = self._key(iss, jti)
        if self._in_memory(key, now):
            return False
        try:
            first = self._first_in_database(key, expires_at, now)
        except SQLAlchemyError as exc:
            log.warning("replay store unavailable, checking jti in memory (%s)", type(exc).__name__)
            if not self._accept_from_memory(key, expires_at, now):
                return False
            if self._remember is not None:
                self._remember(key, expires_at)
            return True
        if first:
            self._accept(key, expires_at, now)
        return first

    async def first_use_within_budget(
        self, iss: str, jti: str, expires_at: datetime, now: datetime
    ) -> bool:
        """The request path's check: off the event loop, at most the database budget long."""
        key = self._key(iss, jti)
        if self._in_memory(key, now):
            return False
        try:
            first = await self._health.call(lambda: self._first_in_database(key, expires_at, now))
        except DatabaseUnavailable as exc:
            log.warning("replay store unavailable, checking jti in memory (%s)", exc)
            if not self._accept_from_memory(key, expires_at, now):
                return False
            if self._remember is not None:
                await anyio.to_thread.run_sync(
                    self._remember, key, expires_at, limiter=self._remember_threads
                )
            return True
        if first:
            self._accept(key, expires_at, now)
        return first

    def claim(self, iss: str, jti: str, expires_at: datetime, now: datetime) -> JtiClaim | None:
        """Reserve (iss, jti) in this process's memory; None for a replay seen here. The shared
        store is asked later, in the call's own transaction (``record_in``)."""
        key = self._key(iss, jti)
        with self._lock:
            remembered = self._memory.get(key)
            if remembered is not None and remembered > now:
                return None
            self._memory[key] = expires_at
            self._inserts += 1
            if self._inserts % 1000 == 0:  # expired reservations leave memory bounded
                self._memory = {k: v for k, v in self._memory.items() if v > now}
        return JtiClaim(key, expires_at, now)

    def _record_alone(self, claim: JtiClaim) -> bool:
        with self._engine.begin() as conn:
            return record_in(conn, claim)

    async def record_within_budget(self, claim: JtiClaim) -> bool:
        """A claim no audit transaction took (the call failed first, or spooled): into the
        shared store off the event loop within the budget, else (outage) into the spool. True
        unless the shared store already held it (a replay)."""
        if claim.recorded:
            return True
        claim.recorded = True
        try:
            return await self._health.call(lambda: self._record_alone(claim))
        except DatabaseUnavailable as exc:
            log.warning("replay store unavailable, jti kept in memory (%s)", exc)
        await self.remember_within_budget(claim)
        return True

    async def remember_within_budget(self, claim: JtiClaim) -> None:
        """Outage: the claim goes to the durable spool, replayed into the shared store later."""
        claim.recorded = True
        if self._remember is not None:
            await anyio.to_thread.run_sync(
                self._remember, claim.key, claim.expires_at, limiter=self._remember_threads
            )

    def purge(self, now: datetime) -> int:
        try:
            with self._engine.begin() as conn:
                result = conn.execute(_TABLE.delete().where(_TABLE.c.expires_at < now))
                return int(result.rowcount or 0)
        except SQLAlchemyError:
            return 0


__all__ = ["JtiClaim", "ReplayStore", "record_in"]

"""``jti`` replay protection in the database, so that every replica sees every token id.

During a database outage the check falls back to this process's memory (logged): the service
keeps answering, and replay protection narrows to one replica until the database is back.
"""

from __future__ import annotations

import hashlib
import logging
import threading
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError, SQLAlchemyError

from cds_service.db.tables import SeenJti
from fhir_mappers.timeutil import as_utc

log = logging.getLogger("cds_service.security.replay")
_TABLE: sa.Table = SeenJti.__table__  # type: ignore[attr-defined]


class ReplayStore:
    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._memory: dict[str, datetime] = {}
        self._lock = threading.Lock()
        self._inserts = 0

    @staticmethod
    def _key(iss: str, jti: str) -> str:
        return hashlib.sha256(f"{iss}\0{jti}".encode()).hexdigest()

    def first_use(self, iss: str, jti: str, expires_at: datetime, now: datetime) -> bool:
        """True the first time (iss, jti) is seen before it expires; False for a replay."""
        key = self._key(iss, jti)
        with self._lock:
            remembered = self._memory.get(key)
            if remembered is not None and remembered > now:
                return False
        try:
            with self._engine.begin() as conn:
                if conn.dialect.name == "postgresql":
                    # No fsync wait for this row: a database crash in the next few milliseconds
                    # could forget a jti, while every call would otherwise pay a second flush.
                    conn.execute(sa.text("SET LOCAL synchronous_commit TO OFF"))
                conn.execute(_TABLE.insert().values(jti_hash=key, expires_at=expires_at))
        except IntegrityError:
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
        except SQLAlchemyError as exc:
            log.warning("replay store unavailable, checking jti in memory (%s)", type(exc).__name__)
            with self._lock:
                if key in self._memory and self._memory[key] > now:
                    return False
        with self._lock:
            self._memory[key] = expires_at
            self._inserts += 1
            if self._inserts % 1000 == 0:
                self._memory = {k: v for k, v in self._memory.items() if v > now}
        return True

    def purge(self, now: datetime) -> int:
        try:
            with self._engine.begin() as conn:
                result = conn.execute(_TABLE.delete().where(_TABLE.c.expires_at < now))
                return int(result.rowcount or 0)
        except SQLAlchemyError:
            return 0


__all__ = ["ReplayStore"]

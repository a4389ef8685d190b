"""Server-side sessions in the database (shared by replicas); the cookie carries only an id."""

from __future__ import annotations

import hashlib
import json
import secrets
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from cds_service.db.tables import WebSession
from fhir_mappers.timeutil import as_utc

TABLE: sa.Table = WebSession.__table__  # type: ignore[attr-defined]


def _hash(session_id: str) -> str:
    return hashlib.sha256(session_id.encode()).hexdigest()


class SessionStore:
    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def create(
        self, kind: str, data: dict[str, Any], lifetime: timedelta, now: datetime | None = None
    ) -> str:
        """A new session; returns the id for the cookie (only its hash is stored)."""
        session_id = secrets.token_urlsafe(32)
        moment = now or datetime.now(UTC)
        with self._engine.begin() as conn:
            conn.execute(
                TABLE.insert().values(
                    session_hash=_hash(session_id),
                    kind=kind,
                    data=json.dumps(data),
                    created_at=moment,
                    expires_at=moment + lifetime,
                )
            )
        return session_id

    def get(
        self, session_id: str | None, kind: str, now: datetime | None = None
    ) -> dict[str, Any] | None:
        if not session_id or len(session_id) > 100:
            return None
        with self._engine.connect() as conn:
            row = conn.execute(
                sa.select(TABLE.c.data, TABLE.c.expires_at, TABLE.c.kind).where(
                    TABLE.c.session_hash == _hash(session_id)
                )
            ).first()
        if row is None or row.kind != kind:
            return None
        if as_utc(row.expires_at) <= (now or datetime.now(UTC)):
            self.delete(session_id)
            return None
        data: dict[str, Any] = json.loads(row.data)
        return data

    def update(
        self, session_id: str, data: dict[str, Any], expires_at: datetime | None = None
    ) -> None:
        values: dict[str, Any] = {"data": json.dumps(data)}
        if expires_at is not None:
            values["expires_at"] = expires_at
        with self._engine.begin() as conn:
            conn.execute(
                TABLE.update().where(TABLE.c.session_hash == _hash(session_id)).values(**values)
            )

    def delete(self, session_id: str) -> None:
        with self._engine.begin() as conn:
            conn.execute(TABLE.delete().where(TABLE.c.session_hash == _hash(session_id)))

    def purge(self, now: datetime | None = None) -> int:
        with self._engine.begin() as conn:
            result = conn.execute(
                TABLE.delete().where(TABLE.c.expires_at < (now or datetime.now(UTC)))
            )
            return int(result.rowcount or 0)

"""PostgreSQL advisory locks, one named key per job.

Keys live in one enumeration so two jobs can never share a number by accident: they did once
(monitoring and deployments both used 724302), and a promotion then waited for a whole monitoring
run while a monitoring run during a promotion was skipped. SQLite has one writer at a time and one
process per database file, so there the locks are no-ops (callers that need SQLite's write lock
take it themselves).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from enum import IntEnum, unique

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

__all__ = ["AdvisoryLock", "session_lock", "transaction_lock"]


@unique
class AdvisoryLock(IntEnum):
    """Keys stay stable across releases: replicas of two versions share them."""

    MIGRATIONS = 724301
    MONITORING = 724302
    DEPLOYMENTS = 724303


def transaction_lock(conn: Connection, lock: AdvisoryLock) -> None:
    """Wait for ``lock`` until the end of ``conn``'s transaction (PostgreSQL; no-op elsewhere)."""
    if conn.dialect.name == "postgresql":
        conn.execute(sa.text("SELECT pg_advisory_xact_lock(:k)"), {"k": int(lock)})


@contextmanager
def session_lock(engine: Engine, lock: AdvisoryLock) -> Iterator[bool]:
    """Try ``lock`` without waiting, held for the ``with`` block on a connection of its own.

    Yields whether this process holds it; on SQLite always True. The lock is released on exit
    even if the block raises.
    """
    with engine.connect() as conn:
        if conn.dialect.name != "postgresql":
            yield True
            return
        got = bool(
            conn.execute(sa.text("SELECT pg_try_advisory_lock(:k)"), {"k": int(lock)}).scalar()
        )
        conn.commit()
        try:
            yield got
        finally:
            if got:
                conn.execute(sa.text("SELECT pg_advisory_unlock(:k)"), {"k": int(lock)})
                conn.commit()

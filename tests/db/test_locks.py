"""Advisory locks: distinct keys, and one job's lock does not block another's (PostgreSQL)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
import sqlalchemy as sa

from cds_service.db.deployments import all_records, append_record
from cds_service.db.engine import make_engine, upgrade
from cds_service.db.locks import AdvisoryLock, session_lock, transaction_lock
from cds_service.monitoring import run_recent
from tests.utils.service import Database, new_database

RECORD = {
    "model_name": "ed-admission",
    "model_version": "1.0.0",
    "artifact_sha256": "a" * 64,
    "environment": "acceptance",
    "role": "live",
    "action": "promote",
    "decided_by": "test",
    "reason": "lock test",
    "evidence": "{}",
}


@pytest.fixture()
def pg(tmp_path: Path) -> Iterator[Database]:
    db = new_database("postgres", tmp_path)
    try:
        upgrade(db.engine)
        yield db
    finally:
        db.close()


def _engine(db: Database, lock_timeout: str) -> sa.engine.Engine:
    """An engine whose lock waits fail after ``lock_timeout`` instead of hanging the test."""
    engine = make_engine(db.url)

    @sa.event.listens_for(engine, "connect")
    def _timeout(dbapi_conn, _record):  # type: ignore[no-untyped-def]
        cur = dbapi_conn.cursor()
        cur.execute(f"SET lock_timeout = '{lock_timeout}'")
        cur.close()
        dbapi_conn.commit()

    return engine


def test_promotion_is_not_blocked_by_a_running_monitor(pg: Database) -> None:
    engine = _engine(pg, "2s")
    try:
        with session_lock(pg.engine, AdvisoryLock.MONITORING) as held:
            assert held
            # Same key as the monitor would raise LockNotAvailable here after lock_timeout.
            row = append_record(engine, dict(RECORD, created_at=datetime(2026, 3, 1, tzinfo=UTC)))
        assert [r["record_hash"] for r in all_records(engine)] == [row["record_hash"]]
    finally:
        engine.dispose()


def test_same_key_does_block(pg: Database) -> None:
    """The check above can fail: a held deployments lock does stop a second promotion."""
    engine = _engine(pg, "200ms")
    try:
        with pg.engine.begin() as holder:
            transaction_lock(holder, AdvisoryLock.DEPLOYMENTS)
            with pytest.raises(sa.exc.OperationalError, match="lock timeout"):
                append_record(engine, dict(RECORD))
    finally:
        engine.dispose()


def test_monitor_runs_during_a_promotion_and_skips_while_another_monitor_runs(
    pg: Database, tmp_path: Path
) -> None:
    now = datetime(2026, 3, 14, 9, 30, tzinfo=UTC)
    with pg.engine.begin() as promoting:
        transaction_lock(promoting, AdvisoryLock.DEPLOYMENTS)
        report = run_recent(pg.engine, tmp_path, days=1, now=now)
        assert report is not None
    with session_lock(pg.engine, AdvisoryLock.MONITORING) as held:
        assert held
        assert run_recent(pg.engine, tmp_path, days=1, now=now) is None

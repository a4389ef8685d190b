"""The jti replay store on a real (migrated) SQLite database."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from cds_service.db.engine import make_engine, upgrade
from cds_service.security.replay import ReplayStore, record_in

NOW = datetime(2026, 3, 14, 9, 30, tzinfo=UTC)


@pytest.fixture()
def engine(tmp_path: Path) -> Iterator[Engine]:
    engine = make_engine(f"sqlite:///{tmp_path / 'replay.sqlite3'}")
    upgrade(engine)
    yield engine
    engine.dispose()


def _stored(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(conn.execute(sa.text("SELECT count(*) FROM seen_jti")).scalar_one())


def test_a_token_id_is_accepted_once(engine: Engine) -> None:
    store = ReplayStore(engine)
    expires = NOW + timedelta(minutes=5)
    assert store.first_use("iss-a", "jti-1", expires, NOW) is True
    assert store.first_use("iss-a", "jti-1", expires, NOW) is False


def test_every_replica_sees_the_token_ids_of_the_others(engine: Engine) -> None:
    expires = NOW + timedelta(minutes=5)
    assert ReplayStore(engine).first_use("iss-a", "jti-1", expires, NOW) is True
    assert ReplayStore(engine).first_use("iss-a", "jti-1", expires, NOW) is False


def test_the_same_jti_from_another_issuer_is_another_token(engine: Engine) -> None:
    store = ReplayStore(engine)
    expires = NOW + timedelta(minutes=5)
    assert store.first_use("iss-a", "jti-1", expires, NOW) is True
    assert store.first_use("iss-b", "jti-1", expires, NOW) is True


def test_an_expired_entry_frees_its_slot(engine: Engine) -> None:
    expires = NOW + timedelta(minutes=5)
    assert ReplayStore(engine).first_use("iss-a", "jti-1", expires, NOW) is True
    later = NOW + timedelta(minutes=10)
    fresh = ReplayStore(engine)  # no memory of the first use: the database decides
    assert fresh.first_use("iss-a", "jti-1", later + timedelta(minutes=5), later) is True
    assert fresh.first_use("iss-a", "jti-1", later + timedelta(minutes=5), later) is False


def test_token_ids_are_stored_hashed(engine: Engine) -> None:
    ReplayStore(engine).first_use("iss-a", "secret-jti", NOW + timedelta(minutes=5), NOW)
    with engine.connect() as conn:
        (stored,) = conn.execute(sa.text("SELECT jti_hash FROM seen_jti")).one()
    assert "secret-jti" not in stored and len(stored) == 64


def test_purge_removes_only_expired_entries(engine: Engine) -> None:
    store = ReplayStore(engine)
    store.first_use("iss-a", "old", NOW + timedelta(minutes=1), NOW)
    store.first_use("iss-a", "new", NOW + timedelta(hours=1), NOW)
    assert store.purge(NOW + timedelta(minutes=30)) == 1
    assert _stored(engine) == 1


def test_database_outage_falls_back_to_memory(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'never-migrated.sqlite3'}")  # no seen_jti table
    store = ReplayStore(engine)
    expires = NOW + timedelta(minutes=5)
    assert store.first_use("iss-a", "jti-1", expires, NOW) is True
    assert store.first_use("iss-a", "jti-1", expires, NOW) is False
    engine.dispose()


def test_a_jti_accepted_from_memory_during_an_outage_reaches_the_shared_store(
    engine: Engine, tmp_path: Path
) -> None:
    """Healing: the jti goes to the spool, the replay writes it (replacing an expired leftover of
    the same id), and then another replica refuses it."""
    import sqlite3

    from cds_service.audit.spool import Spool
    from cds_service.audit.writer import AuditWriter

    expires = NOW + timedelta(minutes=5)
    old = ReplayStore(engine)
    assert old.first_use("iss-a", "jti-1", NOW - timedelta(hours=2), NOW - timedelta(hours=3))
    writer = AuditWriter(engine, Spool(tmp_path / "spool"))
    replica_a = ReplayStore(
        engine,
        writer.health,
        lambda key, exp: writer.spool_rows("seen_jti", [{"jti_hash": key, "expires_at": exp}]),
    )
    blocker = sqlite3.connect(tmp_path / "replay.sqlite3", timeout=0.1, isolation_level=None)
    blocker.execute("BEGIN EXCLUSIVE")  # the database is away for every other connection
    try:
        assert replica_a.first_use("iss-a", "jti-1", expires, NOW) is True  # from memory
        assert replica_a.first_use("iss-a", "jti-1", expires, NOW) is False
        assert writer.spool.pending_files()
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()
    assert writer.replay() == 1
    assert ReplayStore(engine).first_use("iss-a", "jti-1", expires, NOW) is False


def test_a_claim_is_decided_in_the_transaction_that_records_it(engine: Engine) -> None:
    """Two replicas reserve the same token id in their own memory; the shared store lets only
    the first transaction have it, and an expired leftover's slot is reused."""
    expires = NOW + timedelta(minutes=5)
    replica_a, replica_b = ReplayStore(engine), ReplayStore(engine)
    claim_a = replica_a.claim("iss-a", "jti-1", expires, NOW)
    claim_b = replica_b.claim("iss-a", "jti-1", expires, NOW)
    assert claim_a is not None and claim_b is not None
    assert replica_a.claim("iss-a", "jti-1", expires, NOW) is None  # a replay seen in memory
    with engine.begin() as conn:
        assert record_in(conn, claim_a) is True
    with engine.begin() as conn:
        assert record_in(conn, claim_b) is False
    later = NOW + timedelta(minutes=10)
    claim_c = ReplayStore(engine).claim("iss-a", "jti-1", later + timedelta(minutes=5), later)
    assert claim_c is not None
    with engine.begin() as conn:
        assert record_in(conn, claim_c) is True
    assert _stored(engine) == 1

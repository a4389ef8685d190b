"""The audit writer's background round on a real (migrated) SQLite database: a failed replay
tells the request path the database is away, and the end of an outage lets in the rows spooled
while the round ran at once, not a replay interval later."""

from __future__ import annotations

import sqlite3
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from cds_service.audit.spool import Spool
from cds_service.audit.writer import AuditWriter
from cds_service.db.engine import make_engine, upgrade
from cds_service.db.health import DatabaseHealth

NOW = datetime(2026, 3, 14, 9, 30, tzinfo=UTC)


@pytest.fixture()
def engine(tmp_path: Path) -> Iterator[Engine]:
    engine = make_engine(f"sqlite:///{tmp_path / 'audit.sqlite3'}")
    upgrade(engine)
    yield engine
    engine.dispose()


def _writer(engine: Engine, tmp_path: Path) -> AuditWriter:
    return AuditWriter(engine, Spool(tmp_path / "spool"), DatabaseHealth(budget_seconds=3.0))


def _feedback(card: str) -> dict[str, Any]:
    return {
        "card_uuid": card,
        "service_id": "ed-admission-risk",
        "outcome": "accepted",
        "override_reason_code": None,
        "override_reason_system": None,
        "override_reason_display": None,
        "user_comment": None,
        "outcome_timestamp": NOW,
        "received_at": NOW,
    }


def _stored(engine: Engine) -> set[str]:
    with engine.connect() as conn:
        rows = conn.execute(sa.text("SELECT card_uuid FROM card_feedback")).all()
    return {r[0] for r in rows}


def test_a_replay_that_fails_marks_the_database_away(engine: Engine, tmp_path: Path) -> None:
    writer = _writer(engine, tmp_path)
    writer.spool_rows("card_feedback", [_feedback(str(uuid.uuid4()))])
    path = str(engine.url.database)
    blocker = sqlite3.connect(path, timeout=0.1, isolation_level=None)
    blocker.execute("BEGIN EXCLUSIVE")  # another process holds the database: writes fail
    try:
        assert writer.health.available
        writer.heal()
        assert not writer.health.available, "calls must spool at once, not pay the budget"
        assert writer.spool.pending_files(), "the rows stay for the next round"
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()
    writer.heal()
    assert writer.health.available
    assert not writer.spool.pending_files()


def test_the_end_of_an_outage_lets_in_rows_spooled_during_the_round(
    engine: Engine, tmp_path: Path
) -> None:
    writer = _writer(engine, tmp_path)
    first, during = str(uuid.uuid4()), str(uuid.uuid4())
    writer.health.mark_down("outage")
    writer.spool_rows("card_feedback", [_feedback(first)])
    spooled_during: list[str] = []

    @sa.event.listens_for(engine, "commit")
    def a_call_spools_meanwhile(conn: Any) -> None:
        # a call still spooling (its worker still has the database marked away) while the
        # round's replay commits: a file of its own, after the replay claimed the first one
        if not spooled_during:
            spooled_during.append(during)
            writer.spool_rows("card_feedback", [_feedback(during)])

    writer.heal()
    assert spooled_during == [during]
    assert writer.health.available
    assert _stored(engine) == {first, during}, "both rows in after one round"
    assert not writer.spool.pending_files()

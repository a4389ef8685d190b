"""Migration 0006: answers stored before users were known read as one unknown user per card (the
latest counts), and the migration reverts to the 0001 view."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.config import Config

from cds_service.db.engine import MIGRATIONS, upgrade
from tests.utils.service import BACKENDS, new_database

AT = datetime(2026, 3, 1, 8, 0, tzinfo=UTC)


def _answer(outcome: str, minutes: int) -> dict[str, object]:
    return {
        "card_uuid": "00000000-0000-4000-8000-000000000001",
        "service_id": "ed-admission-risk",
        "outcome": outcome,
        "accepted_suggestions": "[]",
        "outcome_timestamp": AT + timedelta(minutes=minutes),
        "received_at": AT + timedelta(minutes=minutes),
        "channel": "cds-hooks",
    }


@pytest.mark.parametrize("backend", BACKENDS)
def test_old_answers_count_once_per_card_and_the_migration_reverts(
    backend: str, tmp_path: Path
) -> None:
    db = new_database(backend, tmp_path)
    try:
        upgrade(db.engine, "0005")
        table = sa.Table("card_feedback", sa.MetaData(), autoload_with=db.engine)
        with db.engine.begin() as conn:
            conn.execute(table.insert(), [_answer("overridden", 5), _answer("accepted", 0)])
        upgrade(db.engine)
        rows = db.rows("SELECT outcome, user_pseudonym, is_current FROM v_feedback")
        assert sorted((r["outcome"], r["user_pseudonym"], bool(r["is_current"])) for r in rows) == [
            ("accepted", None, False),
            ("overridden", None, True),
        ]
        cfg = Config()
        cfg.set_main_option("script_location", str(MIGRATIONS))
        with db.engine.begin() as conn:
            cfg.attributes["connection"] = conn
            command.downgrade(cfg, "0005")
        columns = [c["name"] for c in sa.inspect(db.engine).get_columns("v_feedback")]
        assert columns[-1] == "requested_at" and "is_current" not in columns
        assert len(db.rows("SELECT * FROM v_feedback")) == 2
    finally:
        db.close()

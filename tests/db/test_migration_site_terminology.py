"""Migration 0005: rows audited before the column was there read as 'no site terminology'."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.config import Config

from cds_service.db.engine import MIGRATIONS, upgrade
from fhir_mappers.site_terminology import EMPTY_TERMINOLOGY_SHA256
from tests.utils.service import BACKENDS, new_database

ROW = {
    "card_uuid": "00000000-0000-4000-8000-000000000001",
    "hook_instance": "h1",
    "service_id": "ed-admission-risk",
    "hook": "encounter-start",
    "model_name": "ed-admission",
    "model_version": "1.0.0",
    "artifact_sha256": "a" * 64,
    "environment": "production",
    "role": "live",
    "shown": True,
    "card_kind": "risk",
    "patient_pseudonym": "p" * 64,
    "requested_at": datetime(2026, 3, 1, 8, 0, tzinfo=UTC),
    "latency_ms": 12.0,
    "features": "{}",
    "missing_features": "[]",
    "inputs": "{}",
    "mapper_warnings": "{}",
    "summary": "s",
}


@pytest.mark.parametrize("backend", BACKENDS)
def test_old_rows_get_the_empty_hash_and_the_migration_reverts(
    backend: str, tmp_path: Path
) -> None:
    db = new_database(backend, tmp_path)
    try:
        upgrade(db.engine, "0004")
        table = sa.Table("card_audit", sa.MetaData(), autoload_with=db.engine)
        with db.engine.begin() as conn:
            conn.execute(table.insert().values(**ROW))
        upgrade(db.engine)
        assert db.rows("SELECT terminology_sha256 FROM v_cards") == [
            {"terminology_sha256": EMPTY_TERMINOLOGY_SHA256}
        ]
        cfg = Config()
        cfg.set_main_option("script_location", str(MIGRATIONS))
        with db.engine.begin() as conn:
            cfg.attributes["connection"] = conn
            command.downgrade(cfg, "0004")
        columns = [c["name"] for c in sa.inspect(db.engine).get_columns("v_cards")]
        assert "terminology_sha256" not in columns and columns[-1] == "summary"
        assert len(db.rows("SELECT * FROM v_cards")) == 1
    finally:
        db.close()

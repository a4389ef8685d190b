"""`cds-service outcomes --jobs N`: the labels of audited cards, read from an export's patient
shards in two processes, are the rows one process writes (SQLite, and PostgreSQL when set)."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from cds_devtools.synth import generate_cohort
from cds_service.audit.spool import Spool
from cds_service.audit.writer import AuditWriter
from cds_service.db.tables import CardAudit
from cds_service.lifecycle.outcomes import derive_outcomes
from cds_service.security.pseudonym import pseudonym
from fhir_mappers.timeutil import parse_fhir_datetime
from tests.conftest import MODELS_DIR
from tests.utils.service import Database

BACKENDS = ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
KEY = b"synthetic-test-pseudonym-key-0123456789"
DERIVED = datetime(2026, 6, 1, tzinfo=UTC)


@pytest.fixture(scope="module")
def export(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("synth")
    generate_cohort(out, ed_patients=60, post_mi_patients=0, seed=9)
    return out


def _card(patient: str, requested: datetime) -> dict[str, Any]:
    return {
        "card_uuid": str(uuid.uuid4()),
        "hook_instance": str(uuid.uuid4()),
        "service_id": "ed-admission-risk",
        "hook": "encounter-start",
        "model_name": "ed-admission",
        "model_version": "1.0.0",
        "artifact_sha256": "0" * 64,
        "environment": "production",
        "role": "live",
        "shown": True,
        "card_kind": "risk",
        "patient_pseudonym": pseudonym(KEY, "Patient", patient),
        "encounter_pseudonym": str(uuid.uuid4()),
        "requested_at": requested,
        "risk": 0.3,
        "risk_band": "moderate",
        "indicator": "warning",
        "latency_ms": 5.0,
        "features": "{}",
        "missing_features": "[]",
        "inputs": "{}",
        "mapper_warnings": "{}",
        "summary": "synthetic",
    }


def _cards(export: Path) -> list[dict[str, Any]]:
    """A card an hour into each encounter of the export (two for some patients)."""
    cards = []
    with (export / "Encounter.ndjson").open(encoding="utf-8") as handle:
        for line in handle:
            enc = json.loads(line)
            start = parse_fhir_datetime(enc.get("period", {}).get("start"))
            if start is not None:
                patient = enc["subject"]["reference"].split("/")[-1]
                cards.append(_card(patient, start.value + timedelta(hours=1)))
    return cards


def _outcomes(db: Database) -> list[dict[str, Any]]:
    rows = db.rows(
        "SELECT card_uuid, label_name, patient_pseudonym, model_name, label, source "
        "FROM outcomes ORDER BY card_uuid"
    )
    return rows


def test_two_processes_derive_the_outcomes_one_does(db, export, tmp_path):
    cards = _cards(export)
    with db.engine.begin() as conn:
        conn.execute(CardAudit.__table__.insert(), cards)  # type: ignore[attr-defined]
    writer = AuditWriter(db.engine, Spool(tmp_path / "spool"))
    runs = []
    for jobs in (1, 2):
        stats = derive_outcomes(
            db.engine, writer, MODELS_DIR, export, KEY, derived_at=DERIVED, jobs=jobs
        )
        runs.append((stats, _outcomes(db)))
        with db.engine.begin() as conn:
            conn.exec_driver_sql("DELETE FROM outcomes")
    (one, one_rows), (two, two_rows) = runs
    assert one == two
    assert one_rows == two_rows
    assert one.cards_considered == len(cards) > 60
    assert one.patients_seen == 60
    assert 0 < one.by_label["admitted_24h"] < one.outcomes_written == len(one_rows)

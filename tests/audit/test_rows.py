"""The typed audit row: the columns of ``card_audit``, filled the same way for live and shadow."""

from __future__ import annotations

import dataclasses
import json
from datetime import UTC, datetime
from pathlib import Path

import sqlalchemy as sa

from cds_service.audit.rows import AuditRow, CallSubject, Verdict
from cds_service.audit.spool import Spool
from cds_service.audit.writer import AuditWriter
from cds_service.db.engine import make_engine, upgrade
from cds_service.db.tables import CardAudit
from fhir_mappers.extract import extract
from fhir_mappers.spec import load_spec

ROOT = Path(__file__).resolve().parent.parent.parent
NOW = datetime(2026, 3, 14, 9, 30, tzinfo=UTC)
SUBJECT = CallSubject(
    hook_instance="hi-1",
    service_id="ed-admission-risk",
    hook="encounter-start",
    environment="development",
    patient_pseudonym="p" * 64,
    encounter_pseudonym=None,
    requested_at=NOW,
    caller_iss="https://ehr.example",
)


@dataclasses.dataclass(frozen=True)
class _Model:
    name: str = "ed-admission"
    version: str = "1.0.0"
    artifact_sha256: str = "a" * 64
    terminology_sha256: str = "b" * 64


def _row(verdict: Verdict) -> AuditRow:
    spec = load_spec(ROOT / "models" / "ed-admission" / "features.toml")
    extraction = extract([{"resourceType": "Patient", "id": "x", "gender": "male"}], NOW, spec)
    return AuditRow.build("card-1", SUBJECT, _Model(), verdict, extraction, 1.5)


def test_the_row_has_exactly_the_columns_of_the_table() -> None:
    table = CardAudit.__table__  # type: ignore[attr-defined]
    assert set(_row(Verdict("live", True, "risk", 0.3, "low", "info", "s")).as_dict()) == {
        c.name for c in table.columns
    }


def test_inputs_are_json_and_name_what_is_missing() -> None:
    row = _row(Verdict("shadow", False, "no-risk", None, None, "info", "(shadow)")).as_dict()
    assert json.loads(row["features"])["sex_male"] == 1.0
    assert "lactate" in json.loads(row["missing_features"])
    assert json.loads(row["inputs"])["sex_male"]["sources"] == 1
    assert (row["role"], row["shown"], row["caller_iss"]) == ("shadow", False, SUBJECT.caller_iss)


def test_the_writer_stores_a_row_as_built(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'a.sqlite3'}")
    upgrade(engine)
    row = _row(Verdict("live", True, "risk", 0.3, "low", "info", "s")).as_dict()
    assert AuditWriter(engine, Spool(tmp_path / "spool")).write("card_audit", [row]) is True
    with engine.connect() as conn:
        stored = conn.execute(sa.text("SELECT * FROM card_audit")).mappings().one()
    assert {k: stored[k] for k in ("card_uuid", "risk", "model_name", "summary")} == {
        "card_uuid": "card-1",
        "risk": 0.3,
        "model_name": "ed-admission",
        "summary": "s",
    }
    engine.dispose()

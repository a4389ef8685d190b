"""Synthetic audit rows (cards, feedback, outcomes) inserted straight into the tables, for tests
that read the audit trail through SQL (retention, alert burden). Pseudonyms are synthetic."""

from __future__ import annotations

import json
import uuid
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa

from cds_service.db.tables import CardAudit, CardFeedback, Outcome

CARDS: sa.Table = CardAudit.__table__  # type: ignore[attr-defined]
FEEDBACK: sa.Table = CardFeedback.__table__  # type: ignore[attr-defined]
OUTCOMES: sa.Table = Outcome.__table__  # type: ignore[attr-defined]


def card_row(
    at: datetime,
    risk: float | None,
    *,
    patient: str,
    model: str = "ed-admission",
    service: str = "ed-admission-risk",
    role: str = "live",
    version: str = "1.0.0",
    environment: str = "production",
) -> dict[str, Any]:
    indicator = "info" if risk is None or risk < 0.2 else "warning" if risk < 0.5 else "critical"
    return {
        "card_uuid": str(uuid.uuid4()),
        "hook_instance": str(uuid.uuid4()),
        "service_id": service,
        "hook": "encounter-start",
        "model_name": model,
        "model_version": version,
        "artifact_sha256": "0" * 64,
        "environment": environment,
        "role": role,
        "shown": role == "live",
        "card_kind": "no-risk" if risk is None else "risk",
        "patient_pseudonym": patient,
        "encounter_pseudonym": None,
        "requested_at": at,
        "risk": risk,
        "risk_band": None if risk is None else indicator,
        "indicator": indicator,
        "latency_ms": 5.0,
        "features": json.dumps({"age": 50}),
        "missing_features": "[]",
        "inputs": "{}",
        "mapper_warnings": "{}",
        "summary": "synthetic",
    }


def feedback_row(card: dict[str, Any], outcome: str = "accepted") -> dict[str, Any]:
    at = card["requested_at"] + timedelta(minutes=2)
    return {
        "card_uuid": card["card_uuid"],
        "service_id": card["service_id"],
        "outcome": outcome,
        "accepted_suggestions": "[]",
        "outcome_timestamp": at,
        "received_at": at,
        "channel": "cds-hooks",
    }


def outcome_row(card: dict[str, Any], label: int, name: str = "admitted") -> dict[str, Any]:
    return {
        "card_uuid": card["card_uuid"],
        "label_name": name,
        "patient_pseudonym": card["patient_pseudonym"],
        "model_name": card["model_name"],
        "label": label,
        "source": "fhir-export",
        "derived_at": card["requested_at"] + timedelta(days=2),
    }


def insert(
    engine: sa.Engine,
    cards: list[dict[str, Any]],
    feedback: list[dict[str, Any]] | None = None,
    outcomes: list[dict[str, Any]] | None = None,
) -> None:
    with engine.begin() as conn:
        for table, rows in ((CARDS, cards), (FEEDBACK, feedback), (OUTCOMES, outcomes)):
            if rows:
                conn.execute(table.insert(), rows)

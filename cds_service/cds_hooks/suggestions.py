"""What a card offers to do, when its hook definition asks (``[card] suggestions``).

``risk-assessment``: record this estimate in the patient record as a FHIR R4 ``RiskAssessment``
(built and validated with fhir.resources): the patient, the moment the estimate is for, the
probability of the outcome, the method naming the model and its version, and the resources it was
based on. The suggestion's uuid is derived from the card's, so feedback that accepts it can be
checked against the card it names without storing anything more.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from fhir.resources.R4B.riskassessment import RiskAssessment

from cds_service.cds_hooks.responses import Action, Suggestion
from fhir_mappers.extract import Extraction

__all__ = ["MODEL_SYSTEM", "RiskRecord", "risk_assessment", "suggestion_uuid", "suggestions"]

MODEL_SYSTEM = "https://fhir.cds-risk.example/CodeSystem/cds-model"
MAX_BASIS = 50


@dataclass(frozen=True, slots=True)
class RiskRecord:
    """What the RiskAssessment says: whose, when, what outcome, how likely, by which model."""

    patient_id: str
    at: datetime
    outcome: str
    risk: float
    model_name: str
    model_version: str
    model_title: str
    card_uuid: str
    encounter_id: str | None = None


def suggestion_uuid(card_uuid: str, kind: str) -> str:
    """The uuid of the card's ``kind`` suggestion (one per kind per card)."""
    try:
        namespace = uuid.UUID(card_uuid)
    except ValueError:
        return ""
    return str(uuid.uuid5(namespace, kind))


def _basis(extraction: Extraction) -> list[dict[str, str]]:
    refs = sorted(
        {
            s.reference
            for p in extraction.provenance.values()
            if p.value is not None
            for s in p.sources
            if "/" in s.reference and not s.reference.startswith("Patient/")
        }
    )
    return [{"reference": r} for r in refs[:MAX_BASIS]]


def risk_assessment(record: RiskRecord, extraction: Extraction) -> dict[str, object]:
    """The resource as JSON, validated by fhir.resources (a bad one raises, never leaves)."""
    body: dict[str, object] = {
        "resourceType": "RiskAssessment",
        "status": "final",
        "identifier": [{"system": "urn:ietf:rfc:3986", "value": f"urn:uuid:{record.card_uuid}"}],
        "subject": {"reference": f"Patient/{record.patient_id}"},
        "occurrenceDateTime": record.at.isoformat(),
        "method": {
            "coding": [
                {
                    "system": MODEL_SYSTEM,
                    "code": record.model_name,
                    "version": record.model_version,
                    "display": record.model_title,
                }
            ],
            "text": f"{record.model_name} {record.model_version}",
        },
        "prediction": [
            {"outcome": {"text": record.outcome}, "probabilityDecimal": round(record.risk, 4)}
        ],
    }
    if record.encounter_id:
        body["encounter"] = {"reference": f"Encounter/{record.encounter_id}"}
    basis = _basis(extraction)
    if basis:
        body["basis"] = basis
    # Validated as built; sent as built (serializing the model back would cost as much again).
    RiskAssessment.model_validate(body)
    return body


def suggestions(
    kinds: tuple[str, ...], label: str, description: str, record: RiskRecord, ex: Extraction
) -> list[Suggestion]:
    """The card's suggestions, in the order the hook definition names them."""
    out = []
    for kind in kinds:
        if kind == "risk-assessment":
            action = Action(
                type="create", description=description, resource=risk_assessment(record, ex)
            )
            out.append(
                Suggestion(
                    label=label, uuid=suggestion_uuid(record.card_uuid, kind), actions=[action]
                )
            )
    return out

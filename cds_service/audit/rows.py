"""The typed ``card_audit`` row: built once per card (live) or per shadow prediction.

The live and the shadow path share one constructor, so a column cannot be filled one way for
cards shown and another way for shadow rows. Inputs are grouped by where they come from: the call
(``CallSubject``), the model version that scored, the verdict, and the mapper's extraction.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

import orjson

from fhir_mappers.extract import Extraction


class ModelIdentity(Protocol):
    """Which artifact scored (``serving.model_runtime.LoadedModel`` is one)."""

    @property
    def name(self) -> str: ...
    @property
    def version(self) -> str: ...
    @property
    def artifact_sha256(self) -> str: ...
    @property
    def terminology_sha256(self) -> str: ...


@dataclass(frozen=True, slots=True)
class CallSubject:
    """What one service call contributes to each of its rows; identifiers already pseudonymized."""

    hook_instance: str
    service_id: str
    hook: str
    environment: str
    patient_pseudonym: str
    encounter_pseudonym: str | None
    requested_at: datetime
    caller_iss: str | None


@dataclass(frozen=True, slots=True)
class Verdict:
    """What the model said and whether a card showed it."""

    role: str  # live | shadow
    shown: bool
    card_kind: str  # risk | no-risk
    risk: float | None
    risk_band: str | None
    indicator: str | None
    summary: str


@dataclass(frozen=True, slots=True)
class AuditRow:
    """One row of ``card_audit`` (``db.tables.CardAudit``), column for column."""

    card_uuid: str
    hook_instance: str
    service_id: str
    hook: str
    model_name: str
    model_version: str
    artifact_sha256: str
    environment: str
    role: str
    shown: bool
    card_kind: str
    patient_pseudonym: str
    encounter_pseudonym: str | None
    requested_at: datetime
    risk: float | None
    risk_band: str | None
    indicator: str | None
    latency_ms: float
    features: str
    missing_features: str
    inputs: str
    mapper_warnings: str
    summary: str
    caller_iss: str | None
    terminology_sha256: str

    @classmethod
    def build(
        cls,
        card_uuid: str,
        subject: CallSubject,
        model: ModelIdentity,
        verdict: Verdict,
        extraction: Extraction,
        latency_ms: float,
    ) -> AuditRow:
        columns = _extraction_columns(extraction)
        return cls(
            card_uuid=card_uuid,
            hook_instance=subject.hook_instance,
            service_id=subject.service_id,
            hook=subject.hook,
            model_name=model.name,
            model_version=model.version,
            artifact_sha256=model.artifact_sha256,
            environment=subject.environment,
            role=verdict.role,
            shown=verdict.shown,
            card_kind=verdict.card_kind,
            patient_pseudonym=subject.patient_pseudonym,
            encounter_pseudonym=subject.encounter_pseudonym,
            requested_at=subject.requested_at,
            risk=verdict.risk,
            risk_band=verdict.risk_band,
            indicator=verdict.indicator,
            latency_ms=latency_ms,
            features=columns["features"],
            missing_features=columns["missing_features"],
            inputs=columns["inputs"],
            mapper_warnings=columns["mapper_warnings"],
            summary=verdict.summary,
            caller_iss=subject.caller_iss,
            terminology_sha256=model.terminology_sha256,
        )

    def as_dict(self) -> dict[str, Any]:
        """The row as the audit writer takes it (column name -> value)."""
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}


def _json(value: Any) -> str:
    return orjson.dumps(value).decode()


def _extraction_columns(extraction: Extraction) -> dict[str, str]:
    inputs = {
        name: {
            "value": p.value,
            "unit": p.unit,
            "time": p.time,
            "missing_reason": p.missing_reason,
            "sources": len(p.sources),
        }
        for name, p in extraction.provenance.items()
    }
    return {
        "features": _json(extraction.values),
        "missing_features": _json(extraction.missing()),
        "inputs": _json(inputs),
        "mapper_warnings": _json(dict(sorted(extraction.warnings.items()))),
    }

"""The audit row of a risk the app showed without a card.

Launched from the EHR's app menu (HiX, the SMART launcher) the app has no card: the risk it
computes is one no card showed, so it is audited like a card (``card_audit`` and ``v_cards``,
same columns, same row constructor as the CDS Hooks path) with its own context, hook
``smart-launch``, and the page's responses refer to that row's ``card_uuid``. One row per launch
and risk: a reload that computes the same risk with the same model version writes nothing; new
data or a new version (a different risk) is a new row, and the clinician answers that one.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from cds_service.audit.rows import AuditRow, CallSubject, Verdict
from cds_service.cds_hooks.cards import CardWording
from cds_service.security.pseudonym import pseudonym
from cds_service.serving.hook_defs import Band, HookDefinition
from cds_service.serving.model_runtime import LoadedModel, Prediction
from cds_service.state import ServiceState
from fhir_mappers.extract import Extraction

SMART_LAUNCH_HOOK = "smart-launch"


@dataclass(frozen=True, slots=True)
class LaunchRisk:
    """What the page computed: the inputs of the row."""

    hook_def: HookDefinition
    model: LoadedModel
    extraction: Extraction
    prediction: Prediction | None
    band: Band | None


def own_card(data: dict[str, Any]) -> bool:
    """The session's card is the app's own row (a launch without appContext)."""
    return data.get("card_source") == SMART_LAUNCH_HOOK


def _shown(risk: LaunchRisk) -> dict[str, Any]:
    return {
        "risk": risk.prediction.risk if risk.prediction is not None else None,
        "model_version": risk.model.version,
        "service": risk.hook_def.id,
    }


def needs_row(data: dict[str, Any], risk: LaunchRisk) -> bool:
    """A launch without a card that has not yet audited this very risk."""
    if data.get("card") and not own_card(data):
        return False
    return data.get("own_shown") != _shown(risk)


def _verdict(risk: LaunchRisk) -> Verdict:
    wording = CardWording(risk.hook_def.card)
    if risk.prediction is None or risk.band is None:
        return Verdict("live", True, "no-risk", None, None, None, wording.missing_summary)
    pct = f"{100 * risk.prediction.risk:.0f}%"
    summary = wording.summary(risk_pct=pct, band=risk.band.name)
    band = risk.band
    return Verdict("live", True, "risk", risk.prediction.risk, band.name, band.indicator, summary)


async def audit_launch(
    st: ServiceState,
    data: dict[str, Any],
    risk: LaunchRisk,
    patient: tuple[str, str | None],
    now: datetime,
    latency_ms: float,
) -> str:
    """Write the row (committed, or spooled if the database is away) and note it in the
    session ``data`` (the caller stores it); the row's ``card_uuid``."""
    key = st.settings.effective_pseudonym_key
    patient_id, encounter_id = patient
    card_uuid = str(uuid.uuid4())
    subject = CallSubject(
        hook_instance=str(uuid.uuid4()),
        service_id=risk.hook_def.id,
        hook=SMART_LAUNCH_HOOK,
        environment=st.settings.environment.value,
        patient_pseudonym=pseudonym(key, "Patient", patient_id),
        encounter_pseudonym=pseudonym(key, "Encounter", encounter_id) if encounter_id else None,
        requested_at=now,
        caller_iss=None,
    )
    row = AuditRow.build(
        card_uuid, subject, risk.model, _verdict(risk), risk.extraction, latency_ms
    )
    await st.writer.write_within_budget("card_audit", [row.as_dict()])
    data.update(
        card=card_uuid,
        service=risk.hook_def.id,
        card_source=SMART_LAUNCH_HOOK,
        own_shown=_shown(risk),
        feedback=None,
    )
    return card_uuid

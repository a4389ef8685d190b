"""Shadow scoring: versions deployed as 'shadow' score the same inputs as the live one.

It runs after the live response is sent, so a shadow never delays a card; its rows are audited
(role 'shadow', shown false) for the monitoring's agreement figures and never returned as cards.
"""

from __future__ import annotations

import time
import uuid

from cds_service.audit.rows import AuditRow, CallSubject, Verdict
from cds_service.audit.writer import AuditWriter
from cds_service.serving.hook_defs import HookDefinition
from cds_service.serving.model_runtime import LoadedModel
from fhir_mappers.extract import Extraction

SHADOW_SUMMARY = "(shadow prediction, not shown)"


def shadow_verdict(
    shadow: LoadedModel, hook_def: HookDefinition, extraction: Extraction
) -> Verdict:
    if extraction.missing_required(shadow.spec):
        return Verdict("shadow", False, "no-risk", None, None, "info", SHADOW_SUMMARY)
    risk = shadow.risk(extraction.vector(shadow.feature_names))
    band = hook_def.band_for(risk)
    return Verdict("shadow", False, "risk", risk, band.name, band.indicator, SHADOW_SUMMARY)


def score_shadows(
    writer: AuditWriter,
    shadows: tuple[LoadedModel, ...],
    hook_def: HookDefinition,
    subject: CallSubject,
    extraction: Extraction,
) -> None:
    rows = []
    for shadow in shadows:
        t0 = time.perf_counter()
        verdict = shadow_verdict(shadow, hook_def, extraction)
        latency_ms = round(1000 * (time.perf_counter() - t0), 3)
        row = AuditRow.build(str(uuid.uuid4()), subject, shadow, verdict, extraction, latency_ms)
        rows.append(row.as_dict())
    writer.write("card_audit", rows)

"""One CDS service call as named stages: verify, resolve prefetch, extract, score, card, audit.

Each stage is a small function; ``run_call`` strings them together, marks the ``StageTimer`` after
each (the ``Server-Timing`` names: parse, fetch, map, predict, explain, card, audit) and puts the
outcome on the call's span. Shadow versions score after the response is sent (``shadow.py``).
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from opentelemetry.trace import Span
from starlette.background import BackgroundTask
from starlette.responses import Response

from cds_service.audit.rows import AuditRow, CallSubject, Verdict
from cds_service.audit.writer import GuardRefused
from cds_service.cds_hooks.anchoring import moment_text, visit_of
from cds_service.cds_hooks.cards import (
    CardModelInfo,
    CardWording,
    Subject,
    missing_input_card,
    risk_card,
)
from cds_service.cds_hooks.extensions import SIMULATED_TIME_EXTENSION
from cds_service.cds_hooks.language import phrase
from cds_service.cds_hooks.prefetch import (
    FhirTimedOut,
    PreconditionFailed,
    ResolvedData,
    TooLarge,
    resolve,
)
from cds_service.cds_hooks.responses import Card, CardsResponse
from cds_service.cds_hooks.schemas import HookRequest, RequestError, parse_request
from cds_service.cds_hooks.scoring import Choice, Scored, choose
from cds_service.cds_hooks.shadow import score_shadows
from cds_service.errors import ServiceError, json_response
from cds_service.observability.stage_timer import StageTimer
from cds_service.observability.traces import tracer
from cds_service.security.jwt_auth import Caller
from cds_service.security.pseudonym import pseudonym
from cds_service.security.replay import record_in
from cds_service.serving.hook_defs import HookDefinition
from cds_service.state import ServiceState

log = logging.getLogger("cds_service")


@dataclass(frozen=True, slots=True)
class CardResult:
    card: Card
    shown: bool
    band: str | None


# --- verify ---------------------------------------------------------------------------------


def verify(
    st: ServiceState, hook_def: HookDefinition, body: Any, caller: Caller | None
) -> tuple[HookRequest, datetime]:
    """The request is well formed for this hook, its fhirServer is one the caller may name, and
    its time is known."""
    try:
        call = parse_request(body, hook_def.hook)
    except RequestError as exc:
        raise ServiceError(400, str(exc)) from None
    server = call.fhirServer
    if caller is not None and server is not None and not caller.issuer.allows_fhir_server(server):
        raise ServiceError(403, "fhirServer is not a trusted FHIR server for this caller")
    return call, request_time(st, call)


def _simulated_time(raw: str) -> datetime:
    try:
        moment = datetime.fromisoformat(raw)
    except ValueError:
        raise ServiceError(400, f"extension {SIMULATED_TIME_EXTENSION} is not a time") from None
    if moment.tzinfo is None:
        raise ServiceError(400, f"extension {SIMULATED_TIME_EXTENSION} needs an offset")
    try:
        return moment.astimezone(UTC)
    except OverflowError:
        raise ServiceError(400, f"extension {SIMULATED_TIME_EXTENSION} is out of range") from None


def request_time(st: ServiceState, call: HookRequest) -> datetime:
    """Wall-clock time, or (development with CDS_ALLOW_SIMULATED_TIME only) the simulator's."""
    if st.settings.allow_simulated_time and isinstance(call.extension, dict):
        raw = call.extension.get(SIMULATED_TIME_EXTENSION)
        if isinstance(raw, str):
            return _simulated_time(raw)
    return st.clock()


# --- resolve prefetch -----------------------------------------------------------------------


async def resolve_prefetch(
    st: ServiceState, hook_def: HookDefinition, call: HookRequest
) -> ResolvedData:
    budget = hook_def.fhir_budget_seconds or st.settings.fhir_budget_seconds
    try:
        data = await resolve(hook_def, call, st.fhir, st.settings.fhir_max_resources, budget)
    except FhirTimedOut as exc:
        _log_timeout(hook_def, exc.keys, budget, "412")
        raise ServiceError(412, str(exc)) from None
    except PreconditionFailed as exc:
        raise ServiceError(412, str(exc)) from None
    except TooLarge as exc:
        raise ServiceError(413, str(exc)) from None
    if data.timed_out:
        _log_timeout(hook_def, data.timed_out, budget, "card")
    return data


def _log_timeout(hook_def: HookDefinition, keys: list[str], budget: float, outcome: str) -> None:
    """Prefetch key names and the budget only: the query names the patient and is never logged."""
    then = "refused with 412" if outcome == "412" else "card returned without them"
    log.warning(
        "FHIR server did not answer in time: prefetch %s past the %.3g s budget, %s",
        ",".join(keys),
        budget,
        then,
        extra={"service_id": hook_def.id, "status": 412 if outcome == "412" else 200},
    )


# --- extract and score: scoring.py (the model that answers, at its moment) -----------------


def unreadable_lines(data: ResolvedData, language: str = "en") -> list[str]:
    """The card's lines for resources the service received and could not use."""
    counts = (
        ("unattributed", data.unattributed),
        ("modifier_skipped", data.modifier_extension_skipped),
    )
    return [f"- {phrase(language, key, n=str(n))}" for key, n in counts if n]


# --- card -----------------------------------------------------------------------------------


def build_card(
    st: ServiceState,
    hook_def: HookDefinition,
    choice: Choice,
    unreadable: list[str],
    subject: Subject | None = None,
) -> CardResult:
    settings = st.settings
    scored = choice.scored
    model = scored.model
    common: dict[str, Any] = {
        "unreadable": unreadable,
        "card_uuid": str(uuid.uuid4()),
        "model_card_url": f"{settings.public_base_url}/models/{model.name}/{model.version}",
        "environment": settings.environment.value,
        "smart_launch_url": f"{settings.public_base_url}/smart/launch",
    }
    info = CardModelInfo(model.name, model.version, model.artifact_sha256, model.spec)
    lang, zone = settings.language, settings.display_timezone
    own = choice.texts.localized(lang)
    pending = ", ".join(choice.pending_in(lang))
    texts = CardWording(
        own,
        moment_text(own.moment, choice.visit, choice.at, lang, zone),
        own.note.format(pending=pending) if choice.pending else "",
        zone,
    )
    if scored.prediction is None:
        card = missing_input_card(hook_def, texts, info, scored.extraction, **common)
        return CardResult(card, hook_def.card.on_missing_required == "card", None)
    card, band = risk_card(
        hook_def,
        texts,
        info,
        scored.extraction,
        scored.prediction,
        top_factors=settings.top_factors,
        subject=subject,
        **common,
    )
    return CardResult(card, True, band)


# --- audit ----------------------------------------------------------------------------------


def call_subject(
    st: ServiceState,
    hook_def: HookDefinition,
    call: HookRequest,
    requested_at: datetime,
    caller: Caller | None,
) -> CallSubject:
    key = st.settings.effective_pseudonym_key
    encounter = call.context.encounterId
    return CallSubject(
        hook_instance=call.hookInstance,
        service_id=hook_def.id,
        hook=hook_def.hook,
        environment=st.settings.environment.value,
        patient_pseudonym=pseudonym(key, "Patient", call.context.patientId),
        encounter_pseudonym=pseudonym(key, "Encounter", encounter) if encounter else None,
        requested_at=requested_at,
        caller_iss=caller.issuer.iss if caller else None,
    )


async def audit(
    st: ServiceState,
    subject: CallSubject,
    scored: Scored,
    result: CardResult,
    latency_ms: float,
    caller: Caller | None = None,
) -> bool:
    """One committed (or spooled) row per card; True when the database took it within the
    audit budget (off the event loop: a stalled database never holds other calls). The call's
    jti goes in the same transaction (one commit per call): a replay another replica committed
    first rolls the row back and the call is refused; a spooled row's jti is spooled too."""
    verdict = Verdict(
        role="live",
        shown=result.shown,
        card_kind="no-risk" if scored.prediction is None else "risk",
        risk=scored.risk,
        risk_band=result.band,
        indicator=result.card.indicator,
        summary=result.card.summary,
    )
    row = AuditRow.build(
        str(result.card.uuid), subject, scored.model, verdict, scored.extraction, latency_ms
    )
    claim = caller.pending if caller is not None else None
    if claim is None or st.authenticator is None:
        return await st.writer.write_within_budget("card_audit", [row.as_dict()])
    try:
        stored = await st.writer.write_within_budget(
            "card_audit", [row.as_dict()], guard=lambda conn: record_in(conn, claim)
        )
    except GuardRefused:
        claim.recorded = True
        raise ServiceError(401, "token replayed (jti already used)") from None
    if stored:
        claim.recorded = True
    else:
        await st.authenticator.replay.remember_within_budget(claim)
    return stored


# --- the call -------------------------------------------------------------------------------


async def run_call(
    st: ServiceState,
    hook_def: HookDefinition,
    body: Any,
    caller: Caller | None,
    timer: StageTimer,
) -> Response:
    with tracer.start_as_current_span(
        "cds.service_call", record_exception=False, set_status_on_exception=False
    ) as span:
        span.set_attribute("cds.service_id", hook_def.id)
        try:
            response = await _stages(st, hook_def, body, caller, timer, span)
        except ServiceError as exc:
            span.set_attribute("http.response.status_code", exc.status)
            log.info("call refused", extra={"service_id": hook_def.id, "status": exc.status})
            raise
        span.set_attribute("http.response.status_code", response.status_code)
        return response


async def _stages(
    st: ServiceState,
    hook_def: HookDefinition,
    body: Any,
    caller: Caller | None,
    timer: StageTimer,
    span: Span,
) -> Response:
    call, requested_at = verify(st, hook_def, body, caller)
    timer.mark("parse")
    data = await resolve_prefetch(st, hook_def, call)
    timer.mark("fetch")
    visit = visit_of(hook_def, data, requested_at)
    choice = choose(st.registry, hook_def, data, requested_at, visit, timer)
    scored = choice.scored
    timer.mark("explain")
    patient = Subject(call.context.patientId, call.context.encounterId)
    result = build_card(st, hook_def, choice, unreadable_lines(data, st.settings.language), patient)
    timer.mark("card")
    subject = call_subject(st, hook_def, call, requested_at, caller)
    stored = await audit(st, subject, scored, result, timer.elapsed_ms(), caller)
    timer.mark("audit")
    shadows = st.registry.shadows(scored.model.name)
    _report(span, timer, subject, scored, result, data, stored, len(shadows))
    cards = CardsResponse(cards=[result.card] if result.shown else [])
    response = json_response(cards.wire(), headers={"Server-Timing": timer.server_timing()})
    if shadows:
        response.background = BackgroundTask(
            score_shadows, st.writer, shadows, hook_def, subject, scored.extraction
        )
    return response


def _report(
    span: Span,
    timer: StageTimer,
    subject: CallSubject,
    scored: Scored,
    result: CardResult,
    data: ResolvedData,
    stored: bool,
    shadows: int,
) -> None:
    """Span attributes and the one log line per card: ids of models, never of patients."""
    model = scored.model
    kind = "no-risk" if scored.prediction is None else "risk"
    span.set_attributes(
        {
            "cds.hook": subject.hook,
            "cds.model": model.name,
            "cds.model_version": model.version,
            "cds.environment": subject.environment,
            "cds.card_kind": kind,
            "cds.risk_band": result.band or "",
            "cds.audit_stored": stored,
            "cds.shadow_models": shadows,
            "cds.prefetch_origin": ",".join(f"{k}={v}" for k, v in sorted(data.origin.items())),
            "cds.unattributed_resources": data.unattributed,
            "cds.modifier_extension_skipped": data.modifier_extension_skipped,
            "cds.other_patient_resources": data.dropped_other_patients,
            "cds.fhir_timeout_keys": ",".join(data.timed_out),
            **timer.span_attributes(),
        }
    )
    log.info(
        "card returned",
        extra={
            "service_id": subject.service_id,
            "hook": subject.hook,
            "model": model.name,
            "model_version": model.version,
            "card_kind": kind,
            "latency_ms": timer.elapsed_ms(),
        },
    )

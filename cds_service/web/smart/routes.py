"""Routes of the SMART app (EHR launch) opened from the risk card's ``smart`` link.

- ``GET /smart/launch?iss&launch[&service]``: EHR launch; discovery; redirect to the
  authorization server. ``service`` names the risk a launch without a card (the EHR's app menu)
  shows; a card's ``appContext`` names its own.
- ``GET /smart/callback?code&state``: state check, code exchange, session bound to the token.
- ``GET /smart/app?s=<launch handle>``: the page (risk, factors, trends, missing inputs, model).
- ``POST /smart/feedback``: accept or dismiss (with a reason), stored like CDS Hooks feedback
  in ``card_feedback`` with ``channel='smart'``; CSRF-protected by a per-session token (in
  ``feedback``, whose router this one includes).

Sessions live in the database (any replica can serve any step); the browser holds one cookie per
launch (``cds_smart_<handle>``, HttpOnly) with a random id. Several launches (several patients)
can be open side by side in one browser and never mix.
"""

from __future__ import annotations

import logging
import re
import secrets
import time
from datetime import datetime
from typing import Any

import anyio
import httpx
from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response

from cds_service.cds_hooks.fhir_client import FhirClient
from cds_service.config import Environment
from cds_service.deps import State
from cds_service.state import ServiceState
from cds_service.web.deps import UtcNow, WebHttp
from cds_service.web.errors import SignInError
from cds_service.web.sessions import TABLE as SESSIONS
from cds_service.web.smart import feedback
from cds_service.web.smart.flow import (
    HANDLE,
    LAUNCH_SECONDS,
    SESSION_KIND,
    GrantedLaunch,
    allowed_fhir_servers,
    authorization_url,
    check_iss,
    cookie_name,
    discover,
    exchange_code,
    lifetime,
    new_handle,
    open_token,
    same,
    seal_context,
    seal_token,
)
from cds_service.web.smart.identity import user_pseudonym
from cds_service.web.smart.launch_audit import LaunchRisk, audit_launch, needs_row, own_card
from cds_service.web.smart.page import SECURITY_HEADERS, app_page
from cds_service.web.smart.session import (
    app_url,
    card_problem,
    cookie_path,
    error_response,
    given_answer,
    launch_card,
    launch_patient,
    ready_session,
    redirect,
    service_of,
    session_store,
    set_cookie,
    words_of,
)
from cds_service.web.smart.view import AppView, fetch_patient_data, score

log = logging.getLogger("cds_service.web.smart")
router = APIRouter()
router.include_router(feedback.router)

CARD_ID = re.compile(r"[A-Za-z0-9-]{1,36}")


def _purge_ended(st: ServiceState, now: datetime) -> None:
    """Drop this app's abandoned launches and ended sessions (other kinds are left alone)."""
    with st.writer.engine.begin() as conn:
        conn.execute(
            SESSIONS.delete().where(SESSIONS.c.kind == SESSION_KIND, SESSIONS.c.expires_at < now)
        )


@router.get("/smart/launch", response_class=HTMLResponse)
async def smart_launch(
    st: State,
    http: WebHttp,
    now: UtcNow,
    iss: str | None = None,
    launch: str | None = None,
    service: str | None = None,
) -> Response:
    settings = st.settings
    dev = settings.environment is Environment.development
    try:
        if service is not None and service not in st.registry.services:
            raise SignInError(
                400,
                "The launch URL names a risk service this service does not offer "
                f"(one of: {', '.join(sorted(st.registry.services))}).",
                title="Unknown service",
            )
        if service is not None and st.registry.services[service].anchor == "encounter":
            # its moment of prediction hangs on the ED encounter the CDS Hooks call names; the
            # app would compute a risk the model was not trained for
            raise SignInError(
                400,
                "This service predicts at a moment set by the ED encounter of a CDS Hooks call; "
                "from the app menu, use its patient-view service.",
                title="Service not available from the app menu",
            )
        issuers = st.authenticator.issuers if st.authenticator is not None else None
        iss = check_iss(iss, launch, allowed_fhir_servers(settings, issuers), dev)
        config = await discover(http, iss, dev)
    except SignInError as exc:
        return error_response(exc, words_of(st))
    assert launch is not None
    handle = new_handle()
    state = f"{handle}.{secrets.token_urlsafe(24)}"
    verifier = secrets.token_urlsafe(48)
    data = {
        "stage": "authorizing",
        "handle": handle,
        "state": state,
        "code_verifier": verifier,
        "iss": iss,
        "token_endpoint": config.token_endpoint,
        "service": service,
    }
    await anyio.to_thread.run_sync(_purge_ended, st, now)
    session_id = await anyio.to_thread.run_sync(
        session_store(st).create, SESSION_KIND, data, lifetime(LAUNCH_SECONDS), now
    )
    url = authorization_url(
        settings, config, iss=iss, launch=launch, state=state, code_verifier=verifier
    )
    response = redirect(url, 302)
    set_cookie(response, settings, handle, session_id, LAUNCH_SECONDS)
    return response


def _launch_handle(state: str | None) -> str:
    handle = state.split(".", 1)[0] if state and "." in state else ""
    if not HANDLE.fullmatch(handle):
        raise SignInError(
            400, "The authorization response has no valid 'state'.", title="Invalid state"
        )
    return handle


def _check_launch(data: dict[str, Any] | None, state: str | None) -> dict[str, Any]:
    """The launch session this authorization response answers, or the reason it answers none."""
    if data is None:
        raise SignInError(
            400,
            "This launch is unknown to this browser or has expired (it must complete "
            f"within {LAUNCH_SECONDS // 60} minutes; cookies must be allowed).",
            title="Launch expired",
        )
    if data.get("stage") != "authorizing":
        raise SignInError(
            400, "This authorization was already used.", title="Launch already completed"
        )
    if not same(data.get("state"), state):
        raise SignInError(
            400,
            "The authorization response does not match the launch started in this browser.",
            title="Invalid state",
        )
    return data


def _check_answer(data: dict[str, Any], code: str | None, error: str | None) -> tuple[str, str]:
    """The code and the PKCE verifier to exchange it with."""
    if error is not None:
        shown = re.sub(r"[^a-z_]", "", error.lower())[:40] or "error"
        raise SignInError(
            403, f"The EHR refused the launch ({shown}).", title="Authorization refused"
        )
    verifier = data.get("code_verifier")
    if not isinstance(verifier, str) or not verifier:
        raise SignInError(
            400,
            "The PKCE code verifier of this launch is missing from the session; the code "
            "cannot be exchanged safely.",
            title="Launch incomplete",
        )
    if not code or len(code) > 4096:
        raise SignInError(400, "The EHR sent no authorization code.", title="Launch incomplete")
    return code, verifier


def _app_session(
    st: ServiceState, handle: str, launch: dict[str, Any], granted: GrantedLaunch
) -> dict[str, Any]:
    """The ready session; the patient and encounter ids are added sealed (never in clear)."""
    context = granted.app_context or {}
    card = context.get("card")
    service = context.get("service") if context else launch.get("service")
    return {
        "stage": "ready",
        "handle": handle,
        "iss": launch["iss"],
        "scope": granted.scope,
        "card": card if isinstance(card, str) and CARD_ID.fullmatch(card) else None,
        "service": service if isinstance(service, str) and len(service) <= 128 else None,
        "csrf": secrets.token_urlsafe(32),
        "expires_in": granted.expires_in,
        "need_patient_banner": granted.need_patient_banner,
        "user": user_pseudonym(st.settings.effective_pseudonym_key, granted.user),
        "feedback": None,
    }


@router.get("/smart/callback", response_class=HTMLResponse)
async def smart_callback(
    request: Request,
    st: State,
    now: UtcNow,
    code: str | None = None,
    state: str | None = None,
    error: str | None = None,
) -> Response:
    sessions = session_store(st)
    try:
        handle = _launch_handle(state)
        session_id = request.cookies.get(cookie_name(handle))
        found = await anyio.to_thread.run_sync(sessions.get, session_id, SESSION_KIND, now)
        data = _check_launch(found if session_id is not None else None, state)
        assert session_id is not None
        await anyio.to_thread.run_sync(sessions.delete, session_id)  # single use
        code, verifier = _check_answer(data, code, error)
        granted = await exchange_code(st.settings, str(data["token_endpoint"]), code, verifier)
    except SignInError as exc:
        return error_response(exc, words_of(st))
    app_data = _app_session(st, handle, data, granted)
    span = lifetime(granted.expires_in)
    new_id = await anyio.to_thread.run_sync(sessions.create, SESSION_KIND, app_data, span, now)
    app_data["token"] = seal_token(new_id, handle, granted.access_token)
    app_data["context"] = seal_context(new_id, handle, granted.patient, granted.encounter)
    await anyio.to_thread.run_sync(sessions.update, new_id, app_data)
    response = redirect(app_url(st.settings, handle), 303)
    set_cookie(response, st.settings, handle, new_id, granted.expires_in)
    return response


async def _view(
    st: ServiceState, http: httpx.AsyncClient, request: Request, s: str | None, now: datetime
) -> tuple[AppView, dict[str, Any]]:
    """What the page shows: the risk computed from the FHIR server, and the card of the launch
    (a launch without one gets its own audited row, ``launch_audit``)."""
    session_id, data = await ready_session(st, request, s, now)
    assert s is not None
    token = open_token(session_id, s, str(data.get("token", "")))
    if token is None:
        raise SignInError(401, "Open the app again from the risk card.", title="Session expired")
    patient = launch_patient(session_id, s, data)
    started = time.perf_counter()
    card = await launch_card(st, data, patient[0])
    service_id = service_of(st, data, card)
    hook_def = st.registry.services[service_id]
    model = st.registry.model_for(hook_def)
    settings = st.settings
    client = FhirClient(
        http,
        retries=settings.fhir_retries,
        max_pages=settings.fhir_max_pages,
        max_resources=settings.fhir_max_resources,
    )
    resources, truncated = await fetch_patient_data(
        client, str(data["iss"]), token, patient[0], model.spec, now
    )
    words = words_of(st)
    extraction, prediction, band, charts = score(hook_def, model, resources, now, words)
    risk = LaunchRisk(hook_def, model, extraction, prediction, band)
    if needs_row(data, risk):
        latency_ms = (time.perf_counter() - started) * 1000
        await audit_launch(st, data, risk, patient, now, latency_ms)
        await anyio.to_thread.run_sync(session_store(st).update, session_id, data)
    own = own_card(data)
    view = AppView(
        hook_def=hook_def,
        model=model,
        index_time=extraction.index_time,
        extraction=extraction,
        prediction=prediction,
        band=band,
        charts=charts,
        card=None if own else card,
        card_problem=None if own else card_problem(data, card, service_id),
        truncated=truncated,
        own_card=own,
        words=words,
    )
    return view, data


@router.get("/smart/app", response_class=HTMLResponse)
async def smart_app(
    request: Request, st: State, http: WebHttp, now: UtcNow, s: str | None = None
) -> Response:
    settings = st.settings
    try:
        view, data = await _view(st, http, request, s, now)
        given = await given_answer(st, data) if view.feedback_allowed else None
    except SignInError as exc:
        response = error_response(exc, words_of(st))
        if exc.status == 401 and s and HANDLE.fullmatch(s):
            response.delete_cookie(cookie_name(s), path=cookie_path(settings))
        return response
    assert s is not None
    page = app_page(
        view,
        handle=s,
        csrf=str(data["csrf"]),
        given=given,
        banner_requested=data.get("need_patient_banner") is True,
        base_url=settings.public_base_url,
        environment=settings.environment.value,
    )
    return HTMLResponse(page, headers=SECURITY_HEADERS)

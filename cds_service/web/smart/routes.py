"""Routes of the SMART app (EHR launch) opened from the risk card's ``smart`` link.

- ``GET /smart/launch?iss&launch``: EHR launch; discovery; redirect to the authorization server.
- ``GET /smart/callback?code&state``: state check, code exchange, session bound to the token.
- ``GET /smart/app?s=<launch handle>``: the page (risk, factors, trends, missing inputs, model).
- ``POST /smart/feedback``: accept or dismiss (with a reason), stored like CDS Hooks feedback
  in ``card_feedback`` with ``channel='smart'``; CSRF-protected by a per-session token.

Sessions live in the database (any replica can serve any step); the browser holds one cookie per
launch (``cds_smart_<handle>``, HttpOnly) with a random id. Several launches (several patients)
can be open side by side in one browser and never mix.
"""

from __future__ import annotations

import logging
import re
import secrets
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlsplit

import anyio
from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from cds_service.cds_hooks.fhir_client import FhirClient
from cds_service.config import Environment, Settings
from cds_service.security.pseudonym import pseudonym
from cds_service.web.sessions import TABLE as SESSIONS
from cds_service.web.smart.flow import (
    HANDLE,
    LAUNCH_SECONDS,
    SESSION_KIND,
    SmartError,
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
    seal_token,
)
from cds_service.web.smart.page import SECURITY_HEADERS, app_page, error_page
from cds_service.web.smart.view import AppView, CardRecord, fetch_patient_data, find_card, score

if TYPE_CHECKING:
    from cds_service.state import ServiceState

log = logging.getLogger("cds_service.web.smart")
router = APIRouter()

MAX_FORM_BYTES = 16 * 1024
MAX_COMMENT = 2000
CARD_ID = re.compile(r"[A-Za-z0-9-]{1,36}")
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def _st(request: Request) -> ServiceState:
    return request.app.state.cds  # type: ignore[no-any-return]


def _now(st: ServiceState) -> datetime:
    return st.clock().astimezone(UTC)


def _error(exc: SmartError) -> HTMLResponse:
    log.info("smart app: %s", exc.title, extra={"status": exc.status})
    return HTMLResponse(
        error_page(exc.title, exc.message), status_code=exc.status, headers=SECURITY_HEADERS
    )


def _cookie_path(settings: Settings) -> str:
    return urlsplit(settings.public_base_url).path.rstrip("/") + "/smart"


def _set_cookie(response: Response, settings: Settings, handle: str, value: str, age: int) -> None:
    # Secure deployments are often embedded in the EHR (an iframe on another site): there the
    # cookie must be SameSite=None (and partitioned); over plain http (development) Lax works
    # for the top-level redirects of the launch.
    response.set_cookie(
        cookie_name(handle),
        value,
        max_age=age,
        path=_cookie_path(settings),
        httponly=True,
        secure=settings.cookie_secure,
        samesite="none" if settings.cookie_secure else "lax",
        partitioned=settings.cookie_secure,
    )


def _purge_ended(st: ServiceState, now: datetime) -> None:
    """Drop this app's abandoned launches and ended sessions (other kinds are left alone)."""
    with st.writer.engine.begin() as conn:
        conn.execute(
            SESSIONS.delete().where(SESSIONS.c.kind == SESSION_KIND, SESSIONS.c.expires_at < now)
        )


def _redirect(url: str, status: int) -> RedirectResponse:
    return RedirectResponse(url, status_code=status, headers=SECURITY_HEADERS)


def _app_url(settings: Settings, handle: str) -> str:
    return f"{settings.public_base_url}/smart/app?s={handle}"


@router.get("/smart/launch", response_class=HTMLResponse)
async def smart_launch(
    request: Request, iss: str | None = None, launch: str | None = None
) -> Response:
    st = _st(request)
    settings = st.settings
    dev = settings.environment is Environment.development
    sessions = st.sessions
    assert sessions is not None and st.web_http is not None
    try:
        issuers = st.authenticator.issuers if st.authenticator is not None else None
        iss = check_iss(iss, launch, allowed_fhir_servers(settings, issuers), dev)
        config = await discover(st.web_http, iss, dev)
    except SmartError as exc:
        return _error(exc)
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
    }
    now = _now(st)
    await anyio.to_thread.run_sync(_purge_ended, st, now)
    session_id = await anyio.to_thread.run_sync(
        sessions.create, SESSION_KIND, data, lifetime(LAUNCH_SECONDS), now
    )
    url = authorization_url(
        settings, config, iss=iss, launch=launch, state=state, code_verifier=verifier
    )
    response = _redirect(url, 302)
    _set_cookie(response, settings, handle, session_id, LAUNCH_SECONDS)
    return response


@router.get("/smart/callback", response_class=HTMLResponse)
async def smart_callback(
    request: Request,
    code: str | None = None,
    state: str | None = None,
    error: str | None = None,
) -> Response:
    st = _st(request)
    settings = st.settings
    sessions = st.sessions
    assert sessions is not None
    handle = state.split(".", 1)[0] if state and "." in state else ""
    if not HANDLE.fullmatch(handle):
        return _error(
            SmartError(400, "Invalid state", "The authorization response has no valid 'state'.")
        )
    assert state is not None
    session_id = request.cookies.get(cookie_name(handle))
    now = _now(st)
    data = await anyio.to_thread.run_sync(sessions.get, session_id, SESSION_KIND, now)
    if data is None or session_id is None:
        return _error(
            SmartError(
                400,
                "Launch expired",
                "This launch is unknown to this browser or has expired (it must complete "
                f"within {LAUNCH_SECONDS // 60} minutes; cookies must be allowed).",
            )
        )
    if data.get("stage") != "authorizing":
        return _error(
            SmartError(400, "Launch already completed", "This authorization was already used.")
        )
    if not same(data.get("state"), state):
        return _error(
            SmartError(
                400,
                "Invalid state",
                "The authorization response does not match the launch started in this browser.",
            )
        )
    await anyio.to_thread.run_sync(sessions.delete, session_id)  # single use
    if error is not None:
        shown = re.sub(r"[^a-z_]", "", error.lower())[:40] or "error"
        return _error(
            SmartError(403, "Authorization refused", f"The EHR refused the launch ({shown}).")
        )
    verifier = data.get("code_verifier")
    if not isinstance(verifier, str) or not verifier:
        return _error(
            SmartError(
                400,
                "Launch incomplete",
                "The PKCE code verifier of this launch is missing from the session; the code "
                "cannot be exchanged safely.",
            )
        )
    if not code or len(code) > 4096:
        return _error(SmartError(400, "Launch incomplete", "The EHR sent no authorization code."))
    try:
        granted = await exchange_code(settings, str(data["token_endpoint"]), code, verifier)
    except SmartError as exc:
        return _error(exc)
    context = granted.app_context or {}
    card = context.get("card")
    service = context.get("service")
    app_data: dict[str, Any] = {
        "stage": "ready",
        "handle": handle,
        "iss": data["iss"],
        "scope": granted.scope,
        "patient": granted.patient,
        "encounter": granted.encounter,
        "card": card if isinstance(card, str) and CARD_ID.fullmatch(card) else None,
        "service": service if isinstance(service, str) and len(service) <= 128 else None,
        "csrf": secrets.token_urlsafe(32),
        "expires_in": granted.expires_in,
        "need_patient_banner": granted.need_patient_banner,
        "feedback": None,
    }
    span = lifetime(granted.expires_in)
    new_id = await anyio.to_thread.run_sync(sessions.create, SESSION_KIND, app_data, span, now)
    app_data["token"] = seal_token(new_id, handle, granted.access_token)
    await anyio.to_thread.run_sync(sessions.update, new_id, app_data)
    response = _redirect(_app_url(settings, handle), 303)
    _set_cookie(response, settings, handle, new_id, granted.expires_in)
    return response


async def _ready_session(
    st: ServiceState, request: Request, handle: str | None
) -> tuple[str, dict[str, Any]]:
    if not handle or not HANDLE.fullmatch(handle):
        raise SmartError(400, "Unknown launch", "Open the app from the risk card in the EHR.")
    session_id = request.cookies.get(cookie_name(handle))
    assert st.sessions is not None
    data = await anyio.to_thread.run_sync(st.sessions.get, session_id, SESSION_KIND, _now(st))
    if data is None or session_id is None or data.get("stage") != "ready":
        raise SmartError(
            401,
            "Session expired",
            "This app's access has ended (it lasts as long as the EHR's access token). "
            "Open the app again from the risk card.",
        )
    return session_id, data


async def _card(st: ServiceState, data: dict[str, Any]) -> CardRecord | None:
    card_uuid = data.get("card")
    if not card_uuid:
        return None
    key = st.settings.effective_pseudonym_key
    return await anyio.to_thread.run_sync(
        find_card, st.writer.engine, card_uuid, pseudonym(key, "Patient", data["patient"])
    )


def _card_problem(data: dict[str, Any], card: CardRecord | None, service_id: str) -> str | None:
    if not data.get("card"):
        return (
            "The app was opened without a card (no appContext), so no response can be "
            "recorded here."
        )
    if card is None:
        return None  # not in the audit tables yet (a spooled row): feedback still applies
    if not card.same_patient:
        return (
            "The card named by the launch belongs to another patient than the one in the EHR: "
            "its risk is not shown and no response can be recorded here."
        )
    if card.service_id != service_id:
        return "The card named by the launch comes from another service: no response recorded."
    return None


def _service_id(st: ServiceState, data: dict[str, Any], card: CardRecord | None) -> str:
    service = data.get("service")
    if isinstance(service, str) and service in st.registry.services:
        return service
    if card is not None and card.service_id in st.registry.services:
        return card.service_id
    raise SmartError(
        400,
        "No risk card in context",
        "This app shows the details of a risk card: open it from the card's link in the EHR.",
    )


@router.get("/smart/app", response_class=HTMLResponse)
async def smart_app(request: Request, s: str | None = None) -> Response:
    st = _st(request)
    settings = st.settings
    try:
        session_id, data = await _ready_session(st, request, s)
        assert s is not None
        token = open_token(session_id, s, str(data.get("token", "")))
        if token is None:
            raise SmartError(401, "Session expired", "Open the app again from the risk card.")
        card = await _card(st, data)
        service_id = _service_id(st, data, card)
        hook_def = st.registry.services[service_id]
        model = st.registry.model_for(hook_def)
        now = _now(st)
        assert st.web_http is not None
        client = FhirClient(
            st.web_http,
            retries=settings.fhir_retries,
            max_pages=settings.fhir_max_pages,
            max_resources=settings.fhir_max_resources,
        )
        resources, truncated = await fetch_patient_data(
            client, str(data["iss"]), token, str(data["patient"]), model.spec, now
        )
    except SmartError as exc:
        if exc.status == 401 and s and HANDLE.fullmatch(s):
            response = _error(exc)
            response.delete_cookie(cookie_name(s), path=_cookie_path(settings))
            return response
        return _error(exc)
    extraction, prediction, band, charts = score(hook_def, model, resources, now)
    view = AppView(
        hook_def=hook_def,
        model=model,
        index_time=extraction.index_time,
        extraction=extraction,
        prediction=prediction,
        band=band,
        charts=charts,
        card=card,
        card_problem=_card_problem(data, card, service_id),
        truncated=truncated,
    )
    page = app_page(
        view,
        handle=s,
        csrf=str(data["csrf"]),
        given=data.get("feedback"),
        banner_requested=data.get("need_patient_banner") is True,
        base_url=settings.public_base_url,
        environment=settings.environment.value,
    )
    return HTMLResponse(page, headers=SECURITY_HEADERS)


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}".lower()


async def _form(request: Request) -> dict[str, str]:
    if request.headers.get("content-type", "").split(";")[0].strip() != (
        "application/x-www-form-urlencoded"
    ):
        raise SmartError(415, "Not a form", "The response must be sent from the app's page.")
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_FORM_BYTES:
            raise SmartError(413, "Too long", "The response is too long.")
    try:
        parsed = parse_qs(body.decode("utf-8"), keep_blank_values=True, max_num_fields=20)
    except (UnicodeDecodeError, ValueError):
        raise SmartError(400, "Not a form", "The response could not be read.") from None
    return {k: v[0] for k, v in parsed.items() if v}


@router.post("/smart/feedback", response_class=HTMLResponse)
async def smart_feedback(request: Request) -> Response:
    st = _st(request)
    settings = st.settings
    try:
        origin = request.headers.get("origin")
        if origin is not None and origin.lower() != _origin(settings.public_base_url):
            raise SmartError(403, "Refused", "The response did not come from the app's page.")
        form = await _form(request)
        handle = form.get("s")
        session_id, data = await _ready_session(st, request, handle)
        assert handle is not None
        if not same(form.get("csrf"), str(data.get("csrf"))):
            raise SmartError(403, "Refused", "The page was out of date: reload it and try again.")
        card = await _card(st, data)
        service_id = _service_id(st, data, card)
        problem = _card_problem(data, card, service_id)
        if problem is not None:
            raise SmartError(409, "Response not recorded", problem)
        hook_def = st.registry.services[service_id]
        outcome = form.get("outcome")
        if outcome not in ("accepted", "overridden"):
            raise SmartError(400, "Response not recorded", "Choose Accept or Dismiss.")
        reason = None
        if outcome == "overridden" and hook_def.card.override_reasons:
            code = form.get("reason")
            reason = next((r for r in hook_def.card.override_reasons if r.code == code), None)
            if reason is None:
                raise SmartError(400, "Response not recorded", "Choose a reason to dismiss.")
        comment = (form.get("comment") or "").strip()
        if _CONTROL.search(comment):
            raise SmartError(400, "Response not recorded", "The comment has control characters.")
        now = _now(st)
        row = {
            "card_uuid": str(data["card"]),
            "service_id": service_id,
            "outcome": outcome,
            "override_reason_system": reason.system[:256] if reason else None,
            "override_reason_code": reason.code[:64] if reason else None,
            "override_reason_display": reason.display[:256] if reason else None,
            "user_comment": comment[:MAX_COMMENT] or None,
            "accepted_suggestions": "[]",
            "outcome_timestamp": now,
            "received_at": now,
            "channel": "smart",
        }
        await anyio.to_thread.run_sync(st.writer.write, "card_feedback", [row])
        data["feedback"] = {
            "outcome": outcome,
            "reason": reason.display if reason else None,
            "at": f"{now:%d %b %Y %H:%M} UTC",
        }
        assert st.sessions is not None
        await anyio.to_thread.run_sync(st.sessions.update, session_id, data)
    except SmartError as exc:
        return _error(exc)
    log.info("smart feedback stored", extra={"service_id": service_id, "outcome": outcome})
    return _redirect(_app_url(settings, handle), 303)

"""The SMART app's server-side session as its routes see it: cookies, the ready session of a
launch, the card it was opened from, and the error page every step answers with.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime
from typing import Any, TypeVar
from urllib.parse import urlsplit

from fastapi import Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from cds_service.config import Settings
from cds_service.db.health import WEB_BUDGET_SECONDS, DatabaseUnavailable
from cds_service.security.pseudonym import pseudonym
from cds_service.state import ServiceState
from cds_service.web.errors import SignInError
from cds_service.web.sessions import SessionStore
from cds_service.web.smart.flow import HANDLE, SESSION_KIND, cookie_name, open_context
from cds_service.web.smart.page import SECURITY_HEADERS, error_page
from cds_service.web.smart.view import CardRecord, current_answer, find_card
from cds_service.web.smart.words import Words

log = logging.getLogger("cds_service.web.smart")
T = TypeVar("T")


def words_of(st: ServiceState) -> Words:
    return Words(st.settings.language, st.settings.display_timezone)


def error_response(exc: SignInError, words: Words) -> HTMLResponse:
    # The reason (with an OAuth error code where the EHR sent one), never an identifier.
    log.info(
        "smart app refused %d: %s: %s",
        exc.status,
        exc.title,
        exc.message,
        extra={"status": exc.status},
    )
    return HTMLResponse(
        error_page(words.message(exc.title), words.message(exc.message), words),
        status_code=exc.status,
        headers=SECURITY_HEADERS,
    )


DATABASE_AWAY = (
    "The app's database is not answering. The risk card in the EHR is not affected; open the "
    "app again from the card in a minute."
)


async def _within_budget(st: ServiceState, work: Callable[[], T]) -> T:
    """A session or card lookup off the event loop within the browser budget; a database that
    is away or does not answer in time ends the step with a 503 page (no identifiers)."""
    try:
        return await st.writer.health.call(work, WEB_BUDGET_SECONDS)
    except DatabaseUnavailable:
        raise SignInError(503, DATABASE_AWAY, title="Temporarily unavailable") from None


def cookie_path(settings: Settings) -> str:
    return urlsplit(settings.public_base_url).path.rstrip("/") + "/smart"


def set_cookie(response: Response, settings: Settings, handle: str, value: str, age: int) -> None:
    # Secure deployments are often embedded in the EHR (an iframe on another site): there the
    # cookie must be SameSite=None (and partitioned); over plain http (development) Lax works
    # for the top-level redirects of the launch.
    response.set_cookie(
        cookie_name(handle),
        value,
        max_age=age,
        path=cookie_path(settings),
        httponly=True,
        secure=settings.cookie_secure,
        samesite="none" if settings.cookie_secure else "lax",
        partitioned=settings.cookie_secure,
    )


def session_store(st: ServiceState) -> SessionStore:
    assert st.sessions is not None, "the SMART app needs the session table (built at start-up)"
    return st.sessions


def redirect(url: str, status: int) -> RedirectResponse:
    return RedirectResponse(url, status_code=status, headers=SECURITY_HEADERS)


def app_url(settings: Settings, handle: str) -> str:
    return f"{settings.public_base_url}/smart/app?s={handle}"


SESSION_ENDED = (
    "This app's access has ended (it lasts as long as the EHR's access token). "
    "Open the app again from the risk card."
)


async def ready_session(
    st: ServiceState, request: Request, handle: str | None, now: datetime
) -> tuple[str, dict[str, Any]]:
    if not handle or not HANDLE.fullmatch(handle):
        raise SignInError(
            400, "Open the app from the risk card in the EHR.", title="Unknown launch"
        )
    session_id = request.cookies.get(cookie_name(handle))
    sessions = session_store(st)
    data = None
    if session_id:
        data = await _within_budget(st, lambda: sessions.get(session_id, SESSION_KIND, now))
    if data is None or session_id is None or data.get("stage") != "ready":
        raise SignInError(401, SESSION_ENDED, title="Session expired")
    return session_id, data


def launch_patient(session_id: str, handle: str, data: dict[str, Any]) -> tuple[str, str | None]:
    """The launch's (patient id, encounter id), kept sealed in the session (never in clear in
    SQL); only the holder of the session's cookie can open them."""
    context = open_context(session_id, handle, str(data.get("context", "")))
    if context is None:
        raise SignInError(401, SESSION_ENDED, title="Session expired")
    return context


async def launch_card(st: ServiceState, data: dict[str, Any], patient: str) -> CardRecord | None:
    card_uuid = data.get("card")
    if not card_uuid:
        return None
    key = pseudonym(st.settings.effective_pseudonym_key, "Patient", patient)
    return await _within_budget(st, lambda: find_card(st.writer.engine, card_uuid, key))


async def given_answer(st: ServiceState, data: dict[str, Any]) -> dict[str, Any] | None:
    """The response the page shows: this launch's, else the user's current one on the card."""
    given = data.get("feedback")
    if isinstance(given, dict):
        return given
    card_uuid, user = data.get("card"), data.get("user")
    if not isinstance(card_uuid, str) or not isinstance(user, str):
        return None  # an unknown user's answers are not "yours"
    return await _within_budget(st, lambda: current_answer(st.writer.engine, card_uuid, user))


def card_problem(data: dict[str, Any], card: CardRecord | None, service_id: str) -> str | None:
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


def service_of(st: ServiceState, data: dict[str, Any], card: CardRecord | None) -> str:
    service = data.get("service")
    if isinstance(service, str) and service in st.registry.services:
        return service
    if card is not None and card.service_id in st.registry.services:
        return card.service_id
    raise SignInError(
        400,
        "The launch names no risk card (no appContext) and no risk service: open the app from "
        "the card's link, or register its launch URL in the EHR's app menu with "
        f"?service=<id> (one of: {', '.join(sorted(st.registry.services))}).",
        title="No risk card in context",
    )

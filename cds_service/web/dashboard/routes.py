"""Routes of the quality-team dashboard.

``/dashboard`` (HTML) and ``/dashboard/api/data`` (the same figures as JSON) need a signed-in
member of the quality team: OpenID Connect (``/dashboard/login``, ``/dashboard/callback``,
``/dashboard/logout``), or in development a configured local user. Without either, they answer
503 with how to configure sign-in. ``/dashboard/static/dashboard.css`` is the only asset.
"""

from __future__ import annotations

import dataclasses
import logging
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import anyio
import orjson
from fastapi import APIRouter, Request
from fastapi.datastructures import QueryParams
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from cds_service.config import Settings
from cds_service.deps import State
from cds_service.serving.registry import Registry
from cds_service.state import ServiceState
from cds_service.web.dashboard import pages, queries
from cds_service.web.dashboard.auth import (
    LOGIN_COOKIE,
    LOGIN_KIND,
    LOGIN_LIFETIME,
    SESSION_COOKIE,
    SESSION_KIND,
    OidcClient,
    display_name,
    has_role,
    new_login_state,
    safe_next,
    same_secret,
    sign_in_config,
)
from cds_service.web.dashboard.deps import ApiUser, PageUser
from cds_service.web.dashboard.responses import (
    SECURITY_HEADERS,
    clear_cookie,
    html,
    message,
    set_cookie,
)
from cds_service.web.deps import Sessions
from cds_service.web.errors import SignInError
from cds_service.web.sessions import SessionStore

log = logging.getLogger("cds_service.web.dashboard")
router = APIRouter()

STATIC = Path(__file__).resolve().parent.parent / "static" / "dashboard"
ASSETS = {"dashboard.css": "text/css; charset=utf-8"}
_RETRY = [("Sign in again", "/dashboard/login")]


def _oidc(request: Request, st: ServiceState) -> OidcClient:
    """One client per process (a cache of the provider's metadata and keys)."""
    client: OidcClient | None = getattr(request.app.state, "dashboard_oidc", None)
    if client is None:
        assert st.web_http is not None
        client = OidcClient(st.settings, st.web_http)
        request.app.state.dashboard_oidc = client
    return client


# --- filters ----------------------------------------------------------------------------------


def _parse_day(value: str | None) -> date | None:
    if not value:
        return None
    try:
        return date.fromisoformat(value[:10])
    except ValueError:
        return None


def _date_range(q: QueryParams, last_day: date | None, notices: list[str]) -> tuple[date, date]:
    start, end = _parse_day(q.get("from")), _parse_day(q.get("to"))
    if end is None:
        end = last_day or datetime.now(UTC).date()
    if start is None:
        start = end - timedelta(days=27)
    if start > end:
        start, end = end, start
    if (end - start).days + 1 > queries.MAX_RANGE_DAYS:
        start = end - timedelta(days=queries.MAX_RANGE_DAYS - 1)
        notices.append(f"The date range was shortened to {queries.MAX_RANGE_DAYS} days.")
    return start, end


def _filters(
    q: QueryParams, conn: Any, registry: Registry, settings: Settings
) -> tuple[queries.Filters, queries.Options, list[str]]:
    notices: list[str] = []
    service = (q.get("service") or "")[:128] or queries.latest_service(conn)
    if not service:
        service = sorted(registry.services)[0] if registry.services else "?"
    environment = (q.get("environment") or settings.environment.value)[:16]
    model = (q.get("model") or "")[:128] or None
    opts = queries.options(conn, registry, service, environment, model)
    start, end = _date_range(q, opts.last_day, notices)
    window = q.get("window")
    f = queries.Filters(
        service_id=service,
        environment=environment,
        start=start,
        end=end,
        role=str(q.get("role") if q.get("role") in queries.ROLES else "live"),
        model_version=(q.get("version") or "")[:64] or None,
        model_name=model if model in opts.models else None,
        window_seconds=int(window) if window and window.isdigit() and len(window) < 10 else None,
    )
    if opts.last_day is not None and opts.last_day < start:
        notices.append(f"The latest card of this service is from {opts.last_day:%d %b %Y}.")
    return f, opts, notices


def _collect(
    st: ServiceState, q: QueryParams
) -> tuple[queries.DashboardData, queries.Options, list[str]]:
    with st.writer.engine.connect() as conn:
        f, opts, notices = _filters(q, conn, st.registry, st.settings)
    data = queries.collect(st.writer.engine, st.registry, f, st.settings.small_cell_min)
    return data, opts, notices


# --- pages ------------------------------------------------------------------------------------


@router.get("/dashboard", response_class=HTMLResponse, include_in_schema=False)
async def dashboard(request: Request, st: State, user: PageUser) -> Response:
    if isinstance(user, Response):
        return user
    data, opts, notices = await anyio.to_thread.run_sync(_collect, st, request.query_params)
    return html(pages.dashboard_page(data, opts, user, notices))


def _key(value: Any) -> str:
    if isinstance(value, queries.WindowKey):
        return f"{value.start.isoformat()}/{value.end.isoformat()}"
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, tuple):
        return "|".join(_key(v) for v in value)
    return str(value)


def plain(value: Any) -> Any:
    """Dataclasses, dates and tuple-keyed dicts as JSON-ready values."""
    if isinstance(value, queries.WindowKey):
        return {"start": value.start.isoformat(), "end": value.end.isoformat()}
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, dict):
        return {_key(k): plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    if isinstance(value, datetime | date):
        return value.isoformat()
    return value


@router.get("/dashboard/api/data", include_in_schema=False)
async def dashboard_data(request: Request, st: State, user: ApiUser) -> Response:
    """The dashboard's figures as JSON (aggregates only), for other tools and for tests."""
    if isinstance(user, Response):
        return user
    data, _opts, notices = await anyio.to_thread.run_sync(_collect, st, request.query_params)
    body = plain(data)
    body["notices"] = notices
    return Response(
        orjson.dumps(body), media_type="application/json", headers={"Cache-Control": "no-store"}
    )


@router.get("/dashboard/static/{name}", include_in_schema=False)
async def static_asset(name: str) -> Response:
    media = ASSETS.get(name)
    if media is None:
        return Response("not found", 404, media_type="text/plain")
    content = await anyio.to_thread.run_sync((STATIC / name).read_bytes)
    return Response(
        content,
        media_type=media,
        headers={"Cache-Control": "public, max-age=3600", "X-Content-Type-Options": "nosniff"},
    )


# --- sign-in ----------------------------------------------------------------------------------


@router.get("/dashboard/login", include_in_schema=False)
async def login(request: Request, st: State, sessions: Sessions) -> Response:
    config = sign_in_config(st.settings)
    next_url = safe_next(request.query_params.get("next"))
    if config.mode == "development":
        return RedirectResponse(next_url, 303, headers=SECURITY_HEADERS)
    if config.mode != "oidc" or sessions is None:
        return html(pages.not_configured_page(config.problem or "No session store."), 503)
    state = new_login_state(next_url)
    try:
        url = await _oidc(request, st).authorization_url(state)
    except SignInError as exc:
        return message(exc.status, "Sign-in is not available", exc.message)
    handle = await anyio.to_thread.run_sync(
        lambda: sessions.create(LOGIN_KIND, state, LOGIN_LIFETIME, now=st.clock())
    )
    response = RedirectResponse(url, 303, headers=SECURITY_HEADERS)
    set_cookie(response, st.settings, LOGIN_COOKIE, handle, int(LOGIN_LIFETIME.total_seconds()))
    return response


def _check_answer(q: QueryParams, login_state: dict[str, Any] | None) -> str:
    """The code of the provider's answer to the sign-in started in this browser."""
    if login_state is None:
        raise SignInError(
            400,
            "This sign-in was not started here or took longer than ten minutes.",
            title="Sign-in expired",
        )
    if not same_secret(q.get("state"), login_state.get("state")):
        raise SignInError(
            400, "The sign-in answer does not match (state).", title="Sign-in refused"
        )
    if q.get("error"):
        error = str(q.get("error"))[:64]
        raise SignInError(
            403 if error == "access_denied" else 400,
            f"The identity provider answered: {error}.",
            title="Sign-in was not completed",
        )
    code = q.get("code")
    if not code:
        raise SignInError(400, "The identity provider sent no code.", title="Sign-in refused")
    return code


def _refusal(exc: SignInError) -> Response:
    """A refused answer offers a new sign-in, unless it looks forged (then it is not ours)."""
    retry = [] if exc.title == "Sign-in refused" else _RETRY
    return message(exc.status, exc.title, exc.message, actions=retry)


def _not_in_team(st: ServiceState, name: str) -> Response:
    log.info("dashboard sign-in without the quality-team role refused")
    claim, value = st.settings.dashboard_role_claim, st.settings.dashboard_role_value
    refusal = message(
        403,
        "Not for this account",
        f"You are signed in as {name}, but the dashboard is only for the quality team: your "
        f"account's '{claim}' claim does not include '{value}'."
        " Ask the identity provider's administrators for access.",
    )
    clear_cookie(refusal, st.settings, LOGIN_COOKIE)
    return refusal


async def _start_session(
    st: ServiceState, sessions: SessionStore, claims: dict[str, Any], issuer: str
) -> str:
    data = {
        "sub": str(claims["sub"]),
        "name": display_name(claims),
        "iss": issuer,
        "signed_in_at": st.clock().isoformat(),
    }
    lifetime = timedelta(seconds=st.settings.session_lifetime_seconds)

    def create() -> str:
        sessions.purge(now=st.clock())
        return sessions.create(SESSION_KIND, data, lifetime, now=st.clock())

    return await anyio.to_thread.run_sync(create)


@router.get("/dashboard/callback", include_in_schema=False)
async def callback(request: Request, st: State, sessions: Sessions) -> Response:
    if sign_in_config(st.settings).mode != "oidc" or sessions is None:
        return html(pages.not_configured_page("OpenID Connect is not configured."), 503)
    handle = request.cookies.get(LOGIN_COOKIE)
    login_state = await anyio.to_thread.run_sync(
        lambda: sessions.get(handle, LOGIN_KIND, now=st.clock())
    )
    if login_state is not None and handle is not None:  # one use only, whatever happens next
        await anyio.to_thread.run_sync(sessions.delete, handle)
    oidc = _oidc(request, st)
    try:
        code = _check_answer(request.query_params, login_state)
    except SignInError as exc:
        return _refusal(exc)
    assert login_state is not None
    try:
        claims = await oidc.sign_in(code, login_state, st.settings.dashboard_role_claim)
    except SignInError as exc:
        log.warning("dashboard sign-in failed: %s", exc.message)
        return _refusal(exc)
    if not has_role(claims, st.settings.dashboard_role_claim, st.settings.dashboard_role_value):
        return _not_in_team(st, display_name(claims))
    session_id = await _start_session(st, sessions, claims, oidc.issuer)
    response = RedirectResponse(safe_next(login_state.get("next")), 303, headers=SECURITY_HEADERS)
    lifetime = st.settings.session_lifetime_seconds
    set_cookie(response, st.settings, SESSION_COOKIE, session_id, lifetime)
    clear_cookie(response, st.settings, LOGIN_COOKIE)
    return response


@router.api_route("/dashboard/logout", methods=["GET", "POST"], include_in_schema=False)
async def logout(request: Request, st: State, sessions: Sessions) -> Response:
    handle = request.cookies.get(SESSION_COOKIE)
    if handle and sessions is not None and len(handle) <= 100:
        await anyio.to_thread.run_sync(sessions.delete, handle)
    response = message(
        200,
        "Signed out",
        "You are signed out of the dashboard. Your sign-in at the hospital's identity provider "
        "may still be active.",
        actions=_RETRY,
    )
    clear_cookie(response, st.settings, SESSION_COOKIE)
    return response

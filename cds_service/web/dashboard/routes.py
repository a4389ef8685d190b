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
from urllib.parse import urlencode

import anyio
import orjson
from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from cds_service.config import Settings
from cds_service.web.dashboard import pages, queries
from cds_service.web.dashboard.auth import (
    COOKIE_PATH,
    LOGIN_COOKIE,
    LOGIN_KIND,
    LOGIN_LIFETIME,
    SESSION_COOKIE,
    SESSION_KIND,
    DashboardUser,
    OidcClient,
    SignInError,
    display_name,
    has_role,
    new_login_state,
    safe_next,
    same_secret,
    sign_in_config,
)

log = logging.getLogger("cds_service.web.dashboard")
router = APIRouter()

STATIC = Path(__file__).resolve().parent.parent / "static" / "dashboard"
ASSETS = {"dashboard.css": "text/css; charset=utf-8"}
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'self'; img-src 'self' data:; form-action 'self'; "
        "frame-ancestors 'none'; base-uri 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "X-Frame-Options": "DENY",
    "Cache-Control": "no-store",
}


def _state(request: Request) -> Any:
    return request.app.state.cds


def _html(body: str, status: int = 200) -> HTMLResponse:
    return HTMLResponse(body, status_code=status, headers=SECURITY_HEADERS)


def _message(status: int, title: str, message: str, **kw: Any) -> HTMLResponse:
    return _html(pages.message_page(title, message, **kw), status)


def _oidc(request: Request) -> OidcClient:
    """One client per process (a cache of the provider's metadata and keys)."""
    client: OidcClient | None = getattr(request.app.state, "dashboard_oidc", None)
    if client is None:
        st = _state(request)
        client = OidcClient(st.settings, st.web_http)
        request.app.state.dashboard_oidc = client
    return client


def _set_cookie(
    response: Response, settings: Settings, name: str, value: str, max_age: int
) -> None:
    response.set_cookie(
        name,
        value,
        max_age=max_age,
        path=COOKIE_PATH,
        httponly=True,
        samesite="lax",
        secure=settings.cookie_secure,
    )


def _clear_cookie(response: Response, settings: Settings, name: str) -> None:
    response.delete_cookie(
        name, path=COOKIE_PATH, httponly=True, samesite="lax", secure=settings.cookie_secure
    )


class _Refused(Exception):
    def __init__(self, response: Response) -> None:
        self.response = response


def _current_user(request: Request, *, api: bool) -> DashboardUser:
    """The signed-in user, or raise _Refused with the answer (redirect, 401, 503)."""
    st = _state(request)
    config = sign_in_config(st.settings)
    if config.mode == "unconfigured":
        if api:
            body = {"error": "dashboard sign-in is not configured", "detail": config.problem}
            raise _Refused(Response(orjson.dumps(body), 503, media_type="application/json"))
        raise _Refused(_html(pages.not_configured_page(config.problem), 503))
    if config.mode == "development":
        name = str(st.settings.dashboard_dev_user)
        return DashboardUser(name, name, "development")
    data = None
    if st.sessions is not None:
        data = st.sessions.get(request.cookies.get(SESSION_COOKIE), SESSION_KIND, now=st.clock())
    if data is None:
        if api:
            raise _Refused(
                Response(
                    orjson.dumps({"error": "sign in at /dashboard/login"}),
                    401,
                    media_type="application/json",
                    headers={"WWW-Authenticate": 'Bearer realm="dashboard"', **SECURITY_HEADERS},
                )
            )
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        login = "/dashboard/login?" + urlencode({"next": target})
        raise _Refused(RedirectResponse(login, 303, headers=SECURITY_HEADERS))
    return DashboardUser(str(data.get("sub", "")), str(data.get("name", "")), "oidc")


# --- filters ----------------------------------------------------------------------------------


def _parse_day(value: str | None) -> date | None:
    if not value:
        return None
    try:
        return date.fromisoformat(value[:10])
    except ValueError:
        return None


def _filters(
    request: Request, conn: Any, registry: Any, settings: Settings
) -> tuple[queries.Filters, queries.Options, list[str]]:
    q = request.query_params
    notices: list[str] = []
    service = (q.get("service") or "")[:128] or queries.latest_service(conn)
    if not service:
        service = sorted(registry.services)[0] if registry.services else "?"
    environment = (q.get("environment") or settings.environment.value)[:16]
    opts = queries.options(conn, registry, service, environment)
    role = q.get("role") if q.get("role") in queries.ROLES else "live"
    version = (q.get("version") or "")[:64] or None
    today = datetime.now(UTC).date()
    start, end = _parse_day(q.get("from")), _parse_day(q.get("to"))
    if end is None:
        end = opts.last_day or today
    if start is None:
        start = end - timedelta(days=27)
    if start > end:
        start, end = end, start
    if (end - start).days + 1 > queries.MAX_RANGE_DAYS:
        start = end - timedelta(days=queries.MAX_RANGE_DAYS - 1)
        notices.append(f"The date range was shortened to {queries.MAX_RANGE_DAYS} days.")
    window = q.get("window")
    window_seconds = int(window) if window and window.isdigit() and len(window) < 10 else None
    f = queries.Filters(
        service_id=service,
        environment=environment,
        start=start,
        end=end,
        role=str(role),
        model_version=version,
        window_seconds=window_seconds,
    )
    if opts.last_day is not None and opts.last_day < start:
        notices.append(f"The latest card of this service is from {opts.last_day:%d %b %Y}.")
    return f, opts, notices


def _collect(request: Request) -> tuple[queries.DashboardData, queries.Options, list[str]]:
    st = _state(request)
    with st.writer.engine.connect() as conn:
        f, opts, notices = _filters(request, conn, st.registry, st.settings)
    return queries.collect(st.writer.engine, st.registry, f), opts, notices


# --- pages ------------------------------------------------------------------------------------


@router.get("/dashboard", response_class=HTMLResponse, include_in_schema=False)
async def dashboard(request: Request) -> Response:
    try:
        user = await anyio.to_thread.run_sync(lambda: _current_user(request, api=False))
    except _Refused as refused:
        return refused.response
    data, opts, notices = await anyio.to_thread.run_sync(_collect, request)
    return _html(pages.dashboard_page(data, opts, user, notices))


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
async def dashboard_data(request: Request) -> Response:
    """The dashboard's figures as JSON (aggregates only), for other tools and for tests."""
    try:
        await anyio.to_thread.run_sync(lambda: _current_user(request, api=True))
    except _Refused as refused:
        return refused.response
    data, _opts, notices = await anyio.to_thread.run_sync(_collect, request)
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
async def login(request: Request) -> Response:
    st = _state(request)
    config = sign_in_config(st.settings)
    next_url = safe_next(request.query_params.get("next"))
    if config.mode == "development":
        return RedirectResponse(next_url, 303, headers=SECURITY_HEADERS)
    if config.mode != "oidc" or st.sessions is None:
        return _html(pages.not_configured_page(config.problem or "No session store."), 503)
    state = new_login_state(next_url)
    try:
        url = await _oidc(request).authorization_url(state)
    except SignInError as exc:
        return _message(exc.status, "Sign-in is not available", exc.message)
    handle = await anyio.to_thread.run_sync(
        lambda: st.sessions.create(LOGIN_KIND, state, LOGIN_LIFETIME, now=st.clock())
    )
    response = RedirectResponse(url, 303, headers=SECURITY_HEADERS)
    _set_cookie(response, st.settings, LOGIN_COOKIE, handle, int(LOGIN_LIFETIME.total_seconds()))
    return response


@router.get("/dashboard/callback", include_in_schema=False)
async def callback(request: Request) -> Response:
    st = _state(request)
    if sign_in_config(st.settings).mode != "oidc" or st.sessions is None:
        return _html(pages.not_configured_page("OpenID Connect is not configured."), 503)
    q = request.query_params
    handle = request.cookies.get(LOGIN_COOKIE)
    login_state = await anyio.to_thread.run_sync(
        lambda: st.sessions.get(handle, LOGIN_KIND, now=st.clock())
    )
    retry = [("Sign in again", "/dashboard/login")]
    if login_state is None:
        return _message(
            400,
            "Sign-in expired",
            "This sign-in was not started here or took longer than ten minutes.",
            actions=retry,
        )
    # One use only, whatever happens next.
    await anyio.to_thread.run_sync(st.sessions.delete, handle)
    if not same_secret(q.get("state"), login_state.get("state")):
        return _message(400, "Sign-in refused", "The sign-in answer does not match (state).")
    if q.get("error"):
        error = str(q.get("error"))[:64]
        status = 403 if error == "access_denied" else 400
        message = f"The identity provider answered: {error}."
        return _message(status, "Sign-in was not completed", message, actions=retry)
    code = q.get("code")
    if not code:
        return _message(400, "Sign-in refused", "The identity provider sent no code.")
    oidc = _oidc(request)
    role_claim = st.settings.dashboard_role_claim
    try:
        claims = await oidc.sign_in(code, login_state, role_claim)
    except SignInError as exc:
        log.warning("dashboard sign-in failed: %s", exc.message)
        return _message(exc.status, "Sign-in failed", exc.message, actions=retry)
    name = display_name(claims)
    if not has_role(claims, role_claim, st.settings.dashboard_role_value):
        log.info("dashboard sign-in without the quality-team role refused")
        refusal = _message(
            403,
            "Not for this account",
            f"You are signed in as {name}, but the dashboard is only for the quality team: your "
            f"account's '{role_claim}' claim does not include '{st.settings.dashboard_role_value}'."
            " Ask the identity provider's administrators for access.",
        )
        _clear_cookie(refusal, st.settings, LOGIN_COOKIE)
        return refusal
    data = {
        "sub": str(claims["sub"]),
        "name": name,
        "iss": oidc.issuer,
        "signed_in_at": st.clock().isoformat(),
    }
    lifetime = timedelta(seconds=st.settings.session_lifetime_seconds)

    def create() -> str:
        st.sessions.purge(now=st.clock())
        handle: str = st.sessions.create(SESSION_KIND, data, lifetime, now=st.clock())
        return handle

    session_id = await anyio.to_thread.run_sync(create)
    response = RedirectResponse(safe_next(login_state.get("next")), 303, headers=SECURITY_HEADERS)
    _set_cookie(
        response, st.settings, SESSION_COOKIE, session_id, st.settings.session_lifetime_seconds
    )
    _clear_cookie(response, st.settings, LOGIN_COOKIE)
    return response


@router.api_route("/dashboard/logout", methods=["GET", "POST"], include_in_schema=False)
async def logout(request: Request) -> Response:
    st = _state(request)
    handle = request.cookies.get(SESSION_COOKIE)
    if handle and st.sessions is not None and len(handle) <= 100:
        await anyio.to_thread.run_sync(st.sessions.delete, handle)
    response = _message(
        200,
        "Signed out",
        "You are signed out of the dashboard. Your sign-in at the hospital's identity provider "
        "may still be active.",
        actions=[("Sign in again", "/dashboard/login")],
    )
    _clear_cookie(response, st.settings, SESSION_COOKIE)
    return response

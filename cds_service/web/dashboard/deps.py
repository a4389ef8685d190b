"""The dashboard's one dependency: who is signed in, or the answer for someone who is not.

A page gets a redirect to the sign-in (or 503 with how to configure it); the JSON API gets 401
or 503 as JSON. Routes receive either a ``DashboardUser`` or that ready ``Response`` and return
the latter as it is. The session lookup runs off the event loop within the browser budget; when
the database does not answer, a page gets a 503 page and the API a 503 JSON body saying so.
"""

from __future__ import annotations

from typing import Annotated
from urllib.parse import urlencode

import orjson
from fastapi import Depends, Request
from fastapi.responses import RedirectResponse, Response

from cds_service.db.health import WEB_BUDGET_SECONDS, DatabaseUnavailable
from cds_service.deps import State
from cds_service.web.dashboard import pages
from cds_service.web.dashboard.auth import (
    SESSION_COOKIE,
    SESSION_KIND,
    DashboardUser,
    sign_in_config,
)
from cds_service.web.dashboard.responses import SECURITY_HEADERS, html, message
from cds_service.web.deps import request_target

__all__ = ["ApiUser", "PageUser", "api_user", "page_user"]


def _json(status: int, body: dict[str, str], headers: dict[str, str] | None = None) -> Response:
    return Response(orjson.dumps(body), status, media_type="application/json", headers=headers)


def _database_away(api: bool) -> Response:
    text = (
        "The dashboard's database is not answering. Cards are still served to the EHR and "
        "recorded; try again in a minute."
    )
    if api:
        body = {"error": "dashboard database unavailable", "detail": text}
        return _json(503, body, {"Retry-After": "30", **SECURITY_HEADERS})
    return message(503, "Dashboard temporarily unavailable", text)


async def _signed_in(request: Request, st: State, *, api: bool) -> DashboardUser | Response:
    config = sign_in_config(st.settings)
    if config.mode == "unconfigured":
        if api:
            body = {"error": "dashboard sign-in is not configured", "detail": config.problem}
            return _json(503, body)
        return html(pages.not_configured_page(config.problem), 503)
    if config.mode == "development":
        name = str(st.settings.dashboard_dev_user)
        return DashboardUser(name, name, "development")
    data = None
    cookie, sessions, now = request.cookies.get(SESSION_COOKIE), st.sessions, st.clock()
    if cookie and sessions is not None:  # no cookie: nothing to look up, sign in
        try:
            data = await st.writer.health.call(
                lambda: sessions.get(cookie, SESSION_KIND, now=now), WEB_BUDGET_SECONDS
            )
        except DatabaseUnavailable:
            return _database_away(api)
    if data is not None:
        return DashboardUser(str(data.get("sub", "")), str(data.get("name", "")), "oidc")
    if api:
        headers = {"WWW-Authenticate": 'Bearer realm="dashboard"', **SECURITY_HEADERS}
        return _json(401, {"error": "sign in at /dashboard/login"}, headers)
    login = "/dashboard/login?" + urlencode({"next": request_target(request)})
    return RedirectResponse(login, 303, headers=SECURITY_HEADERS)


async def page_user(request: Request, st: State) -> DashboardUser | Response:
    return await _signed_in(request, st, api=False)


async def api_user(request: Request, st: State) -> DashboardUser | Response:
    return await _signed_in(request, st, api=True)


PageUser = Annotated[DashboardUser | Response, Depends(page_user)]
ApiUser = Annotated[DashboardUser | Response, Depends(api_user)]

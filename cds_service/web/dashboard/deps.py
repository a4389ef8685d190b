"""The dashboard's one dependency: who is signed in, or the answer for someone who is not.

A page gets a redirect to the sign-in (or 503 with how to configure it); the JSON API gets 401
or 503 as JSON. Routes receive either a ``DashboardUser`` or that ready ``Response`` and return
the latter as it is. FastAPI runs these (synchronous, they read the session table) in its thread
pool.
"""

from __future__ import annotations

from typing import Annotated
from urllib.parse import urlencode

import orjson
from fastapi import Depends, Request
from fastapi.responses import RedirectResponse, Response

from cds_service.deps import State
from cds_service.web.dashboard import pages
from cds_service.web.dashboard.auth import (
    SESSION_COOKIE,
    SESSION_KIND,
    DashboardUser,
    sign_in_config,
)
from cds_service.web.dashboard.responses import SECURITY_HEADERS, html
from cds_service.web.deps import request_target

__all__ = ["ApiUser", "PageUser", "api_user", "page_user"]


def _json(status: int, body: dict[str, str], headers: dict[str, str] | None = None) -> Response:
    return Response(orjson.dumps(body), status, media_type="application/json", headers=headers)


def _signed_in(request: Request, st: State, *, api: bool) -> DashboardUser | Response:
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
    if st.sessions is not None:
        data = st.sessions.get(request.cookies.get(SESSION_COOKIE), SESSION_KIND, now=st.clock())
    if data is not None:
        return DashboardUser(str(data.get("sub", "")), str(data.get("name", "")), "oidc")
    if api:
        headers = {"WWW-Authenticate": 'Bearer realm="dashboard"', **SECURITY_HEADERS}
        return _json(401, {"error": "sign in at /dashboard/login"}, headers)
    login = "/dashboard/login?" + urlencode({"next": request_target(request)})
    return RedirectResponse(login, 303, headers=SECURITY_HEADERS)


def page_user(request: Request, st: State) -> DashboardUser | Response:
    return _signed_in(request, st, api=False)


def api_user(request: Request, st: State) -> DashboardUser | Response:
    return _signed_in(request, st, api=True)


PageUser = Annotated[DashboardUser | Response, Depends(page_user)]
ApiUser = Annotated[DashboardUser | Response, Depends(api_user)]

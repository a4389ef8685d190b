"""FastAPI dependencies of the browser apps (dashboard, SMART app), beside ``cds_service.deps``.

The browser flows need a few pieces the CDS Hooks routes do not: the server-side session store,
the HTTP client for identity providers and FHIR servers, the time in UTC, and (dashboard) the
signed-in quality-team member.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

import httpx
from fastapi import Depends, Request

from cds_service.deps import State
from cds_service.web.sessions import SessionStore

__all__ = ["Sessions", "UtcNow", "WebHttp", "get_sessions", "get_utc_now", "get_web_http"]


def get_sessions(state: State) -> SessionStore | None:
    """``None`` when the service runs without the browser apps' session table."""
    return state.sessions


def get_web_http(state: State) -> httpx.AsyncClient:
    assert state.web_http is not None, "the browser flows' HTTP client is built at start-up"
    return state.web_http


def get_utc_now(state: State) -> datetime:
    return state.clock().astimezone(UTC)


def request_target(request: Request) -> str:
    """Path and query of this request: where to return after signing in."""
    return request.url.path + (f"?{request.url.query}" if request.url.query else "")


Sessions = Annotated[SessionStore | None, Depends(get_sessions)]
WebHttp = Annotated[httpx.AsyncClient, Depends(get_web_http)]
UtcNow = Annotated[datetime, Depends(get_utc_now)]

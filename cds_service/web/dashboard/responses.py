"""The dashboard's HTTP answers: security headers, HTML pages and its cookies, so every route
and dependency answers with the same headers."""

from __future__ import annotations

from collections.abc import Sequence

from fastapi.responses import HTMLResponse, Response

from cds_service.config import Settings
from cds_service.web.dashboard import pages
from cds_service.web.dashboard.auth import COOKIE_PATH

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


def html(body: str, status: int = 200) -> HTMLResponse:
    return HTMLResponse(body, status_code=status, headers=SECURITY_HEADERS)


def message(
    status: int, title: str, text: str, *, actions: Sequence[tuple[str, str]] = ()
) -> HTMLResponse:
    return html(pages.message_page(title, text, actions=actions), status)


def set_cookie(response: Response, settings: Settings, name: str, value: str, max_age: int) -> None:
    response.set_cookie(
        name,
        value,
        max_age=max_age,
        path=COOKIE_PATH,
        httponly=True,
        samesite="lax",
        secure=settings.cookie_secure,
    )


def clear_cookie(response: Response, settings: Settings, name: str) -> None:
    response.delete_cookie(
        name, path=COOKIE_PATH, httponly=True, samesite="lax", secure=settings.cookie_secure
    )

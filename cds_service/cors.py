"""CORS for browser-based CDS clients (the CDS Hooks sandbox), with a log line for every refused
preflight: the browser shows its user only "blocked by CORS policy", so the service's log is where
an integrator learns which origin, method or header to allow, and where (CDS_CORS_ORIGINS).
"""

from __future__ import annotations

import logging

from starlette.datastructures import Headers
from starlette.middleware.cors import CORSMiddleware
from starlette.responses import Response
from starlette.types import ASGIApp

__all__ = ["ALLOW_HEADERS", "ALLOW_METHODS", "EXPOSE_HEADERS", "LoggedCors"]

log = logging.getLogger("cds_service.cors")
ALLOW_METHODS = ("GET", "POST", "OPTIONS")
ALLOW_HEADERS = ("Authorization", "Content-Type")
# A browser client reads why a call was refused (RFC 6750's challenge) only if it is exposed.
EXPOSE_HEADERS = ("WWW-Authenticate",)


class LoggedCors(CORSMiddleware):
    """Starlette's CORS middleware; a refused preflight also writes why to the log."""

    def __init__(self, app: ASGIApp, origins: list[str], *, private_network: bool) -> None:
        super().__init__(
            app,
            allow_origins=origins,
            allow_methods=list(ALLOW_METHODS),
            allow_headers=list(ALLOW_HEADERS),
            expose_headers=list(EXPOSE_HEADERS),
            allow_private_network=private_network,
            max_age=600,
        )
        self._origins = origins

    def preflight_response(self, request_headers: Headers) -> Response:
        response = super().preflight_response(request_headers)
        if response.status_code != 200:
            log.warning("CORS preflight refused: %s", "; ".join(self._reasons(request_headers)))
        return response

    def _reasons(self, headers: Headers) -> list[str]:
        """What the browser asked for that is not allowed (values are origins, methods and
        header names: never request data)."""
        reasons = []
        origin = headers.get("origin", "")[:200]
        if not self.is_allowed_origin(origin):
            listed = ", ".join(self._origins) or "none"
            reasons.append(f"origin {origin} is not in CDS_CORS_ORIGINS (allowed: {listed})")
        method = headers.get("access-control-request-method", "")[:20]
        if method not in self.allow_methods:
            reasons.append(f"method {method} is not allowed ({', '.join(ALLOW_METHODS)})")
        asked = headers.get("access-control-request-headers")
        if asked is not None:
            extra = [h.strip() for h in asked.lower().split(",") if h.strip()]
            refused = [h[:40] for h in extra if h not in self.allow_headers][:5]
            if refused:
                allowed = ", ".join(ALLOW_HEADERS)
                reasons.append(f"header(s) {', '.join(refused)} not allowed ({allowed})")
        if "access-control-request-private-network" in headers and not self.allow_private_network:
            reasons.append("private network access is allowed only in development")
        return reasons or ["refused"]

"""What every request reads, built once in the lifespan and held on ``app.state.cds``.

Routes never read it by hand: they take the pieces they need through ``cds_service.deps``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime

import httpx
from fastapi import Request

from cds_service.audit.writer import AuditWriter
from cds_service.cds_hooks.fhir_client import FhirClient
from cds_service.config import Settings
from cds_service.errors import ServiceError
from cds_service.security.jwt_auth import Authenticator, AuthError, Caller
from cds_service.serving.registry import Registry
from cds_service.web.sessions import SessionStore

log = logging.getLogger("cds_service")
Clock = Callable[[], datetime]


class ServiceState:
    """Everything a request needs, built once at start-up."""

    def __init__(
        self,
        settings: Settings,
        registry: Registry,
        writer: AuditWriter,
        fhir: FhirClient,
        http: httpx.AsyncClient,
        clock: Clock,
        authenticator: Authenticator | None,
        sessions: SessionStore | None = None,
        web_http: httpx.AsyncClient | None = None,
    ) -> None:
        self.settings = settings
        self.registry = registry
        self.writer = writer
        self.fhir = fhir
        self.http = http
        self.clock = clock
        self.authenticator = authenticator
        # For the dashboard (OIDC) and the SMART app: server-side sessions, and an HTTP client
        # for identity providers and FHIR servers the browser flows talk to.
        self.sessions = sessions
        self.web_http = web_http

    async def caller(self, request: Request, *paths: str, defer: bool = False) -> Caller | None:
        """Verify the JWT for this endpoint (audience = the exact URL called, with or without
        one trailing slash: the same endpoint, so the check is no weaker); ``defer``: the jti is
        reserved, and recorded with the call's audit row (``Caller.pending``)."""
        if self.authenticator is None:
            return None
        base = self.settings.public_base_url
        audiences = tuple(a for p in paths for a in (base + p, base + p + "/"))
        try:
            return await self.authenticator.verify(
                request.headers.get("authorization"), audiences, defer_replay=defer
            )
        except AuthError as exc:  # logged with its reason by the error handler
            raise ServiceError(401, str(exc), log_detail=exc.detail) from None

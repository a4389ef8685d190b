"""The FastAPI application factory: CDS Hooks discovery, service calls and feedback, model cards,
health, the quality dashboard and the SMART app, each from its own router.

One direction of flow per call: HTTP -> request validation -> prefetch/fallback -> fhir_mappers
-> model -> card -> audit -> response (``cds_hooks.pipeline``). What requests read is built in
the lifespan (``cds_service.lifespan``); routes take it through ``cds_service.deps``.
"""

from __future__ import annotations

import inspect
from collections.abc import MutableMapping
from datetime import UTC, datetime
from typing import Any

import httpx
from fastapi import FastAPI

from cds_service.cds_hooks import routes as cds_routes
from cds_service.config import Environment, Settings
from cds_service.cors import LoggedCors
from cds_service.errors import install_error_handlers
from cds_service.lifespan import make_lifespan
from cds_service.serving import routes as serving_routes
from cds_service.state import Clock
from cds_service.web.dashboard import routes as dashboard_routes
from cds_service.web.smart import routes as smart_routes

TRYIT_FHIR_PATH = "/tryit/ehr/fhir/"


def _now() -> datetime:
    return datetime.now(UTC)


def _allow_cors(app: FastAPI, settings: Settings) -> None:
    """The CDS Hooks sandbox (and other browser clients) call from another origin. Installed
    even with no origin allowed, so that a refused preflight says why in the log; a public page
    may call a loopback service (Private Network Access) only in development."""
    dev = settings.environment is Environment.development
    app.add_middleware(LoggedCors, origins=settings.cors_origin_list, private_network=dev)


def _untraced(scope: MutableMapping[str, Any]) -> bool:
    """The try-it page's local FHIR server names (synthetic) patients in its paths, as FHIR
    reads do: no server span for it, so traces never hold a patient id from a path."""
    return str(scope.get("path", "")).startswith(TRYIT_FHIR_PATH)


def _telemetry_options() -> dict[str, Any]:
    """FastAPI's own server spans (FastAPI releases that have them), minus the paths above."""
    if "telemetry" in inspect.signature(FastAPI.__init__).parameters:
        return {"telemetry": {"exclude": _untraced}}
    return {}


def create_app(
    settings: Settings | None = None,
    *,
    clock: Clock = _now,
    transport: httpx.AsyncBaseTransport | None = None,
    jwks_transport: httpx.AsyncBaseTransport | None = None,
) -> FastAPI:
    """``transport`` replaces the network under the FHIR fallback, ``jwks_transport`` under key
    set downloads (tests and benchmarks); ``clock`` is the service's 'now'."""
    settings = settings or Settings()
    app = FastAPI(
        title="CDS risk service",
        version="0.1.0",
        description="CDS Hooks 2.0 services that return calibrated risk cards.",
        lifespan=make_lifespan(settings, clock, transport, jwks_transport),
        **_telemetry_options(),
    )
    _allow_cors(app, settings)
    install_error_handlers(app)
    for router in (
        dashboard_routes.router,
        smart_routes.router,
        cds_routes.router,
        serving_routes.router,
    ):
        app.include_router(router)
    if settings.environment is Environment.development:
        from cds_service.web import tryit  # the try-it page and its local EHR: never elsewhere

        app.include_router(tryit.router)
    return app

"""Start-up and shut-down of the service: everything a request reads is built here, once.

Start-up loads and checks hook definitions and models (a mismatch stops the service), migrates
the database (in development, or with CDS_MIGRATE_ON_START; elsewhere `cds-service db upgrade` is
the deployment's own step), replays any spooled audit rows and reads the deployments. Nothing after
the migrations needs the database: while it is away the worker starts on the models its hook
definitions name, spools, and the background loops catch up when it returns. Shut-down stops the
background loops, closes the HTTP clients and replays the spool one last time.
"""

from __future__ import annotations

import gc
import logging
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import AbstractAsyncContextManager, AsyncExitStack, asynccontextmanager

import anyio
import httpx
from fastapi import FastAPI
from sqlalchemy.engine import Engine

from cds_service.audit.spool import Spool
from cds_service.audit.writer import AuditWriter
from cds_service.background import start_background
from cds_service.cds_hooks.fhir_client import FhirClient
from cds_service.config import Settings
from cds_service.db.engine import make_engine, upgrade
from cds_service.db.health import DatabaseHealth
from cds_service.monitoring.telemetry import configure_metrics
from cds_service.security.jwks import JwksCache
from cds_service.security.jwt_auth import Authenticator
from cds_service.security.replay import ReplayStore
from cds_service.security.trusted_callers import TrustedCallersError, load_trusted_callers
from cds_service.serving.registry import Registry, load_registry
from cds_service.state import Clock, ServiceState
from cds_service.web.sessions import SessionStore
from fhir_mappers.site_terminology import TerminologyError, load_site_terminology
from fhir_mappers.units import DEFAULT_CONVERTER

log = logging.getLogger("cds_service")
GC_THRESHOLD_0 = 20_000
COMMON_UNITS = ("mg/dL", "mmol/L", "umol/L", "[degF]", "[lb_av]", "10*3/uL", "g/L", "mg/L")


def warm_up_units(registry: Registry) -> None:
    """The UCUM registry takes about a second to load: never on a physician's request."""
    pairs = [
        (unit, f.unit, f.molar_mass)
        for m in registry.models.values()
        for f in m.spec.features
        if f.unit
        for unit in COMMON_UNITS
    ]
    DEFAULT_CONVERTER.warm_up(pairs)


# Callers whose private key is public: whoever reads the sandbox's source can sign as it.
DEVELOPMENT_ONLY_ISSUERS = ("https://sandbox.cds-hooks.org",)


def refuse_development_callers(settings: Settings, issuers: Mapping[str, object]) -> None:
    """Outside development a trusted caller must be one only its owner can sign as."""
    if settings.environment.value == "development":
        return
    for iss in DEVELOPMENT_ONLY_ISSUERS:
        if iss in issuers:
            raise TrustedCallersError(
                f"trusted caller {iss} is for development only (its private key is published "
                f"with its source, so anyone can sign as it): remove it in "
                f"{settings.environment.value}"
            )


def build_authenticator(
    settings: Settings,
    engine: Engine,
    http: httpx.AsyncClient,
    clock: Clock,
    writer: AuditWriter | None = None,
) -> Authenticator | None:
    if settings.auth_disabled:
        log.warning("JWT verification is OFF (CDS_AUTH_DISABLED, development only)")
        return None
    path = settings.trusted_issuers_path
    if path.is_file():
        issuers = load_trusted_callers(path)
        refuse_development_callers(settings, issuers)
    else:
        log.warning("no trusted-callers file: every call gets 401 (run `cds-service keys init`)")
        issuers = {}
    jwks = JwksCache(http, min_refresh_seconds=settings.jwks_min_refresh_seconds)
    if writer is None:
        replay = ReplayStore(engine)
    else:  # jtis accepted from memory during an outage reach the shared store through the spool
        replay = ReplayStore(
            engine,
            writer.health,
            lambda key, expires: writer.spool_rows(
                "seen_jti", [{"jti_hash": key, "expires_at": expires}]
            ),
        )
    return Authenticator(
        issuers,
        jwks,
        replay,
        leeway_seconds=settings.jwt_leeway_seconds,
        max_lifetime_seconds=settings.jwt_max_lifetime_seconds,
        clock=clock,
    )


async def _last_replay(writer: AuditWriter) -> None:
    """Shut-down: one more replay, but never held by a stalled database (the spool is durable:
    whatever is not replayed now is replayed by the next worker)."""
    with anyio.move_on_after(5):
        await anyio.to_thread.run_sync(writer.replay, abandon_on_cancel=True)


async def _clients(
    stack: AsyncExitStack,
    settings: Settings,
    transport: httpx.AsyncBaseTransport | None,
    jwks_transport: httpx.AsyncBaseTransport | None,
) -> tuple[httpx.AsyncClient, httpx.AsyncClient, httpx.AsyncClient]:
    """FHIR fallback, key sets, and the browser flows' identity providers; closed on exit."""
    fhir_timeout = httpx.Timeout(settings.fhir_timeout_seconds)
    clients = (
        httpx.AsyncClient(timeout=fhir_timeout, transport=transport, follow_redirects=False),
        httpx.AsyncClient(
            timeout=httpx.Timeout(3.0), transport=jwks_transport, follow_redirects=False
        ),
        httpx.AsyncClient(timeout=fhir_timeout, follow_redirects=False),
    )
    for client in clients:
        await stack.enter_async_context(client)
    return clients


async def _build_state(
    stack: AsyncExitStack,
    settings: Settings,
    clock: Clock,
    transport: httpx.AsyncBaseTransport | None,
    jwks_transport: httpx.AsyncBaseTransport | None,
) -> tuple[ServiceState, Engine]:
    try:
        site = load_site_terminology(settings.site_terminology_dir)
        registry = load_registry(settings.hooks_dir, settings.models_dir, site)
    except TerminologyError as exc:
        log.error("site terminology refused, not starting: %s", exc)
        raise
    warm_up_units(registry)
    engine = make_engine(settings.database_url)
    stack.callback(engine.dispose)
    if settings.run_migrations_on_start:
        upgrade(engine)
    # Monitoring figures as OpenTelemetry gauges, when an OTLP endpoint is configured.
    meters = configure_metrics(
        engine, settings.small_cell_min, environment=settings.environment.value
    )
    if meters is not None:
        stack.callback(meters.shutdown)
    health = DatabaseHealth(settings.audit_budget_ms / 1000)
    writer = AuditWriter(engine, Spool(settings.spool_dir), health)
    stack.push_async_callback(_last_replay, writer)
    http, key_http, web_http = await _clients(stack, settings, transport, jwks_transport)
    fhir = FhirClient(
        http,
        retries=settings.fhir_retries,
        max_pages=settings.fhir_max_pages,
        max_resources=settings.fhir_max_resources,
    )
    authenticator = build_authenticator(settings, engine, key_http, clock, writer)
    sessions = SessionStore(engine)
    state = ServiceState(
        settings, registry, writer, fhir, http, clock, authenticator, sessions, web_http
    )
    return state, engine


def make_lifespan(
    settings: Settings,
    clock: Clock,
    transport: httpx.AsyncBaseTransport | None = None,
    jwks_transport: httpx.AsyncBaseTransport | None = None,
) -> Callable[[FastAPI], AbstractAsyncContextManager[None]]:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with AsyncExitStack() as stack:
            state, engine = await _build_state(stack, settings, clock, transport, jwks_transport)
            app.state.cds = state
            await anyio.to_thread.run_sync(state.writer.heal)
            env = settings.environment.value
            await anyio.to_thread.run_sync(state.registry.refresh_deployments, engine, env)
            # A full collection with these libraries loaded costs ~100 ms; freeze start-up
            # objects so they are never scanned again on the request path.
            gc.collect()
            gc.freeze()
            # A call holds a few thousand parsed-JSON containers at its peak; with the default
            # gen-0 threshold (700) each call ran ~2 young and ~0.2 middle collections over
            # them (~0.1 ms of CPU per call, bench/request_profile.py --gc-compare). Above that
            # peak, collections come only from objects that outlive calls.
            gc.set_threshold(GC_THRESHOLD_0, *gc.get_threshold()[1:])
            stop = anyio.Event()
            async with anyio.create_task_group() as tg:
                start_background(tg, state, engine, stop)
                try:
                    yield
                finally:
                    stop.set()

    return lifespan

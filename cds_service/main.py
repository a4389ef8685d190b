"""FastAPI application: CDS Hooks discovery, service calls, feedback, model cards, health.

One direction of flow per call: HTTP -> request validation -> prefetch/fallback -> fhir_mappers
-> model -> card -> audit -> response. Stage timings go out in a ``Server-Timing`` header so the
benchmark sees where time goes, measured at the server.
"""

from __future__ import annotations

import gc
import logging
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any

import anyio
import httpx
import orjson
from fastapi import FastAPI, Request
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import HTMLResponse, Response
from sqlalchemy.engine import Engine
from starlette.background import BackgroundTask

from cds_service.audit.spool import Spool
from cds_service.audit.writer import AuditWriter
from cds_service.cds_hooks.cards import CardModelInfo, missing_input_card, risk_card
from cds_service.cds_hooks.feedback import parse_feedback
from cds_service.cds_hooks.fhir_client import FhirClient
from cds_service.cds_hooks.prefetch import PreconditionFailed, TooLarge, resolve
from cds_service.cds_hooks.schemas import (
    FEEDBACK_SCHEMA,
    RequestError,
    parse_request,
    request_body_schema,
)
from cds_service.config import Settings
from cds_service.db.engine import make_engine, upgrade
from cds_service.errors import ServiceError, error_response, json_response
from cds_service.observability.traces import tracer
from cds_service.security.jwks import JwksCache
from cds_service.security.jwt_auth import Authenticator, Caller
from cds_service.security.pseudonym import pseudonym
from cds_service.security.replay import ReplayStore
from cds_service.security.trusted_callers import load_trusted_callers
from cds_service.serving.hook_defs import HookDefinition
from cds_service.serving.model_runtime import LoadedModel
from cds_service.serving.registry import Registry, load_registry
from cds_service.state import Clock, ServiceState
from cds_service.web.dashboard import routes as dashboard_routes
from cds_service.web.markdown import to_html
from cds_service.web.sessions import SessionStore
from cds_service.web.smart import routes as smart_routes
from fhir_mappers.extract import Extraction, extract
from fhir_mappers.units import DEFAULT_CONVERTER

log = logging.getLogger("cds_service")


def _now() -> datetime:
    return datetime.now(UTC)


def build_authenticator(
    settings: Settings, engine: Engine, http: httpx.AsyncClient, clock: Clock
) -> Authenticator | None:
    if settings.auth_disabled:
        log.warning("JWT verification is OFF (CDS_AUTH_DISABLED, development only)")
        return None
    path = settings.trusted_issuers_path
    if path.is_file():
        issuers = load_trusted_callers(path)
    else:
        log.warning("no trusted-callers file: every call gets 401 (run `cds-service keys init`)")
        issuers = {}
    jwks = JwksCache(http, min_refresh_seconds=settings.jwks_min_refresh_seconds)
    return Authenticator(
        issuers,
        jwks,
        ReplayStore(engine),
        leeway_seconds=settings.jwt_leeway_seconds,
        max_lifetime_seconds=settings.jwt_max_lifetime_seconds,
        clock=clock,
    )


async def read_body(request: Request, limit: int) -> Any:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise ServiceError(413, f"request body larger than {limit} bytes")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise ServiceError(413, f"request body larger than {limit} bytes")
        chunks.append(chunk)
    try:
        return orjson.loads(b"".join(chunks))
    except orjson.JSONDecodeError:
        raise ServiceError(
            400, "request body is not valid JSON (or nested deeper than 1024 levels)"
        ) from None


def discovery_entry(d: HookDefinition) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "hook": d.hook,
        "title": d.title,
        "description": d.description,
        "id": d.id,
    }
    if d.prefetch:
        entry["prefetch"] = dict(d.prefetch)
    if d.usage_requirements:
        entry["usageRequirements"] = d.usage_requirements
    return entry


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


def model_card_url(settings: Settings, name: str, version: str) -> str:
    return f"{settings.public_base_url}/models/{name}/{version}"


def create_app(
    settings: Settings | None = None,
    *,
    clock: Clock = _now,
    transport: httpx.AsyncBaseTransport | None = None,
    jwks_transport: httpx.AsyncBaseTransport | None = None,
) -> FastAPI:
    settings = settings or Settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        registry = load_registry(settings.hooks_dir, settings.models_dir)
        warm_up_units(registry)
        engine = make_engine(settings.database_url)
        upgrade(engine)
        writer = AuditWriter(engine, Spool(settings.spool_dir))
        http = httpx.AsyncClient(
            timeout=httpx.Timeout(settings.fhir_timeout_seconds),
            transport=transport,
            follow_redirects=False,
        )
        fhir = FhirClient(
            http,
            retries=settings.fhir_retries,
            max_pages=settings.fhir_max_pages,
            max_resources=settings.fhir_max_resources,
        )
        key_http = httpx.AsyncClient(
            timeout=httpx.Timeout(3.0), transport=jwks_transport, follow_redirects=False
        )
        authenticator = build_authenticator(settings, engine, key_http, clock)
        web_http = httpx.AsyncClient(
            timeout=httpx.Timeout(settings.fhir_timeout_seconds), follow_redirects=False
        )
        sessions = SessionStore(engine)
        app.state.cds = ServiceState(
            settings, registry, writer, fhir, http, clock, authenticator, sessions, web_http
        )
        await anyio.to_thread.run_sync(writer.replay)
        env_name = settings.environment.value
        await anyio.to_thread.run_sync(registry.refresh_deployments, engine, env_name)
        stop = anyio.Event()

        async def monitor_loop() -> None:
            """Scheduled monitoring; one replica at a time (lock inside run_recent)."""
            from cds_service.monitoring.run import run_recent

            while not stop.is_set():
                with anyio.move_on_after(settings.monitor_interval_seconds):
                    await stop.wait()
                if stop.is_set():
                    break
                try:
                    await anyio.to_thread.run_sync(
                        lambda: run_recent(engine, settings.models_dir, days=7, window_hours=24)
                    )
                except Exception as exc:  # monitoring must never stop the service
                    log.error("scheduled monitoring failed: %s", type(exc).__name__)

        async def deployments_loop() -> None:
            while not stop.is_set():
                with anyio.move_on_after(settings.deployment_refresh_seconds):
                    await stop.wait()
                if not stop.is_set():
                    await anyio.to_thread.run_sync(registry.refresh_deployments, engine, env_name)

        async def replay_loop() -> None:
            last_purge = time.monotonic()
            while not stop.is_set():
                with anyio.move_on_after(settings.spool_replay_seconds):
                    await stop.wait()
                if writer.spool.pending_files():
                    await anyio.to_thread.run_sync(writer.replay)
                if time.monotonic() - last_purge > 300:  # expired jti and web sessions
                    last_purge = time.monotonic()
                    if authenticator is not None:
                        await anyio.to_thread.run_sync(authenticator.purge_expired)
                    await anyio.to_thread.run_sync(sessions.purge)

        # A full collection with these libraries loaded costs ~100 ms; freeze start-up objects
        # so they are never scanned again on the request path.
        gc.collect()
        gc.freeze()
        async with anyio.create_task_group() as tg:
            tg.start_soon(replay_loop)
            tg.start_soon(deployments_loop)
            if settings.monitor_interval_seconds > 0:
                tg.start_soon(monitor_loop)
            try:
                yield
            finally:
                stop.set()
        await http.aclose()
        await key_http.aclose()
        await web_http.aclose()
        await anyio.to_thread.run_sync(writer.replay)
        engine.dispose()

    app = FastAPI(
        title="CDS risk service",
        version="0.1.0",
        description="CDS Hooks 2.0 services that return calibrated risk cards.",
        lifespan=lifespan,
    )

    if settings.cors_origin_list:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origin_list,
            allow_methods=["GET", "POST", "OPTIONS"],
            allow_headers=["Authorization", "Content-Type"],
            max_age=600,
        )

    app.include_router(dashboard_routes.router)
    app.include_router(smart_routes.router)

    @app.exception_handler(ServiceError)
    async def _service_error(_request: Request, exc: ServiceError) -> Response:
        response = error_response(exc.status, exc.message)
        if exc.status == 401:
            response.headers["WWW-Authenticate"] = 'Bearer error="invalid_token"'
        return response

    @app.exception_handler(Exception)
    async def _unexpected(_request: Request, exc: Exception) -> Response:
        log.error("unhandled error: %s", type(exc).__name__)
        return error_response(500, "Internal Server Error")

    def state(request: Request) -> ServiceState:
        return request.app.state.cds  # type: ignore[no-any-return]

    @app.get("/cds-services")
    async def discovery(request: Request) -> Response:
        await state(request).caller(request, "/cds-services")
        services = state(request).registry.services.values()
        return json_response({"services": [discovery_entry(d) for d in services]})

    @app.post(
        "/cds-services/{service_id}",
        openapi_extra={
            "requestBody": {
                "required": True,
                "content": {"application/json": {"schema": request_body_schema()}},
            }
        },
    )
    async def call_service(service_id: str, request: Request) -> Response:
        return await handle_call(state(request), service_id, request)

    @app.post(
        "/cds-services/{service_id}/feedback",
        openapi_extra={
            "requestBody": {
                "required": True,
                "content": {"application/json": {"schema": FEEDBACK_SCHEMA}},
            }
        },
    )
    async def feedback(service_id: str, request: Request) -> Response:
        st = state(request)
        await st.caller(
            request, f"/cds-services/{service_id}/feedback", f"/cds-services/{service_id}"
        )
        if service_id not in st.registry.services:
            raise ServiceError(404, "unknown CDS service id")
        body = await read_body(request, st.settings.max_body_bytes)
        rows = parse_feedback(body, service_id, st.clock())
        await anyio.to_thread.run_sync(st.writer.write, "card_feedback", rows)
        return json_response({})

    @app.get("/models/{name}/{version}", response_class=HTMLResponse)
    async def model_card(name: str, version: str, request: Request) -> Response:
        model = state(request).registry.models.get((name, version))
        if model is None:
            raise ServiceError(404, "unknown model or version")
        body = to_html(model.model_card_md)
        page = (
            "<!doctype html><html lang='en'><head><meta charset='utf-8'>"
            f"<title>Model card {name} {version}</title>"
            "<style>body{font-family:system-ui,sans-serif;max-width:60rem;margin:2rem auto;"
            "padding:0 1rem;line-height:1.45}table{border-collapse:collapse}"
            "td,th{border:1px solid #ccc;padding:.25rem .5rem}</style></head><body>"
            f"{body}</body></html>"
        )
        return HTMLResponse(page)

    @app.get("/models/{name}/{version}/manifest.json")
    async def model_manifest(name: str, version: str, request: Request) -> Response:
        model = state(request).registry.models.get((name, version))
        if model is None:
            raise ServiceError(404, "unknown model or version")
        return json_response(model.manifest)

    @app.get("/healthz")
    async def health(request: Request) -> Response:
        st = state(request)
        return json_response(
            {
                "status": "ok",
                "environment": st.settings.environment.value,
                "services": sorted(st.registry.services),
                "spooled_audit_files": len(st.writer.spool.pending_files()),
                "dead_letter_files": len(list(st.writer.spool.directory.glob("dead-letter-*"))),
            }
        )

    return app


async def handle_call(st: ServiceState, service_id: str, request: Request) -> Response:
    with tracer.start_as_current_span(
        "cds.service_call", record_exception=False, set_status_on_exception=False
    ) as span:
        span.set_attribute("cds.service_id", service_id[:128])
        try:
            response = await _handle_call(st, service_id, request, span)
        except ServiceError as exc:
            span.set_attribute("http.response.status_code", exc.status)
            log.info("call refused", extra={"service_id": service_id[:128], "status": exc.status})
            raise
        span.set_attribute("http.response.status_code", response.status_code)
        return response


SIMULATED_TIME_EXTENSION = "org.cds-risk.simulated-time"


def _request_time(st: ServiceState, call: Any) -> datetime:
    """Wall-clock time, or (development with CDS_ALLOW_SIMULATED_TIME only) the simulator's."""
    if st.settings.allow_simulated_time and isinstance(call.extension, dict):
        raw = call.extension.get(SIMULATED_TIME_EXTENSION)
        if isinstance(raw, str):
            try:
                moment = datetime.fromisoformat(raw)
            except ValueError:
                raise ServiceError(
                    400, f"extension {SIMULATED_TIME_EXTENSION} is not a time"
                ) from None
            if moment.tzinfo is None:
                raise ServiceError(400, f"extension {SIMULATED_TIME_EXTENSION} needs an offset")
            try:
                return moment.astimezone(UTC)
            except OverflowError:
                raise ServiceError(
                    400, f"extension {SIMULATED_TIME_EXTENSION} is out of range"
                ) from None
    return st.clock()


def audit_row(
    *,
    card_uuid: str,
    call: Any,
    hook_def: HookDefinition,
    model: LoadedModel,
    role: str,
    shown: bool,
    kind: str,
    risk: float | None,
    band: str | None,
    indicator: str | None,
    summary: str,
    extraction: Extraction,
    requested_at: datetime,
    latency_ms: float,
    environment: str,
    key: bytes,
    caller: Caller | None,
) -> dict[str, Any]:
    encounter = call.context.get("encounterId")
    return {
        "card_uuid": card_uuid,
        "hook_instance": call.hookInstance,
        "service_id": hook_def.id,
        "hook": hook_def.hook,
        "model_name": model.name,
        "model_version": model.version,
        "artifact_sha256": model.artifact_sha256,
        "environment": environment,
        "role": role,
        "shown": shown,
        "card_kind": kind,
        "patient_pseudonym": pseudonym(key, "Patient", str(call.context["patientId"])),
        "encounter_pseudonym": pseudonym(key, "Encounter", encounter) if encounter else None,
        "requested_at": requested_at,
        "risk": risk,
        "risk_band": band,
        "indicator": indicator,
        "latency_ms": latency_ms,
        "features": orjson.dumps(extraction.values).decode(),
        "missing_features": orjson.dumps(extraction.missing()).decode(),
        "inputs": orjson.dumps(
            {
                n: {
                    "value": p.value,
                    "unit": p.unit,
                    "time": p.time,
                    "missing_reason": p.missing_reason,
                    "sources": len(p.sources),
                }
                for n, p in extraction.provenance.items()
            }
        ).decode(),
        "mapper_warnings": orjson.dumps(dict(sorted(extraction.warnings.items()))).decode(),
        "summary": summary,
        "caller_iss": caller.issuer.iss if caller else None,
    }


def score_shadows(
    st: ServiceState,
    shadows: tuple[LoadedModel, ...],
    call: Any,
    hook_def: HookDefinition,
    extraction: Extraction,
    requested_at: datetime,
    caller: Caller | None,
) -> None:
    """Shadow versions score the same inputs after the live response is sent; their rows are
    audited (role 'shadow', shown false) and never returned as cards."""
    env = st.settings.environment.value
    rows = []
    for shadow in shadows:
        t0 = time.perf_counter()
        if extraction.missing_required(shadow.spec):
            kind, risk, band, indicator = "no-risk", None, None, "info"
        else:
            risk = shadow.risk(extraction.vector(shadow.feature_names))
            chosen = hook_def.band_for(risk)
            kind, band, indicator = "risk", chosen.name, chosen.indicator
        rows.append(
            audit_row(
                card_uuid=str(uuid.uuid4()),
                call=call,
                hook_def=hook_def,
                model=shadow,
                role="shadow",
                shown=False,
                kind=kind,
                risk=risk,
                band=band,
                indicator=indicator,
                summary="(shadow prediction, not shown)",
                extraction=extraction,
                requested_at=requested_at,
                latency_ms=round(1000 * (time.perf_counter() - t0), 3),
                environment=env,
                key=st.settings.effective_pseudonym_key,
                caller=caller,
            )
        )
    st.writer.write("card_audit", rows)


async def _handle_call(st: ServiceState, service_id: str, request: Request, span: Any) -> Response:
    t0 = time.perf_counter()
    caller = await st.caller(request, f"/cds-services/{service_id}")
    hook_def = st.registry.services.get(service_id)
    if hook_def is None:
        raise ServiceError(404, "unknown CDS service id")
    body = await read_body(request, st.settings.max_body_bytes)
    try:
        call = parse_request(body, hook_def.hook)
    except RequestError as exc:
        raise ServiceError(400, str(exc)) from None
    if (
        caller is not None
        and call.fhirServer is not None
        and not caller.issuer.allows_fhir_server(call.fhirServer)
    ):
        raise ServiceError(403, "fhirServer is not a trusted FHIR server for this caller")
    requested_at = _request_time(st, call)
    t_parse = time.perf_counter()
    try:
        data = await resolve(hook_def, call, st.fhir, st.settings.fhir_max_resources)
    except PreconditionFailed as exc:
        raise ServiceError(412, str(exc)) from None
    except TooLarge as exc:
        raise ServiceError(413, str(exc)) from None
    t_fetch = time.perf_counter()
    model = st.registry.model_for(hook_def)
    shadows = st.registry.shadows_for(hook_def)
    spec = model.spec
    extraction = extract(data.resources, requested_at, spec)
    t_map = time.perf_counter()
    info = CardModelInfo(model.name, model.version, model.artifact_sha256, spec)
    card_uuid = str(uuid.uuid4())
    url = model_card_url(st.settings, model.name, model.version)
    env = st.settings.environment.value
    missing_required = extraction.missing_required(spec)
    risk: float | None = None
    band: str | None = None
    t_predict = t_explain = t_map
    cards: list[dict[str, Any]] = []
    if missing_required:
        card = missing_input_card(
            hook_def,
            info,
            extraction,
            card_uuid=card_uuid,
            model_card_url=url,
            environment=env,
            smart_launch_url=f"{st.settings.public_base_url}/smart/launch",
        )
        kind = "no-risk"
        if hook_def.card.on_missing_required == "card":
            cards.append(card)
    else:
        vector = extraction.vector(model.feature_names)
        risk = model.risk(vector)
        t_predict = time.perf_counter()
        prediction = model.explain(vector)
        t_explain = time.perf_counter()
        card, band = risk_card(
            hook_def,
            info,
            extraction,
            prediction,
            card_uuid=card_uuid,
            model_card_url=url,
            environment=env,
            top_factors=st.settings.top_factors,
            smart_launch_url=f"{st.settings.public_base_url}/smart/launch",
        )
        kind = "risk"
        cards.append(card)
    t_card = time.perf_counter()
    row = audit_row(
        card_uuid=card_uuid,
        call=call,
        hook_def=hook_def,
        model=model,
        role="live",
        shown=bool(cards),
        kind=kind,
        risk=risk,
        band=band,
        indicator=card["indicator"],
        summary=card["summary"],
        extraction=extraction,
        requested_at=requested_at,
        latency_ms=round((t_card - t0) * 1000, 3),
        environment=env,
        key=st.settings.effective_pseudonym_key,
        caller=caller,
    )
    stored = st.writer.write("card_audit", [row])
    t_audit = time.perf_counter()
    span.set_attributes(
        {
            "cds.hook": hook_def.hook,
            "cds.model": model.name,
            "cds.model_version": model.version,
            "cds.environment": env,
            "cds.card_kind": kind,
            "cds.risk_band": band or "",
            "cds.audit_stored": stored,
            "cds.shadow_models": len(shadows),
            "cds.prefetch_origin": ",".join(f"{k}={v}" for k, v in sorted(data.origin.items())),
            "cds.stage_ms.map": round(1000 * (t_map - t_fetch), 3),
            "cds.stage_ms.explain": round(1000 * (t_explain - t_predict), 3),
            "cds.stage_ms.total": round(1000 * (t_audit - t0), 3),
        }
    )
    log.info(
        "card returned",
        extra={
            "service_id": hook_def.id,
            "hook": hook_def.hook,
            "model": model.name,
            "model_version": model.version,
            "card_kind": kind,
            "latency_ms": round(1000 * (t_audit - t0), 3),
        },
    )
    timing = ", ".join(
        f"{name};dur={1000 * dur:.3f}"
        for name, dur in (
            ("parse", t_parse - t0),
            ("fetch", t_fetch - t_parse),
            ("map", t_map - t_fetch),
            ("predict", t_predict - t_map),
            ("explain", t_explain - t_predict),
            ("card", t_card - t_explain),
            ("audit", t_audit - t_card),
            ("total", t_audit - t0),
        )
    )
    response = json_response({"cards": cards}, headers={"Server-Timing": timing})
    if shadows:
        response.background = BackgroundTask(
            score_shadows, st, shadows, call, hook_def, extraction, requested_at, caller
        )
    return response

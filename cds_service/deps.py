"""FastAPI dependencies: what a route may ask for, as ``Annotated`` aliases.

Routes stay a few lines long and tests override one dependency (``app.dependency_overrides``)
instead of starting a whole service. The dependencies are ``async`` so that none costs a hop to
the thread pool on the request path.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime
from typing import Annotated, Any

import orjson
from fastapi import Depends, Request

from cds_service.audit.writer import AuditWriter
from cds_service.config import Settings
from cds_service.errors import ServiceError
from cds_service.observability.stage_timer import StageTimer
from cds_service.security.jwt_auth import Caller
from cds_service.serving.hook_defs import HookDefinition
from cds_service.serving.model_runtime import LoadedModel
from cds_service.serving.registry import Registry
from cds_service.state import ServiceState


async def get_state(request: Request) -> ServiceState:
    return request.app.state.cds  # type: ignore[no-any-return]


State = Annotated[ServiceState, Depends(get_state)]


async def get_settings(state: State) -> Settings:
    return state.settings


async def get_registry(state: State) -> Registry:
    return state.registry


async def get_writer(state: State) -> AuditWriter:
    return state.writer


async def get_now(state: State) -> datetime:
    return state.clock()


SettingsDep = Annotated[Settings, Depends(get_settings)]
RegistryDep = Annotated[Registry, Depends(get_registry)]
WriterDep = Annotated[AuditWriter, Depends(get_writer)]
Now = Annotated[datetime, Depends(get_now)]


async def get_timer() -> StageTimer:
    """Started first (declare it first), so the 'parse' stage covers auth and body reading."""
    return StageTimer()


Timer = Annotated[StageTimer, Depends(get_timer)]


def _audiences(request: Request) -> tuple[str, ...]:
    """The path of the endpoint called (the JWT audience is its exact URL); a feedback endpoint
    also accepts a token signed for its service's URL, as some clients send one."""
    path = request.scope["route"].path_format.format(**request.path_params)
    if path.endswith("/feedback"):
        return path, path.removesuffix("/feedback")
    return (path,)


# The service call: its jti is committed with its audit row (one commit per call).
SERVICE_CALL_PATH = "/cds-services/{service_id}"


async def get_caller(state: State, request: Request) -> AsyncIterator[Caller | None]:
    """The verified CDS client, or None with auth disabled (development); 401 otherwise. A
    service call's jti that no audit row took (the call failed, or was refused, first) is
    recorded on the way out, so a token spent on a failed call cannot be replayed."""
    route = request.scope["route"]
    defer = request.method == "POST" and route.path_format == SERVICE_CALL_PATH
    caller = await state.caller(request, *_audiences(request), defer=defer)
    try:
        yield caller
    finally:
        claim = caller.pending if caller is not None else None
        if claim is not None and not claim.recorded and state.authenticator is not None:
            await state.authenticator.replay.record_within_budget(claim)


VerifiedCaller = Annotated[Caller | None, Depends(get_caller)]


async def get_hook_definition(
    service_id: str, registry: RegistryDep, _caller: VerifiedCaller
) -> HookDefinition:
    """404 for an unknown service id, only after the caller is verified (no probing)."""
    hook_def = registry.services.get(service_id)
    if hook_def is None:
        raise ServiceError(404, "unknown CDS service id")
    return hook_def


HookDef = Annotated[HookDefinition, Depends(get_hook_definition)]


async def get_model(name: str, version: str, registry: RegistryDep) -> LoadedModel:
    model = registry.models.get((name, version))
    if model is None:
        raise ServiceError(404, "unknown model or version")
    return model


ModelDep = Annotated[LoadedModel, Depends(get_model)]


async def read_json_body(request: Request, settings: SettingsDep) -> Any:
    """The body as JSON, read in chunks and refused (413) as soon as it passes the limit."""
    limit = settings.max_body_bytes
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


JsonBody = Annotated[Any, Depends(read_json_body)]

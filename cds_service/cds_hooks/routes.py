"""The CDS Hooks 2.0 endpoints: discovery, service call, feedback.

Each route takes what it needs through the ``cds_service.deps`` aliases, in the order the checks
must run: the caller's JWT first, then the service id (404), then the body (413/400).
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from starlette.responses import Response

from cds_service.cds_hooks.feedback import feedback_body_schema, parse_feedback
from cds_service.cds_hooks.pipeline import run_call
from cds_service.cds_hooks.schemas import request_body_schema
from cds_service.deps import (
    HookDef,
    JsonBody,
    Now,
    RegistryDep,
    State,
    Timer,
    VerifiedCaller,
    WriterDep,
)
from cds_service.errors import json_response
from cds_service.serving.hook_defs import HookDefinition

router = APIRouter(tags=["CDS Hooks"])


def _json_body(schema: dict[str, Any]) -> dict[str, Any]:
    """The OpenAPI request body (the routes read the body themselves, bounded in size)."""
    content = {"application/json": {"schema": schema}}
    return {"requestBody": {"required": True, "content": content}}


def discovery_entry(d: HookDefinition, language: str = "en") -> dict[str, Any]:
    """One service in the discovery response, titled in the deployment's language (the EHR
    shows these to whoever picks services); optional fields left out when empty."""
    title, description = d.discovery_text(language)
    entry: dict[str, Any] = {"hook": d.hook, "title": title, "description": description, "id": d.id}
    if d.prefetch:
        entry["prefetch"] = dict(d.prefetch)
    if d.usage_requirements:
        entry["usageRequirements"] = d.usage_requirements
    return entry


@router.get("/cds-services")
async def discovery(_caller: VerifiedCaller, registry: RegistryDep, state: State) -> Response:
    language = state.settings.language
    services = [discovery_entry(d, language) for d in registry.services.values()]
    return json_response({"services": services})


@router.post("/cds-services/{service_id}", openapi_extra=_json_body(request_body_schema()))
async def call_service(
    timer: Timer, caller: VerifiedCaller, hook_def: HookDef, body: JsonBody, state: State
) -> Response:
    return await run_call(state, hook_def, body, caller, timer)


@router.post(
    "/cds-services/{service_id}/feedback", openapi_extra=_json_body(feedback_body_schema())
)
async def feedback(hook_def: HookDef, body: JsonBody, now: Now, writer: WriterDep) -> Response:
    rows = parse_feedback(body, hook_def.id, now)
    await writer.write_within_budget("card_feedback", rows)
    return json_response({})

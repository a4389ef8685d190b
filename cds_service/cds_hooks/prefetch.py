"""Prefetch semantics of CDS Hooks 2.0, and the fallback to the caller's FHIR server.

- key absent: the client did not or could not fetch it -> fetch from fhirServer with the token;
- key null: the client has no data -> nothing to fetch;
- key holding an OperationOutcome: the client could not fetch it -> unavailable (not re-queried);
- a required key that cannot be had -> 412 Precondition Failed.
Bundles may hold more than was asked for; only resources of the patient in context are kept.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from cds_service.cds_hooks.fhir_client import FetchResult, FhirClient, FhirFetchError
from cds_service.cds_hooks.schemas import HookRequest
from cds_service.serving.hook_defs import USER_TOKENS, HookDefinition, template_tokens
from fhir_mappers.resources import flatten, patient_id_of


class PreconditionFailed(Exception):
    """HTTP 412: the FHIR data the service needs could not be obtained."""


class TooLarge(Exception):
    """HTTP 413: more data than the service accepts for one call."""


@dataclass(slots=True)
class ResolvedData:
    resources: list[dict[str, Any]] = field(default_factory=list)
    origin: dict[str, str] = field(default_factory=dict)  # key -> prefetch|null|fetched|...
    dropped_other_patients: int = 0


def render_template(template: str, context: Mapping[str, Any]) -> str | None:
    """Fill a template's tokens; None when a token has no value in this call."""
    out = template
    user = context.get("userId")
    for token in template_tokens(template):
        value: str | None
        if token.startswith("context."):
            raw = context.get(token.removeprefix("context."))
            value = raw if isinstance(raw, str) else None
        else:
            rtype = USER_TOKENS[token]
            value = (
                user.split("/", 1)[1]
                if isinstance(user, str) and user.startswith(rtype + "/")
                else None
            )
        if value is None:
            return None
        out = out.replace("{{" + token + "}}", value).replace("{{ " + token + " }}", value)
    return out


def _keep_patient(resources: list[dict[str, Any]], patient_id: str, data: ResolvedData) -> None:
    for res in resources:
        if patient_id_of(res) == patient_id:
            data.resources.append(res)
        else:
            data.dropped_other_patients += 1


def _from_prefetch(
    key: str, value: Any, required: bool, patient_id: str, max_resources: int, data: ResolvedData
) -> None:
    """Take one key the client sent: null is no data, an OperationOutcome is 'could not'."""
    if value is None:
        data.origin[key] = "null"
        return
    flat = flatten(value)
    if flat.outcomes and not flat.resources:
        data.origin[key] = "client-error"
        if required:
            raise PreconditionFailed(
                f"prefetch '{key}' holds an OperationOutcome: the EHR could not fetch it"
            )
        return
    if not isinstance(value, dict) or flat.skipped:
        raise PreconditionFailed(f"prefetch '{key}' is not a FHIR resource or Bundle")
    if len(flat.resources) > max_resources:
        raise TooLarge(f"prefetch '{key}' holds more than {max_resources} resources")
    _keep_patient(flat.resources, patient_id, data)
    data.origin[key] = "prefetch"


def _fetched_origin(result: FetchResult) -> str:
    if result.not_found:
        return "fetched-not-found"
    return "fetched-truncated" if result.truncated else "fetched"


async def _fetch_missing(
    hook_def: HookDefinition,
    request: HookRequest,
    client: FhirClient | None,
    to_fetch: list[tuple[str, str]],
    data: ResolvedData,
) -> None:
    """The fallback: what the client did not send, from its FHIR server with its token."""
    if request.fhirServer is None or client is None:
        missing = [k for k, _ in to_fetch if k in hook_def.required_prefetch]
        if missing:
            raise PreconditionFailed(
                f"prefetch {missing} missing and no fhirServer to fetch them from"
            )
        return
    token = request.fhirAuthorization.access_token if request.fhirAuthorization else None
    server = request.fhirServer
    results = await asyncio.gather(
        *(client.fetch(server, query, token) for _, query in to_fetch), return_exceptions=True
    )
    for (key, _query), result in zip(to_fetch, results, strict=True):
        if isinstance(result, FhirFetchError):
            data.origin[key] = "fetch-failed"
            if key in hook_def.required_prefetch:
                raise PreconditionFailed(f"prefetch '{key}' could not be fetched: {result.reason}")
            continue
        if isinstance(result, BaseException):
            raise result
        data.origin[key] = _fetched_origin(result)
        _keep_patient(result.resources, request.context.patientId, data)


async def resolve(
    hook_def: HookDefinition,
    request: HookRequest,
    client: FhirClient | None,
    max_resources: int = 5000,
) -> ResolvedData:
    """The FHIR data of the service's prefetch keys: as sent, else fetched, else 412."""
    data = ResolvedData()
    context = request.context.model_dump()
    patient_id = request.context.patientId
    prefetch = request.prefetch or {}
    to_fetch: list[tuple[str, str]] = []
    for key, template in hook_def.prefetch.items():
        if key in prefetch:
            required = key in hook_def.required_prefetch
            _from_prefetch(key, prefetch[key], required, patient_id, max_resources, data)
            continue
        query = render_template(template, context)
        if query is None:
            data.origin[key] = "not-applicable"
        else:
            to_fetch.append((key, query))
    if to_fetch:
        await _fetch_missing(hook_def, request, client, to_fetch, data)
    return data

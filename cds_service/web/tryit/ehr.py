"""A local EHR for the try-it page's SMART links (development only): just enough of SMART App
Launch 2.x (EHR launch, authorization code with PKCE S256, launch context with appContext) and a
read-only FHIR R4 server over the synthetic example patients, so that a card's SMART link opens
the app on loopback without an external launcher.

The authorization step asks no one (there is no user to sign in: the patients are synthetic).
Launches, codes and tokens are kept in the web-session table, so every worker sees them.
"""

from __future__ import annotations

import base64
import hashlib
import secrets
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import parse_qs, urlencode

import anyio
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, RedirectResponse, Response

from cds_service.deps import JsonBody, State
from cds_service.errors import ServiceError
from cds_service.state import ServiceState
from cds_service.web.deps import UtcNow
from cds_service.web.sessions import SessionStore
from cds_service.web.tryit.patients import EXAMPLE_PATIENTS, ExamplePatient

__all__ = ["router"]

router = APIRouter(include_in_schema=False)
FHIR_JSON = "application/fhir+json"
LAUNCH, CODE, TOKEN = "tryit-launch", "tryit-code", "tryit-token"
TOKEN_SECONDS = 3600


def fhir_base(st: ServiceState) -> str:
    return f"{st.settings.public_base_url}/tryit/ehr/fhir"


def _store(st: ServiceState) -> SessionStore:
    if st.sessions is None:
        raise ServiceError(503, "the session table is not available")
    return st.sessions


def _patient(key: Any) -> ExamplePatient:
    found = next((p for p in EXAMPLE_PATIENTS if p.key == key), None)
    if found is None:
        raise ServiceError(400, "unknown example patient")
    return found


@router.post("/tryit/ehr/launch")
async def new_launch(st: State, body: JsonBody, now: UtcNow) -> Response:
    """A launch for the patient of the last call (the data at that call's moment)."""
    if not isinstance(body, dict) or not isinstance(body.get("at"), str):
        raise ServiceError(400, "body must name 'patient' and 'at'")
    patient = _patient(body.get("patient"))
    try:
        at = datetime.fromisoformat(body["at"])
    except ValueError:
        raise ServiceError(400, "'at' is not an ISO 8601 time") from None
    context = body.get("appContext")
    data = {
        "patient": patient.key,
        "at": at.isoformat(),
        "appContext": context if isinstance(context, str) and len(context) <= 4096 else None,
    }
    store = _store(st)
    launch = await anyio.to_thread.run_sync(store.create, LAUNCH, data, timedelta(minutes=10), now)
    return JSONResponse({"iss": fhir_base(st), "launch": launch})


@router.get("/tryit/ehr/fhir/.well-known/smart-configuration")
async def smart_configuration(st: State) -> Response:
    base = f"{st.settings.public_base_url}/tryit/ehr"
    return JSONResponse(
        {
            "issuer": base,
            "authorization_endpoint": f"{base}/auth/authorize",
            "token_endpoint": f"{base}/auth/token",
            "token_endpoint_auth_methods_supported": ["none", "client_secret_basic"],
            "grant_types_supported": ["authorization_code"],
            "response_types_supported": ["code"],
            "scopes_supported": ["launch", "openid", "fhirUser", "patient/*.read"],
            "code_challenge_methods_supported": ["S256"],
            "capabilities": ["launch-ehr", "client-public", "context-ehr-patient"],
        }
    )


def _refuse(redirect: str, state: str, error: str) -> Response:
    return RedirectResponse(f"{redirect}?{urlencode({'error': error, 'state': state})}", 302)


@router.get("/tryit/ehr/auth/authorize")
async def authorize(request: Request, st: State, now: UtcNow) -> Response:
    q = request.query_params
    redirect = f"{st.settings.public_base_url}/smart/callback"
    if q.get("client_id") != st.settings.smart_client_id or q.get("redirect_uri") != redirect:
        raise ServiceError(400, "unknown client_id or redirect_uri (CDS_SMART_CLIENT_ID)")
    state = q.get("state", "")
    if q.get("response_type") != "code" or not state:
        return _refuse(redirect, state, "invalid_request")
    if q.get("code_challenge_method") != "S256" or not q.get("code_challenge"):
        return _refuse(redirect, state, "invalid_request")
    if (q.get("aud") or "").rstrip("/") != fhir_base(st):
        return _refuse(redirect, state, "invalid_request")
    store = _store(st)
    launch = await anyio.to_thread.run_sync(store.get, q.get("launch"), LAUNCH, now)
    if launch is None:
        return _refuse(redirect, state, "invalid_request")
    grant = {**launch, "challenge": q["code_challenge"], "scope": q.get("scope", "")}
    code = await anyio.to_thread.run_sync(store.create, CODE, grant, timedelta(minutes=1), now)
    return RedirectResponse(f"{redirect}?{urlencode({'code': code, 'state': state})}", 302)


def _s256(verifier: str) -> str:
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def _token_error(error: str) -> Response:
    return JSONResponse({"error": error}, 400, headers={"Cache-Control": "no-store"})


@router.post("/tryit/ehr/auth/token")
async def token(request: Request, st: State, now: UtcNow) -> Response:
    form = {k: v[0] for k, v in parse_qs((await request.body()).decode()).items()}
    if form.get("grant_type") != "authorization_code":
        return _token_error("unsupported_grant_type")
    store = _store(st)
    code = form.get("code")
    grant = await anyio.to_thread.run_sync(store.get, code, CODE, now)
    if grant is None or code is None:
        return _token_error("invalid_grant")
    await anyio.to_thread.run_sync(store.delete, code)  # single use
    if _s256(form.get("code_verifier", "")) != grant["challenge"]:
        return _token_error("invalid_grant")
    patient = _patient(grant["patient"])
    at = datetime.fromisoformat(grant["at"])
    data = {"patient": patient.key, "at": grant["at"]}
    access = await anyio.to_thread.run_sync(
        store.create, TOKEN, data, timedelta(seconds=TOKEN_SECONDS), now
    )
    body: dict[str, Any] = {
        "access_token": access,
        "token_type": "Bearer",
        "expires_in": TOKEN_SECONDS,
        "scope": grant["scope"],
        "patient": patient.patient_id(at),
        "need_patient_banner": True,
    }
    encounter = patient.encounter_id(at)
    if encounter:
        body["encounter"] = encounter
    if grant.get("appContext"):
        body["appContext"] = grant["appContext"]
    return JSONResponse(body, headers={"Cache-Control": "no-store", "Pragma": "no-cache"})


async def _resources(st: ServiceState, request: Request, now: datetime) -> tuple[str, list[Any]]:
    auth = request.headers.get("authorization", "")
    data = None
    if auth.startswith("Bearer "):
        data = await anyio.to_thread.run_sync(_store(st).get, auth[7:], TOKEN, now)
    if data is None:
        raise ServiceError(401, "no valid access token for the local EHR")
    patient = _patient(data["patient"])
    at = datetime.fromisoformat(data["at"])
    return patient.patient_id(at), patient.resources(at)


def _of(resource: dict[str, Any]) -> str | None:
    if resource.get("resourceType") == "Patient":
        return str(resource.get("id"))
    ref = (resource.get("subject") or {}).get("reference", "")
    return str(ref).removeprefix("Patient/") or None


@router.get("/tryit/ehr/fhir/{rtype}/{rid}")
async def read(rtype: str, rid: str, request: Request, st: State, now: UtcNow) -> Response:
    pid, resources = await _resources(st, request, now)
    for r in resources:
        if r.get("resourceType") == rtype and r.get("id") == rid and _of(r) == pid:
            return JSONResponse(r, media_type=FHIR_JSON)
    raise ServiceError(404, f"no such {rtype[:40]} on the local EHR")


@router.get("/tryit/ehr/fhir/{rtype}")
async def search(rtype: str, request: Request, st: State, now: UtcNow) -> Response:
    pid, resources = await _resources(st, request, now)
    asked = request.query_params.get("patient", "").removeprefix("Patient/")
    if asked != pid:
        raise ServiceError(403, "the access token is for another patient")
    found = [r for r in resources if r.get("resourceType") == rtype and _of(r) == pid]
    bundle = {
        "resourceType": "Bundle",
        "id": secrets.token_hex(8),
        "type": "searchset",
        "total": len(found),
        "entry": [{"resource": r} for r in found],
    }
    return JSONResponse(bundle, media_type=FHIR_JSON)

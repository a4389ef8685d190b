"""The try-it page (development only): pick a synthetic example patient and a service, send a
signed CDS Hooks call from the browser, and see the cards as an EHR shows them beside the raw
request and response.

The browser plays the EHR: it asks ``/tryit/api/prepare`` for the example request and a JWT
signed with the local development key, sends the call itself to ``/cds-services/{id}`` (the real
route, JWT checks and all), and asks ``/tryit/api/render`` to draw the answer. Everything is
served from here: no CDN, no internet. ``create_app`` mounts this router only in development.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import anyio
import orjson
from fastapi import APIRouter
from fastapi.responses import HTMLResponse, Response

from cds_service.deps import JsonBody, State
from cds_service.errors import ServiceError, json_response
from cds_service.state import ServiceState
from cds_service.web.tryit.page import page_html
from cds_service.web.tryit.patients import EXAMPLE_PATIENTS, patients_for
from cds_service.web.tryit.render import cards_html

__all__ = ["router"]

router = APIRouter(include_in_schema=False)
STATIC = Path(__file__).resolve().parent.parent / "static" / "tryit"
ASSETS = {"tryit.css": "text/css; charset=utf-8", "tryit.js": "text/javascript; charset=utf-8"}
SECURITY_HEADERS = {
    "Cache-Control": "no-store",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    # Same-origin scripts and styles only: the page works offline and runs no inline script.
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
    ),
}
NO_LOCAL_CALLER = (
    "no local development caller is trusted: run `cds-service keys init` and restart the "
    "service (a first `cds-service serve` does this itself)"
)


@router.get("/tryit", response_class=HTMLResponse)
async def tryit_page(st: State) -> Response:
    services = [
        (d.id, d.title, d.hook, [p.key for p in patients_for(d.model)])
        for d in st.registry.services.values()
    ]
    patients = [(p.key, p.label) for p in EXAMPLE_PATIENTS]
    return HTMLResponse(page_html(services, patients), headers=SECURITY_HEADERS)


@router.get("/tryit/static/{name}")
async def tryit_asset(name: str) -> Response:
    media = ASSETS.get(name)
    if media is None:
        return Response("not found", 404, media_type="text/plain")
    content = await anyio.to_thread.run_sync((STATIC / name).read_bytes)
    return Response(content, media_type=media, headers={"X-Content-Type-Options": "nosniff"})


def _choice(st: ServiceState, body: Any) -> tuple[str, str]:
    if not isinstance(body, dict):
        raise ServiceError(400, "body must be an object with 'service' and 'patient'")
    service, patient = body.get("service"), body.get("patient")
    hook_def = st.registry.services.get(service) if isinstance(service, str) else None
    if hook_def is None:
        raise ServiceError(400, "unknown service id")
    keys = {p.key for p in patients_for(hook_def.model)}
    if patient not in keys:
        raise ServiceError(
            400, f"pick one of the example patients for this service: {sorted(keys)}"
        )
    return hook_def.id, str(patient)


def bearer(st: ServiceState, path: str) -> str | None:
    """``Bearer <jwt>`` signed by the local development caller for ``path`` (None when JWT
    verification is off)."""
    from cds_service.security.local_issuer import (
        configured_local_issuer,
        load_private_key,
        local_key_path,
        sign,
    )

    if st.authenticator is None:
        return None
    issuer = configured_local_issuer()
    if issuer not in st.authenticator.issuers or not local_key_path().is_file():
        raise ServiceError(409, NO_LOCAL_CALLER)
    key = load_private_key(local_key_path())
    aud = st.settings.public_base_url + path
    return "Bearer " + sign(key, iss=issuer, aud=aud, now=st.clock().timestamp())


@router.post("/tryit/api/prepare")
async def prepare(st: State, body: JsonBody) -> Response:
    """The request an EHR would send for this patient and service, and its authorization."""
    service_id, key = _choice(st, body)
    hook_def = st.registry.services[service_id]
    patient = next(p for p in EXAMPLE_PATIENTS if p.key == key)
    now = st.clock()
    path = f"/cds-services/{service_id}"
    return json_response(
        {
            "path": path,
            "request": patient.request(hook_def.hook, now),
            "authorization": bearer(st, path),
            "feedback_path": f"{path}/feedback",
            "feedback_authorization": bearer(st, f"{path}/feedback"),
            "at": now.isoformat(),
        }
    )


@router.post("/tryit/api/render")
async def render(body: JsonBody) -> Response:
    """The cards of a CDS Hooks response as HTML (escaped; markdown sanitized)."""
    if not isinstance(body, dict) or not isinstance(body.get("status"), int):
        raise ServiceError(400, "body must be an object with 'status' and 'body'")
    html = cards_html(body["status"], body.get("body"))
    return Response(orjson.dumps({"html": html}), media_type="application/json")

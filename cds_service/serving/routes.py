"""What the service publishes about itself: model cards, manifests, and health."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import HTMLResponse
from starlette.responses import Response

from cds_service.deps import ModelDep, State
from cds_service.errors import json_response
from cds_service.web.markdown import to_html

router = APIRouter(tags=["models"])

_PAGE_STYLE = (
    "body{font-family:system-ui,sans-serif;max-width:60rem;margin:2rem auto;"
    "padding:0 1rem;line-height:1.45}table{border-collapse:collapse}"
    "td,th{border:1px solid #ccc;padding:.25rem .5rem}"
)


@router.get("/models/{name}/{version}", response_class=HTMLResponse)
async def model_card(model: ModelDep) -> Response:
    title = f"<title>Model card {model.name} {model.version}</title>"
    head = f"<head><meta charset='utf-8'>{title}<style>{_PAGE_STYLE}</style></head>"
    body = f"<body>{to_html(model.model_card_md)}</body>"
    return HTMLResponse(f"<!doctype html><html lang='en'>{head}{body}</html>")


@router.get("/models/{name}/{version}/manifest.json")
async def model_manifest(model: ModelDep) -> Response:
    return json_response(model.manifest)


@router.get("/readyz")
async def ready(state: State) -> Response:
    """Readiness: cards are served either way, but audit rows are waiting in the spool while
    this process has the database marked away, or while the spool folder the workers of this
    host share holds rows any of them has not written yet. So whichever worker answers, a row
    spooled by another is not hidden. Never a database query: a flag and a folder listing."""
    writer = state.writer
    if writer.health.available and not writer.spool.pending_files():
        return json_response({"status": "ready"})
    return json_response({"status": "degraded: audit spooling"}, status=503)


@router.get("/healthz")
async def health(state: State) -> Response:
    """Liveness: never touches the database."""
    spool = state.writer.spool
    return json_response(
        {
            "status": "ok",
            "environment": state.settings.environment.value,
            "services": sorted(state.registry.services),
            "spooled_audit_files": len(spool.pending_files()),
            "dead_letter_files": len(list(spool.directory.glob("dead-letter-*"))),
            "site_terminology": {
                "sha256": state.registry.site.sha256,
                "files": len(state.registry.site.files),
                "trail": state.registry.site_trail,
            },
        }
    )

"""The CDS Hooks routes in-process, with their dependencies overridden: no server, no lifespan.

What is checked is the wiring: which dependency runs first (auth before the 404 before the body),
what each route answers, and that feedback reaches the audit writer (a real one on SQLite).
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
from fastapi import FastAPI

from cds_service.audit.spool import Spool
from cds_service.audit.writer import AuditWriter
from cds_service.cds_hooks import routes
from cds_service.cds_hooks.fhir_client import FhirClient
from cds_service.config import Settings
from cds_service.db.engine import make_engine, upgrade
from cds_service.deps import get_caller, get_state
from cds_service.errors import ServiceError, install_error_handlers
from cds_service.serving.registry import Registry
from cds_service.state import ServiceState
from tests.cds_hooks.helpers import hook_definitions

NOW = datetime(2026, 3, 14, 9, 30, tzinfo=UTC)
ED = "ed-admission-risk"
FEEDBACK = {
    "feedback": [
        {"card": "card-1", "outcome": "accepted", "outcomeTimestamp": "2026-03-14T09:31:00Z"}
    ]
}


async def _no_caller() -> None:
    return None


async def _forged_caller() -> None:
    raise ServiceError(401, "invalid signature")


@pytest.fixture()
def app(tmp_path: Path) -> Iterator[FastAPI]:
    """The CDS router alone, on a state built by hand (a real writer on SQLite, the bundled hook
    definitions, no models: a call that got as far as scoring would fail loudly)."""
    yield from _app(tmp_path)


@pytest.fixture()
def app_nl(tmp_path: Path) -> Iterator[FastAPI]:
    """The same, for a deployment in Dutch (CDS_LANGUAGE=nl)."""
    yield from _app(tmp_path, language="nl")


def _app(tmp_path: Path, **settings_values: Any) -> Iterator[FastAPI]:
    engine = make_engine(f"sqlite:///{tmp_path / 'audit.sqlite3'}")
    upgrade(engine)
    writer = AuditWriter(engine, Spool(tmp_path / "spool"))
    registry = Registry(services=hook_definitions(), models={})
    settings = Settings(
        database_url="sqlite://", max_body_bytes=2000, spool_dir=tmp_path, **settings_values
    )
    http = httpx.AsyncClient(transport=httpx.MockTransport(lambda r: httpx.Response(500)))
    state = ServiceState(
        settings, registry, writer, FhirClient(http), http, lambda: NOW, authenticator=None
    )
    app = FastAPI()
    install_error_handlers(app)
    app.include_router(routes.router)

    async def state_dep() -> ServiceState:
        return state

    app.dependency_overrides.update({get_state: state_dep, get_caller: _no_caller})
    yield app
    anyio.run(http.aclose)
    engine.dispose()


def request(app: FastAPI, method: str, path: str, **kw: Any) -> httpx.Response:
    async def go() -> httpx.Response:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://cds.test") as client:
            return await client.request(method, path, **kw)

    return anyio.run(go)


def test_discovery_lists_the_registry(app: FastAPI) -> None:
    r = request(app, "GET", "/cds-services")
    assert r.status_code == 200
    assert [s["id"] for s in r.json()["services"]] == list(hook_definitions())


def test_discovery_in_the_deployments_language(app: FastAPI, app_nl: FastAPI) -> None:
    english = {s["id"]: s for s in request(app, "GET", "/cds-services").json()["services"]}
    dutch = {s["id"]: s for s in request(app_nl, "GET", "/cds-services").json()["services"]}
    assert english[ED]["title"] == "ED admission risk"
    assert dutch[ED]["title"] == "Risico op opname binnen 24 uur (SEH)"
    assert dutch[ED]["description"].startswith("Schat de kans")
    for sid, entry in dutch.items():  # every bundled service has its Dutch texts
        assert entry["title"] != english[sid]["title"], sid
        assert entry["description"] != english[sid]["description"], sid
        assert (
            entry["prefetch"] == english[sid]["prefetch"] and entry["hook"] == english[sid]["hook"]
        )


def test_feedback_is_written_with_the_clock_of_the_service(app: FastAPI) -> None:
    r = request(app, "POST", f"/cds-services/{ED}/feedback", json=FEEDBACK)
    assert (r.status_code, r.json()) == (200, {})
    engine = anyio.run(app.dependency_overrides[get_state]).writer.engine
    with engine.connect() as conn:
        rows = conn.exec_driver_sql("SELECT card_uuid, service_id, received_at FROM card_feedback")
        ((card, service, received),) = rows.all()
    assert (card, service) == ("card-1", ED)
    assert str(received).startswith("2026-03-14 09:30:00")


def test_unknown_service_is_404_as_an_operation_outcome(app: FastAPI) -> None:
    for path in ("/cds-services/nope", "/cds-services/nope/feedback"):
        r = request(app, "POST", path, json=FEEDBACK)
        assert r.status_code == 404
        assert r.json()["issue"][0]["diagnostics"] == "unknown CDS service id"


def test_the_caller_is_verified_before_anything_else(app: FastAPI) -> None:
    app.dependency_overrides[get_caller] = _forged_caller
    for method, path in (
        ("GET", "/cds-services"),
        ("POST", "/cds-services/nope"),
        ("POST", f"/cds-services/{ED}/feedback"),
    ):
        r = request(app, method, path, content=b"{not json")
        assert r.status_code == 401, path
        assert r.headers["www-authenticate"] == 'Bearer error="invalid_token"'


def test_the_body_is_bounded_and_must_be_json(app: FastAPI) -> None:
    big = request(app, "POST", f"/cds-services/{ED}", content=b"[" + b"1," * 2000 + b"1]")
    assert big.status_code == 413
    assert big.json()["issue"][0]["diagnostics"] == "request body larger than 2000 bytes"
    bad = request(app, "POST", f"/cds-services/{ED}", content=b"{not json")
    assert bad.status_code == 400


def test_a_bad_request_is_400_before_any_fhir_or_model_work(app: FastAPI) -> None:
    # The registry has no models: a request that got past validation would fail with a 500.
    r = request(app, "POST", f"/cds-services/{ED}", json={"hook": "encounter-start"})
    assert r.status_code == 400
    assert r.json()["issue"][0]["diagnostics"].startswith("hookInstance: ")

"""No value from a query string reaches a log line or a span (issue 12, items 6 and 7): a real
server with the production logging configuration at DEBUG and spans recorded is called on each
route family with canary values in the query string; whatever the status, neither the whole log
output nor any recorded span (attributes and events) contains a canary."""

from __future__ import annotations

import io
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import respx
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from cds_service.cds_hooks.examples import ed_case, ed_prefetch, hook_body
from cds_service.main import create_app
from cds_service.observability.logs import configure_logging
from cds_service.observability.traces import QueryStripper
from tests.utils.server import ServerThread
from tests.utils.service import NOW, make_settings, new_database

CANARIES = {
    "patient": "canary-p1",
    "mrn": "canary-mrn",
    "dob": "canary-dob",
    "code": "canary-code",
    "state": "canary-state",
    "launch": "canary-launch",
    "iss": "http://127.0.0.1:9/canary-iss",  # a closed port: never off this host
    "access_token": "canary-token",
}
SERVICE = "ed-admission-risk"


def _hook_call(client: httpx.Client, query: dict[str, str]) -> list[httpx.Response]:
    case = ed_case(NOW, pid="syn-qs-1")
    body = hook_body("encounter-start", "syn-qs-1", ed_prefetch(case), encounter_id="enc-qs")
    return [
        client.get("/cds-services", params=query),
        client.post(f"/cds-services/{SERVICE}", params=query, json=body),
        client.post("/cds-services/no-such-service", params=query, json=body),
    ]


def _smart(client: httpx.Client, query: dict[str, str]) -> list[httpx.Response]:
    return [
        client.get("/smart/launch", params=query),
        client.get("/smart/callback", params=query),
        client.get("/smart/app", params=query),
    ]


def _dashboard(client: httpx.Client, query: dict[str, str]) -> list[httpx.Response]:
    return [
        client.get("/dashboard", params=query),
        client.get("/dashboard/api/data", params=query),
        client.get("/dashboard/login", params=query),
        client.get("/dashboard/callback", params=query),
    ]


def _models(client: httpx.Client, query: dict[str, str]) -> list[httpx.Response]:
    return [
        client.get("/models/ed-admission/1", params=query),
        client.get("/models/ed-admission/1/manifest.json", params=query),
        client.get("/models/canary-model/9", params=query),
    ]


def _health(client: httpx.Client, query: dict[str, str]) -> list[httpx.Response]:
    return [client.get("/healthz", params=query), client.get("/readyz", params=query)]


FAMILIES = {
    "cds-hooks": _hook_call,
    "smart": _smart,
    "dashboard": _dashboard,
    "models": _models,
    "health": _health,
}


@pytest.fixture
def recorded() -> Iterator[tuple[io.StringIO, InMemorySpanExporter]]:
    """The production logging configuration at DEBUG into a buffer, and every span recorded."""
    provider = trace.get_tracer_provider()
    if not isinstance(provider, TracerProvider):
        provider = TracerProvider()
        trace.set_tracer_provider(provider)
    # as configure_tracing installs it (a provider another test set has none; twice is harmless)
    provider.add_span_processor(QueryStripper())
    spans = InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(spans))
    buffer = io.StringIO()
    handler = configure_logging("DEBUG", buffer)
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.DEBUG)
    try:
        yield buffer, spans
    finally:
        root.removeHandler(handler)
        root.setLevel(level)
        spans.clear()


def _span_text(span: Any) -> str:
    return str(span.to_json(indent=None))


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_no_canary_from_a_query_string_in_any_log_or_span(
    family: str, tmp_path: Path, recorded: tuple[io.StringIO, InMemorySpanExporter]
) -> None:
    buffer, spans = recorded
    db = new_database("sqlite", tmp_path)
    settings = make_settings(db.url, tmp_path)
    router = respx.MockRouter(assert_all_called=False)
    app = create_app(
        settings, clock=lambda: NOW, transport=httpx.MockTransport(router.async_handler)
    )
    try:
        with ServerThread(app) as server, httpx.Client(base_url=server.url, timeout=20) as c:
            responses = FAMILIES[family](c, CANARIES)
    finally:
        db.close()
    assert responses, "no call made"  # whatever they answered (a 4xx, or 502/503 unconfigured)
    logged = buffer.getvalue()
    assert logged, "the server logged nothing: the capture is not wired"
    recorded_spans = spans.get_finished_spans()
    text = logged + "\n".join(_span_text(s) for s in recorded_spans)
    found = sorted({v for v in CANARIES.values() if v in text})
    lines = [ln for ln in text.splitlines() if any(v in ln for v in found)]
    assert not found, f"query-string values in logs or spans: {found}: {lines[:3]}"

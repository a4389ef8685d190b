"""The FHIR fallback's time budget: one deadline for all fetches of a call, retries only while it
allows, and what the hook definition says to do past it. Against a real stalling server."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Iterator
from typing import Any

import anyio
import httpx
import pytest
import respx

from cds_service.cds_hooks.examples import ed_case, ed_prefetch, hook_body
from cds_service.cds_hooks.fhir_client import NO_ANSWER_IN_TIME, FhirClient, FhirFetchError
from cds_service.cds_hooks.prefetch import FhirTimedOut, ResolvedData, resolve
from cds_service.cds_hooks.schemas import parse_request
from cds_service.serving.hook_defs import HookDefinition, HookDefinitionError, parse_hook_definition
from tests.cds_hooks.helpers import hook_definitions, spec
from tests.cds_hooks.slow_fhir import SlowFhir, slow_fhir_server
from tests.utils.service import NOW

HOOK = hook_definitions()["ed-admission-risk"]
CASE = ed_case(NOW)
PID = CASE["patient"]["id"]
# What the service did before the budget: 3 tries of a 3 s request timeout, ~9 s.
REQUEST_TIMEOUT = 3.0
SLACK = 3.0  # generous: a loaded 2-core CI machine


@pytest.fixture(scope="module")
def slow() -> Iterator[tuple[SlowFhir, str]]:
    with slow_fhir_server() as server:
        yield server


def resolve_against(
    base: str, hook: HookDefinition, budget: float | None, *missing: str
) -> tuple[ResolvedData | Exception, float]:
    prefetch = ed_prefetch(CASE)
    for key in missing:
        del prefetch[key]
    body = hook_body(
        "encounter-start", PID, prefetch, encounter_id=CASE["encounter_id"], fhir_server=base
    )
    call = parse_request(body, "encounter-start")

    async def go() -> ResolvedData:
        async with httpx.AsyncClient(timeout=REQUEST_TIMEOUT) as http:
            return await resolve(hook, call, FhirClient(http, retries=2), 5000, budget)

    started = time.monotonic()
    try:
        out: ResolvedData | Exception = anyio.run(go)
    except Exception as exc:
        out = exc
    return out, time.monotonic() - started


def with_service(**service: Any) -> HookDefinition:
    doc = {
        "service": {
            "id": "x",
            "hook": "encounter-start",
            "title": "t",
            "description": "d",
            "model": "ed-admission",
            "model_version": "1.0.0",
            **service,
        },
        "prefetch": {"patient": "Patient/{{context.patientId}}"},
        "bands": [{"name": "all", "indicator": "info"}],
        "card": {
            "summary": "s",
            "missing_summary": "m",
            "risk_sentence": "r",
            "source_label": "l",
            "topic": {"system": "https://x.example", "code": "c"},
        },
    }
    return parse_hook_definition(doc, "x.toml", lambda _m: spec("ed-admission"))


def test_hook_definitions_set_the_budget_and_what_happens_past_it() -> None:
    assert with_service().fhir_budget_seconds is None
    assert with_service().on_fhir_timeout == "412"
    hook = with_service(fhir_budget_seconds=1.5, on_fhir_timeout="card")
    assert (hook.fhir_budget_seconds, hook.on_fhir_timeout) == (1.5, "card")
    for bad in ({"fhir_budget_seconds": 0}, {"fhir_budget_seconds": "2"}):
        with pytest.raises(HookDefinitionError, match="fhir_budget_seconds must be a number"):
            with_service(**bad)
    with pytest.raises(HookDefinitionError, match="on_fhir_timeout must be one of"):
        with_service(on_fhir_timeout="retry")


def test_a_stalled_required_fetch_is_412_within_the_budget(slow: tuple[SlowFhir, str]) -> None:
    server, base = slow
    out, elapsed = resolve_against(base, HOOK, 1.0, "observations", "encounters")
    assert isinstance(out, FhirTimedOut) and NO_ANSWER_IN_TIME in str(out)
    assert sorted(out.keys) == ["encounters", "observations"]
    # One deadline for both fetches, no retry after it: not 3 x 3 s each.
    assert elapsed < 1.0 + SLACK
    assert server.hits.count("/fhir/Observation") == 1


def test_on_fhir_timeout_card_leaves_the_keys_out(slow: tuple[SlowFhir, str]) -> None:
    hook = dataclasses.replace(HOOK, on_fhir_timeout="card")
    out, elapsed = resolve_against(slow[1], hook, 0.5, "encounters")
    assert isinstance(out, ResolvedData), out
    assert out.timed_out == ["encounters"] and out.origin["encounters"] == "fetch-timed-out"
    assert out.counts() == {"fhir_timeout": 1}
    assert elapsed < 0.5 + SLACK


@pytest.mark.slow
def test_without_a_budget_the_request_timeout_and_retries_apply(
    slow: tuple[SlowFhir, str],
) -> None:
    """The old behaviour, for contrast (and so the budget tests can fail): 3 tries of 3 s."""
    out, elapsed = resolve_against(slow[1], HOOK, None, "encounters")
    assert isinstance(out, FhirTimedOut)
    assert elapsed >= 3 * REQUEST_TIMEOUT


def test_retries_stop_when_the_deadline_would_pass() -> None:
    router = respx.MockRouter(assert_all_mocked=True)
    route = router.get("https://fhir.example.org/r4/Patient/p1").mock(
        return_value=httpx.Response(503)
    )

    async def go() -> None:
        transport = httpx.MockTransport(router.async_handler)
        async with httpx.AsyncClient(transport=transport) as http:
            fhir = FhirClient(http, retries=5, backoff_seconds=0.2)
            deadline = anyio.current_time() + 0.5  # pauses 0.2, then 0.4 would pass it
            await fhir.fetch("https://fhir.example.org/r4", "Patient/p1", None, deadline)

    with pytest.raises(FhirFetchError, match="HTTP 503"):
        anyio.run(go)
    assert route.call_count == 2

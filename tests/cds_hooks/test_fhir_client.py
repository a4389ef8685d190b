"""Outbound FHIR reads against a respx-mocked FHIR server: retries, paging, limits, messages."""

from __future__ import annotations

from typing import Any

import anyio
import httpx
import pytest
import respx

from cds_service.cds_hooks.fhir_client import FetchResult, FhirClient, FhirFetchError

BASE = "https://fhir.example.org/r4"


def bundle(*ids: str, next_url: str | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {
        "resourceType": "Bundle",
        "type": "searchset",
        "entry": [
            {"resource": {"resourceType": "Observation", "id": i, "status": "final"}} for i in ids
        ],
    }
    if next_url:
        out["link"] = [{"relation": "next", "url": next_url}]
    return out


def fetch(router: respx.MockRouter, query: str, **client: Any) -> FetchResult:
    async def run() -> FetchResult:
        transport = httpx.MockTransport(router.async_handler)
        async with httpx.AsyncClient(transport=transport) as http:
            fhir = FhirClient(http, backoff_seconds=0, **client)
            return await fhir.fetch(BASE, query, "tok-123")

    return anyio.run(run)


def failure(router: respx.MockRouter, query: str, **client: Any) -> FhirFetchError:
    with pytest.raises(FhirFetchError) as info:
        fetch(router, query, **client)
    return info.value


@pytest.fixture()
def router() -> respx.MockRouter:
    return respx.MockRouter(assert_all_called=False, assert_all_mocked=True)


def test_search_sends_the_token_and_follows_paging(router: respx.MockRouter) -> None:
    first = router.get(f"{BASE}/Observation", params={"patient": "p1"}).mock(
        return_value=httpx.Response(200, json=bundle("a", next_url=f"{BASE}/Observation?page=2"))
    )
    router.get(f"{BASE}/Observation", params={"page": "2"}).mock(
        return_value=httpx.Response(200, json=bundle("b"))
    )
    result = fetch(router, "Observation?patient=p1")
    assert [r["id"] for r in result.resources] == ["a", "b"]
    assert result.pages == 2 and not result.truncated
    assert first.calls[0].request.headers["authorization"] == "Bearer tok-123"


def test_temporary_errors_are_retried(router: respx.MockRouter) -> None:
    route = router.get(f"{BASE}/Patient/p1").mock(
        side_effect=[httpx.Response(503), httpx.Response(429), httpx.Response(200, json={})]
    )
    assert fetch(router, "Patient/p1").pages == 1
    assert route.call_count == 3


def test_retries_are_bounded_and_the_error_says_temporary(router: respx.MockRouter) -> None:
    route = router.get(f"{BASE}/Patient/p1").mock(return_value=httpx.Response(503))
    error = failure(router, "Patient/p1", retries=1)
    assert error.temporary and error.reason == "FHIR server answered HTTP 503"
    assert route.call_count == 2


def test_refused_token_is_final_and_names_the_outcome_codes(router: respx.MockRouter) -> None:
    outcome = {"resourceType": "OperationOutcome", "issue": [{"code": "security"}]}
    route = router.get(f"{BASE}/Patient/p1").mock(return_value=httpx.Response(401, json=outcome))
    error = failure(router, "Patient/p1")
    assert not error.temporary and error.reason.startswith("FHIR server answered HTTP 401 (")
    assert "security" in error.reason and "tok-123" not in error.reason
    assert route.call_count == 1


def test_timeouts_are_retried_then_reported(router: respx.MockRouter) -> None:
    route = router.get(f"{BASE}/Patient/p1").mock(side_effect=httpx.ReadTimeout("slow"))
    assert failure(router, "Patient/p1", retries=2).reason == "FHIR server timed out"
    assert route.call_count == 3


def test_a_read_that_is_not_found_is_no_data(router: respx.MockRouter) -> None:
    router.get(f"{BASE}/Patient/p1").mock(return_value=httpx.Response(404))
    assert fetch(router, "Patient/p1").not_found is True


def test_paging_to_another_server_is_refused(router: respx.MockRouter) -> None:
    router.get(f"{BASE}/Observation").mock(
        return_value=httpx.Response(200, json=bundle("a", next_url="https://evil.example/x"))
    )
    assert failure(router, "Observation").reason == "FHIR paging link points to another server"


def test_resource_and_page_limits_truncate(router: respx.MockRouter) -> None:
    router.get(f"{BASE}/Observation", params={"page": "1"}).mock(
        return_value=httpx.Response(
            200, json=bundle("a", "b", "c", next_url=f"{BASE}/Observation?page=2")
        )
    )
    router.get(f"{BASE}/Observation", params={"page": "2"}).mock(
        return_value=httpx.Response(200, json=bundle("d"))
    )
    by_resources = fetch(router, "Observation?page=1", max_resources=2)
    assert len(by_resources.resources) == 2 and by_resources.truncated
    by_pages = fetch(router, "Observation?page=1", max_pages=1)
    assert len(by_pages.resources) == 3 and by_pages.truncated


def test_a_body_that_is_not_json_is_an_error(router: respx.MockRouter) -> None:
    router.get(f"{BASE}/Patient/p1").mock(return_value=httpx.Response(200, content=b"<html>"))
    assert failure(router, "Patient/p1").reason == "FHIR server sent a body that is not JSON"

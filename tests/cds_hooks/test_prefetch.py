"""Prefetch semantics (absent, null, OperationOutcome, other patients) and the fallback."""

from __future__ import annotations

from typing import Any

import anyio
import httpx
import pytest
import respx

from cds_service.cds_hooks.examples import ed_case, ed_prefetch, hook_body, searchset
from cds_service.cds_hooks.fhir_client import FhirClient
from cds_service.cds_hooks.prefetch import (
    PreconditionFailed,
    ResolvedData,
    TooLarge,
    render_template,
    resolve,
)
from cds_service.cds_hooks.schemas import parse_request
from tests.cds_hooks.helpers import hook_definitions
from tests.utils.service import FHIR_BASE, NOW

HOOK = hook_definitions()["ed-admission-risk"]
CASE = ed_case(NOW)
PID = CASE["patient"]["id"]
OUTCOME = {"resourceType": "OperationOutcome", "issue": [{"severity": "error", "code": "x"}]}


def run(prefetch: dict[str, Any] | None, router: respx.MockRouter | None = None) -> ResolvedData:
    body = hook_body(
        "encounter-start",
        PID,
        prefetch,
        encounter_id=CASE["encounter_id"],
        fhir_server=FHIR_BASE if router is not None else None,
    )
    call = parse_request(body, "encounter-start")

    async def go() -> ResolvedData:
        if router is None:
            return await resolve(HOOK, call, None)
        transport = httpx.MockTransport(router.async_handler)
        async with httpx.AsyncClient(transport=transport) as http:
            return await resolve(HOOK, call, FhirClient(http, backoff_seconds=0))

    return anyio.run(go)


def test_templates_fill_context_and_user_tokens() -> None:
    context = {"patientId": "p1", "userId": "Practitioner/d1"}
    assert render_template("Patient/{{context.patientId}}", context) == "Patient/p1"
    assert render_template("Practitioner/{{ userPractitionerId }}", context) == "Practitioner/d1"
    assert render_template("Encounter/{{context.encounterId}}", context) is None
    assert render_template("PractitionerRole/{{userPractitionerRoleId}}", context) is None


def test_full_prefetch_is_used_as_sent() -> None:
    data = run(ed_prefetch(CASE))
    assert data.origin == dict.fromkeys(("patient", "observations", "encounters"), "prefetch")
    expected = 1 + len(CASE["observations"]) + len(CASE["encounters"])
    assert len(data.resources) == expected


def test_null_means_no_data_and_is_not_fetched() -> None:
    """The search is not run again; the encounter in context, which a service anchored on it
    needs and no key holds, is read by id."""
    prefetch = ed_prefetch(CASE)
    prefetch["encounters"] = None
    router = respx.MockRouter(assert_all_mocked=True)
    visit = CASE["encounters"][0]
    read = router.get(f"{FHIR_BASE}/Encounter/{visit['id']}").respond(200, json=visit)
    data = run(prefetch, router)
    assert data.origin["encounters"] == "null"
    assert read.call_count == 1 and data.visit_status == "own" and data.visit == visit


def test_resources_of_other_patients_are_dropped() -> None:
    prefetch = ed_prefetch(CASE)
    stranger = dict(CASE["observations"][0], subject={"reference": "Patient/someone-else"})
    prefetch["observations"] = searchset([*CASE["observations"], stranger])
    data = run(prefetch)
    assert data.dropped_other_patients == 1


def test_an_outcome_in_a_required_slot_is_412() -> None:
    prefetch = ed_prefetch(CASE)
    prefetch["encounters"] = OUTCOME
    with pytest.raises(PreconditionFailed, match="prefetch 'encounters' holds an Operation"):
        run(prefetch)


def test_a_slot_that_is_no_fhir_resource_is_412() -> None:
    prefetch = ed_prefetch(CASE)
    prefetch["patient"] = ["not", "a", "resource"]
    with pytest.raises(PreconditionFailed, match="prefetch 'patient' is not a FHIR resource"):
        run(prefetch)


def test_more_resources_than_allowed_is_413() -> None:
    prefetch = ed_prefetch(CASE)
    obs = CASE["observations"][0]
    prefetch["observations"] = searchset([dict(obs, id=f"o{i}") for i in range(5001)])
    with pytest.raises(TooLarge, match="more than 5000 resources"):
        run(prefetch)


def test_absent_keys_without_a_fhir_server_are_412() -> None:
    prefetch = ed_prefetch(CASE)
    del prefetch["observations"]
    with pytest.raises(PreconditionFailed, match=r"prefetch \['observations'\] missing"):
        run(prefetch)


def test_absent_keys_are_fetched_from_the_fhir_server() -> None:
    prefetch = ed_prefetch(CASE)
    del prefetch["encounters"]
    router = respx.MockRouter(assert_all_mocked=True)
    route = router.get(f"{FHIR_BASE}/Encounter", params={"patient": PID}).mock(
        return_value=httpx.Response(200, json=searchset(CASE["encounters"]))
    )
    data = run(prefetch, router)
    assert data.origin["encounters"] == "fetched" and route.call_count == 1
    assert route.calls[0].request.headers["authorization"] == "Bearer synthetic-access-token"


def test_a_failed_required_fetch_is_412_naming_the_key() -> None:
    prefetch = ed_prefetch(CASE)
    del prefetch["encounters"]
    router = respx.MockRouter(assert_all_mocked=True)
    router.get(f"{FHIR_BASE}/Encounter").mock(return_value=httpx.Response(403))
    with pytest.raises(PreconditionFailed, match="prefetch 'encounters' could not be fetched"):
        run(prefetch, router)


UUID = "urn:uuid:3f1c6a52-1d1e-4f55-9a43-5a3f0f6f2b11"
EXT = [
    {
        "url": "https://hospital.example/fhir/StructureDefinition/entered-in-error",
        "valueBoolean": True,
    }
]


def _as(res: dict[str, Any], subject: dict[str, Any]) -> dict[str, Any]:
    return dict(res, subject=subject)


def test_references_the_way_fhir_writes_them_are_kept() -> None:
    """urn:uuid through the patient Bundle's fullUrl, absolute, typed, identifier, contained."""
    prefetch = ed_prefetch(CASE)
    prefetch["patient"] = {
        "resourceType": "Bundle",
        "type": "searchset",
        "entry": [{"fullUrl": UUID, "resource": CASE["patient"]}],
    }
    mrn = CASE["patient"]["identifier"][0]
    o = CASE["observations"]
    forms = [
        {"reference": UUID},
        {"reference": f"https://ehr.example/fhir/Patient/{PID}/_history/2"},
        {"type": "Patient", "reference": f"Patient/{PID}"},
        {"type": "Patient", "identifier": mrn},
    ]
    observations = [_as(o[i], forms[i]) for i in range(len(forms))]
    contained = dict(
        _as(o[len(forms)], {"reference": "#p"}),
        contained=[{"resourceType": "Patient", "id": "p", "identifier": [mrn]}],
    )
    prefetch["observations"] = searchset([*observations, contained, *o[len(forms) + 1 :]])
    data = run(prefetch)
    assert data.unattributed == 0 and data.dropped_other_patients == 0
    assert len(data.resources) == 1 + len(o) + len(CASE["encounters"])
    assert data.counts() == {}


def test_unattributable_and_modifier_extension_resources_are_counted() -> None:
    prefetch = ed_prefetch(CASE)
    o = CASE["observations"]
    lost = [
        _as(o[0], {"reference": "urn:uuid:00000000-0000-4000-8000-00000000dead"}),
        _as(o[1], {"type": "Patient", "identifier": {"system": "https://x.example", "value": "1"}}),
        {k: v for k, v in o[2].items() if k != "subject"},
    ]
    flagged = dict(o[3], modifierExtension=EXT)
    prefetch["observations"] = searchset([*lost, flagged, *o[4:]])
    data = run(prefetch)
    assert data.unattributed == 3 and data.modifier_extension_skipped == 1
    assert data.counts() == {"unattributed_resources": 3, "modifier_extension_skipped": 1}
    assert len(data.resources) == 1 + len(o) - 4 + len(CASE["encounters"])


def test_a_fetched_patient_attributes_prefetched_identifier_references() -> None:
    """Attribution waits for every key: the Patient comes from the server, its identifier
    attributes Observations the EHR prefetched."""
    prefetch = ed_prefetch(CASE)
    del prefetch["patient"]
    mrn = CASE["patient"]["identifier"][0]
    o = CASE["observations"]
    prefetch["observations"] = searchset(
        [_as(o[0], {"type": "Patient", "identifier": mrn}), *o[1:]]
    )
    router = respx.MockRouter(assert_all_mocked=True)
    router.get(f"{FHIR_BASE}/Patient/{PID}").mock(
        return_value=httpx.Response(200, json=CASE["patient"])
    )
    data = run(prefetch, router)
    assert data.origin["patient"] == "fetched" and data.unattributed == 0
    assert len(data.resources) == 1 + len(o) + len(CASE["encounters"])

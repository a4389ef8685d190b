"""End-to-end: a real server on loopback plays against the test acting as the EHR."""

from __future__ import annotations

import json
import re
from typing import Any

import httpx

from cds_service.cds_hooks.examples import (
    ed_case,
    ed_prefetch,
    hook_body,
    mi_prefetch,
    post_mi_case,
    searchset,
)
from tests.utils.service import FHIR_BASE, NOW, PUBLIC_BASE, Service

ED = "ed-admission-risk"
ED_PV = "ed-admission-risk-patient-view"
MI = "post-mi-unplanned-visit-risk"


def assert_no_null_or_empty(value: Any, path: str = "") -> None:
    """CDS Hooks: optional fields are omitted, never null or empty."""
    assert value is not None, f"null at {path}"
    if isinstance(value, str | list | dict):
        assert len(value) > 0 or path.endswith("cards"), f"empty at {path}"
    if isinstance(value, dict):
        for k, v in value.items():
            assert_no_null_or_empty(v, f"{path}.{k}")
    elif isinstance(value, list):
        for i, v in enumerate(value):
            assert_no_null_or_empty(v, f"{path}[{i}]")


def ed_call(svc: Service, sick: bool = True, **kw: Any) -> httpx.Response:
    case = ed_case(NOW, sick=sick)
    body = hook_body(
        "encounter-start",
        case["patient"]["id"],
        ed_prefetch(case),
        encounter_id=case["encounter_id"],
        **kw,
    )
    return svc.call(ED, body)


def test_discovery_lists_each_service_per_spec(svc: Service) -> None:
    r = svc.client.get("/cds-services")
    assert r.status_code == 200
    services = {s["id"]: s for s in r.json()["services"]}
    assert set(services) == {ED, ED_PV, MI}
    assert services[ED]["hook"] == "encounter-start"
    assert services[ED_PV]["hook"] == "patient-view"
    assert services[MI]["hook"] == "patient-view"
    for s in services.values():
        assert_no_null_or_empty(s)
        assert s["description"] and s["title"]
        for template in s["prefetch"].values():
            for token in re.findall(r"\{\{([^}]*)\}\}", template):
                assert token in {"context.patientId", "context.encounterId", "context.userId"}


def test_encounter_start_with_full_prefetch_returns_risk_card_and_audit_row(svc: Service) -> None:
    r = ed_call(svc, sick=True)
    assert r.status_code == 200, r.text
    cards = r.json()["cards"]
    assert len(cards) == 1
    card = cards[0]
    assert_no_null_or_empty(card)
    assert len(card["summary"]) < 140
    pct = int(re.search(r"(\d+)%", card["summary"]).group(1))  # type: ignore[union-attr]
    # The sick case is deterministic: 99%, band "high", which the hook shows as critical.
    assert card["indicator"] == "critical" and "(high)" in card["summary"]
    assert "| Heart rate | 128/min" in card["detail"]
    assert "ed-admission 1.0.0" in card["detail"]
    assert card["source"]["url"] == f"{PUBLIC_BASE}/models/ed-admission/1.0.0"
    assert card["source"]["topic"]["code"] == "ed-admission-risk"
    assert all(reason["display"] for reason in card["overrideReasons"])
    smart, model_card = card["links"]
    assert smart["type"] == "smart" and smart["url"] == f"{PUBLIC_BASE}/smart/launch"
    assert json.loads(smart["appContext"]) == {"card": card["uuid"], "service": ED}
    assert model_card["type"] == "absolute" and "appContext" not in model_card
    timing = r.headers["server-timing"]
    for stage in ("parse", "fetch", "map", "predict", "explain", "card", "audit", "total"):
        assert f"{stage};dur=" in timing

    row = svc.card_row(card["uuid"])
    assert row["service_id"] == ED and row["hook"] == "encounter-start"
    assert row["model_name"] == "ed-admission" and row["model_version"] == "1.0.0"
    assert len(row["artifact_sha256"]) == 64
    assert row["card_kind"] == "risk" and row["environment"] == "development"
    assert row["risk_band"] == "high"
    assert 0 <= row["risk"] <= 1 and round(100 * row["risk"]) == pct
    assert row["indicator"] == card["indicator"]
    assert row["patient_pseudonym"] != "syn-ed-1" and len(row["patient_pseudonym"]) == 64
    assert row["encounter_pseudonym"] and "syn-ed-1" not in row["encounter_pseudonym"]
    features = json.loads(row["features"])
    assert features["heart_rate"] == 128 and features["systolic_bp"] == 88
    assert abs(features["glucose"] - 180 / 18.0156) < 0.01
    assert row["latency_ms"] > 0


def test_sick_patient_scores_higher_than_well_patient(svc: Service) -> None:
    sick = svc.card_row(ed_call(svc, sick=True).json()["cards"][0]["uuid"])
    well_case = ed_case(NOW, pid="syn-ed-2", sick=False)
    body = hook_body(
        "encounter-start",
        "syn-ed-2",
        ed_prefetch(well_case),
        encounter_id=well_case["encounter_id"],
    )
    well = svc.card_row(svc.call(ED, body).json()["cards"][0]["uuid"])
    assert sick["risk"] > well["risk"]


def test_absent_prefetch_key_is_fetched_with_bearer_token_and_paging(svc: Service) -> None:
    case = ed_case(NOW)
    half = len(case["observations"]) // 2
    page2 = f"{FHIR_BASE}/Observation?_page=2"
    first = svc.fhir.get(url__regex=rf"^{re.escape(FHIR_BASE)}/Observation\?patient=").mock(
        return_value=httpx.Response(200, json=searchset(case["observations"][:half], page2))
    )
    second = svc.fhir.get(url=page2).mock(
        return_value=httpx.Response(200, json=searchset(case["observations"][half:]))
    )
    prefetch = ed_prefetch(case)
    del prefetch["observations"]
    body = hook_body(
        "encounter-start",
        "syn-ed-1",
        prefetch,
        encounter_id=case["encounter_id"],
        fhir_server=FHIR_BASE,
        token="tok-123",
    )
    r = svc.call(ED, body)
    assert r.status_code == 200, r.text
    assert first.call_count == 1 and second.call_count == 1
    assert first.calls[0].request.headers["authorization"] == "Bearer tok-123"
    row = svc.card_row(r.json()["cards"][0]["uuid"])
    assert row["card_kind"] == "risk"
    assert json.loads(row["features"])["lactate"] == 4.2


def test_no_prefetch_at_all_fetches_everything(svc: Service) -> None:
    case = ed_case(NOW)
    svc.fhir.get(f"{FHIR_BASE}/Patient/syn-ed-1").mock(
        return_value=httpx.Response(200, json=case["patient"])
    )
    svc.fhir.get(url__regex=r"/Observation\?").mock(
        return_value=httpx.Response(200, json=searchset(case["observations"]))
    )
    svc.fhir.get(url__regex=r"/Encounter\?").mock(
        return_value=httpx.Response(200, json=searchset(case["encounters"]))
    )
    body = hook_body(
        "encounter-start",
        "syn-ed-1",
        None,
        encounter_id=case["encounter_id"],
        fhir_server=FHIR_BASE,
    )
    r = svc.call(ED, body)
    assert r.status_code == 200, r.text
    assert r.json()["cards"][0]["summary"].startswith("Admission risk ")


def test_null_prefetch_means_no_data_and_is_not_refetched(svc: Service) -> None:
    case = ed_case(NOW)
    route = svc.fhir.get(url__regex=r"/Observation").mock(
        return_value=httpx.Response(200, json=searchset(case["observations"]))
    )
    prefetch = ed_prefetch(case)
    prefetch["observations"] = None
    body = hook_body(
        "encounter-start",
        "syn-ed-1",
        prefetch,
        encounter_id=case["encounter_id"],
        fhir_server=FHIR_BASE,
    )
    r = svc.call(ED, body)
    assert r.status_code == 200
    assert route.call_count == 0
    card = r.json()["cards"][0]
    # no observations, so no triage vitals: the arrival model answers, and says so
    assert card["summary"].startswith("Admission risk at arrival ")
    assert (
        "Triage vitals are not recorded yet (Heart rate, Systolic blood pressure)"
        in (card["detail"])
    )
    row = svc.card_row(card["uuid"])
    assert (row["model_name"], row["card_kind"]) == ("ed-admission-arrival", "risk")
    assert "heart_rate" not in json.loads(row["features"])


def test_missing_prefetch_without_fhir_server_is_412(svc: Service) -> None:
    case = ed_case(NOW)
    prefetch = ed_prefetch(case)
    del prefetch["observations"]
    r = svc.call(
        ED, hook_body("encounter-start", "syn-ed-1", prefetch, encounter_id=case["encounter_id"])
    )
    assert r.status_code == 412
    outcome = r.json()
    assert outcome["resourceType"] == "OperationOutcome"
    assert "observations" in outcome["issue"][0]["diagnostics"]
    assert "syn-ed-1" not in r.text


def test_operation_outcome_in_required_prefetch_slot_is_412(svc: Service) -> None:
    case = ed_case(NOW)
    prefetch = ed_prefetch(case)
    prefetch["observations"] = {
        "resourceType": "OperationOutcome",
        "issue": [{"severity": "error", "code": "timeout"}],
    }
    route = svc.fhir.get(url__regex=r"/Observation")
    r = svc.call(
        ED,
        hook_body(
            "encounter-start",
            "syn-ed-1",
            prefetch,
            encounter_id=case["encounter_id"],
            fhir_server=FHIR_BASE,
        ),
    )
    assert r.status_code == 412
    assert route.call_count == 0


def test_fhir_server_temporary_failure_is_retried(svc: Service) -> None:
    case = ed_case(NOW)
    route = svc.fhir.get(url__regex=r"/Observation\?").mock(
        side_effect=[httpx.Response(503), httpx.Response(200, json=searchset(case["observations"]))]
    )
    prefetch = ed_prefetch(case)
    del prefetch["observations"]
    r = svc.call(
        ED,
        hook_body(
            "encounter-start",
            "syn-ed-1",
            prefetch,
            encounter_id=case["encounter_id"],
            fhir_server=FHIR_BASE,
        ),
    )
    assert r.status_code == 200, r.text
    assert route.call_count == 2


def test_fhir_server_refusing_the_token_is_412_without_retry(svc: Service) -> None:
    case = ed_case(NOW)
    route = svc.fhir.get(url__regex=r"/Observation\?").mock(
        return_value=httpx.Response(
            401,
            json={
                "resourceType": "OperationOutcome",
                "issue": [{"severity": "error", "code": "login"}],
            },
        )
    )
    prefetch = ed_prefetch(case)
    del prefetch["observations"]
    r = svc.call(
        ED,
        hook_body(
            "encounter-start",
            "syn-ed-1",
            prefetch,
            encounter_id=case["encounter_id"],
            fhir_server=FHIR_BASE,
            token="secret-token-xyz",
        ),
    )
    assert r.status_code == 412
    assert route.call_count == 1
    assert "HTTP 401" in r.text and "secret-token-xyz" not in r.text


def test_fhir_server_timeout_exhausts_retries_then_412(svc: Service) -> None:
    route = svc.fhir.get(url__regex=r"/Observation\?").mock(
        side_effect=httpx.ConnectTimeout("synthetic timeout")
    )
    case = ed_case(NOW)
    prefetch = ed_prefetch(case)
    del prefetch["observations"]
    r = svc.call(
        ED,
        hook_body(
            "encounter-start",
            "syn-ed-1",
            prefetch,
            encounter_id=case["encounter_id"],
            fhir_server=FHIR_BASE,
        ),
    )
    assert r.status_code == 412
    assert route.call_count == 1 + svc.settings.fhir_retries


def test_prefetch_resources_of_other_patients_are_ignored(svc: Service) -> None:
    case = ed_case(NOW)
    other = ed_case(NOW, pid="syn-other", sick=True)
    well = ed_case(NOW, pid="syn-ed-1", sick=False)
    prefetch = ed_prefetch(well)
    prefetch["observations"] = searchset(well["observations"] + other["observations"])
    r = svc.call(
        ED, hook_body("encounter-start", "syn-ed-1", prefetch, encounter_id=case["encounter_id"])
    )
    row = svc.card_row(r.json()["cards"][0]["uuid"])
    assert json.loads(row["features"])["heart_rate"] == 72


def test_patient_view_services(svc: Service) -> None:
    case = ed_case(NOW)
    r = svc.call(ED_PV, hook_body("patient-view", "syn-ed-1", ed_prefetch(case)))
    assert r.status_code == 200, r.text
    assert svc.card_row(r.json()["cards"][0]["uuid"])["hook"] == "patient-view"
    mi = post_mi_case(NOW)
    r = svc.call(MI, hook_body("patient-view", "syn-mi-1", mi_prefetch(mi)))
    assert r.status_code == 200, r.text
    card = r.json()["cards"][0]
    assert "Unplanned-visit risk (14 days)" in card["summary"]
    row = svc.card_row(card["uuid"])
    features = json.loads(row["features"])
    assert features["days_since_mi"] == 30
    assert features["weight_change_7d"] > 1.5
    assert row["encounter_pseudonym"] is None


def test_request_errors(svc: Service) -> None:
    case = ed_case(NOW)
    good = hook_body(
        "encounter-start", "syn-ed-1", ed_prefetch(case), encounter_id=case["encounter_id"]
    )
    post = svc.client.post
    assert (
        post(
            f"/cds-services/{ED}",
            content=b"{not json",
            headers={"content-type": "application/json"},
        ).status_code
        == 400
    )
    assert post(f"/cds-services/{ED}", content=b"[1, 2]").status_code == 400
    for field in ("hookInstance", "context", "hook"):
        body = dict(good)
        del body[field]
        r = svc.call(ED, body)
        assert r.status_code == 400 and field in r.json()["issue"][0]["diagnostics"]
    wrong_hook = dict(good, hook="order-sign")
    assert svc.call(ED, wrong_hook).status_code == 400
    no_encounter = json.loads(json.dumps(good))
    del no_encounter["context"]["encounterId"]
    r = svc.call(ED, no_encounter)
    assert r.status_code == 400 and "encounterId" in r.text
    bad_user = json.loads(json.dumps(good))
    bad_user["context"]["userId"] = "Patient/syn-ed-1"
    assert svc.call(ED, bad_user).status_code == 400
    token_no_server = dict(
        good,
        fhirAuthorization={
            "access_token": "x",
            "token_type": "Bearer",
            "expires_in": 60,
            "scope": "s",
            "subject": "c",
        },
    )
    r = svc.call(ED, token_no_server)
    assert r.status_code == 400 and "fhirServer" in r.text
    assert svc.call("no-such-service", good).status_code == 404
    huge = b'{"hook": "' + b"x" * (svc.settings.max_body_bytes + 10) + b'"}'
    assert post(f"/cds-services/{ED}", content=huge).status_code == 413
    for r in (svc.call(ED, bad_user), svc.call(ED, no_encounter)):
        assert "syn-ed-1" not in r.text


def test_feedback_is_stored_against_the_card(svc: Service) -> None:
    card = ed_call(svc).json()["cards"][0]
    reason = card["overrideReasons"][1]
    feedback = {
        "feedback": [
            {
                "card": card["uuid"],
                "outcome": "overridden",
                "overrideReason": {"reason": reason, "userComment": "seen this morning"},
                "outcomeTimestamp": "2026-03-14T09:31:00Z",
            }
        ]
    }
    url = f"/cds-services/{ED}/feedback"
    assert svc.client.post(url, json=feedback).status_code == 200
    assert svc.client.post(url, json=feedback).status_code == 200  # repeated: idempotent
    rows = svc.db.rows("SELECT * FROM v_feedback WHERE card_uuid = :u", u=card["uuid"])
    assert len(rows) == 1
    row = rows[0]
    assert row["outcome"] == "overridden" and row["override_reason_code"] == reason["code"]
    assert row["model_version"] == "1.0.0" and row["risk"] is not None
    accepted = {
        "feedback": [
            {
                "card": card["uuid"],
                "outcome": "accepted",
                "acceptedSuggestions": [],
                "outcomeTimestamp": "2026-03-14T09:32:00Z",
            }
        ]
    }
    assert svc.client.post(url, json=accepted).status_code == 200
    assert len(svc.db.rows("SELECT * FROM v_feedback WHERE card_uuid = :u", u=card["uuid"])) == 2
    bad = {
        "feedback": [
            {"card": card["uuid"], "outcome": "maybe", "outcomeTimestamp": "2026-03-14T09:32:00Z"}
        ]
    }
    assert svc.client.post(url, json=bad).status_code == 400
    assert svc.client.post(url, json={"nope": 1}).status_code == 400
    assert svc.client.post("/cds-services/nope/feedback", json=accepted).status_code == 404


def test_model_card_page_is_served(svc: Service) -> None:
    r = svc.client.get("/models/ed-admission/1.0.0")
    assert r.status_code == 200 and "text/html" in r.headers["content-type"]
    assert "<table>" in r.text and "AUROC" in r.text
    assert svc.client.get("/models/ed-admission/9.9.9").status_code == 404

"""End-to-end: encounter-start anchored on the encounter in context (docs/encounter-anchoring.md).

At arrival, with no triage vitals, the arrival model answers and the card says when for; once
heart rate and blood pressure are recorded, the one-hour model answers at start + 1 h, never
later, whatever the time of the call. Windows of the arrival model hang on the encounter's
start. An encounter in context that cannot anchor the moment is refused without naming anyone.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from typing import Any

import httpx

from cds_service.cds_hooks.examples import bp, encounter, hook_body, obs, patient, searchset
from tests.utils.service import FHIR_BASE, NOW, PUBLIC_BASE, Service

ED = "ed-admission-risk"
PID = "anc-p-31"
ARRIVAL_MODE = "https://fhir.cds-risk.example/CodeSystem/arrival-mode"
SECRETS = (PID, f"{PID}-ed", "Zzyzxsynthetic")


def _arrival_mode(oid: str, mode: str, at: datetime) -> dict[str, Any]:
    res = obs(PID, oid, "11459-5", 0, "1", at)
    del res["valueQuantity"]
    res["valueCodeableConcept"] = {"coding": [{"system": ARRIVAL_MODE, "code": mode}]}
    return res


def _prefetch(start: datetime, observations: list[dict[str, Any]]) -> dict[str, Any]:
    encounters = [
        encounter(PID, f"{PID}-ed", "EMER", start, status="in-progress", priority="EM"),
        encounter(PID, f"{PID}-old", "IMP", NOW - timedelta(days=100)),
    ]
    return {
        "patient": patient(PID, born="1944-05-06", gender="male"),
        "observations": searchset(observations),
        "encounters": searchset(encounters),
    }


def _call(svc: Service, prefetch: dict[str, Any], **kw: Any) -> httpx.Response:
    body = hook_body("encounter-start", PID, prefetch, encounter_id=f"{PID}-ed", **kw)
    return svc.call(ED, body)


def _card_and_row(svc: Service, r: httpx.Response) -> tuple[dict[str, Any], dict[str, Any]]:
    assert r.status_code == 200, r.text
    (card,) = r.json()["cards"]
    row = svc.card_row(card["uuid"])
    row["features"] = json.loads(row["features"])
    return card, row


def _manifest_sha(model: str) -> str:
    from cds_service.paths import models_dir

    manifest = json.loads((models_dir() / model / "1.0.0" / "manifest.json").read_text())
    return str(manifest["artifact"]["sha256"])


def test_at_arrival_the_arrival_model_answers_and_says_when(svc: Service) -> None:
    start = NOW - timedelta(minutes=1)  # 09:29:15
    observations = [
        _arrival_mode(f"{PID}-am", "ambulance", start + timedelta(seconds=30)),
        # an earlier visit's arrival mode: not this visit's (the window hangs on the start)
        _arrival_mode(f"{PID}-am-old", "self", start - timedelta(hours=3)),
    ]
    card, row = _card_and_row(svc, _call(svc, _prefetch(start, observations)))
    assert card["summary"].startswith("Admission risk at arrival ")
    assert "triage vitals not yet recorded" in card["summary"]
    assert "estimated at arrival (2026-03-14 10:29 CET) from arrival data only" in card["detail"]
    assert (
        "Triage vitals are not recorded yet (Heart rate, Systolic blood pressure)"
        in (card["detail"])
    )
    assert card["source"]["url"] == f"{PUBLIC_BASE}/models/ed-admission-arrival/1.0.0"
    assert "ed-admission-arrival 1.0.0" in card["detail"]
    assert (row["model_name"], row["model_version"]) == ("ed-admission-arrival", "1.0.0")
    assert row["artifact_sha256"] == _manifest_sha("ed-admission-arrival")
    assert row["card_kind"] == "risk" and 0 < row["risk"] < 1
    assert row["features"]["arrival_ambulance"] == 1.0  # this visit's, not the earlier "self"
    assert row["features"]["triage_urgency"] == 3.0 and row["features"]["age"] == 81.0


def test_an_arrival_mode_from_before_this_visit_does_not_count(svc: Service) -> None:
    """Only from an hour before the encounter's start (the one-hour model's 24-hour window would
    take it)."""
    start = NOW - timedelta(minutes=1)
    observations = [_arrival_mode(f"{PID}-am-old", "ambulance", start - timedelta(hours=3))]
    card, row = _card_and_row(svc, _call(svc, _prefetch(start, observations)))
    assert row["model_name"] == "ed-admission-arrival"
    assert row["features"]["arrival_ambulance"] is None
    assert "Arrival by ambulance: stale" in card["detail"]


def _vitals(start: datetime, hr: float = 128, sbp: float = 88) -> list[dict[str, Any]]:
    at = start + timedelta(minutes=40)
    return [obs(PID, f"{PID}-hr", "8867-4", hr, "/min", at), bp(PID, f"{PID}-bp", sbp, 50, at)]


def test_with_triage_vitals_the_one_hour_model_answers_an_hour_after_arrival(
    svc: Service,
) -> None:
    start = NOW - timedelta(hours=1)  # 08:30:15; vitals at 09:10:15; the call at 09:30:15
    card, row = _card_and_row(svc, _call(svc, _prefetch(start, _vitals(start))))
    assert "1 h after arrival (2026-03-14 10:30 CET) – ED admission model" in card["summary"]
    assert card["source"]["url"] == f"{PUBLIC_BASE}/models/ed-admission/1.0.0"
    assert (row["model_name"], row["model_version"]) == ("ed-admission", "1.0.0")
    assert row["artifact_sha256"] == _manifest_sha("ed-admission")
    assert row["features"]["heart_rate"] == 128 and row["features"]["systolic_bp"] == 88


def test_a_later_call_sees_what_existed_one_hour_after_arrival(svc: Service) -> None:
    """Windows are anchored on the encounter's start: a heart rate taken 2 h in is not a triage
    vital, and the moment stays start + 1 h, as the model was trained."""
    start = NOW - timedelta(hours=3)  # 06:30:15
    later = obs(PID, f"{PID}-hr-late", "8867-4", 61, "/min", start + timedelta(hours=2))
    card, row = _card_and_row(svc, _call(svc, _prefetch(start, [*_vitals(start), later])))
    assert "1 h after arrival (2026-03-14 08:30 CET)" in card["summary"]
    assert row["model_name"] == "ed-admission"
    assert row["features"]["heart_rate"] == 128  # the 61 /min at 08:30 is after the moment


def test_vitals_recorded_later_than_one_hour_leave_the_arrival_model(svc: Service) -> None:
    start = NOW - timedelta(hours=3)
    late = [
        obs(PID, f"{PID}-hr", "8867-4", 128, "/min", start + timedelta(hours=2)),
        bp(PID, f"{PID}-bp", 88, 50, start + timedelta(hours=2)),
    ]
    card, row = _card_and_row(svc, _call(svc, _prefetch(start, late)))
    assert row["model_name"] == "ed-admission-arrival"
    assert "at arrival (2026-03-14 07:30 CET)" in card["detail"]


def test_the_encounter_in_context_is_read_when_no_key_holds_it(svc: Service) -> None:
    start = NOW - timedelta(hours=1)
    prefetch = _prefetch(start, _vitals(start))
    visit = prefetch["encounters"]["entry"].pop(0)["resource"]
    read = svc.fhir.get(f"{FHIR_BASE}/Encounter/{PID}-ed").respond(200, json=visit)
    card, row = _card_and_row(svc, _call(svc, prefetch, fhir_server=FHIR_BASE))
    assert read.call_count == 1
    assert row["model_name"] == "ed-admission" and "1 h after arrival" in card["summary"]


def _refused(r: httpx.Response, status: int, words: str) -> None:
    assert r.status_code == status, r.text
    assert words in r.json()["issue"][0]["diagnostics"]
    for secret in SECRETS:
        assert secret not in r.text


def test_another_patients_encounter_is_refused(svc: Service) -> None:
    start = NOW - timedelta(hours=1)
    prefetch = _prefetch(start, _vitals(start))
    stranger = prefetch["encounters"]["entry"][0]["resource"]
    stranger["subject"] = {"reference": "Patient/anc-someone-else"}
    r = _call(svc, prefetch)
    _refused(r, 400, "context.encounterId names an encounter of another patient")
    assert "anc-someone-else" not in r.text


def test_another_patients_encounter_read_from_the_server_is_refused(svc: Service) -> None:
    start = NOW - timedelta(hours=1)
    prefetch = _prefetch(start, _vitals(start))
    visit = prefetch["encounters"]["entry"].pop(0)["resource"]
    visit = dict(visit, subject={"reference": "Patient/anc-someone-else"})
    svc.fhir.get(f"{FHIR_BASE}/Encounter/{PID}-ed").respond(200, json=visit)
    _refused(_call(svc, prefetch, fhir_server=FHIR_BASE), 400, "another patient")


def test_an_encounter_found_nowhere_is_412(svc: Service) -> None:
    start = NOW - timedelta(hours=1)
    prefetch = _prefetch(start, _vitals(start))
    prefetch["encounters"]["entry"].pop(0)
    _refused(_call(svc, prefetch), 412, "found neither in the prefetch nor on the FHIR server")
    svc.fhir.get(f"{FHIR_BASE}/Encounter/{PID}-ed").respond(404)
    _refused(_call(svc, prefetch, fhir_server=FHIR_BASE), 412, "found neither")


def test_an_encounter_starting_after_the_call_is_412(svc: Service) -> None:
    start = NOW + timedelta(hours=2)
    _refused(_call(svc, _prefetch(start, [])), 412, "starts after the time of the call")


def test_patient_view_keeps_the_one_hour_model_at_the_time_of_the_call(svc: Service) -> None:
    start = NOW - timedelta(minutes=1)
    body = hook_body("patient-view", PID, _prefetch(start, []))
    card, row = _card_and_row(svc, svc.call(f"{ED}-patient-view", body))
    assert row["model_name"] == "ed-admission" and row["card_kind"] == "no-risk"
    assert "not computed" in card["summary"]


def test_an_encounter_with_a_modifier_extension_cannot_anchor(svc: Service) -> None:
    start = NOW - timedelta(hours=1)
    prefetch = _prefetch(start, _vitals(start))
    visit = prefetch["encounters"]["entry"][0]["resource"]
    visit["modifierExtension"] = [{"url": "https://ext.example/not-real", "valueBoolean": True}]
    _refused(_call(svc, prefetch), 412, "modifier extension")

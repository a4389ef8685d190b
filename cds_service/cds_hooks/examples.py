"""Synthetic example patients and CDS Hooks requests, with times relative to a given 'now'.

Used by `cds-service example` (so a newcomer can paste a call that yields a real risk card) and by
the tests. Hand-made and synthetic: names and identifiers are deliberately fake, so the PHI tests
can search logs for them.
"""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import Any

LOINC = "http://loinc.org"
UCUM = "http://unitsofmeasure.org"
ACT = "http://terminology.hl7.org/CodeSystem/v3-ActCode"
PRIO = "http://terminology.hl7.org/CodeSystem/v3-ActPriority"
SNOMED = "http://snomed.info/sct"
FAMILY = "Zzyzxsynthetic"
MRN = "SYN-MRN-4711"


def _iso(t: datetime) -> str:
    return t.isoformat()


def patient(pid: str, born: str = "1948-02-03", gender: str = "female") -> dict[str, Any]:
    return {
        "resourceType": "Patient",
        "id": pid,
        "identifier": [{"system": "https://fhir.cds-risk.example/sid/synthetic-mrn", "value": MRN}],
        "name": [{"family": FAMILY, "given": ["Testa"]}],
        "gender": gender,
        "birthDate": born,
    }


def obs(
    pid: str, oid: str, code: str, value: float, unit: str, at: datetime, **extra: Any
) -> dict[str, Any]:
    res: dict[str, Any] = {
        "resourceType": "Observation",
        "id": oid,
        "status": "final",
        "code": {"coding": [{"system": LOINC, "code": code}]},
        "subject": {"reference": f"Patient/{pid}"},
        "effectiveDateTime": _iso(at),
        "valueQuantity": {"value": value, "unit": unit, "system": UCUM, "code": unit},
    }
    res.update(extra)
    return res


def bp(pid: str, oid: str, sys_: float, dia: float, at: datetime) -> dict[str, Any]:
    return {
        "resourceType": "Observation",
        "id": oid,
        "status": "final",
        "code": {"coding": [{"system": LOINC, "code": "85354-9"}]},
        "subject": {"reference": f"Patient/{pid}"},
        "effectiveDateTime": _iso(at),
        "component": [
            {
                "code": {"coding": [{"system": LOINC, "code": "8480-6"}]},
                "valueQuantity": {"value": sys_, "unit": "mmHg", "system": UCUM, "code": "mm[Hg]"},
            },
            {
                "code": {"coding": [{"system": LOINC, "code": "8462-4"}]},
                "valueQuantity": {"value": dia, "unit": "mmHg", "system": UCUM, "code": "mm[Hg]"},
            },
        ],
    }


def encounter(
    pid: str,
    eid: str,
    klass: str,
    start: datetime,
    status: str = "finished",
    priority: str | None = None,
) -> dict[str, Any]:
    res: dict[str, Any] = {
        "resourceType": "Encounter",
        "id": eid,
        "status": status,
        "class": {"system": ACT, "code": klass},
        "subject": {"reference": f"Patient/{pid}"},
        "period": {"start": _iso(start)},
    }
    if priority:
        res["priority"] = {"coding": [{"system": PRIO, "code": priority}]}
    return res


def searchset(resources: list[dict[str, Any]], next_url: str | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {
        "resourceType": "Bundle",
        "type": "searchset",
        "total": len(resources),
        "entry": [{"resource": r} for r in resources],
    }
    if next_url:
        out["link"] = [{"relation": "next", "url": next_url}]
    return out


def ed_case(now: datetime, pid: str = "syn-ed-1", sick: bool = True) -> dict[str, Any]:
    """An ED patient who arrived 50 minutes ago, with triage vitals and first labs."""
    arrival = now - timedelta(minutes=50)
    t = arrival + timedelta(minutes=10)
    lab = arrival + timedelta(minutes=35)
    hr, rr, sbp, dbp, temp, spo2 = (
        (128, 28, 88, 50, 39.4, 89) if sick else (72, 14, 132, 80, 36.8, 98)
    )
    crp, lact, wbc = (180, 4.2, 19.0) if sick else (3, 1.0, 7.0)
    observations = [
        obs(pid, f"{pid}-hr", "8867-4", hr, "/min", t),
        obs(pid, f"{pid}-rr", "9279-1", rr, "/min", t),
        bp(pid, f"{pid}-bp", sbp, dbp, t),
        obs(pid, f"{pid}-temp", "8310-5", temp, "Cel", t),
        obs(pid, f"{pid}-spo2", "59408-5", spo2, "%", t),
        obs(pid, f"{pid}-crp", "1988-5", crp, "mg/L", lab),
        obs(pid, f"{pid}-lact", "2524-7", lact, "mmol/L", lab),
        obs(pid, f"{pid}-wbc", "6690-2", wbc, "10*9/L", lab),
        obs(pid, f"{pid}-glu", "2345-7", 180 if sick else 95, "mg/dL", lab),
    ]
    encounters = [
        encounter(
            pid, f"{pid}-ed", "EMER", arrival, status="in-progress", priority="EM" if sick else "R"
        ),
        encounter(pid, f"{pid}-old", "IMP", now - timedelta(days=120)),
    ]
    return {
        "patient": patient(pid, born="1941-04-01" if sick else "1990-07-07"),
        "observations": observations,
        "encounters": encounters,
        "encounter_id": f"{pid}-ed",
    }


def post_mi_case(now: datetime, pid: str = "syn-mi-1") -> dict[str, Any]:
    """A patient 30 days after an infarction, with two weeks of daily home measurements."""
    onset = now - timedelta(days=30)
    observations = []
    for day in range(14, 0, -1):
        t = now - timedelta(days=day) + timedelta(hours=1)
        gain = max(0, 5 - day) * 0.5
        observations += [
            obs(pid, f"{pid}-w{day}", "29463-7", 82 + gain, "kg", t),
            obs(pid, f"{pid}-hr{day}", "8867-4", 70 + max(0, 5 - day) * 4, "/min", t),
            bp(pid, f"{pid}-bp{day}", 125 - max(0, 5 - day) * 3, 78, t),
            obs(pid, f"{pid}-s{day}", "59408-5", 97 - max(0, 5 - day) * 0.6, "%", t),
        ]
    condition = {
        "resourceType": "Condition",
        "id": f"{pid}-mi",
        "code": {"coding": [{"system": SNOMED, "code": "22298006"}]},
        "subject": {"reference": f"Patient/{pid}"},
        "onsetDateTime": _iso(onset),
        "verificationStatus": {
            "coding": [
                {
                    "system": "http://terminology.hl7.org/CodeSystem/condition-ver-status",
                    "code": "confirmed",
                }
            ]
        },
    }
    return {
        "patient": patient(pid, born="1956-09-09", gender="male"),
        "observations": observations,
        "conditions": [condition],
    }


def hook_body(
    hook: str,
    pid: str,
    prefetch: dict[str, Any] | None,
    *,
    encounter_id: str | None = None,
    fhir_server: str | None = None,
    token: str | None = "synthetic-access-token",  # noqa: S107 (fake token for examples)
    hook_instance: str | None = None,
    user: str = "Practitioner/syn-doc-1",
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "hook": hook,
        "hookInstance": hook_instance or str(uuid.uuid4()),
        "context": {"userId": user, "patientId": pid},
    }
    if encounter_id:
        body["context"]["encounterId"] = encounter_id
    if prefetch is not None:
        body["prefetch"] = prefetch
    if fhir_server:
        body["fhirServer"] = fhir_server
        if token:
            body["fhirAuthorization"] = {
                "access_token": token,
                "token_type": "Bearer",
                "expires_in": 300,
                "scope": "patient/Observation.read patient/Patient.read",
                "subject": "cds-risk",
            }
    return body


def ed_prefetch(case: dict[str, Any]) -> dict[str, Any]:
    return {
        "patient": case["patient"],
        "observations": searchset(case["observations"]),
        "encounters": searchset(case["encounters"]),
    }


def mi_prefetch(case: dict[str, Any]) -> dict[str, Any]:
    return {
        "patient": case["patient"],
        "observations": searchset(case["observations"]),
        "conditions": searchset(case["conditions"]),
    }


def example_request(service_id: str, hook: str, model: str, now: datetime) -> dict[str, Any]:
    """A complete request with prefetch for one of the bundled models."""
    if model == "post-mi-unplanned-visit":
        case = post_mi_case(now)
        return hook_body(hook, case["patient"]["id"], mi_prefetch(case))
    case = ed_case(now)
    encounter_id = case["encounter_id"] if hook == "encounter-start" else None
    return hook_body(hook, case["patient"]["id"], ed_prefetch(case), encounter_id=encounter_id)

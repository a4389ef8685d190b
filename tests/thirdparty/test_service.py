"""Third-party data through the real service and a FHIR server on loopback.

The EHR's FHIR server holds clinosim's export and Synthea's transaction Bundles (processed as a
server processes a transaction: urn:uuid references become ``Type/id``). The service is called the
way an EHR that sends no prefetch calls it, so it fetches everything through its FHIR fallback;
Synthea's patients are called a second time with prefetch Bundles as Synthea wrote them
(``urn:uuid:`` references, resolvable through the ``fullUrl`` of the Patient's entry). For every
call: a 200, nothing counted unattributable, and the audit row's inputs hold every value the
oracle sees (recall per feature); a few chosen cases are compared with golden values.
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from cds_service.cds_hooks.examples import hook_body
from cds_service.cds_hooks.extensions import SIMULATED_TIME_EXTENSION
from cds_service.main import create_app
from fhir_mappers.spec import ModelSpec
from tests.thirdparty.oracle import (
    Oracle,
    Recall,
    bundle_files,
    ed_events,
    read_bundles,
    read_ndjson_export,
)
from tests.utils.fhir_search import FhirSearchServer, fhir_search_server
from tests.utils.generators import CLINOSIM, SYNTHEA
from tests.utils.server import ServerThread
from tests.utils.service import NOW, Service, make_settings, new_database

ED = "ed-admission-risk-patient-view"
MI = "post-mi-unplanned-visit-risk"
GOLDEN = Path(__file__).with_name("golden.json")
MIN_RECALL = 0.99
SYNTHEA_ED_PER_PATIENT = 3  # the latest visits: Synthea's lifetimes hold dozens per patient


@dataclass
class Outcome:
    statuses: list[int] = field(default_factory=list)
    unattributed: int = 0
    recall: dict[str, Recall] = field(default_factory=dict)
    cases: dict[str, dict[str, Any]] = field(default_factory=dict)


@pytest.fixture(scope="module")
def data(
    clinosim_export: Path, synthea_bundles: Path
) -> dict[str, dict[str, list[dict[str, Any]]]]:
    return {
        "clinosim": read_ndjson_export(clinosim_export),
        "synthea": read_bundles(synthea_bundles),
    }


@pytest.fixture(scope="module")
def fhir_base(
    data: dict[str, dict[str, list[dict[str, Any]]]], synthea_bundles: Path
) -> Iterator[str]:
    server = FhirSearchServer()
    for resources in data["clinosim"].values():
        server.load(resources)
    for _path, bundle in bundle_files(synthea_bundles):
        server.load_transaction(bundle)
    with fhir_search_server(server) as base:
        yield base
    assert set(server.statuses) <= {200}, "the service asked the FHIR server for what it lacks"


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    tmp = tmp_path_factory.mktemp("thirdparty-svc")
    db = new_database("sqlite", tmp)
    # Mapping is under test here, not the time budget (tests/integration/test_fhir_budget.py).
    settings = make_settings(
        db.url, tmp, allow_simulated_time=True, fhir_budget_seconds=60.0, fhir_timeout_seconds=30
    )
    app = create_app(settings, clock=lambda: NOW)  # the real network: loopback only
    try:
        with ServerThread(app) as server:
            svc = Service(server, db, None, settings)  # type: ignore[arg-type]
            yield svc
            svc.client.close()
    finally:
        db.close()


def _call(
    svc: Service,
    service_id: str,
    pid: str,
    when: datetime,
    base: str,
    prefetch: dict[str, Any] | None = None,
) -> tuple[int, dict[str, Any], dict[str, int]]:
    """(status, the audit row's inputs, its mapper warnings) for one call at ``when``."""
    instance = str(uuid.uuid4())
    body = hook_body("patient-view", pid, prefetch, fhir_server=base, hook_instance=instance)
    body["extension"] = {SIMULATED_TIME_EXTENSION: when.isoformat()}
    response = svc.call(service_id, body)
    if response.status_code != 200:
        return response.status_code, {}, {}
    rows = svc.db.rows(
        "SELECT inputs, mapper_warnings FROM card_audit WHERE hook_instance = :h AND role = 'live'",
        h=instance,
    )
    assert len(rows) == 1
    inputs = {k: v["value"] for k, v in json.loads(rows[0]["inputs"]).items()}
    return (
        200,
        {"values": inputs, "units": json.loads(rows[0]["inputs"])},
        json.loads(rows[0]["mapper_warnings"]),
    )


def _mi_events(spec: ModelSpec, resources: list[dict[str, Any]]) -> list[datetime]:
    """Index moments after an infarction, by the spec's index codes and offsets (raw reading)."""
    codes = set(spec.index.codes)
    out: set[datetime] = set()
    for res in resources:
        if res["resourceType"] != "Condition":
            continue
        have = {f"{c.get('system')}|{c.get('code')}" for c in res["code"].get("coding", [])}
        onset = res.get("onsetDateTime") or res.get("recordedDate")
        if have & codes and isinstance(onset, str):
            start = datetime.fromisoformat(onset.replace("Z", "+00:00"))
            out.update(start + offset for offset in spec.index.offsets)
    return sorted(out)


def _raw_prefetch(pid: str, bundle: dict[str, Any]) -> dict[str, Any]:
    """What an EHR that keeps Synthea's Bundle as written would send: collection Bundles whose
    entries reference the Patient by urn:uuid, with the Patient's own entry included."""
    entries = bundle["entry"]
    patient_entry = next(e for e in entries if e["resource"]["resourceType"] == "Patient")
    assert patient_entry["resource"]["id"] == pid

    def of_type(rtype: str) -> dict[str, Any]:
        picked = [e for e in entries if e["resource"]["resourceType"] == rtype]
        return {"resourceType": "Bundle", "type": "collection", "entry": [*picked, patient_entry]}

    return {
        "patient": patient_entry["resource"],
        "observations": of_type("Observation"),
        "encounters": of_type("Encounter"),
        "conditions": of_type("Condition"),
    }


def _prefetch_for(service_id: str, raw: dict[str, Any]) -> dict[str, Any]:
    keys = (
        ("patient", "observations", "encounters")
        if service_id == ED
        else (
            "patient",
            "observations",
            "conditions",
        )
    )
    return {k: raw[k] for k in keys}


def _golden_entry(inputs: dict[str, Any]) -> dict[str, list[Any]]:
    return {
        name: [round(item["value"], 4), item["unit"]]
        for name, item in sorted(inputs["units"].items())
        if item["value"] is not None
    }


@pytest.fixture(scope="module")
def outcome(
    service: Service,
    fhir_base: str,
    data: dict[str, dict[str, list[dict[str, Any]]]],
    synthea_bundles: Path,
    ed_spec: ModelSpec,
    mi_spec: ModelSpec,
) -> Outcome:
    out = Outcome(recall={ED: Recall.empty(), MI: Recall.empty()})
    specs = {ED: ed_spec, MI: mi_spec}
    versions = {"clinosim": CLINOSIM.version(), "synthea": SYNTHEA.version()}
    oracles: dict[tuple[str, str, str], Oracle] = {}

    def run(source: str, service_id: str, pid: str, when: datetime, prefetch: Any = None) -> None:
        status, inputs, warnings = _call(service, service_id, pid, when, fhir_base, prefetch)
        out.statuses.append(status)
        if status != 200:
            return
        out.unattributed += warnings.get("unattributed_resources", 0)
        key = (service_id, source, pid)
        if key not in oracles:
            oracles[key] = Oracle(specs[service_id], data[source][pid])
        out.recall[service_id].add(oracles[key], when, inputs["values"])
        mode = "prefetch" if prefetch else "fetched"
        case = f"{source}-{versions[source]}/{service_id}/{mode}/{pid}/{when.isoformat()}"
        out.cases[case] = _golden_entry(inputs)

    for source, patients in data.items():
        events = ed_events(patients, timedelta(hours=1))
        if source == "synthea":
            latest: dict[str, list[datetime]] = {}
            for e in events:
                latest.setdefault(e.patient, []).append(e.index_time)
            events = [
                e for e in events if e.index_time in latest[e.patient][-SYNTHEA_ED_PER_PATIENT:]
            ]
        for event in events:
            run(source, ED, event.patient, event.index_time)
        end = datetime(2026, 9, 1, tzinfo=UTC)
        for pid in sorted(patients):  # every patient: at least one call
            for when in [*_mi_events(mi_spec, patients[pid]), end]:
                run(source, MI, pid, when)
    for _path, bundle in bundle_files(synthea_bundles):
        patient = next(
            (e for e in bundle["entry"] if e["resource"]["resourceType"] == "Patient"), None
        )
        if patient is None:
            continue  # the hospital's and the practitioners' Bundles
        pid = patient["resource"]["id"]
        raw = _raw_prefetch(pid, bundle)
        ed_times = [
            e.index_time for e in ed_events({pid: data["synthea"][pid]}, timedelta(hours=1))
        ]
        for service_id, times in (
            (ED, ed_times[-1:]),
            (MI, _mi_events(mi_spec, data["synthea"][pid])),
        ):
            for when in times:
                run("synthea", service_id, pid, when, _prefetch_for(service_id, raw))
    return out


def test_every_call_answers_200(outcome: Outcome) -> None:
    assert len(outcome.statuses) >= 100
    assert {s for s in outcome.statuses if s != 200} == set()


def test_nothing_counted_unattributable(outcome: Outcome) -> None:
    """Relative and absolute references, and urn:uuid through the Bundle's fullUrl."""
    assert outcome.unattributed == 0


@pytest.mark.parametrize("service_id", [ED, MI])
def test_mapping_recall_per_feature(outcome: Outcome, service_id: str) -> None:
    recall = outcome.recall[service_id]
    low = {n: r for n, r in recall.per_feature().items() if r < MIN_RECALL}
    assert not low, f"recall below {MIN_RECALL:.0%}: {recall.report()}"
    assert not {n: v for n, v in recall.extra.items() if v}
    assert sum(recall.expected.values()) > 0


def test_golden_cases(outcome: Outcome) -> None:
    """Chosen seeded cases: which features are present, with which value and unit."""
    if os.environ.get("CDS_UPDATE_GOLDEN") == "1":
        chosen = _choose(outcome.cases)
        GOLDEN.write_text(_golden_text(chosen), encoding="utf-8")
    golden = json.loads(GOLDEN.read_text(encoding="utf-8"))
    assert golden, "no golden cases"
    for key, expected in golden.items():
        assert key in outcome.cases, f"golden case {key} was not called (generator changed?)"
        assert outcome.cases[key] == expected, key


def _choose(cases: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Per source, service and mode: the first two cases (by key) with the most inputs."""
    groups: dict[str, list[str]] = {}
    for key in sorted(cases):
        groups.setdefault("/".join(key.split("/")[:3]), []).append(key)
    chosen = {}
    for keys in groups.values():
        best = sorted(keys, key=lambda k: -len(cases[k]))[:2]
        chosen.update({k: cases[k] for k in best})
    return chosen


def _golden_text(chosen: dict[str, dict[str, Any]]) -> str:
    """One line per feature, so a changed value shows as a one-line diff."""
    cases = []
    for key in sorted(chosen):
        lines = [f"  {json.dumps(n)}: {json.dumps(v)}" for n, v in sorted(chosen[key].items())]
        cases.append(f" {json.dumps(key)}: {{\n" + ",\n".join(lines) + "\n }")
    return "{\n" + ",\n".join(cases) + "\n}\n"

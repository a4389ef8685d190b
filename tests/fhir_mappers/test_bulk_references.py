"""The bulk reader attributes resources the way FHIR writes references, in NDJSON and in Bundles.

Hand-made synthetic exports: a per-patient transaction Bundle (urn:uuid through fullUrl, as
Synthea writes), and NDJSON with absolute URLs, ``{type, reference}`` and ``{type, identifier}``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from fhir_mappers.bulk import TableStats, export_files, partition_export
from fhir_mappers.resources import patient_id_of

LOINC = "http://loinc.org"
MRN = "urn:oid:2.16.840.1.113883.19.5"


def _obs(oid: str, subject: dict[str, Any]) -> dict[str, Any]:
    return {
        "resourceType": "Observation",
        "id": oid,
        "status": "final",
        "code": {"coding": [{"system": LOINC, "code": "8867-4"}]},
        "subject": subject,
        "effectiveDateTime": "2026-07-01T10:00:00Z",
        "valueQuantity": {"value": 80, "system": "http://unitsofmeasure.org", "code": "/min"},
    }


def _patient(pid: str, mrn: str) -> dict[str, Any]:
    return {"resourceType": "Patient", "id": pid, "identifier": [{"system": MRN, "value": mrn}]}


def _grouped(folder: Path) -> tuple[dict[str, list[str]], TableStats]:
    stats = TableStats()
    out = {
        pid: sorted(f"{r['resourceType']}/{r['id']}" for r in resources)
        for pid, resources in partition_export(folder, stats)
    }
    return out, stats


def test_transaction_bundle_files_resolve_urn_uuid_through_full_url(tmp_path: Path) -> None:
    for pid, uid in (("pa", "1b0c"), ("pb", "2c1d")):
        patient_url = f"urn:uuid:{uid}-0000"
        bundle = {
            "resourceType": "Bundle",
            "type": "transaction",
            "entry": [
                {
                    "fullUrl": f"urn:uuid:{uid}-0001",
                    "resource": _obs(f"{pid}-o1", {"reference": patient_url}),
                },
                {"fullUrl": patient_url, "resource": _patient(pid, f"mrn-{pid}")},
                {
                    "fullUrl": f"urn:uuid:{uid}-0002",
                    "resource": {"resourceType": "Claim", "id": f"{pid}-c"},
                },
            ],
        }
        (tmp_path / f"{pid}.json").write_text(json.dumps(bundle))
    (tmp_path / "_generator_metadata.json").write_text(json.dumps({"generator": "x"}))
    grouped, stats = _grouped(tmp_path)
    assert grouped == {
        "pa": ["Observation/pa-o1", "Patient/pa"],
        "pb": ["Observation/pb-o1", "Patient/pb"],
    }
    assert stats.without_patient == 0
    assert stats.unparseable_lines == 0
    assert [p.name for p in export_files(tmp_path)] == ["pa.json", "pb.json"]


def test_ndjson_references_absolute_typed_and_by_identifier(tmp_path: Path) -> None:
    patients = [_patient("p1", "111"), _patient("p2", "222")]
    observations = [
        _obs("o1", {"reference": "https://ehr.example/fhir/Patient/p1/_history/3"}),
        _obs("o2", {"type": "Patient", "reference": "Patient/p2"}),
        _obs("o3", {"type": "Patient", "identifier": {"system": MRN, "value": "222"}}),
        _obs("o4", {"type": "Group", "reference": "Group/g1"}),  # not a patient's
        _obs("o5", {"type": "Patient", "identifier": {"system": MRN, "value": "999"}}),
    ]
    (tmp_path / "Patient.ndjson").write_text("\n".join(json.dumps(p) for p in patients))
    (tmp_path / "Observation.ndjson").write_text("\n".join(json.dumps(o) for o in observations))
    grouped, stats = _grouped(tmp_path)
    assert grouped == {
        "p1": ["Observation/o1", "Patient/p1"],
        "p2": ["Observation/o2", "Observation/o3", "Patient/p2"],
    }
    assert stats.without_patient == 2  # the Group's and the unknown identifier's: counted


def test_patient_id_of_reads_full_urls_and_identifiers() -> None:
    obs = _obs("o", {"reference": "urn:uuid:abc"})
    assert patient_id_of(obs) is None
    assert patient_id_of(obs, {"urn:uuid:abc": _patient("p9", "9")}) == "p9"
    assert patient_id_of(obs, {"urn:uuid:abc": {"resourceType": "Group", "id": "g"}}) is None
    by_ident = _obs("o", {"identifier": {"system": MRN, "value": "9"}})
    assert patient_id_of(by_ident, identifiers={(MRN, "9"): "p9"}) is None  # type unknown
    by_ident["subject"]["type"] = "Patient"
    assert patient_id_of(by_ident, identifiers={(MRN, "9"): "p9"}) == "p9"

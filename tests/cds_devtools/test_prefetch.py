"""The simulation's prefetch Bundles: searchset with ``Patient/x``, or urn:uuid names that resolve
through the Bundle's ``fullUrl`` (the service must attribute every resource of either)."""

from __future__ import annotations

from typing import Any

from cds_devtools.prefetch import prefetch_bundles, uses_urn_uuid
from fhir_mappers.resources import Attribution, flatten

KEYS = {"observations": "Observation", "encounters": "Encounter"}


def _resources(pid: str) -> list[dict[str, Any]]:
    subject = {"reference": f"Patient/{pid}"}
    return [
        {"resourceType": "Patient", "id": pid},
        {"resourceType": "Encounter", "id": f"{pid}-e", "subject": subject},
        {
            "resourceType": "Observation",
            "id": f"{pid}-o",
            "subject": subject,
            "encounter": {"reference": f"Encounter/{pid}-e"},
        },
    ]


def _verdicts(pid: str, prefetch: dict[str, Any]) -> list[str]:
    attribution = Attribution(pid)
    flats = [flatten(v) for v in prefetch.values()]
    for flat in flats:
        attribution.learn(flat.resources, flat.full_urls)
    return [attribution.of(r) for flat in flats for r in flat.resources]


def test_both_forms_occur_and_every_resource_is_the_patients() -> None:
    pids = [f"ed-p{i:06d}" for i in range(200)]
    urn = [p for p in pids if uses_urn_uuid(p)]
    assert 20 < len(urn) < 60
    for pid in (urn[0], next(p for p in pids if not uses_urn_uuid(p))):
        prefetch = prefetch_bundles(_resources(pid), KEYS)
        assert set(prefetch) == {"patient", *KEYS}
        assert set(_verdicts(pid, prefetch)) == {"patient"}


def test_urn_uuid_bundles_name_entries_and_rewrite_references() -> None:
    pid = next(f"ed-p{i:06d}" for i in range(200) if uses_urn_uuid(f"ed-p{i:06d}"))
    prefetch = prefetch_bundles(_resources(pid), KEYS)
    bundle = prefetch["observations"]
    assert bundle["type"] == "collection"
    obs, patient = (e for e in bundle["entry"])
    assert obs["fullUrl"].startswith("urn:uuid:")
    assert obs["resource"]["subject"]["reference"] == patient["fullUrl"]
    assert obs["resource"]["encounter"]["reference"].startswith("urn:uuid:")
    assert prefetch_bundles(_resources(pid), KEYS) == prefetch  # stable

"""Whose data is it: subject/patient references the way FHIR writes them, and modifier extensions.

https://hl7.org/fhir/R4/references.html, https://hl7.org/fhir/R4/bundle.html#references
"""

from __future__ import annotations

from typing import Any

import pytest

from fhir_mappers.resources import Attribution, flatten, has_modifier_extension

PID = "pat-1"
MRN = {"system": "https://hospital.example/mrn", "value": "12345"}
PATIENT = {"resourceType": "Patient", "id": PID, "identifier": [MRN]}
UUID = "urn:uuid:04121321-4af5-424c-a0e1-ed3aab1c349d"


def obs(subject: Any, **extra: Any) -> dict[str, Any]:
    return {
        "resourceType": "Observation",
        "id": "o1",
        "status": "final",
        "subject": subject,
        **extra,
    }


def attribution(*entries: tuple[str | None, dict[str, Any]]) -> Attribution:
    bundle = {
        "resourceType": "Bundle",
        "type": "collection",
        "entry": [
            {"resource": r} if url is None else {"fullUrl": url, "resource": r}
            for url, r in entries
        ],
    }
    flat = flatten(bundle)
    att = Attribution(PID)
    att.learn(flat.resources, flat.full_urls)
    return att


@pytest.mark.parametrize(
    "reference",
    [
        "Patient/pat-1",
        "https://fhir.hospital.example/r4/Patient/pat-1",
        "https://fhir.hospital.example/r4/Patient/pat-1/_history/3",
        UUID,
    ],
)
def test_reference_forms_of_this_patient(reference: str) -> None:
    att = attribution((UUID, PATIENT))
    assert att.of(obs({"reference": reference})) == "patient"
    assert att.of(obs({"type": "Patient", "reference": reference})) == "patient"


def test_urn_uuid_of_a_patient_without_id_resolves_through_its_identifiers() -> None:
    """Transaction Bundles (Synthea) may leave the id out: the identifiers tell."""
    att = attribution((None, PATIENT), (UUID, {"resourceType": "Patient", "identifier": [MRN]}))
    assert att.of(obs({"reference": UUID})) == "patient"
    stranger = {"resourceType": "Patient", "identifier": [dict(MRN, value="999")]}
    assert attribution((UUID, stranger)).of(obs({"reference": UUID})) == "unknown"


def test_identifier_references_match_the_patients_identifiers() -> None:
    att = attribution((None, PATIENT))
    assert att.of(obs({"type": "Patient", "identifier": MRN})) == "patient"
    assert att.of(obs({"type": "Patient", "identifier": dict(MRN, value="9")})) == "unknown"
    # no Patient in the call: nothing to match against
    assert Attribution(PID).of(obs({"type": "Patient", "identifier": MRN})) == "unknown"


def test_contained_patient_is_matched_by_identifier_only() -> None:
    att = attribution((None, PATIENT))
    mine = {"resourceType": "Patient", "id": "p", "identifier": [MRN]}
    assert att.of(obs({"reference": "#p"}, contained=[mine])) == "patient"
    assert att.of(obs({"reference": "#nope"}, contained=[mine])) == "unknown"
    local = {"resourceType": "Patient", "id": PID}  # a local id that happens to match: no proof
    assert att.of(obs({"reference": "#" + PID}, contained=[local])) == "unknown"


def test_other_patients_and_other_subjects() -> None:
    att = attribution((UUID, {"resourceType": "Patient", "id": "someone-else"}), (None, PATIENT))
    assert att.of(obs({"reference": "Patient/someone-else"})) == "other"
    assert att.of(obs({"reference": "https://x.example/Patient/someone-else"})) == "other"
    assert att.of(obs({"reference": UUID})) == "other"
    assert att.of(obs({"reference": "Group/g1"})) == "other"
    assert att.of(obs({"type": "Device", "identifier": MRN})) == "other"
    assert att.of({"resourceType": "Practitioner", "id": "d1"}) == "other"
    assert att.of({"resourceType": "Patient", "id": "someone-else"}) == "other"
    assert att.of(PATIENT) == "patient"


@pytest.mark.parametrize(
    "subject",
    [{"reference": "urn:uuid:not-in-any-bundle"}, {"display": "Mrs X"}, "Patient/pat-1", {}],
)
def test_what_cannot_be_attributed_is_unknown(subject: Any) -> None:
    assert attribution((None, PATIENT)).of(obs(subject)) == "unknown"


def test_patient_data_without_subject_is_unknown() -> None:
    att = attribution((None, PATIENT))
    assert att.of({"resourceType": "Observation", "id": "o"}) == "unknown"
    encounter = {"resourceType": "Encounter", "id": "e", "subject": {"reference": "Patient/pat-1"}}
    assert att.of(encounter) == "patient"


def test_modifier_extensions_anywhere_in_the_resource() -> None:
    ext = [{"url": "https://x.example/not-done", "valueBoolean": True}]
    assert has_modifier_extension(obs({"reference": "Patient/pat-1"}, modifierExtension=ext))
    nested = obs({"reference": "Patient/pat-1"}, component=[{"modifierExtension": ext}])
    assert has_modifier_extension(nested)
    assert not has_modifier_extension(obs({"reference": "Patient/pat-1"}, extension=ext))
    assert not has_modifier_extension(obs({"reference": "Patient/pat-1"}, modifierExtension=[]))
    deep: dict[str, Any] = {"resourceType": "Observation"}
    node = deep
    for _ in range(5000):  # nesting deeper than the recursion limit
        node["x"] = {}
        node = node["x"]
    node["modifierExtension"] = ext
    assert has_modifier_extension(deep)

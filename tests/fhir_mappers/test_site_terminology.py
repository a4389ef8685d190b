"""Site terminology: local codes join the codes they mean, or are refused by file and element."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from fhir_mappers import extract
from fhir_mappers.site_binding import apply_site_terminology, unused_site_entries
from fhir_mappers.site_terminology import (
    EMPTY_TERMINOLOGY_SHA256,
    NO_SITE_TERMINOLOGY,
    SiteTerminology,
    TerminologyError,
    load_site_terminology,
    parse_site_resources,
)
from fhir_mappers.spec import ModelSpec

LAB = "https://lab.example-hospital.nl/codes"
LOINC = "http://loinc.org"
ACT = "http://terminology.hl7.org/CodeSystem/v3-ActCode"
ARRIVAL = "https://fhir.cds-risk.example/CodeSystem/arrival-mode"
NOW = datetime(2026, 3, 14, 9, 30, tzinfo=UTC)


def target(code: str, equivalence: str = "equivalent", **extra: Any) -> dict[str, Any]:
    return {"code": code, "equivalence": equivalence, **extra}


def concept_map(*elements: tuple[str, list[dict[str, Any]]], **group: Any) -> dict[str, Any]:
    return {
        "resourceType": "ConceptMap",
        "id": "lab",
        "url": "https://lab.example-hospital.nl/ConceptMap/lab-to-loinc",
        "status": "active",
        "group": [
            {
                "source": group.get("source", LAB),
                "target": group.get("target", LOINC),
                "element": [{"code": c, "target": t} for c, t in elements],
            }
        ],
    }


def site(*resources: dict[str, Any]) -> SiteTerminology:
    return parse_site_resources([(f"site-{i}.json", r) for i, r in enumerate(resources)])


def refused(spec: ModelSpec, *resources: dict[str, Any]) -> str:
    with pytest.raises(TerminologyError) as info:
        apply_site_terminology(spec, site(*resources))
    return str(info.value)


def glucose_obs(code: str, system: str = LAB) -> dict[str, Any]:
    return {
        "resourceType": "Observation",
        "id": "o1",
        "status": "final",
        "code": {"coding": [{"system": system, "code": code}]},
        "subject": {"reference": "Patient/p1"},
        "effectiveDateTime": (NOW - timedelta(hours=1)).isoformat(),
        "valueQuantity": {"value": 99, "unit": "mg/dL", "system": "http://unitsofmeasure.org"},
    }


def test_no_site_folder_hashes_to_the_documented_empty_value() -> None:
    assert load_site_terminology(None) is NO_SITE_TERMINOLOGY
    assert hashlib.sha256(b"").hexdigest() == EMPTY_TERMINOLOGY_SHA256
    assert EMPTY_TERMINOLOGY_SHA256.startswith("e3b0c442")


def test_hash_covers_content_not_file_names_or_formatting(tmp_path: Path) -> None:
    cm = concept_map(("GLU", [target("2345-7")]))
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir()
    b.mkdir()
    (a / "lab.json").write_text(json.dumps(cm))
    (b / "renamed.json").write_text(json.dumps(cm, indent=4, sort_keys=True))
    first, second = load_site_terminology(a), load_site_terminology(b)
    assert first.sha256 == second.sha256 != EMPTY_TERMINOLOGY_SHA256
    assert first.files == ("lab.json",)
    cm["group"][0]["element"][0]["code"] = "GLU2"
    (b / "renamed.json").write_text(json.dumps(cm))
    assert load_site_terminology(b).sha256 != first.sha256


def test_missing_folder_and_unreadable_file_are_refused(tmp_path: Path) -> None:
    with pytest.raises(TerminologyError, match="does not exist"):
        load_site_terminology(tmp_path / "nope")
    (tmp_path / "broken.json").write_text("{not json")
    with pytest.raises(TerminologyError, match=r"broken\.json: not readable JSON"):
        load_site_terminology(tmp_path)


def test_local_glucose_code_fills_the_feature_and_keeps_the_spec_hash(ed_spec: ModelSpec) -> None:
    before = extract([glucose_obs("GLU")], NOW, ed_spec)
    assert before.values["glucose"] is None
    mapped = apply_site_terminology(ed_spec, site(concept_map(("GLU", [target("2345-7")]))))
    assert mapped.sha256 == ed_spec.sha256
    assert mapped.feature_names == ed_spec.feature_names
    assert f"{LAB}|GLU" in mapped.feature("glucose").codes
    assert f"{LAB}|GLU" not in mapped.feature("creatinine").codes
    after = extract([glucose_obs("GLU")], NOW, mapped)
    assert after.values["glucose"] == pytest.approx(99 / 18.0156, rel=1e-3)


def test_wider_target_is_accepted_narrower_is_refused(ed_spec: ModelSpec) -> None:
    """R4 reads equivalence from the target: 'wider' = every local result is the concept."""
    mapped = apply_site_terminology(
        ed_spec, site(concept_map(("GLU-POC", [target("2345-7", "wider")])))
    )
    assert f"{LAB}|GLU-POC" in mapped.feature("glucose").codes
    message = refused(ed_spec, concept_map(("GLU-ANY", [target("2345-7", "narrower")])))
    assert "site-0.json ConceptMap" in message
    assert "element 'GLU-ANY' target #1" in message
    assert "equivalence 'narrower' is refused" in message


@pytest.mark.parametrize(
    "equivalence", ["narrower", "specializes", "inexact", "relatedto", "disjoint", "unmatched"]
)
def test_unsafe_equivalences_are_refused(ed_spec: ModelSpec, equivalence: str) -> None:
    message = refused(ed_spec, concept_map(("GLU", [target("2345-7", equivalence)])))
    assert f"equivalence '{equivalence}' is refused" in message


def test_unknown_equivalence_and_missing_target_are_refused(ed_spec: ModelSpec) -> None:
    assert "unknown equivalence 'same'" in refused(
        ed_spec, concept_map(("GLU", [target("2345-7", "same")]))
    )
    assert "no target" in refused(ed_spec, concept_map(("GLU", [])))


def test_one_local_code_for_two_inputs_is_refused(ed_spec: ModelSpec) -> None:
    message = refused(ed_spec, concept_map(("CHEM", [target("2345-7"), target("2160-0")])))
    assert "element 'CHEM' target #2" in message
    assert "feature creatinine" in message and "feature glucose" in message
    assert "one code, one meaning" in message


def test_two_targets_of_the_same_concept_are_one_meaning(ed_spec: ModelSpec) -> None:
    mapped = apply_site_terminology(
        ed_spec, site(concept_map(("GLU", [target("2345-7"), target("14749-6")])))
    )
    assert mapped.feature("glucose").codes.count(f"{LAB}|GLU") == 1


def test_a_model_code_cannot_be_remapped_to_another_input(ed_spec: ModelSpec) -> None:
    cm = concept_map(("2160-0", [target("2345-7")]), source=LOINC)
    message = refused(ed_spec, cm)
    assert "the bundled feature spec makes it feature creatinine" in message


def test_value_map_codes_take_the_same_number(ed_spec: ModelSpec) -> None:
    cm = concept_map(("AMB", [target("ambulance")]), ("SELF", [target("self")]), target=ARRIVAL)
    mapped = apply_site_terminology(ed_spec, site(cm))
    value_map = mapped.feature("arrival_ambulance").value_map
    assert value_map[f"{LAB}|AMB"] == 1.0
    assert value_map[f"{LAB}|SELF"] == 0.0
    clash = concept_map(("X", [target("ambulance"), target("self")]), target=ARRIVAL)
    assert "value 0 of feature arrival_ambulance" in refused(ed_spec, clash)


def test_index_and_label_codes_are_mapped(ed_spec: ModelSpec) -> None:
    local = "https://his.example-hospital.nl/encounter-class"
    cm = concept_map(("SEH", [target("EMER")]), ("KLIN", [target("IMP")]), source=local, target=ACT)
    mapped = apply_site_terminology(ed_spec, site(cm))
    assert f"{local}|SEH" in mapped.index.codes
    assert f"{local}|KLIN" in mapped.label.codes
    assert f"{local}|KLIN" in mapped.feature("prior_admissions_365d").codes
    assert mapped.index.offsets == ed_spec.index.offsets


def test_unit_product_must_convert_to_the_feature_unit(ed_spec: ModelSpec) -> None:
    def with_unit(unit: str) -> dict[str, Any]:
        product = [{"property": "unit", "system": "http://unitsofmeasure.org", "value": unit}]
        return concept_map(("GLU", [target("2345-7", product=product)]))

    mg = apply_site_terminology(ed_spec, site(with_unit("mg/dL")))  # via the molar mass
    assert f"{LAB}|GLU" in mg.feature("glucose").codes
    message = refused(ed_spec, with_unit("%"))
    assert "unit '%' of https://lab.example-hospital.nl/codes|GLU does not convert" in message
    assert "feature glucose" in message and "'mmol/L'" in message


def test_conditional_and_unknown_products_are_refused(ed_spec: ModelSpec) -> None:
    depends = [{"property": "specimen", "value": "capillary"}]
    assert "dependsOn" in refused(
        ed_spec, concept_map(("GLU", [target("2345-7", dependsOn=depends)]))
    )
    assert "product 'method'" in refused(
        ed_spec,
        concept_map(("GLU", [target("2345-7", product=[{"property": "method", "value": "x"}])])),
    )


def test_other_resources_and_incomplete_groups_are_refused(ed_spec: ModelSpec) -> None:
    with pytest.raises(TerminologyError, match="'CodeSystem' is not a ConceptMap or ValueSet"):
        site({"resourceType": "CodeSystem", "status": "active", "content": "complete"})
    no_target = concept_map(("GLU", [target("2345-7")]))
    del no_target["group"][0]["target"]
    with pytest.raises(TerminologyError, match="group #1: needs its source and target"):
        site(no_target)


def value_set(*includes: dict[str, Any], **compose: Any) -> dict[str, Any]:
    return {
        "resourceType": "ValueSet",
        "url": "https://lab.example-hospital.nl/ValueSet/glucose",
        "status": "active",
        "compose": {"include": list(includes), **compose},
    }


GLUCOSE_VS = "https://fhir.cds-risk.example/ValueSet/glucose"


def bound(spec: ModelSpec) -> ModelSpec:
    """The spec as the value-set loader leaves it: glucose bound to its bundled value set."""
    features = tuple(
        dataclasses.replace(f, value_set=GLUCOSE_VS) if f.name == "glucose" else f
        for f in spec.features
    )
    return dataclasses.replace(spec, features=features)


def test_site_value_set_extends_the_bound_feature(ed_spec: ModelSpec) -> None:
    vs = value_set({"valueSet": [GLUCOSE_VS]}, {"system": LAB, "concept": [{"code": "GLU"}]})
    mapped = apply_site_terminology(bound(ed_spec), site(vs))
    assert f"{LAB}|GLU" in mapped.feature("glucose").codes
    assert mapped.sha256 == ed_spec.sha256
    unbound = dataclasses.replace(
        ed_spec,
        features=tuple(dataclasses.replace(f, value_set=None) for f in ed_spec.features),
    )
    unrelated = apply_site_terminology(unbound, site(vs))  # nothing bound to that url
    assert unrelated.feature("glucose").codes == ed_spec.feature("glucose").codes


def test_site_value_set_cannot_take_another_features_code(ed_spec: ModelSpec) -> None:
    vs = value_set({"valueSet": [GLUCOSE_VS]}, {"system": LOINC, "concept": [{"code": "2160-0"}]})
    message = refused(bound(ed_spec), vs)
    assert "ValueSet https://lab.example-hospital.nl/ValueSet/glucose" in message
    assert "feature creatinine" in message


@pytest.mark.parametrize(
    ("compose", "expected"),
    [
        ({"include": [{"valueSet": [GLUCOSE_VS]}], "exclude": [{"system": LOINC}]}, "exclude"),
        ({"include": [{"system": LAB}]}, "whole system is refused"),
        (
            {"include": [{"system": LAB, "filter": [{"property": "a", "op": "=", "value": "b"}]}]},
            "filters are not expanded",
        ),
        (
            {"include": [{"valueSet": [GLUCOSE_VS], "system": LAB, "concept": [{"code": "G"}]}]},
            "intersection",
        ),
        ({"include": [{"system": LAB, "concept": [{"code": "G"}]}]}, "names no bundled value set"),
    ],
)
def test_value_sets_that_only_add_codes(compose: dict[str, Any], expected: str) -> None:
    with pytest.raises(TerminologyError, match=expected):
        site({"resourceType": "ValueSet", "status": "active", "compose": compose})


def test_unused_entries_are_reported_not_refused(ed_spec: ModelSpec, mi_spec: ModelSpec) -> None:
    terms = site(concept_map(("GLU", [target("2345-7")]), ("NA", [target("2951-2")])))
    assert apply_site_terminology(ed_spec, terms).feature("glucose").codes[-1] == f"{LAB}|GLU"
    unused = unused_site_entries(terms, [ed_spec, mi_spec])
    assert len(unused) == 1 and "element 'NA'" in unused[0]


def test_the_documented_examples_do_what_the_docs_say(ed_spec: ModelSpec) -> None:
    docs = Path(__file__).resolve().parents[2] / "docs" / "terminology-site.md"
    blocks = docs.read_text(encoding="utf-8").split("```json\n")[1:]
    concept_map_doc, value_set_doc = (json.loads(b.split("```", 1)[0]) for b in blocks[:2])
    mapped = apply_site_terminology(ed_spec, site(concept_map_doc))
    assert extract([glucose_obs("GLU-P")], NOW, mapped).values["glucose"] is not None
    extended = apply_site_terminology(bound(ed_spec), site(value_set_doc))
    assert f"{LAB}|GLU-P" in extended.feature("glucose").codes
    assert EMPTY_TERMINOLOGY_SHA256 in docs.read_text(encoding="utf-8")


def test_rows_from_before_the_column_carry_the_empty_hash() -> None:
    migration = (
        Path(__file__).resolve().parents[2] / "sql/migrations/versions/0005_site_terminology.py"
    )
    assert f'NO_SITE_TERMINOLOGY = "{EMPTY_TERMINOLOGY_SHA256}"' in migration.read_text()

"""Bundled value sets: the files, the spec binding, what the bundled specs now read, the doc page.

The codes are the ones third-party generators and hospitals send (Synthea's glucose 2339-0 and
creatinine 38483-4, clinosim's ICD-10-CM infarction, SNOMED CT problems, temperature at any site);
each case failed with the code-only specs before the value sets.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from fhir.resources.R4B.valueset import ValueSet

from fhir_mappers import SpecError, extract, spec_from_dict
from fhir_mappers.bulk import TableStats, iter_rows
from fhir_mappers.valuesets import (
    CANONICAL_BASE,
    ValueSetError,
    bundled,
    parse_value_set,
    resolve,
)
from fhir_mappers.valuesets.__main__ import main
from fhir_mappers.valuesets.markdown import models_markdown
from tests.conftest import LOINC, MODELS_DIR, REPO_ROOT, SNOMED, obs_feature

VALUESET_DIR = REPO_ROOT / "fhir_mappers" / "valuesets"
ICD10 = "http://hl7.org/fhir/sid/icd-10"
ICD10CM = "http://hl7.org/fhir/sid/icd-10-cm"
INDEX = datetime(2024, 3, 10, 12, 0, tzinfo=UTC)


def _at(minutes: float) -> str:
    return (INDEX + timedelta(minutes=minutes)).isoformat().replace("+00:00", "Z")


# --- the files ------------------------------------------------------------------------------


@pytest.mark.parametrize("path", sorted(VALUESET_DIR.glob("*.json")), ids=lambda p: p.stem)
def test_every_value_set_file_is_a_valid_r4_value_set(path: Path) -> None:
    vs = ValueSet.model_validate_json(path.read_text(encoding="utf-8"))
    assert vs.id == path.stem
    assert vs.url == CANONICAL_BASE + path.stem
    assert vs.status == "active"
    assert vs.compose is not None
    for include in vs.compose.include:
        assert include.system and include.concept and not include.filter
        assert all(c.code and c.display for c in include.concept)


def test_a_file_that_is_not_json_is_refused_without_echoing_it() -> None:
    with pytest.raises(ValueSetError, match=r"x\.json: not a valid FHIR R4 ValueSet") as err:
        parse_value_set("{secret-looking text", "x.json")
    assert "secret" not in str(err.value)


def test_a_value_set_outside_the_bundle_keeps_its_own_url() -> None:
    text = _vs(url="https://hospital.example/fhir/ValueSet/x")
    assert parse_value_set(text, "x.json", canonical_base=None).url.startswith("https://hospital")


def test_bundled_sets_are_found_by_name_and_by_canonical_url() -> None:
    assert len(bundled()) == len(list(VALUESET_DIR.glob("*.json")))
    by_name = resolve("glucose")
    assert resolve(f"{CANONICAL_BASE}glucose") is by_name
    assert {"http://loinc.org|2339-0", "http://loinc.org|2345-7"} <= set(by_name.keys)


def test_an_unknown_value_set_names_the_known_ones() -> None:
    with pytest.raises(ValueSetError, match=r"unknown value set 'glucoze'.*'glucose'"):
        resolve("glucoze")


def _vs(**changes: Any) -> str:
    doc: dict[str, Any] = {
        "resourceType": "ValueSet",
        "id": "x",
        "url": f"{CANONICAL_BASE}x",
        "status": "active",
        "compose": {"include": [{"system": LOINC, "concept": [{"code": "1-8", "display": "a"}]}]},
    }
    doc.update(changes)
    return json.dumps(doc)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"resourceType": "Observation"}, "not a valid FHIR R4 ValueSet"),
        ({"status": None}, r"not a valid FHIR R4 ValueSet \(status"),
        ({"url": "https://elsewhere.example/ValueSet/x"}, "url must be"),
        (
            {
                "compose": {
                    "include": [
                        {
                            "system": LOINC,
                            "filter": [{"property": "COMPONENT", "op": "=", "value": "LP14635-4"}],
                        }
                    ]
                }
            },
            "must enumerate concepts",
        ),
        (
            {
                "compose": {
                    "include": [{"system": LOINC, "concept": [{"code": "1-8"}, {"code": "1-8"}]}]
                }
            },
            "listed twice",
        ),
        (
            {
                "compose": {
                    "include": [{"system": LOINC, "concept": [{"code": "1-8"}]}],
                    "exclude": [{"system": LOINC, "concept": [{"code": "1-8"}]}],
                }
            },
            "exclude",
        ),
    ],
)
def test_a_value_set_the_mapper_cannot_use_is_refused(changes: dict[str, Any], message: str):
    with pytest.raises(ValueSetError, match=message):
        parse_value_set(_vs(**changes), "x.json")


# --- the spec binding -----------------------------------------------------------------------


def test_value_set_expands_into_codes_and_is_recorded(make_spec) -> None:
    feat = obs_feature(value_set="glucose", unit="mmol/L", molar_mass=180.156)
    feat.pop("codes")
    spec = make_spec(feat)
    assert spec.features[0].value_set == f"{CANONICAL_BASE}glucose"
    assert spec.features[0].codes == resolve("glucose").keys


def test_listed_codes_are_kept_besides_the_value_set(make_spec) -> None:
    feat = obs_feature(value_set="glucose", unit="mmol/L", codes=["urn:local|GLU"])
    codes = make_spec(feat).features[0].codes
    assert codes[-1] == "urn:local|GLU" and "http://loinc.org|2339-0" in codes


def test_an_unknown_value_set_refuses_the_spec(spec_doc) -> None:
    feat = obs_feature(value_set="glucoze")
    with pytest.raises(SpecError) as err:
        spec_from_dict(spec_doc(feat), "models/x/features.toml")
    assert str(err.value).startswith("models/x/features.toml feature #1 (f): unknown value set")
    assert "'glucose'" in str(err.value)


@pytest.mark.parametrize("ref", [7, "", ["glucose"]])
def test_a_value_set_that_is_not_a_name_refuses_the_spec(spec_doc, ref) -> None:
    with pytest.raises(SpecError, match="value_set must name a bundled value set"):
        spec_from_dict(spec_doc(obs_feature(value_set=ref)))


def test_unknown_value_set_in_index_refuses_the_spec(spec_doc) -> None:
    doc = spec_doc(obs_feature(), index={"resource": "Condition", "value_set": "infarct"})
    with pytest.raises(SpecError, match=r"\[index\]: unknown value set 'infarct'"):
        spec_from_dict(doc)


def test_value_map_keys_may_name_value_sets(make_spec) -> None:
    feat = obs_feature(
        codes=[f"{LOINC}|11459-5"],
        value_map={"arrived-by-ambulance": 1, "arrived-not-by-ambulance": 0},
    )
    feat.pop("unit")
    spec_feat = make_spec(feat).features[0]
    assert spec_feat.value_map[f"{LOINC}|LA9318-2"] == 1.0
    assert spec_feat.value_map["http://terminology.hl7.org/CodeSystem/v3-ActCode|PRVTRN"] == 0.0
    assert spec_feat.value_map_sets == {
        f"{CANONICAL_BASE}arrived-by-ambulance": 1.0,
        f"{CANONICAL_BASE}arrived-not-by-ambulance": 0.0,
    }


def test_one_code_with_two_meanings_refuses_the_spec(spec_doc) -> None:
    feat = obs_feature(value_map={"arrived-by-ambulance": 1, f"{LOINC}|LA9318-2": 0})
    with pytest.raises(SpecError, match=r"LA9318-2 means 1 \(arrived-by-ambulance\) and 0"):
        spec_from_dict(spec_doc(feat))


def test_the_spec_hash_covers_what_a_value_set_expands_to(spec_doc, monkeypatch) -> None:
    feat = obs_feature(value_set="glucose", unit="mmol/L")
    before = spec_from_dict(spec_doc(feat)).sha256
    glucose = resolve("glucose")
    shorter = type(glucose)(
        glucose.name, glucose.url, glucose.title, glucose.description, glucose.concepts[:-1]
    )
    monkeypatch.setitem(bundled(), glucose.url, shorter)
    assert spec_from_dict(spec_doc(feat)).sha256 != before


# --- what the bundled specs read now ---------------------------------------------------------


@pytest.mark.parametrize(
    ("feature", "code", "value", "unit", "expected"),
    [
        ("glucose", "2339-0", 216.1872, "mg/dL", 12.0),  # Synthea: glucose in blood, US units
        ("glucose", "41653-7", 90.0, "mg/dL", 90.0 / 18.0156),  # point of care, capillary
        ("glucose", "14743-9", 6.1, "mmol/L", 6.1),
        ("creatinine", "38483-4", 1.2, "mg/dL", 1.2 * 10_000 / 113.12),  # Synthea
        ("creatinine", "59826-8", 95.0, "umol/L", 95.0),
        ("temperature", "8331-1", 38.2, "Cel", 38.2),  # oral
        ("temperature", "8333-7", 37.9, "Cel", 37.9),  # tympanic
        ("temperature", "8328-7", 36.4, "Cel", 36.4),  # axillary
        ("heart_rate", "40443-4", 72.0, "/min", 72.0),  # resting heart rate
        ("spo2", "20564-1", 96.0, "%", 96.0),
    ],
)
def test_codes_real_systems_send_fill_the_ed_features(
    ed_spec, fhir, feature, code, value, unit, expected
) -> None:
    res = fhir.observation("o1", code, value, unit, at=_at(-1))
    out = extract([res], INDEX, ed_spec)
    assert out.values[feature] == pytest.approx(expected)
    assert sum(out.warnings.values()) == 0


def test_a_snomed_coded_temperature_is_read(ed_spec, fhir) -> None:
    res = fhir.observation("t1", (SNOMED, "415945006"), 37.2, "Cel", at=_at(-5))
    assert extract([res], INDEX, ed_spec).values["temperature"] == pytest.approx(37.2)


@pytest.mark.parametrize(
    ("answer", "expected"),
    [
        ((LOINC, "LA9318-2"), 1.0),
        (("http://terminology.hl7.org/CodeSystem/v3-ActCode", "AMBHELO"), 1.0),
        ((LOINC, "LA9319-0"), 0.0),
        (("https://fhir.cds-risk.example/CodeSystem/arrival-mode", "ambulance"), 1.0),
    ],
)
def test_arrival_answers_from_standard_code_systems(ed_spec, fhir, answer, expected) -> None:
    res = fhir.observation("a1", "11459-5", at=_at(-30), valueCodeableConcept=fhir.concept(answer))
    assert extract([res], INDEX, ed_spec).values["arrival_ambulance"] == expected


def test_breathlessness_as_a_borg_score_is_read(mi_spec, fhir) -> None:
    res = fhir.observation("d1", (SNOMED, "263487004"), at=_at(-60), valueInteger=4)
    assert extract([res], INDEX, mi_spec).values["dyspnea_score_max_3d"] == 4.0


def test_an_encounter_without_priority_is_missing_without_a_warning(ed_spec, fhir) -> None:
    ed = fhir.encounter("ed1", "EMER", _at(-30), status="in-progress")
    out = extract([ed], INDEX, ed_spec)
    assert out.values["triage_urgency"] is None
    assert out.warnings == {}


@pytest.mark.parametrize(
    "code", [(ICD10CM, "I21.9"), (SNOMED, "401303003"), (ICD10CM, "I21.A1"), (ICD10, "I21.4")]
)
def test_the_infarction_as_icd10cm_or_snomed_fills_days_since_mi(mi_spec, fhir, code) -> None:
    mi = fhir.condition("mi", code, onset=(INDEX - timedelta(days=20)).isoformat())
    assert extract([mi], INDEX, mi_spec).values["days_since_mi"] == pytest.approx(20.0)


def _ndjson(folder: Path, name: str, resources: list[dict[str, Any]]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    text = "".join(json.dumps(r) + "\n" for r in resources)
    (folder / f"{name}.ndjson").write_text(text, encoding="utf-8")


def test_the_infarction_as_icd10cm_or_snomed_makes_training_rows(mi_spec, fhir, tmp_path):
    """Before the value sets, clinosim's icd-10-cm|I21.9 gave no index event at all."""
    export = tmp_path / "export"
    onset = "2024-01-01T08:00:00Z"
    _ndjson(export, "Patient", [fhir.patient("cm"), fhir.patient("sct")])
    _ndjson(
        export,
        "Condition",
        [
            fhir.condition("mi-cm", (ICD10CM, "I21.9"), onset, patient="cm"),
            fhir.condition("mi-sct", (SNOMED, "401303003"), onset, patient="sct"),
        ],
    )
    stats = TableStats(export_sha256="")
    rows = list(iter_rows(export, mi_spec, stats))
    by_patient = {pid: [r for r in rows if r["patient_id"] == pid] for pid in ("cm", "sct")}
    for pid, patient_rows in by_patient.items():
        assert [r["days_since_mi"] for r in patient_rows] == [float(d) for d in range(14, 85, 7)]
        assert patient_rows[0]["anchor"] == f"Condition/mi-{pid}"


# --- the clinician-readable page -------------------------------------------------------------


def test_docs_terminology_is_the_generated_page() -> None:
    """Regenerate with: python -m fhir_mappers.valuesets --markdown > docs/terminology.md"""
    written = (REPO_ROOT / "docs" / "terminology.md").read_text(encoding="utf-8")
    assert written == models_markdown(MODELS_DIR)


def test_the_page_lists_every_concept_code_and_user() -> None:
    page = models_markdown(MODELS_DIR)
    for vs in bundled().values():
        assert f"## {vs.title}" in page
        assert all(f"| {c.code} | {c.display} |" in page for c in vs.concepts)
    assert "ed-admission: `glucose`" in page
    assert "post-mi-unplanned-visit: [index]" in page
    assert "ed-admission: `arrival_ambulance` (answer = 1)" in page


def test_the_command_prints_the_page(capsys) -> None:
    assert main(["--markdown", "--models", str(MODELS_DIR)]) == 0
    assert capsys.readouterr().out == models_markdown(MODELS_DIR)
    assert main([]) == 2


# --- arrival mode recorded on the Encounter ---------------------------------------------------

MODE_OF_ARRIVAL = "http://hl7.org/fhir/StructureDefinition/encounter-modeOfArrival"
ACT_CODE = "http://terminology.hl7.org/CodeSystem/v3-ActCode"


def _ed_with(fhir: Any, **elements: Any) -> dict[str, Any]:
    ed = fhir.encounter("ed1", "EMER", _at(-30), status="in-progress", priority="UR")
    ed.update(elements)
    return ed


def test_arrival_mode_extension_on_the_encounter_fills_the_feature(ed_spec, fhir) -> None:
    ext = {"url": MODE_OF_ARRIVAL, "valueCoding": {"system": ACT_CODE, "code": "AMBGRND"}}
    out = extract([_ed_with(fhir, extension=[ext])], INDEX, ed_spec)
    assert out.values["arrival_ambulance"] == 1.0
    assert [s.reference for s in out.provenance["arrival_ambulance"].sources] == ["Encounter/ed1"]
    assert sum(out.warnings.values()) == 0


def test_admit_source_counts_only_when_it_is_an_arrival_answer(ed_spec, fhir) -> None:
    from_gp = {
        "admitSource": fhir.concept(("http://terminology.hl7.org/CodeSystem/admit-source", "gp"))
    }
    out = extract([_ed_with(fhir, hospitalization=from_gp)], INDEX, ed_spec)
    assert out.values["arrival_ambulance"] is None  # "from the GP" says nothing about transport
    assert sum(out.warnings.values()) == 0
    by_car = {"admitSource": fhir.concept((ACT_CODE, "PRVTRN"))}
    out = extract([_ed_with(fhir, hospitalization=by_car)], INDEX, ed_spec)
    assert out.values["arrival_ambulance"] == 0.0


def test_the_later_of_observation_and_encounter_answer_wins(ed_spec, fhir) -> None:
    ext = {"url": MODE_OF_ARRIVAL, "valueCoding": {"system": ACT_CODE, "code": "PRVTRN"}}
    answer = fhir.concept((LOINC, "LA9318-2"))
    obs = fhir.observation("a1", "11459-5", at=_at(-10), valueCodeableConcept=answer)
    out = extract([_ed_with(fhir, extension=[ext]), obs], INDEX, ed_spec)
    assert out.values["arrival_ambulance"] == 1.0  # the observation (-10 min) is the latest


@pytest.mark.parametrize(
    "elements",
    [
        {"extension": "modeOfArrival"},
        {"extension": [{"url": MODE_OF_ARRIVAL, "valueCoding": "AMBT"}]},
        {"hospitalization": ["ambulance"]},
        {"hospitalization": {"admitSource": {"coding": "AMBT"}}},
    ],
)
def test_a_malformed_arrival_element_is_not_read(ed_spec, fhir, elements) -> None:
    out = extract([_ed_with(fhir, **elements)], INDEX, ed_spec)
    assert out.values["arrival_ambulance"] is None
    assert out.values["triage_urgency"] == 2.0  # the rest of the encounter still counts


@pytest.mark.parametrize(
    ("elements", "message"),
    [
        (["hospitalization admitSource"], "encounter_elements are Encounter paths"),
        ([7], "encounter_elements are Encounter paths"),
        ("extension:http://x.example/e", "encounter_elements are Encounter paths"),
    ],
)
def test_bad_encounter_elements_refuse_the_spec(spec_doc, elements, message) -> None:
    feat = obs_feature(value_map={"arrived-by-ambulance": 1}, encounter_elements=elements)
    with pytest.raises(SpecError, match=message):
        spec_from_dict(spec_doc(feat))


def test_encounter_elements_need_a_coded_observation(spec_doc) -> None:
    feat = obs_feature(encounter_elements=["hospitalization.admitSource"])
    with pytest.raises(SpecError, match=r"need a coded observation \(value_map\)"):
        spec_from_dict(spec_doc(feat))

"""The synthetic cohort must be reproducible, self-consistent and use only the models' codes.

Training manifests hash their input data and the mapper's tests rely on the encodings described in
docs/synthetic-data.md, so drift in any of these would break far more than this module.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest

from cds_devtools.synth import RESOURCE_TYPES, generate_cohort
from fhir_mappers import load_spec
from fhir_mappers.bulk import TableStats, partition_export

ROOT = Path(__file__).resolve().parents[2]
SPEC_FILES = sorted((ROOT / "models").glob("*/features.toml"))
FILES = [f"{rt}.ndjson" for rt in RESOURCE_TYPES] + ["manifest.json"]
LOINC = "http://loinc.org"
ACT_CODE = "http://terminology.hl7.org/CodeSystem/v3-ActCode"
ACT_PRIORITY = "http://terminology.hl7.org/CodeSystem/v3-ActPriority"
LOCAL_SYSTEMS = (
    "https://fhir.cds-risk.example/CodeSystem/local-lab",
    "https://fhir.cds-risk.example/CodeSystem/local-flowsheet",
)
# Codes the generator may use beyond the feature specs: the BP panel that carries 8480-6/8462-4
# as components, and the outpatient encounter class that no label counts.
EXTRA_CODES = {f"{LOINC}|85354-9", f"{ACT_CODE}|AMB"}
# Standard codes hospitals send for the same concepts (whole-blood glucose and creatinine,
# temperature at a named site, the infarction in ICD-10-CM): in the concepts' value sets.
ALTERNATIVE_CODES = {
    f"{LOINC}|2339-0",
    f"{LOINC}|38483-4",
    f"{LOINC}|8331-1",
    f"{LOINC}|8333-7",
    f"{LOINC}|8328-7",
    f"{LOINC}|8332-9",
    "http://hl7.org/fhir/sid/icd-10-cm|I21.9",
    "http://hl7.org/fhir/sid/icd-10-cm|I21.3",
    "http://hl7.org/fhir/sid/icd-10-cm|I21.4",
}
TIME_WITH_OFFSET = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(Z|[+-]\d\d:\d\d)$")


def read(directory: Path, rtype: str) -> Iterator[dict[str, Any]]:
    with (directory / f"{rtype}.ndjson").open("rb") as fh:
        for line in fh:
            yield orjson.loads(line)


def when(text: str) -> datetime:
    if len(text) == 10:  # FHIR date: the start of that day
        return datetime.fromisoformat(text).replace(tzinfo=UTC)
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def patient_of(subject: dict[str, Any]) -> str:
    """``Patient/x``, an absolute URL ending in it, or the MRN in ``{type, identifier}``."""
    if "identifier" in subject:
        assert subject["type"] == "Patient"
        return str(subject["identifier"]["value"]).removeprefix("SYN-").lower()
    return str(subject["reference"]).rsplit("Patient/", 1)[1]


def spec_codes() -> set[str]:
    """Every code the specs read, value sets expanded (what the loader matches on)."""
    codes: set[str] = set()
    for path in SPEC_FILES:
        spec = load_spec(path)
        for feature in spec.features:
            codes.update(feature.codes)
            codes.update(feature.value_map)
        codes.update(spec.index.codes)
        codes.update(spec.label.codes)
        codes.update(spec.label.exclude_priority)
    return codes


def codings(concept: dict[str, Any]) -> set[str]:
    return {f"{c['system']}|{c['code']}" for c in concept.get("coding", [])}


@pytest.fixture(scope="module")
def small(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("synth-small")
    generate_cohort(out, ed_patients=60, post_mi_patients=20)
    return out


@pytest.fixture(scope="module")
def medium(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("synth-medium")
    generate_cohort(out, ed_patients=1500, post_mi_patients=200, seed=7)
    return out


def test_same_arguments_give_byte_identical_files(small: Path, tmp_path: Path) -> None:
    generate_cohort(tmp_path, ed_patients=60, post_mi_patients=20)
    for name in FILES:
        assert (tmp_path / name).read_bytes() == (small / name).read_bytes(), name
    assert not list(tmp_path.glob("*.partial"))


def test_another_seed_gives_other_data(small: Path, tmp_path: Path) -> None:
    generate_cohort(tmp_path, ed_patients=60, post_mi_patients=20, seed=1)
    assert (tmp_path / "Observation.ndjson").read_bytes() != (
        small / "Observation.ndjson"
    ).read_bytes()
    assert (tmp_path / "Patient.ndjson").read_bytes() != (small / "Patient.ndjson").read_bytes()


def test_ed_patients_do_not_depend_on_the_post_mi_cohort_size(small: Path, tmp_path: Path) -> None:
    generate_cohort(tmp_path, ed_patients=60, post_mi_patients=3)
    ed_lines = [
        line
        for line in (small / "Patient.ndjson").read_bytes().splitlines()
        if b'"id":"ed-p' in line
    ]
    assert len(ed_lines) == 60
    assert (tmp_path / "Patient.ndjson").read_bytes().splitlines()[:60] == ed_lines


def test_manifest_matches_files_and_return_value(tmp_path: Path) -> None:
    counts = generate_cohort(tmp_path, ed_patients=30, post_mi_patients=10)
    manifest = orjson.loads((tmp_path / "manifest.json").read_bytes())
    assert manifest["transactionTime"] == "2026-01-01T00:00:00+01:00"
    assert manifest["requiresAccessToken"] is False
    assert manifest["request"].startswith("https://")
    assert manifest["error"] == []
    assert [o["type"] for o in manifest["output"]] == list(RESOURCE_TYPES)
    for output in manifest["output"]:
        path = tmp_path / output["url"]
        assert output["url"] == f"{output['type']}.ndjson"
        lines = path.read_bytes().count(b"\n")
        assert output["count"] == lines == counts[output["type"]] > 0


def test_empty_cohort_and_bad_arguments(tmp_path: Path) -> None:
    assert generate_cohort(tmp_path, ed_patients=0, post_mi_patients=0) == dict.fromkeys(
        RESOURCE_TYPES, 0
    )
    assert (tmp_path / "Patient.ndjson").read_bytes() == b""
    with pytest.raises(ValueError):
        generate_cohort(tmp_path, ed_patients=-1)


def test_every_reference_resolves_and_every_resource_has_meta(small: Path) -> None:
    patients = {p["id"] for p in read(small, "Patient")}
    encounters = {e["id"] for e in read(small, "Encounter")}
    assert len(patients) == 80
    seen_ids: set[tuple[str, str]] = set()
    for rtype in RESOURCE_TYPES:
        for res in read(small, rtype):
            assert res["resourceType"] == rtype
            assert (rtype, res["id"]) not in seen_ids
            seen_ids.add((rtype, res["id"]))
            assert TIME_WITH_OFFSET.match(res["meta"]["lastUpdated"])
            if rtype == "Patient":
                continue
            assert patient_of(res["subject"]) in patients
            if "encounter" in res:
                assert res["encounter"]["reference"].removeprefix("Encounter/") in encounters


def test_patients_are_obviously_synthetic(small: Path) -> None:
    for patient in read(small, "Patient"):
        assert patient["name"][0]["family"] == "Synthetic"
        assert patient["identifier"][0]["system"].endswith("/sid/synthetic-mrn")
        assert patient["meta"]["tag"][0]["code"] == "HTEST"
        assert patient["gender"] in {"male", "female", "other", "unknown"}


def test_codes_are_those_of_the_feature_specs(medium: Path) -> None:
    allowed = spec_codes() | EXTRA_CODES | ALTERNATIVE_CODES
    assert len(SPEC_FILES) >= 2
    for obs in read(medium, "Observation"):
        used = codings(obs["code"])
        for component in obs.get("component", []):
            used |= codings(component["code"])
        unknown = {c for c in used - allowed if not c.startswith(LOCAL_SYSTEMS)}
        assert not unknown, obs["id"]
        if "valueCodeableConcept" in obs:
            assert codings(obs["valueCodeableConcept"]) <= allowed
    for cond in read(medium, "Condition"):
        assert codings(cond["code"]) <= allowed
    for enc in read(medium, "Encounter"):
        klass = enc["class"]
        assert f"{klass['system']}|{klass['code']}" in allowed
        if "priority" in enc:
            assert codings(enc["priority"]) <= allowed


def test_timestamps_always_carry_an_offset(small: Path) -> None:
    for obs in read(small, "Observation"):
        times = [obs.get("effectiveDateTime"), obs.get("issued")]
        times += list(obs.get("effectivePeriod", {}).values())
        present = [t for t in times if t is not None]
        assert present, obs["id"]
        assert all(TIME_WITH_OFFSET.match(t) for t in present), obs["id"]
    for enc in read(small, "Encounter"):
        assert all(TIME_WITH_OFFSET.match(t) for t in enc["period"].values())


def test_encoding_variety_is_present(medium: Path) -> None:
    statuses: defaultdict[str, int] = defaultdict(int)
    units: set[str] = set()
    absurd_ok = True
    comparators = absent = periods = issued_only = non_ucum = panels = loose_bp = 0
    for obs in read(medium, "Observation"):
        statuses[obs["status"]] += 1
        quantity = obs.get("valueQuantity")
        if quantity is not None:
            units.add(quantity.get("code", ""))
            comparators += "comparator" in quantity
            non_ucum += quantity.get("system") != "http://unitsofmeasure.org"
            is_hr = any(c["code"] == "8867-4" for c in obs["code"]["coding"])
            if is_hr and quantity["value"] == 999:
                absurd_ok &= obs["status"] in ("entered-in-error", "cancelled")
        absent += "dataAbsentReason" in obs
        periods += "effectivePeriod" in obs
        issued_only += not ({"effectiveDateTime", "effectivePeriod"} & obs.keys())
        codes = codings(obs["code"])
        panels += f"{LOINC}|85354-9" in codes
        loose_bp += f"{LOINC}|8480-6" in codes
    total = sum(statuses.values())
    assert statuses["final"] > 0.85 * total
    assert statuses["entered-in-error"] > 0 and statuses["cancelled"] > 0
    assert 0.005 < (statuses["entered-in-error"] + statuses["cancelled"]) / total < 0.02
    assert statuses["amended"] and statuses["corrected"] and statuses["preliminary"]
    assert absurd_ok
    assert {"[degF]", "[lb_av]", "mg/dL", "10*3/uL", "umol/L", "mmol/L", "{score}"} <= units
    assert comparators and absent and periods and issued_only and non_ucum
    assert panels > 5 * loose_bp > 0


def admitted_within_24h(directory: Path) -> tuple[list[bool], dict[str, list[float]]]:
    """The ED label exactly as models/ed-admission/features.toml defines it, plus triage HR."""
    encounters: defaultdict[str, list[dict[str, Any]]] = defaultdict(list)
    for enc in read(directory, "Encounter"):
        encounters[enc["subject"]["reference"]].append(enc)
    labels: list[bool] = []
    label_of: dict[str, bool] = {}
    for history in encounters.values():
        for ed in history:
            if ed["class"]["code"] != "EMER":
                continue
            arrival = when(ed["period"]["start"])
            label = any(
                e["class"]["code"] in ("IMP", "ACUTE")
                and e["status"] != "cancelled"
                and arrival < when(e["period"]["start"]) <= arrival + timedelta(hours=24)
                for e in history
            )
            labels.append(label)
            label_of[ed["id"]] = label
    heart_rate: dict[str, list[float]] = {"admitted": [], "discharged": []}
    for obs in read(directory, "Observation"):
        quantity = obs.get("valueQuantity")
        if "encounter" not in obs or quantity is None or obs["status"] != "final":
            continue
        if not any(c["code"] == "8867-4" for c in obs["code"]["coding"]):
            continue
        group = (
            "admitted"
            if label_of[obs["encounter"]["reference"].removeprefix("Encounter/")]
            else "discharged"
        )
        heart_rate[group].append(quantity["value"])
    return labels, heart_rate


def unplanned_within_14d(directory: Path) -> list[bool]:
    """The post-MI label as models/post-mi-unplanned-visit/features.toml defines it."""
    visits: defaultdict[str, list[datetime]] = defaultdict(list)
    for enc in read(directory, "Encounter"):
        priority = codings(enc.get("priority", {}))
        if (
            enc["class"]["code"] in ("EMER", "IMP", "ACUTE")
            and f"{ACT_PRIORITY}|EL" not in priority
            and enc["status"] != "cancelled"
        ):
            visits[enc["subject"]["reference"]].append(when(enc["period"]["start"]))
    labels: list[bool] = []
    for cond in read(directory, "Condition"):
        if cond["verificationStatus"]["coding"][0]["code"] != "confirmed":
            continue
        onset = when(cond["onsetDateTime"])
        for day in range(14, 85, 7):
            index = onset + timedelta(days=day)
            labels.append(
                any(
                    index < v <= index + timedelta(days=14)
                    for v in visits[cond["subject"]["reference"]]
                )
            )
    return labels


def test_label_prevalences_are_plausible(medium: Path) -> None:
    ed_labels, heart_rate = admitted_within_24h(medium)
    ed_prevalence = sum(ed_labels) / len(ed_labels)
    assert len(ed_labels) > 2000
    assert 0.22 < ed_prevalence < 0.45
    # The admission process responds to triage vitals, so the signal must show in the raw data.
    mean = {k: sum(v) / len(v) for k, v in heart_rate.items()}
    assert mean["admitted"] > mean["discharged"] + 5

    mi_labels = unplanned_within_14d(medium)
    mi_prevalence = sum(mi_labels) / len(mi_labels)
    assert len(mi_labels) == 11 * 200
    assert 0.06 < mi_prevalence < 0.25


def test_elective_admissions_exist_and_are_marked(medium: Path) -> None:
    elective = [
        enc
        for enc in read(medium, "Encounter")
        if patient_of(enc["subject"]).startswith("mi-")
        and f"{ACT_PRIORITY}|EL" in codings(enc.get("priority", {}))
    ]
    assert elective
    assert all(enc["class"]["code"] in ("IMP", "ACUTE") for enc in elective)


def test_hospital_variety_of_codes_and_references(medium: Path) -> None:
    """Alternative standard codes for the same analyte, ICD-10-CM beside SNOMED CT and WHO
    ICD-10, and references written as hospitals write them: all present, and the bulk reader
    attributes every resource."""
    seen: set[str] = set()
    for obs in read(medium, "Observation"):
        seen |= codings(obs["code"])
    for cond in read(medium, "Condition"):
        seen |= codings(cond["code"])
    assert seen >= ALTERNATIVE_CODES
    assert "http://hl7.org/fhir/sid/icd-10|I21.9" in seen
    forms: defaultdict[str, int] = defaultdict(int)
    for rtype in ("Encounter", "Condition", "Observation"):
        for res in read(medium, rtype):
            subject = res["subject"]
            if "identifier" in subject:
                forms["identifier"] += 1
            elif subject["reference"].startswith("https://"):
                forms["absolute"] += 1
            else:
                forms["typed" if "type" in subject else "relative"] += 1
    assert set(forms) == {"identifier", "absolute", "typed", "relative"}
    assert forms["relative"] > 4 * (forms["absolute"] + forms["typed"] + forms["identifier"])
    stats = TableStats()
    patients = sum(1 for _ in partition_export(medium, stats))
    assert patients == 1700
    assert stats.without_patient == 0

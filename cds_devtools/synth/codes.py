"""Code systems and shared codings of the export.

Coding dicts are shared between resources (orjson serializes shared objects fine); nothing here is
ever mutated.
"""

from __future__ import annotations

from typing import Any, Final

from cds_devtools.synth.draws import _cum

Json = dict[str, Any]

RESOURCE_TYPES: Final = ("Patient", "Encounter", "Condition", "Observation")

LOINC: Final = "http://loinc.org"
SNOMED: Final = "http://snomed.info/sct"
ICD10: Final = "http://hl7.org/fhir/sid/icd-10"
UCUM: Final = "http://unitsofmeasure.org"
ACT_CODE: Final = "http://terminology.hl7.org/CodeSystem/v3-ActCode"
ACT_PRIORITY: Final = "http://terminology.hl7.org/CodeSystem/v3-ActPriority"
OBS_CATEGORY: Final = "http://terminology.hl7.org/CodeSystem/observation-category"
DATA_ABSENT: Final = "http://terminology.hl7.org/CodeSystem/data-absent-reason"
EXAMPLE: Final = "https://fhir.cds-risk.example"
ARRIVAL_MODE: Final = f"{EXAMPLE}/CodeSystem/arrival-mode"
HOME_SYMPTOMS: Final = f"{EXAMPLE}/CodeSystem/home-symptoms"
LOCAL_LAB: Final = f"{EXAMPLE}/CodeSystem/local-lab"
LOCAL_FLOWSHEET: Final = f"{EXAMPLE}/CodeSystem/local-flowsheet"
MRN_SYSTEM: Final = f"{EXAMPLE}/sid/synthetic-mrn"
_NON_UCUM_UNITS: Final = "http://devices.example/units"


def _coding(system: str, code: str, display: str) -> Json:
    return {"system": system, "code": code, "display": display}


def _concept(*codings: Json) -> Json:
    return {"coding": list(codings)}


def _loinc(code: str, display: str) -> Json:
    return _coding(LOINC, code, display)


def _category(code: str, display: str) -> list[Json]:
    return [_concept(_coding(OBS_CATEGORY, code, display))]


_VITALS: Final = _category("vital-signs", "Vital Signs")
_LABORATORY: Final = _category("laboratory", "Laboratory")
_SURVEY: Final = _category("survey", "Survey")

_CLASS_EMER: Final = _coding(ACT_CODE, "EMER", "emergency")
_CLASS_IMP: Final = _coding(ACT_CODE, "IMP", "inpatient encounter")
_CLASS_ACUTE: Final = _coding(ACT_CODE, "ACUTE", "inpatient acute")
_CLASS_AMB: Final = _coding(ACT_CODE, "AMB", "ambulatory")
_PRIORITY: Final = {
    "S": _coding(ACT_PRIORITY, "S", "stat"),
    "EM": _coding(ACT_PRIORITY, "EM", "emergency"),
    "UR": _coding(ACT_PRIORITY, "UR", "urgent"),
    "R": _coding(ACT_PRIORITY, "R", "routine"),
    "EL": _coding(ACT_PRIORITY, "EL", "elective"),
}
_ADMIT_FROM_ED: Final = {
    "hospitalization": {
        "admitSource": _concept(
            _coding(
                "http://terminology.hl7.org/CodeSystem/admit-source",
                "emd",
                "From accident/emergency department",
            )
        )
    }
}

_ARRIVAL: Final = {
    mode: _coding(ARRIVAL_MODE, mode, display)
    for mode, display in (
        ("ambulance", "Ambulance"),
        ("helicopter", "Helicopter (mobile medical team)"),
        ("self", "Own transport"),
        ("referral", "Referred by general practitioner"),
    )
}
_TRANSPORT_CODE: Final = {"coding": [_loinc("11459-5", "Transport mode")], "text": "Arrival mode"}

_DATA_ABSENT: Final = _cum(
    [
        (4, {"coding": [_coding(DATA_ABSENT, "not-performed", "Not Performed")]}),
        (2, {"coding": [_coding(DATA_ABSENT, "error", "Error")]}),
        (2, {"coding": [_coding(DATA_ABSENT, "unknown", "Unknown")]}),
        (1, {"coding": [_coding(DATA_ABSENT, "asked-declined", "Asked But Declined")]}),
    ]
)
_ERROR_STATUSES: Final = _cum([(7, "entered-in-error"), (3, "cancelled")])

_SYNTHETIC_TAG: Final = [
    _coding("http://terminology.hl7.org/CodeSystem/v3-ActReason", "HTEST", "test health data")
]
_GIVEN_NAMES: Final = (
    "Alfa",
    "Bravo",
    "Charlie",
    "Delta",
    "Echo",
    "Foxtrot",
    "Golf",
    "Hotel",
    "India",
    "Juliett",
    "Kilo",
    "Lima",
)


_MI_CODES: Final = {
    "22298006": _coding(SNOMED, "22298006", "Myocardial infarction"),
    "57054005": _coding(SNOMED, "57054005", "Acute myocardial infarction"),
    "401303003": _coding(SNOMED, "401303003", "Acute ST segment elevation myocardial infarction"),
    "401314000": _coding(
        SNOMED, "401314000", "Acute non-ST segment elevation myocardial infarction"
    ),
}
_MI_SNOMED: Final = _cum([(45, "22298006"), (22, "401303003"), (23, "401314000"), (10, "57054005")])
_I21_9: Final = _coding(ICD10, "I21.9", "Acute myocardial infarction, unspecified")
_CONDITION_CLINICAL: Final = "http://terminology.hl7.org/CodeSystem/condition-clinical"
_CONDITION_VERIFICATION: Final = "http://terminology.hl7.org/CodeSystem/condition-ver-status"
_ENCOUNTER_DIAGNOSIS: Final = [
    _concept(
        _coding(
            "http://terminology.hl7.org/CodeSystem/condition-category",
            "encounter-diagnosis",
            "Encounter Diagnosis",
        )
    )
]

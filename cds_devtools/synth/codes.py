"""Code systems and shared codings of the export.

Coding dicts are shared between resources (orjson serializes shared objects fine); nothing here is
ever mutated.
"""

from __future__ import annotations

from typing import Any, Final

from cds_devtools.synth.draws import cumulative

Json = dict[str, Any]

RESOURCE_TYPES: Final = ("Patient", "Encounter", "Condition", "Observation")

LOINC: Final = "http://loinc.org"
SNOMED: Final = "http://snomed.info/sct"
ICD10: Final = "http://hl7.org/fhir/sid/icd-10"
ICD10CM: Final = "http://hl7.org/fhir/sid/icd-10-cm"
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
EHR_FHIR_BASE: Final = "https://ehr.cds-risk.example/fhir"  # absolute references point here
NON_UCUM_UNITS: Final = "http://devices.example/units"


def make_coding(system: str, code: str, display: str) -> Json:
    return {"system": system, "code": code, "display": display}


def concept(*codings: Json) -> Json:
    return {"coding": list(codings)}


def loinc(code: str, display: str) -> Json:
    return make_coding(LOINC, code, display)


def _category(code: str, display: str) -> list[Json]:
    return [concept(make_coding(OBS_CATEGORY, code, display))]


VITALS: Final = _category("vital-signs", "Vital Signs")
LABORATORY: Final = _category("laboratory", "Laboratory")
SURVEY: Final = _category("survey", "Survey")

CLASS_EMER: Final = make_coding(ACT_CODE, "EMER", "emergency")
CLASS_IMP: Final = make_coding(ACT_CODE, "IMP", "inpatient encounter")
CLASS_ACUTE: Final = make_coding(ACT_CODE, "ACUTE", "inpatient acute")
CLASS_AMB: Final = make_coding(ACT_CODE, "AMB", "ambulatory")
PRIORITY: Final = {
    "S": make_coding(ACT_PRIORITY, "S", "stat"),
    "EM": make_coding(ACT_PRIORITY, "EM", "emergency"),
    "UR": make_coding(ACT_PRIORITY, "UR", "urgent"),
    "R": make_coding(ACT_PRIORITY, "R", "routine"),
    "EL": make_coding(ACT_PRIORITY, "EL", "elective"),
}
ADMIT_FROM_ED: Final = {
    "hospitalization": {
        "admitSource": concept(
            make_coding(
                "http://terminology.hl7.org/CodeSystem/admit-source",
                "emd",
                "From accident/emergency department",
            )
        )
    }
}

ARRIVAL: Final = {
    mode: make_coding(ARRIVAL_MODE, mode, display)
    for mode, display in (
        ("ambulance", "Ambulance"),
        ("helicopter", "Helicopter (mobile medical team)"),
        ("self", "Own transport"),
        ("referral", "Referred by general practitioner"),
    )
}
TRANSPORT_CODE: Final = {"coding": [loinc("11459-5", "Transport mode")], "text": "Arrival mode"}

DATA_ABSENT_REASONS: Final = cumulative(
    [
        (4, {"coding": [make_coding(DATA_ABSENT, "not-performed", "Not Performed")]}),
        (2, {"coding": [make_coding(DATA_ABSENT, "error", "Error")]}),
        (2, {"coding": [make_coding(DATA_ABSENT, "unknown", "Unknown")]}),
        (1, {"coding": [make_coding(DATA_ABSENT, "asked-declined", "Asked But Declined")]}),
    ]
)
ERROR_STATUSES: Final = cumulative([(7, "entered-in-error"), (3, "cancelled")])

SYNTHETIC_TAG: Final = [
    make_coding("http://terminology.hl7.org/CodeSystem/v3-ActReason", "HTEST", "test health data")
]
GIVEN_NAMES: Final = (
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


MI_CODES: Final = {
    "22298006": make_coding(SNOMED, "22298006", "Myocardial infarction"),
    "57054005": make_coding(SNOMED, "57054005", "Acute myocardial infarction"),
    "401303003": make_coding(
        SNOMED, "401303003", "Acute ST segment elevation myocardial infarction"
    ),
    "401314000": make_coding(
        SNOMED, "401314000", "Acute non-ST segment elevation myocardial infarction"
    ),
}
MI_SNOMED: Final = cumulative(
    [(45, "22298006"), (22, "401303003"), (23, "401314000"), (10, "57054005")]
)
I21_9: Final = make_coding(ICD10, "I21.9", "Acute myocardial infarction, unspecified")
# ICD-10-CM, as American systems bill the infarction: the subtype the SNOMED CT code names.
I21_CM: Final = {
    "22298006": make_coding(ICD10CM, "I21.9", "Acute myocardial infarction, unspecified"),
    "57054005": make_coding(ICD10CM, "I21.9", "Acute myocardial infarction, unspecified"),
    "401303003": make_coding(
        ICD10CM, "I21.3", "ST elevation (STEMI) myocardial infarction of unspecified site"
    ),
    "401314000": make_coding(ICD10CM, "I21.4", "Non-ST elevation (NSTEMI) myocardial infarction"),
}
CONDITION_CLINICAL: Final = "http://terminology.hl7.org/CodeSystem/condition-clinical"
CONDITION_VERIFICATION: Final = "http://terminology.hl7.org/CodeSystem/condition-ver-status"
ENCOUNTER_DIAGNOSIS: Final = [
    concept(
        make_coding(
            "http://terminology.hl7.org/CodeSystem/condition-category",
            "encounter-diagnosis",
            "Encounter Diagnosis",
        )
    )
]

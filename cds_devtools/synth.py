"""Seeded synthetic FHIR R4 Bulk Data export for the two bundled models.

The project ships no patient data, yet every model must be trainable, testable and benchmarkable
from a FHIR export exactly as a hospital would hand one over. This module fabricates such an export:
a known data-generating process (so a trained model's quality can be judged against what is
learnable) rendered with the encoding untidiness of real EHR exports (so the FHIR mapper is
exercised on what it will meet: mixed units, several codings, amended and erroneous results, odd
timestamps). None of it is clinical truth; ``docs/synthetic-data.md`` describes the process.

Reproducibility is a hard requirement (training manifests hash their input data), so every random
draw comes from a ``random.Random`` seeded per patient, times are offsets from a fixed date rather
than the wall clock, ids are counters, and JSON is written with sorted keys. Output is streamed:
memory stays flat however many observations are asked for.
"""

from __future__ import annotations

import math
import random
from bisect import bisect_right
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any, BinaryIO, Final, TypeVar

import orjson
from tqdm import tqdm

__all__ = ["BASE_TIME", "RESOURCE_TYPES", "generate_cohort"]

Json = dict[str, Any]
_T = TypeVar("_T")

GENERATOR_VERSION: Final = "1"
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

_DUMP_OPTS: Final = orjson.OPT_SORT_KEYS | orjson.OPT_APPEND_NEWLINE

# ---------------------------------------------------------------------------------------------
# Time. Everything is integer seconds since the epoch (UTC) internally: cheap to add and compare,
# and formatting is the only place where the Dutch civil offset (+01:00 / +02:00) appears.

_CET: Final = timezone(timedelta(hours=1))
_CEST: Final = timezone(timedelta(hours=2))
#: The export's transactionTime. All data lie before it, so the cohort never depends on "now".
BASE_TIME: Final = datetime(2026, 1, 1, tzinfo=_CET)
_END: Final = int(BASE_TIME.timestamp())
MINUTE: Final = 60
HOUR: Final = 3600
DAY: Final = 86400
_YEAR: Final = 365.2425 * DAY
_EPOCH_ORDINAL: Final = date(1970, 1, 1).toordinal()


def _last_sunday_0100_utc(year: int, month: int) -> int:
    last = date(year, month, 31)
    last -= timedelta(days=(last.weekday() + 1) % 7)
    return int(datetime(last.year, last.month, last.day, 1, tzinfo=UTC).timestamp())


# EU summer time: last Sunday of March to last Sunday of October, switching at 01:00 UTC.
# Sorted [start, end, start, end, ...] so an odd bisect index means "summer".
_DST_BOUNDS: Final = [
    b
    for year in range(1990, 2040)
    for b in (_last_sunday_0100_utc(year, 3), _last_sunday_0100_utc(year, 10))
]


def _nl_offset(t: int) -> int:
    return 7200 if bisect_right(_DST_BOUNDS, t) & 1 else 3600


_HH_MM: Final = tuple(f"{m // 60:02d}:{m % 60:02d}" for m in range(1440))
_DAY_TEXT: dict[int, str] = {}


def _stamp(t: int, suffix: str) -> str:
    """ISO 8601 text of epoch seconds ``t`` (already shifted to local time); the hot path.

    ``datetime`` formatting costs several times more, and a million observations carry three
    timestamps each.
    """
    day, sec = divmod(t, DAY)
    text = _DAY_TEXT.get(day)
    if text is None:
        text = _DAY_TEXT[day] = date.fromordinal(day + _EPOCH_ORDINAL).isoformat() + "T"
    return f"{text}{_HH_MM[sec // 60]}:{sec % 60:02d}{suffix}"


def _local(t: int) -> str:
    """Amsterdam civil time with its offset, the way Dutch EHRs write timestamps."""
    if bisect_right(_DST_BOUNDS, t) & 1:
        return _stamp(t + 7200, "+02:00")
    return _stamp(t + 3600, "+01:00")


def _utc(t: int) -> str:
    return _stamp(t, "Z")


def _local_ordinal(t: int) -> int:
    return (t + _nl_offset(t)) // DAY + _EPOCH_ORDINAL


def _local_to_epoch(ordinal: int, seconds: float) -> int:
    """Epoch of a local wall-clock time; home measurements follow the clock, not UTC."""
    naive = (ordinal - _EPOCH_ORDINAL) * DAY + int(seconds)
    return naive - _nl_offset(naive - HOUR)


def _date_text(t: int) -> str:
    return date.fromordinal(_local_ordinal(t)).isoformat()


# ---------------------------------------------------------------------------------------------
# Small helpers.


def _cum(items: Sequence[tuple[float, _T]]) -> tuple[tuple[float, _T], ...]:
    """Cumulative-threshold table so a weighted choice costs one ``random()`` call."""
    total = sum(w for w, _ in items)
    acc = 0.0
    out: list[tuple[float, _T]] = []
    for weight, item in items:
        acc += weight / total
        out.append((acc, item))
    return tuple(out)


def _pick(rng: random.Random, table: Sequence[tuple[float, _T]]) -> _T:
    r = rng.random()
    for threshold, item in table:
        if r < threshold:
            return item
    return table[-1][1]


def _stream(seed: int, cohort: str, index: int) -> random.Random:
    """A per-patient stream: a patient's data do not depend on how many others are generated.

    String seeds are hashed with SHA-512 by ``random``, stable across runs and platforms (unlike
    ``hash()``). Simulation, not secrecy, hence the non-cryptographic generator.
    """
    return random.Random(f"{seed}:{cohort}:{index}")  # noqa: S311


def _randint(rng: random.Random, low: int, high: int) -> int:
    """Uniform integer in [low, high]; ``Random.randint`` is several times slower."""
    return low + int(rng.random() * (high - low + 1))


def _clamp(value: float, low: float, high: float) -> float:
    return low if value < low else high if value > high else value


def _logistic(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x))


def _poisson(rng: random.Random, lam: float) -> int:
    limit, k, p = math.exp(-lam), 0, rng.random()
    while p > limit:
        k += 1
        p *= rng.random()
    return k


def _num(value: float, decimals: int) -> float | int:
    return round(value) if decimals == 0 else round(value, decimals)


def _coding(system: str, code: str, display: str) -> Json:
    return {"system": system, "code": code, "display": display}


def _concept(*codings: Json) -> Json:
    return {"coding": list(codings)}


# ---------------------------------------------------------------------------------------------
# Terminology. Coding dicts are shared between resources (orjson serializes shared objects fine);
# nothing below is ever mutated.


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


@dataclass(frozen=True, slots=True)
class _Unit:
    """One way a hospital or device reports a quantity: UCUM code, label, codings, conversion."""

    code: str
    display: str
    codings: tuple[tuple[float, tuple[Json, ...]], ...]
    scale: float = 1.0
    shift: float = 0.0
    decimals: int = 0


@dataclass(frozen=True, slots=True)
class _Kind:
    """A measured concept; values are passed in the canonical unit of the feature spec."""

    text: str
    category: list[Json] | None
    units: tuple[tuple[float, _Unit], ...]
    absurd: float
    local: Json | None = None
    p_local: float = 0.0
    p_local_only: float = 0.0
    censor_below: float = 0.0
    dimensionless: bool = False


def _unit(
    code: str,
    display: str,
    codings: Sequence[tuple[float, tuple[Json, ...]]],
    scale: float = 1.0,
    shift: float = 0.0,
    decimals: int = 0,
) -> _Unit:
    return _Unit(code, display, _cum(codings), scale, shift, decimals)


_HR_CODE: Final = ((1.0, (_loinc("8867-4", "Heart rate"),)),)
_SBP_CODING: Final = _loinc("8480-6", "Systolic blood pressure")
_DBP_CODING: Final = _loinc("8462-4", "Diastolic blood pressure")
_BP_PANEL: Final = _loinc("85354-9", "Blood pressure panel with all children optional")
_SPO2_CODES: Final = (
    (
        45.0,
        (
            _loinc("59408-5", "Oxygen saturation in Arterial blood by Pulse oximetry"),
            _loinc("2708-6", "Oxygen saturation in Arterial blood"),
        ),
    ),
    (35.0, (_loinc("59408-5", "Oxygen saturation in Arterial blood by Pulse oximetry"),)),
    (
        10.0,
        (
            _loinc("2708-6", "Oxygen saturation in Arterial blood"),
            _loinc("59408-5", "Oxygen saturation in Arterial blood by Pulse oximetry"),
        ),
    ),
    (10.0, (_loinc("2708-6", "Oxygen saturation in Arterial blood"),)),
)
_WEIGHT_CODES: Final = (
    (85.0, (_loinc("29463-7", "Body weight"),)),
    (15.0, (_loinc("29463-7", "Body weight"), _loinc("3141-9", "Body weight Measured"))),
)
_MGDL: Final = "mg/dL"

HEART_RATE: Final = _Kind(
    "Heart rate",
    _VITALS,
    _cum(
        [
            (6, _unit("/min", "beats/minute", _HR_CODE)),
            (3, _unit("/min", "/min", _HR_CODE)),
            (1, _unit("/min", "bpm", _HR_CODE)),
        ]
    ),
    absurd=999,
    local=_coding(LOCAL_FLOWSHEET, "HF", "Hartfrequentie"),
    p_local=0.15,
)
RESP_RATE: Final = _Kind(
    "Respiratory rate",
    _VITALS,
    _cum(
        [
            (8, _unit("/min", "breaths/minute", ((1.0, (_loinc("9279-1", "Respiratory rate"),)),))),
            (2, _unit("/min", "/min", ((1.0, (_loinc("9279-1", "Respiratory rate"),)),))),
        ]
    ),
    absurd=250,
    local=_coding(LOCAL_FLOWSHEET, "AF", "Ademfrequentie"),
    p_local=0.15,
)
SYSTOLIC: Final = _Kind(
    "Systolic blood pressure",
    _VITALS,
    _cum([(1, _unit("mm[Hg]", "mmHg", ((1.0, (_SBP_CODING,)),)))]),
    absurd=999,
)
DIASTOLIC: Final = _Kind(
    "Diastolic blood pressure",
    _VITALS,
    _cum([(1, _unit("mm[Hg]", "mmHg", ((1.0, (_DBP_CODING,)),)))]),
    absurd=999,
)
_TEMP_CODE: Final = ((1.0, (_loinc("8310-5", "Body temperature"),)),)
TEMPERATURE: Final = _Kind(
    "Body temperature",
    _VITALS,
    _cum(
        [
            (70, _unit("Cel", "°C", _TEMP_CODE, decimals=1)),
            (25, _unit("Cel", "Cel", _TEMP_CODE, decimals=1)),
            (5, _unit("[degF]", "°F", _TEMP_CODE, scale=9 / 5, shift=32, decimals=1)),
        ]
    ),
    absurd=99.9,
    local=_coding(LOCAL_FLOWSHEET, "TEMP", "Temperatuur"),
    p_local=0.15,
)
SPO2: Final = _Kind(
    "Oxygen saturation",
    _VITALS,
    _cum([(1, _unit("%", "%", _SPO2_CODES))]),
    absurd=0,
    local=_coding(LOCAL_FLOWSHEET, "SAT", "Saturatie"),
    p_local=0.15,
    dimensionless=True,
)
WEIGHT: Final = _Kind(
    "Body weight",
    _VITALS,
    _cum(
        [
            (95, _unit("kg", "kg", _WEIGHT_CODES, decimals=1)),
            (5, _unit("[lb_av]", "lb", _WEIGHT_CODES, scale=1 / 0.45359237, decimals=1)),
        ]
    ),
    absurd=999,
)
DYSPNEA: Final = _Kind(
    "Breathlessness score",
    _SURVEY,
    _cum(
        [
            (
                1,
                _unit(
                    "{score}",
                    "{score}",
                    (
                        (
                            1.0,
                            (
                                _coding(
                                    HOME_SYMPTOMS, "dyspnea-score", "Breathlessness score (0-10)"
                                ),
                            ),
                        ),
                    ),
                ),
            )
        ]
    ),
    absurd=99,
    dimensionless=True,
)
CRP: Final = _Kind(
    "CRP",
    _LABORATORY,
    _cum(
        [
            (
                97,
                _unit(
                    "mg/L",
                    "mg/L",
                    (
                        (
                            1.0,
                            (
                                _loinc(
                                    "1988-5", "C reactive protein [Mass/volume] in Serum or Plasma"
                                ),
                            ),
                        ),
                    ),
                ),
            ),
            (
                3,
                _unit(
                    _MGDL,
                    _MGDL,
                    (
                        (
                            1.0,
                            (
                                _loinc(
                                    "1988-5", "C reactive protein [Mass/volume] in Serum or Plasma"
                                ),
                            ),
                        ),
                    ),
                    scale=0.1,
                    decimals=2,
                ),
            ),
        ]
    ),
    absurd=99999,
    local=_coding(LOCAL_LAB, "CRP", "CRP"),
    p_local=0.35,
    p_local_only=0.003,
    censor_below=5.0,
)
LACTATE: Final = _Kind(
    "Lactate",
    _LABORATORY,
    _cum(
        [
            (
                92,
                _unit(
                    "mmol/L",
                    "mmol/L",
                    (
                        (60.0, (_loinc("2524-7", "Lactate [Moles/volume] in Serum or Plasma"),)),
                        (30.0, (_loinc("32693-4", "Lactate [Moles/volume] in Blood"),)),
                        (10.0, (_loinc("2518-9", "Lactate [Moles/volume] in Arterial blood"),)),
                    ),
                    decimals=1,
                ),
            ),
            (
                8,
                _unit(
                    _MGDL,
                    _MGDL,
                    ((1.0, (_loinc("14118-4", "Lactate [Mass/volume] in Serum or Plasma"),)),),
                    scale=9.008,
                    decimals=0,
                ),
            ),
        ]
    ),
    absurd=999,
    local=_coding(LOCAL_LAB, "LACT", "Lactaat"),
    p_local=0.35,
    p_local_only=0.003,
)
LEUKOCYTES: Final = _Kind(
    "Leukocytes",
    _LABORATORY,
    _cum(
        [
            (
                85,
                _unit(
                    "10*9/L",
                    "10^9/L",
                    (
                        (
                            80.0,
                            (
                                _loinc(
                                    "6690-2", "Leukocytes [#/volume] in Blood by Automated count"
                                ),
                            ),
                        ),
                        (20.0, (_loinc("26464-8", "Leukocytes [#/volume] in Blood"),)),
                    ),
                    decimals=1,
                ),
            ),
            (
                15,
                _unit(
                    "10*3/uL",
                    "10^3/uL",
                    (
                        (
                            1.0,
                            (
                                _loinc(
                                    "6690-2", "Leukocytes [#/volume] in Blood by Automated count"
                                ),
                            ),
                        ),
                    ),
                    decimals=1,
                ),
            ),
        ]
    ),
    absurd=9999,
    local=_coding(LOCAL_LAB, "LEUK", "Leukocyten"),
    p_local=0.35,
    p_local_only=0.003,
)
GLUCOSE: Final = _Kind(
    "Glucose",
    _LABORATORY,
    _cum(
        [
            (
                90,
                _unit(
                    "mmol/L",
                    "mmol/L",
                    ((1.0, (_loinc("14749-6", "Glucose [Moles/volume] in Serum or Plasma"),)),),
                    decimals=1,
                ),
            ),
            # mg/dL = mmol/L x molar mass (180.156 g/mol) / 10, the factor the feature spec uses.
            (
                10,
                _unit(
                    _MGDL,
                    _MGDL,
                    ((1.0, (_loinc("2345-7", "Glucose [Mass/volume] in Serum or Plasma"),)),),
                    scale=18.0156,
                    decimals=0,
                ),
            ),
        ]
    ),
    absurd=9999,
    local=_coding(LOCAL_LAB, "GLUC", "Glucose"),
    p_local=0.35,
    p_local_only=0.003,
)
CREATININE: Final = _Kind(
    "Creatinine",
    _LABORATORY,
    _cum(
        [
            (
                90,
                _unit(
                    "umol/L",
                    "µmol/L",
                    ((1.0, (_loinc("14682-9", "Creatinine [Moles/volume] in Serum or Plasma"),)),),
                    decimals=0,
                ),
            ),
            # mg/dL = umol/L x 113.12 g/mol / 10000 (i.e. / 88.40), matching the spec's molar mass.
            (
                10,
                _unit(
                    _MGDL,
                    _MGDL,
                    ((1.0, (_loinc("2160-0", "Creatinine [Mass/volume] in Serum or Plasma"),)),),
                    scale=0.011312,
                    decimals=2,
                ),
            ),
        ]
    ),
    absurd=99999,
    local=_coding(LOCAL_LAB, "KREA", "Kreatinine"),
    p_local=0.35,
    p_local_only=0.003,
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

# ---------------------------------------------------------------------------------------------
# Rates of the encoding variety (per observation unless stated).

_P_ERROR: Final = 0.01  # an extra entered-in-error/cancelled copy carrying an absurd value
_P_ABSENT: Final = 0.01  # dataAbsentReason instead of a value
_P_BAD_UNIT: Final = 0.002  # a unit no converter can map
_P_SEPARATE_BP: Final = 0.10  # standalone 8480-6/8462-4 instead of the 85354-9 panel

# ---------------------------------------------------------------------------------------------
# Data-generating process coefficients (see docs/synthetic-data.md for the reasoning).

_ED_INTERCEPT: Final = -2.45
_EPISODE_HAZARD: Final = 0.0075  # per day, before the patient's risk multiplier
_BASELINE_VISIT_HAZARD: Final = 0.0007  # unplanned visits without warning signs, per day


@dataclass(slots=True)
class _Ctx:
    """Reference fields shared by every observation of one source (an ED visit, a home device)."""

    subject: Json
    encounter: Json | None = None
    device: Json | None = None
    performer: list[Json] | None = None


@dataclass(slots=True)
class _Person:
    pid: str
    subject: Json
    birth: int
    male: bool | None
    frailty: float
    diabetic: bool
    ckd: bool
    copd: bool
    admissions: list[int] = field(default_factory=list)

    def age(self, t: int) -> float:
        return (t - self.birth) / _YEAR


@dataclass(slots=True)
class _Triage:
    infection: bool
    hr: float
    rr: float
    sbp: float
    dbp: float
    temp: float
    spo2: float
    crp: float
    lactate: float
    leukocytes: float
    glucose: float
    creatinine: float


@dataclass(slots=True)
class _Episode:
    start: int
    gain_per_day: float
    visit_day: int
    leads_to_visit: bool
    febrile: bool


class _Synth:
    """Owns the output files and id counters; one instance writes one export."""

    def __init__(self, out_dir: Path, seed: int) -> None:
        self.seed = seed
        self.counts = dict.fromkeys(RESOURCE_TYPES, 0)
        self.partial = {rt: out_dir / f"{rt}.ndjson.partial" for rt in RESOURCE_TYPES}
        self._fh: dict[str, BinaryIO] = {
            rt: path.open("wb", buffering=1 << 20) for rt, path in self.partial.items()
        }
        self._obs_fh = self._fh["Observation"]
        self._n_enc = 0
        self._n_cond = 0

    def close(self) -> None:
        for fh in self._fh.values():
            fh.close()

    def _write(self, rtype: str, resource: Json) -> None:
        self._fh[rtype].write(orjson.dumps(resource, option=_DUMP_OPTS))
        self.counts[rtype] += 1

    # -- Patient, Encounter, Condition -------------------------------------------------------

    def patient(
        self, rng: random.Random, pid: str, age: float, at: int, gender: str, frailty: float
    ) -> _Person:
        birth = at - int(age * _YEAR) - _randint(rng, 0, DAY - 1)
        birth_date = _date_text(birth)
        resource: Json = {
            "resourceType": "Patient",
            "id": pid,
            "meta": {
                "lastUpdated": _utc(_END - _randint(rng, DAY, 30 * DAY)),
                "tag": _SYNTHETIC_TAG,
            },
            "identifier": [{"system": MRN_SYSTEM, "value": "SYN-" + pid.upper()}],
            "name": [
                {"use": "official", "family": "Synthetic", "given": [rng.choice(_GIVEN_NAMES)]}
            ],
            "gender": gender,
            "birthDate": birth_date,
            "active": True,
        }
        self._write("Patient", resource)
        birth_epoch = int(datetime.fromisoformat(birth_date).replace(tzinfo=_CET).timestamp())
        male = True if gender == "male" else False if gender == "female" else None
        old = max(0.0, age - 50.0)
        return _Person(
            pid=pid,
            subject={"reference": f"Patient/{pid}"},
            birth=birth_epoch,
            male=male,
            frailty=frailty,
            diabetic=rng.random() < 0.06 + 0.005 * old,
            ckd=rng.random() < 0.03 + 0.004 * old + 0.03 * max(frailty, 0.0),
            copd=rng.random() < 0.04 + 0.002 * old,
        )

    def encounter(
        self,
        rng: random.Random,
        person: _Person,
        klass: Json,
        priority: str | None,
        start: int,
        end: int | None,
        *,
        status: str = "finished",
        extra: Json | None = None,
    ) -> str:
        self._n_enc += 1
        eid = f"enc-{self._n_enc:07d}"
        fmt = _utc if rng.random() < 0.1 else _local
        period = {"start": fmt(start)}
        if end is not None and end < _END:
            period["end"] = fmt(end)
        elif status == "finished":
            status = "in-progress"  # still admitted when the export was taken
        resource: Json = {
            "resourceType": "Encounter",
            "id": eid,
            "meta": {
                "lastUpdated": _utc(min((end or start) + _randint(rng, 60, 6 * HOUR), _END - 1))
            },
            "status": status,
            "class": klass,
            "subject": person.subject,
            "period": period,
        }
        if priority is not None:
            resource["priority"] = {"coding": [_PRIORITY[priority]]}
        if extra:
            resource.update(extra)
        self._write("Encounter", resource)
        return eid

    def admission(
        self, rng: random.Random, person: _Person, start: int, priority: str, los_days: float
    ) -> int:
        """Write an inpatient stay; returns its end. A few hospitals code these as ACUTE."""
        end = start + int(los_days * DAY)
        klass = _CLASS_ACUTE if rng.random() < 0.05 else _CLASS_IMP
        extra = _ADMIT_FROM_ED if priority in ("EM", "S") and rng.random() < 0.7 else None
        self.encounter(rng, person, klass, priority, start, end, extra=extra)
        person.admissions.append(start)
        return end

    def condition(
        self,
        rng: random.Random,
        person: _Person,
        onset: int,
        encounter_id: str | None,
        *,
        verification: str = "confirmed",
    ) -> None:
        self._n_cond += 1
        roll = rng.random()
        if roll < 0.03:
            codings = [_I21_9]  # billing-only diagnosis
        else:
            codings = [_MI_CODES[_pick(rng, _MI_SNOMED)]]
            if roll < 0.33:
                codings.insert(0 if rng.random() < 0.3 else 1, _I21_9)
        resource: Json = {
            "resourceType": "Condition",
            "id": f"cond-{self._n_cond:06d}",
            "meta": {"lastUpdated": _utc(onset + _randint(rng, DAY, 10 * DAY))},
            "verificationStatus": _concept(
                _coding(_CONDITION_VERIFICATION, verification, verification.capitalize())
            ),
            "category": _ENCOUNTER_DIAGNOSIS,
            "code": {"coding": codings, "text": "Myocardial infarction"},
            "subject": person.subject,
            # A date-only onset is common in problem lists; it denotes the start of that day.
            "onsetDateTime": _date_text(onset) if rng.random() < 0.15 else _local(onset),
            "recordedDate": _local(onset + _randint(rng, HOUR, 30 * HOUR)),
        }
        clinical = "active" if verification == "confirmed" else "inactive"
        resource["clinicalStatus"] = _concept(
            _coding(_CONDITION_CLINICAL, clinical, clinical.capitalize())
        )
        if encounter_id is not None:
            resource["encounter"] = {"reference": f"Encounter/{encounter_id}"}
        self._write("Condition", resource)

    # -- Observations -------------------------------------------------------------------------

    def _envelope(
        self,
        rng: random.Random,
        ctx: _Ctx,
        t: int,
        category: list[Json] | None,
        status: str | None,
        issued_delay: tuple[int, int],
    ) -> Json:
        late = True
        if status is None:
            r = rng.random()
            if r < 0.935:
                status, late = "final", False
            elif r < 0.955:
                status = "amended"
            elif r < 0.965:
                status = "corrected"
            else:
                status, late = "preliminary", False
        self.counts["Observation"] += 1
        res: Json = {
            "resourceType": "Observation",
            "id": f"obs-{self.counts['Observation']:08d}",
            "status": status,
            "subject": ctx.subject,
        }
        if category is not None:
            res["category"] = category
        if ctx.encounter is not None:
            res["encounter"] = ctx.encounter
        if ctx.device is not None:
            res["device"] = ctx.device
        if ctx.performer is not None:
            res["performer"] = ctx.performer
        issued = t + _randint(rng, issued_delay[0], issued_delay[1])
        r = rng.random()
        if r < 0.86:
            res["effectiveDateTime"] = _local(t)
        elif r < 0.93:
            res["effectiveDateTime"] = _utc(t)
        elif r < 0.975:
            res["effectivePeriod"] = {"start": _local(t), "end": _local(t + _randint(rng, 20, 300))}
        if r >= 0.975 or rng.random() < 0.9:
            res["issued"] = _utc(issued) if rng.random() < 0.3 else _local(issued)
        updated = issued + _randint(rng, 1, 600)
        if late:
            updated += _randint(rng, HOUR, 3 * DAY)
        res["meta"] = {"lastUpdated": _utc(min(updated, _END - 1))}
        return res

    def _code(self, rng: random.Random, kind: _Kind, unit: _Unit) -> Json:
        if kind.local is not None:
            r = rng.random()
            if r < kind.p_local_only:
                return {"coding": [kind.local], "text": kind.text}  # never mapped to LOINC
            if r < kind.p_local:
                codings = list(_pick(rng, unit.codings))
                if rng.random() < 0.4:
                    codings.insert(0, kind.local)
                else:
                    codings.append(kind.local)
                return {"coding": codings, "text": kind.text}
        return {"coding": list(_pick(rng, unit.codings)), "text": kind.text}

    @staticmethod
    def _bad_quantity(rng: random.Random, value: float, kind: _Kind) -> Json:
        if kind.dimensionless or rng.random() < 0.5:
            # Not UCUM at all: nothing can be converted.
            return {
                "value": round(value, 1),
                "unit": "units",
                "system": _NON_UCUM_UNITS,
                "code": "units",
            }
        return {"value": round(value, 1), "unit": "?", "system": UCUM, "code": "{unknown}"}

    @staticmethod
    def _value(rng: random.Random, kind: _Kind, unit: _Unit, value: float) -> Json:
        if kind.censor_below and value < kind.censor_below and rng.random() < 0.7:
            limit = kind.censor_below * unit.scale + unit.shift
            return {
                "value": _num(limit, unit.decimals),
                "comparator": "<",
                "unit": unit.display,
                "system": UCUM,
                "code": unit.code,
            }
        return {
            "value": _num(value * unit.scale + unit.shift, unit.decimals),
            "unit": unit.display,
            "system": UCUM,
            "code": unit.code,
        }

    def quantity(
        self,
        rng: random.Random,
        ctx: _Ctx,
        kind: _Kind,
        value: float,
        t: int,
        *,
        unit: _Unit | None = None,
        issued_delay: tuple[int, int] = (0, 180),
        integer: bool = False,
    ) -> None:
        """One measurement, sometimes shadowed by an erroneous copy that must be ignored."""
        if rng.random() < _P_ERROR:
            late = t + _randint(rng, 60, 600)
            status = _pick(rng, _ERROR_STATUSES)
            self._quantity(rng, ctx, kind, kind.absurd, late, unit, issued_delay, status, integer)
        self._quantity(rng, ctx, kind, value, t, unit, issued_delay, None, integer)

    def _quantity(
        self,
        rng: random.Random,
        ctx: _Ctx,
        kind: _Kind,
        value: float,
        t: int,
        unit: _Unit | None,
        issued_delay: tuple[int, int],
        status: str | None,
        integer: bool,
    ) -> None:
        u = unit if unit is not None else _pick(rng, kind.units)
        res = self._envelope(rng, ctx, t, kind.category, status, issued_delay)
        res["code"] = self._code(rng, kind, u)
        r = rng.random() if status is None else 1.0
        if r < _P_ABSENT:
            res["dataAbsentReason"] = _pick(rng, _DATA_ABSENT)
        elif r < _P_ABSENT + _P_BAD_UNIT:
            res["valueQuantity"] = self._bad_quantity(rng, value, kind)
        elif integer:
            res["valueInteger"] = round(value)
        else:
            res["valueQuantity"] = self._value(rng, kind, u, value)
        self._obs_fh.write(orjson.dumps(res, option=_DUMP_OPTS))

    def blood_pressure(
        self,
        rng: random.Random,
        ctx: _Ctx,
        sbp: float,
        dbp: float,
        t: int,
        issued_delay: tuple[int, int] = (0, 180),
    ) -> None:
        """Mostly the vital-signs profile panel; some systems still send two loose values."""
        if rng.random() < _P_SEPARATE_BP:
            self.quantity(rng, ctx, SYSTOLIC, sbp, t, issued_delay=issued_delay)
            self.quantity(rng, ctx, DIASTOLIC, dbp, t, issued_delay=issued_delay)
            return
        if rng.random() < _P_ERROR:
            late = t + _randint(rng, 60, 600)
            self._bp_panel(rng, ctx, 999, 999, late, issued_delay, _pick(rng, _ERROR_STATUSES))
        self._bp_panel(rng, ctx, sbp, dbp, t, issued_delay, None)

    def _bp_panel(
        self,
        rng: random.Random,
        ctx: _Ctx,
        sbp: float,
        dbp: float,
        t: int,
        issued_delay: tuple[int, int],
        status: str | None,
    ) -> None:
        res = self._envelope(rng, ctx, t, _VITALS, status, issued_delay)
        coding = [_BP_PANEL]
        if rng.random() < 0.1:
            coding.append(_coding(LOCAL_FLOWSHEET, "RR", "Bloeddruk"))
        res["code"] = {"coding": coding, "text": "Blood pressure"}
        r = rng.random() if status is None else 1.0
        components: list[Json] = []
        for coding_, value in ((_SBP_CODING, sbp), (_DBP_CODING, dbp)):
            comp: Json = {"code": {"coding": [coding_]}}
            if r < _P_ABSENT:
                comp["dataAbsentReason"] = _pick(rng, _DATA_ABSENT)
            elif r < _P_ABSENT + _P_BAD_UNIT:
                comp["valueQuantity"] = self._bad_quantity(rng, value, SYSTOLIC)
            else:
                comp["valueQuantity"] = {
                    "value": round(value),
                    "unit": "mmHg",
                    "system": UCUM,
                    "code": "mm[Hg]",
                }
            components.append(comp)
        if rng.random() < 0.05:
            components.reverse()
        res["component"] = components
        self._obs_fh.write(orjson.dumps(res, option=_DUMP_OPTS))

    def arrival_mode(self, rng: random.Random, ctx: _Ctx, mode: str, t: int) -> None:
        if rng.random() < _P_ERROR:
            wrong = "helicopter" if mode != "helicopter" else "self"
            status = _pick(rng, _ERROR_STATUSES)
            self._arrival(rng, ctx, wrong, t + _randint(rng, 60, 600), status)
        self._arrival(rng, ctx, mode, t, None)

    def _arrival(
        self, rng: random.Random, ctx: _Ctx, mode: str, t: int, status: str | None
    ) -> None:
        res = self._envelope(rng, ctx, t, None, status, (0, 300))
        res["code"] = _TRANSPORT_CODE
        if status is None and rng.random() < _P_ABSENT:
            res["dataAbsentReason"] = _pick(rng, _DATA_ABSENT)
        else:
            res["valueCodeableConcept"] = {
                "coding": [_ARRIVAL[mode]],
                "text": _ARRIVAL[mode]["display"],
            }
        self._obs_fh.write(orjson.dumps(res, option=_DUMP_OPTS))

    # -- Emergency department ------------------------------------------------------------------

    @staticmethod
    def _triage(rng: random.Random, person: _Person, age: float, acuity: float) -> _Triage:
        """Physiology at arrival: driven by a latent acuity, infection, and chronic disease."""
        a_pos = max(acuity, 0.0)
        infection = rng.random() < _logistic(-1.5 + 0.5 * acuity)
        hr = _clamp(78 + 9 * acuity + (12 if infection else 0) + rng.gauss(0, 11), 35, 190)
        rr = _clamp(16 + 2.5 * acuity + (2 if infection else 0) + rng.gauss(0, 2.5), 8, 45)
        sbp = _clamp(
            134 + 0.35 * (age - 55) - 8 * acuity - (6 if infection else 0) + rng.gauss(0, 18),
            60,
            230,
        )
        dbp = _clamp(0.5 * sbp + 12 + rng.gauss(0, 9), 30, sbp - 10)
        temp = 36.9 + rng.gauss(0, 0.35)
        if infection:
            temp += 1.3 + rng.gauss(0, 0.6)
        elif age > 70 and rng.random() < 0.02 + 0.03 * a_pos:
            temp -= 2.0 + rng.random()
        spo2 = 97.5 - 1.6 * a_pos + rng.gauss(0, 1.5)
        if infection:
            spo2 -= 1.5 * rng.random()
        if person.copd:
            spo2 -= 3.0
        crp = math.exp(math.log(3) + (2.6 if infection else 0) + 0.35 * acuity + rng.gauss(0, 0.9))
        lactate = math.exp(
            math.log(1.2) + 0.25 * acuity + (0.25 if infection else 0) + rng.gauss(0, 0.35)
        )
        leukocytes = math.exp(
            math.log(8) + (0.35 if infection else 0) + 0.12 * acuity + rng.gauss(0, 0.28)
        )
        glucose = 5.8 + 0.6 * acuity + rng.gauss(0, 1.0)
        if person.diabetic:
            glucose += 4 + rng.expovariate(0.4)
        creatinine = math.exp(
            math.log(80)
            + 0.006 * (age - 55)
            + 0.15 * acuity
            + (0.9 if person.ckd else 0)
            + rng.gauss(0, 0.2)
        )
        return _Triage(
            infection=infection,
            hr=hr,
            rr=rr,
            sbp=sbp,
            dbp=dbp,
            temp=_clamp(temp, 32, 42.3),
            spo2=_clamp(spo2, 70, 100),
            crp=_clamp(crp, 0.3, 450),
            lactate=_clamp(lactate, 0.3, 15),
            leukocytes=_clamp(leukocytes, 0.5, 80),
            glucose=_clamp(glucose, 2.2, 45),
            creatinine=_clamp(creatinine, 25, 1500),
        )

    @staticmethod
    def _admission_logit(
        age: float, male: bool | None, v: _Triage, ambulance: bool, urgency: int, prior: int
    ) -> float:
        """The true admission model; a learner can recover all of it but the unexplained part."""
        return (
            _ED_INTERCEPT
            + 0.030 * (age - 55)
            + (0.1 if male else 0.0)
            + 0.035 * max(v.hr - 90, 0)
            + 0.15 * max(v.rr - 20, 0)
            + 0.045 * max(110 - v.sbp, 0)
            + 0.9 * max(v.temp - 37.8, 0)
            + 1.2 * max(35.8 - v.temp, 0)
            + 0.15 * max(95 - v.spo2, 0)
            + 0.35 * max(math.log(v.crp / 10), 0)
            + 0.5 * max(v.lactate - 2, 0)
            + 0.08 * max(v.leukocytes - 11, 0)
            + 0.15 * max(4 - v.leukocytes, 0)
            + 0.005 * max(v.creatinine - 110, 0)
            + 0.08 * max(v.glucose - 8, 0)
            + (0.7 if ambulance else 0.0)
            + 0.4 * (urgency - 2)
            + 0.35 * min(prior, 4)
        )

    def ed_visit(self, rng: random.Random, person: _Person, t0: int, acuity: float) -> int:
        """One ED visit with triage, first labs and the admission decision; returns its end."""
        age = person.age(t0)
        v = self._triage(rng, person, age, acuity)
        p_amb = _logistic(-1.3 + 0.8 * acuity + 0.025 * (age - 55))
        if rng.random() < p_amb:
            mode = "helicopter" if rng.random() < 0.02 else "ambulance"
        else:
            mode = "referral" if rng.random() < 0.3 else "self"
        ambulance = mode in ("ambulance", "helicopter")
        score = acuity + (0.5 if ambulance else 0.0) + rng.gauss(0, 0.7)
        urgency, prio = (
            (4, "S")
            if score > 1.9
            else (3, "EM")
            if score > 0.9
            else (2, "UR")
            if score > -0.3
            else (1, "R")
        )
        prior = sum(1 for s in person.admissions if t0 - 365 * DAY < s <= t0 - DAY)
        lp = self._admission_logit(age, person.male, v, ambulance, urgency, prior)
        admitted = rng.random() < _logistic(lp + rng.gauss(0, 0.7))

        adm_start = t0 + HOUR + int(rng.random() ** 1.3 * 7 * HOUR)
        ed_end = adm_start if admitted else t0 + _randint(rng, 90, 360) * MINUTE
        eid = self.encounter(rng, person, _CLASS_EMER, prio, t0, ed_end)
        ctx = _Ctx(person.subject, {"reference": f"Encounter/{eid}"})
        self._ed_observations(rng, ctx, v, mode, t0)

        if admitted:
            los = max(0.4, rng.lognormvariate(math.log(3.5), 0.7))
            return self.admission(rng, person, adm_start, "EM", los)
        if rng.random() < 0.015:
            # Discharged home, back within days: an admission outside the 24-hour label window.
            start = t0 + _randint(rng, 30, 96) * HOUR
            return self.admission(rng, person, start, "UR", rng.uniform(1, 5))
        return ed_end

    def _ed_observations(
        self, rng: random.Random, ctx: _Ctx, v: _Triage, mode: str, t0: int
    ) -> None:
        self.arrival_mode(rng, ctx, mode, t0 + _randint(rng, 0, 180))
        tv = t0 + _randint(rng, 2, 30) * MINUTE
        monitor = (0, 600)
        self.quantity(rng, ctx, HEART_RATE, v.hr, tv, issued_delay=monitor)
        if rng.random() < 0.98:
            self.blood_pressure(rng, ctx, v.sbp, v.dbp, tv, issued_delay=monitor)
        if rng.random() < 0.88:
            self.quantity(rng, ctx, RESP_RATE, v.rr, tv, issued_delay=monitor)
        if rng.random() < 0.95:
            self.quantity(rng, ctx, SPO2, v.spo2, tv, issued_delay=monitor)
        if rng.random() < 0.92:
            self.quantity(
                rng, ctx, TEMPERATURE, v.temp, tv + _randint(rng, 0, 240), issued_delay=monitor
            )
        if rng.random() < 0.25:
            # A second round before the prediction moment: "last" must pick this one.
            t2 = t0 + _randint(rng, 35, 55) * MINUTE
            self.quantity(
                rng, ctx, HEART_RATE, v.hr - 3 + rng.gauss(0, 5), t2, issued_delay=monitor
            )
            self.blood_pressure(rng, ctx, v.sbp + rng.gauss(2, 8), v.dbp + rng.gauss(1, 5), t2)
        if rng.random() < 0.35:
            # Measurements after the prediction moment: a feature must never see them.
            t3 = t0 + _randint(rng, 90, 240) * MINUTE
            self.quantity(
                rng, ctx, HEART_RATE, 0.6 * v.hr + 32 + rng.gauss(0, 6), t3, issued_delay=monitor
            )
            self.blood_pressure(
                rng, ctx, 0.6 * v.sbp + 52 + rng.gauss(0, 8), v.dbp + rng.gauss(0, 6), t3
            )
            self.quantity(rng, ctx, SPO2, min(100.0, v.spo2 + 1.0 + rng.gauss(0, 1)), t3)

        # Blood is drawn on sicker patients more often; lactate mostly when sepsis is considered.
        sick = (v.hr - 80) / 15 + (1.0 if v.infection else 0.0) + (95 - v.spo2) / 4
        if rng.random() < _logistic(0.5 + 0.6 * sick):
            tl = t0 + _randint(rng, 20, 50) * MINUTE
            lab = (15 * MINUTE, 60 * MINUTE)
            if rng.random() < 0.92:
                self.quantity(rng, ctx, CRP, v.crp, tl, issued_delay=lab)
            if rng.random() < _logistic(-0.6 + 0.8 * sick):
                self.quantity(
                    rng, ctx, LACTATE, v.lactate, tl, issued_delay=(5 * MINUTE, 20 * MINUTE)
                )
            if rng.random() < 0.9:
                self.quantity(rng, ctx, LEUKOCYTES, v.leukocytes, tl, issued_delay=lab)
            if rng.random() < 0.85:
                self.quantity(rng, ctx, GLUCOSE, v.glucose, tl, issued_delay=lab)
            if rng.random() < 0.9:
                self.quantity(rng, ctx, CREATININE, v.creatinine, tl, issued_delay=lab)

    def ed_patient(self, index: int) -> None:
        rng = _stream(self.seed, "ed", index)
        pid = f"ed-p{index:06d}"
        age = 18 + 80 * rng.betavariate(1.6, 1.7)
        r = rng.random()
        gender = (
            "female" if r < 0.495 else "male" if r < 0.99 else "other" if r < 0.995 else "unknown"
        )
        frailty = rng.gauss(0, 1) + 0.02 * (age - 55)
        person = self.patient(rng, pid, age, _END, gender, frailty)

        n_visits = 1
        if rng.random() < _logistic(-1.0 + 0.6 * frailty):
            n_visits += 2 if rng.random() < _logistic(-1.2 + 0.6 * frailty) else 1
        first_possible = _END - 730 * DAY
        arrivals = sorted(
            _local_to_epoch(
                _local_ordinal(first_possible + _randint(rng, 0, 728 * DAY)),
                self._arrival_clock(rng),
            )
            for _ in range(n_visits)
        )
        rate = math.exp(-1.2 + 0.7 * frailty + 0.02 * (age - 60))  # history admissions per year
        span = arrivals[-1] - (arrivals[0] - 730 * DAY)
        history = sorted(
            arrivals[0] - 730 * DAY + _randint(rng, 0, span)
            for _ in range(_poisson(rng, rate * span / _YEAR))
        )
        events = sorted([(t, 0) for t in history] + [(t, 1) for t in arrivals])
        busy = -(1 << 62)
        for k, (t, is_visit) in enumerate(events):
            if is_visit:
                if t < busy + DAY:
                    t = busy + _randint(rng, 1, 30) * DAY + _randint(rng, 0, DAY)
                if t > _END - 2 * DAY:
                    continue
                acuity = 0.45 * frailty + rng.gauss(0, 0.9)
                busy = self.ed_visit(rng, person, t, acuity)
            else:
                los = max(0.5, rng.lognormvariate(math.log(3), 0.8))
                end = t + int(los * DAY)
                upcoming = [u for u, vis in events[k + 1 :] if vis]
                if t < busy + 2 * DAY or (upcoming and end + DAY > upcoming[0]) or end > _END:
                    continue
                if rng.random() < 0.45:
                    if rng.random() < 0.05:
                        # A planned stay that never happened; it must not count as an admission.
                        self.encounter(rng, person, _CLASS_IMP, "EL", t, None, status="cancelled")
                        continue
                    busy = self.admission(rng, person, t, "EL", los)
                else:
                    busy = self.admission(rng, person, t, "EM", los)

    @staticmethod
    def _arrival_clock(rng: random.Random) -> float:
        """Seconds after local midnight; ED arrivals peak late morning to evening."""
        hour = _pick(rng, _ARRIVAL_HOURS)
        return hour * HOUR + _randint(rng, 0, HOUR - 1)

    # -- Post-MI home monitoring --------------------------------------------------------------

    def post_mi_patient(self, index: int) -> None:
        rng = _stream(self.seed, "post-mi", index)
        pid = f"mi-p{index:06d}"
        age = _clamp(rng.gauss(66, 11), 32, 94)
        male = rng.random() < 0.72
        z = rng.gauss(0, 1)  # latent cardiac reserve (lower is better)
        onset = _END - int(rng.uniform(125, 700) * DAY)
        person = self.patient(rng, pid, age, onset, "male" if male else "female", 0.5 * z + 0.3)
        if rng.random() < 0.02:
            # An earlier suspected infarction that was ruled out.
            self.condition(
                rng, person, onset - _randint(rng, 30, 300) * DAY, None, verification="refuted"
            )

        adm_start = onset + _randint(rng, 1 * HOUR, 6 * HOUR)
        los = rng.uniform(2.5, 7.0)
        adm_end = adm_start + int(los * DAY)
        index_eid = self.encounter(
            rng,
            person,
            _CLASS_ACUTE if rng.random() < 0.05 else _CLASS_IMP,
            "EM" if rng.random() < 0.85 else "S",
            adm_start,
            adm_end,
        )
        person.admissions.append(adm_start)
        self.condition(rng, person, onset, index_eid)

        sim = _HomeMonitoring(self, rng, person, onset, adm_end, age, male, z)
        sim.run()


_ARRIVAL_HOURS: Final = _cum(
    [
        (w, h)
        for h, w in enumerate(
            (
                2,
                2,
                1.5,
                1.2,
                1,
                1,
                1.5,
                2.5,
                4,
                5.5,
                6,
                6,
                6,
                6,
                6,
                5.5,
                5.5,
                5.5,
                5,
                5,
                4.5,
                4,
                3.5,
                2.5,
            )
        )
    ]
)


class _HomeMonitoring:
    """Day-by-day simulation of one patient after discharge: latent episodes, visits, data."""

    def __init__(
        self,
        synth: _Synth,
        rng: random.Random,
        person: _Person,
        onset: int,
        discharge: int,
        age: float,
        male: bool,
        z: float,
    ) -> None:
        self.s, self.rng, self.person, self.onset = synth, rng, person, onset
        self.busy_until = discharge
        self.z = z
        self.risk = math.exp(0.8 * z + 0.02 * (age - 66))
        disch_day = (discharge - onset) // DAY + 1
        self.first_day = disch_day + _randint(rng, 0, 2)
        self.last_day = _randint(rng, 95, 105)
        if rng.random() < 0.15:
            self.last_day = _randint(rng, 20, 90)  # stops measuring
        if rng.random() < 0.03:
            self.last_day = 0  # never starts
        self.gap = (-1, -1)
        if rng.random() < 0.08:
            g0 = _randint(rng, 20, 80)
            self.gap = (g0, g0 + _randint(rng, 5, 14))  # holiday without the devices
        self.adherence = rng.betavariate(9, 2)
        self.evening = rng.uniform(0.1, 0.6) if rng.random() < 0.6 else 0.0
        self.habit = rng.uniform(6.5, 9.5) * HOUR
        self.has_oximeter = rng.random() < 0.75
        self.temp_rate = 0.2 if rng.random() < 0.6 else 0.0
        self.dyspnea_integer = rng.random() < 0.3
        self.weight_unit = WEIGHT.units[-1][1] if rng.random() < 0.05 else WEIGHT.units[0][1]
        self.temp_unit = _pick(rng, TEMPERATURE.units)
        self.w0 = _clamp(rng.gauss(84 if male else 71, 13), 45, 160)
        self.hr0 = _clamp(66 + 4 * z + rng.gauss(0, 7), 45, 100)
        self.sbp0 = _clamp(127 - 7 * z + rng.gauss(0, 12), 90, 175)
        self.dbp_ratio = rng.uniform(0.55, 0.65)
        self.spo20 = min(98.5, 96.8 - 0.4 * z + rng.gauss(0, 0.8))
        self.dysp0 = max(0.0, 0.8 + 0.9 * z + rng.gauss(0, 0.5))
        subject = person.subject
        performer = [subject]
        bp_model = rng.choice(("A", "B", "C"))
        self.ctx_bp = _Ctx(
            subject,
            None,
            {"display": f"Home blood pressure monitor (synthetic model {bp_model})"},
            performer,
        )
        self.ctx_scale = _Ctx(
            subject, None, {"display": "Bluetooth body weight scale (synthetic)"}, performer
        )
        self.ctx_ox = _Ctx(
            subject, None, {"display": "Fingertip pulse oximeter (synthetic)"}, performer
        )
        self.ctx_temp = _Ctx(
            subject, None, {"display": "Digital thermometer (synthetic)"}, performer
        )
        self.ctx_app = _Ctx(
            subject, None, {"display": "Home monitoring app (synthetic)"}, performer
        )
        self.elective_day = _randint(rng, 20, 80) if rng.random() < 0.15 else -1
        self.outpatient_day = 42 + _randint(rng, -6, 6) if rng.random() < 0.7 else -1

    def run(self) -> None:
        rng, s = self.rng, self.s
        onset_ord = _local_ordinal(self.onset)
        episode: _Episode | None = None
        residual = 0.0
        for day in range(1, 113):
            ordinal = onset_ord + day
            midnight = _local_to_epoch(ordinal, 0)
            if midnight < self.busy_until:
                continue
            visit_kind = ""  # "", "episode" or "baseline"
            if episode is None:
                early = 1 + 1.5 * math.exp(-day / 20)
                if rng.random() < _EPISODE_HAZARD * self.risk * early:
                    episode = _Episode(
                        start=day,
                        gain_per_day=rng.uniform(0.3, 0.6),
                        visit_day=day + _randint(rng, 5, 12),
                        leads_to_visit=rng.random() < 0.9,
                        febrile=rng.random() < 0.3,
                    )
                elif rng.random() < _BASELINE_VISIT_HAZARD * self.risk:
                    visit_kind = "baseline"
            severity = float(day - episode.start) if episode is not None else residual
            if episode is not None and day == episode.visit_day:
                if episode.leads_to_visit:
                    visit_kind = "episode"
                else:
                    episode, residual = None, severity
            last_session = self._session(day, ordinal, severity, episode)
            if visit_kind:
                clock = max(rng.uniform(10, 22) * HOUR, last_session + HOUR - midnight)
                t = _local_to_epoch(ordinal, clock)
                self.busy_until = self._unplanned_visit(
                    t, severity if visit_kind == "episode" else 0.0
                )
                episode = None
                residual = severity if self.busy_until - t < DAY else 0.0
                if residual == 0.0:
                    self.w0 += rng.gauss(-0.8, 0.6)  # discharged at a new dry weight
                continue
            residual *= 0.55
            if residual < 0.3:
                residual = 0.0
            if day == self.elective_day and episode is None:
                start = _local_to_epoch(ordinal, 7.5 * HOUR + _randint(rng, 0, 3600))
                if rng.random() < 0.08:
                    s.encounter(rng, self.person, _CLASS_IMP, "EL", start, None, status="cancelled")
                else:
                    self.busy_until = s.admission(
                        rng, self.person, start, "EL", rng.uniform(0.8, 3)
                    )
            elif day == self.outpatient_day:
                start = _local_to_epoch(ordinal, rng.uniform(9, 16) * HOUR)
                s.encounter(
                    rng, self.person, _CLASS_AMB, "R", start, start + _randint(rng, 15, 45) * MINUTE
                )

    def _unplanned_visit(self, t: int, severity: float) -> int:
        """Unplanned contact: through the ED (same triage process as everyone) or direct."""
        rng, s = self.rng, self.s
        if rng.random() < 0.75:
            acuity = 0.5 + 0.12 * severity + rng.gauss(0, 0.7) if severity else rng.gauss(-0.2, 0.9)
            return s.ed_visit(rng, self.person, t, acuity)
        return s.admission(
            rng, self.person, t, "EM" if rng.random() < 0.8 else "UR", rng.uniform(2, 8)
        )

    def _session(self, day: int, ordinal: int, severity: float, episode: _Episode | None) -> int:
        """Morning (and sometimes evening) device readings; returns the last reading's time."""
        rng, s = self.rng, self.s
        if not (self.first_day <= day <= self.last_day) or self.gap[0] <= day < self.gap[1]:
            return 0
        fatigue = 0.1 * (day - self.first_day) / 100
        if rng.random() >= self.adherence - fatigue:
            return 0
        clock = _clamp(self.habit + rng.gauss(0, 25 * MINUTE), 5.5 * HOUR, 11 * HOUR)
        t = _local_to_epoch(ordinal, clock)
        sev = severity
        gain = episode.gain_per_day * sev if episode is not None else 0.4 * sev
        febrile = episode is not None and episode.febrile
        hr = self.hr0 + 1.8 * sev + rng.gauss(0, 4.5)
        sbp = self.sbp0 - 2.5 * sev + rng.gauss(0, 8)
        dbp = self.dbp_ratio * sbp + 3 + rng.gauss(0, 5)
        s.blood_pressure(rng, self.ctx_bp, sbp, dbp, t, issued_delay=(5, 4 * HOUR))
        s.quantity(rng, self.ctx_bp, HEART_RATE, _clamp(hr, 35, 180), t, issued_delay=(5, 4 * HOUR))
        last = t
        if rng.random() < 0.95:
            w = self.w0 - 0.01 * day + gain + rng.gauss(0, 0.35)
            tw = t + _randint(rng, 2, 10) * MINUTE
            s.quantity(
                rng, self.ctx_scale, WEIGHT, w, tw, unit=self.weight_unit, issued_delay=(5, HOUR)
            )
            last = max(last, tw)
        if self.has_oximeter and rng.random() < 0.9:
            spo2 = _clamp(self.spo20 - 0.45 * sev + rng.gauss(0, 1.0), 75, 100)
            tox = t + _randint(rng, 60, 180)
            s.quantity(rng, self.ctx_ox, SPO2, spo2, tox, issued_delay=(5, HOUR))
            # The oximeter reports its own pulse rate: a second heart rate from another device.
            pulse = _clamp(hr + rng.gauss(0, 3), 35, 180)
            s.quantity(rng, self.ctx_ox, HEART_RATE, pulse, tox, issued_delay=(5, HOUR))
        if self.temp_rate and rng.random() < (0.6 if sev > 1 else self.temp_rate):
            temp = 36.7 + rng.gauss(0, 0.25) + (0.15 * sev if febrile else 0.0)
            s.quantity(rng, self.ctx_temp, TEMPERATURE, temp, t + 3 * MINUTE, unit=self.temp_unit)
        if rng.random() < 0.85:
            early = 1.5 * math.exp(-day / 15)
            score = _clamp(round(self.dysp0 + early + 0.55 * sev + rng.gauss(0, 0.7)), 0, 10)
            ta = t + _randint(rng, 5, 30) * MINUTE
            s.quantity(rng, self.ctx_app, DYSPNEA, score, ta, integer=self.dyspnea_integer)
            last = max(last, ta)
        if self.evening and rng.random() < self.evening:
            te = _local_to_epoch(ordinal, rng.uniform(19, 22) * HOUR)
            hr_e = self.hr0 + 2 + 1.8 * sev + rng.gauss(0, 4.5)
            sbp_e = self.sbp0 + 3 - 2.5 * sev + rng.gauss(0, 8)
            s.blood_pressure(
                rng, self.ctx_bp, sbp_e, self.dbp_ratio * sbp_e + 3 + rng.gauss(0, 5), te
            )
            s.quantity(rng, self.ctx_bp, HEART_RATE, _clamp(hr_e, 35, 180), te)
            last = te
        return last


def _manifest(counts: dict[str, int], seed: int, ed_patients: int, post_mi_patients: int) -> Json:
    return {
        "transactionTime": _local(_END),
        "request": f"{EXAMPLE}/fhir/$export?_type=" + ",".join(RESOURCE_TYPES),
        "requiresAccessToken": False,
        "output": [
            {"type": rt, "url": f"{rt}.ndjson", "count": counts[rt]} for rt in RESOURCE_TYPES
        ],
        "error": [],
        "extension": {
            f"{EXAMPLE}/StructureDefinition/synthetic-cohort": {
                "synthetic": True,
                "generator": f"cds_devtools.synth v{GENERATOR_VERSION}",
                "seed": seed,
                "ed_patients": ed_patients,
                "post_mi_patients": post_mi_patients,
            }
        },
    }


def generate_cohort(
    out_dir: Path,
    *,
    ed_patients: int = 4000,
    post_mi_patients: int = 800,
    seed: int = 20261123,
    progress: bool = False,
) -> dict[str, int]:
    """Write a synthetic bulk export into ``out_dir`` and return resource counts per type.

    Each patient draws from its own seeded stream, so the ED cohort does not change when the
    post-MI cohort is resized (only the running resource ids shift). Files are written under a
    temporary name and renamed at the end, and ``manifest.json`` comes last: a reader that finds a
    manifest finds a complete export.
    """
    if ed_patients < 0 or post_mi_patients < 0:
        raise ValueError("patient counts must not be negative")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    # A manifest left from an earlier run would vouch for files that are about to be replaced.
    (out_dir / "manifest.json").unlink(missing_ok=True)
    synth = _Synth(out_dir, seed)
    bar = tqdm(
        total=ed_patients + post_mi_patients,
        unit="patient",
        desc="synthetic cohort",
        disable=not progress,
    )
    try:
        for i in range(1, ed_patients + 1):
            synth.ed_patient(i)
            bar.update(1)
        for i in range(1, post_mi_patients + 1):
            synth.post_mi_patient(i)
            bar.update(1)
    except BaseException:
        synth.close()
        for partial in synth.partial.values():
            partial.unlink(missing_ok=True)
        raise
    finally:
        bar.close()
        synth.close()
    for rt, partial in synth.partial.items():
        partial.replace(out_dir / f"{rt}.ndjson")
    manifest = _manifest(synth.counts, seed, ed_patients, post_mi_patients)
    (out_dir / "manifest.json").write_bytes(
        orjson.dumps(manifest, option=orjson.OPT_SORT_KEYS | orjson.OPT_INDENT_2) + b"\n"
    )
    return dict(synth.counts)

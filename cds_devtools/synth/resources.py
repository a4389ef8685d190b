"""Patient, Encounter and Condition resources, and the person behind them."""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import datetime

from cds_devtools.synth.clock import _CET, _END, _YEAR, DAY, HOUR, _date_text, _local, _utc
from cds_devtools.synth.codes import (
    _ADMIT_FROM_ED,
    _CLASS_ACUTE,
    _CLASS_IMP,
    _CONDITION_CLINICAL,
    _CONDITION_VERIFICATION,
    _ENCOUNTER_DIAGNOSIS,
    _GIVEN_NAMES,
    _I21_9,
    _MI_CODES,
    _MI_SNOMED,
    _PRIORITY,
    _SYNTHETIC_TAG,
    MRN_SYSTEM,
    Json,
    _coding,
    _concept,
)
from cds_devtools.synth.draws import _pick, _randint
from cds_devtools.synth.ndjson import _Writer


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


def patient(
    w: _Writer, rng: random.Random, pid: str, age: float, at: int, gender: str, frailty: float
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
        "name": [{"use": "official", "family": "Synthetic", "given": [rng.choice(_GIVEN_NAMES)]}],
        "gender": gender,
        "birthDate": birth_date,
        "active": True,
    }
    w.write("Patient", resource)
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
    w: _Writer,
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
    eid = w.next_encounter_id()
    fmt = _utc if rng.random() < 0.1 else _local
    period = {"start": fmt(start)}
    if end is not None and end < _END:
        period["end"] = fmt(end)
    elif status == "finished":
        status = "in-progress"  # still admitted when the export was taken
    resource: Json = {
        "resourceType": "Encounter",
        "id": eid,
        "meta": {"lastUpdated": _utc(min((end or start) + _randint(rng, 60, 6 * HOUR), _END - 1))},
        "status": status,
        "class": klass,
        "subject": person.subject,
        "period": period,
    }
    if priority is not None:
        resource["priority"] = {"coding": [_PRIORITY[priority]]}
    if extra:
        resource.update(extra)
    w.write("Encounter", resource)
    return eid


def admission(
    w: _Writer, rng: random.Random, person: _Person, start: int, priority: str, los_days: float
) -> int:
    """Write an inpatient stay; returns its end. A few hospitals code these as ACUTE."""
    end = start + int(los_days * DAY)
    klass = _CLASS_ACUTE if rng.random() < 0.05 else _CLASS_IMP
    extra = _ADMIT_FROM_ED if priority in ("EM", "S") and rng.random() < 0.7 else None
    encounter(w, rng, person, klass, priority, start, end, extra=extra)
    person.admissions.append(start)
    return end


def condition(
    w: _Writer,
    rng: random.Random,
    person: _Person,
    onset: int,
    encounter_id: str | None,
    *,
    verification: str = "confirmed",
) -> None:
    cid = w.next_condition_id()
    roll = rng.random()
    if roll < 0.03:
        codings = [_I21_9]  # billing-only diagnosis
    else:
        codings = [_MI_CODES[_pick(rng, _MI_SNOMED)]]
        if roll < 0.33:
            codings.insert(0 if rng.random() < 0.3 else 1, _I21_9)
    resource: Json = {
        "resourceType": "Condition",
        "id": cid,
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
    w.write("Condition", resource)

"""Patient, Encounter and Condition resources, and the person behind them."""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import datetime

from cds_devtools.synth.clock import CET, DAY, END, HOUR, YEAR, date_text, local_time, utc_time
from cds_devtools.synth.codes import (
    ADMIT_FROM_ED,
    CLASS_ACUTE,
    CLASS_IMP,
    CONDITION_CLINICAL,
    CONDITION_VERIFICATION,
    ENCOUNTER_DIAGNOSIS,
    GIVEN_NAMES,
    I21_9,
    MI_CODES,
    MI_SNOMED,
    MRN_SYSTEM,
    PRIORITY,
    SYNTHETIC_TAG,
    Json,
    concept,
    make_coding,
)
from cds_devtools.synth.draws import pick, randint
from cds_devtools.synth.ndjson import Writer


@dataclass(slots=True)
class Ctx:
    """Reference fields shared by every observation of one source (an ED visit, a home device)."""

    subject: Json
    encounter: Json | None = None
    device: Json | None = None
    performer: list[Json] | None = None


@dataclass(slots=True)
class Person:
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
        return (t - self.birth) / YEAR


def patient(
    w: Writer, rng: random.Random, pid: str, age: float, at: int, gender: str, frailty: float
) -> Person:
    birth = at - int(age * YEAR) - randint(rng, 0, DAY - 1)
    birth_date = date_text(birth)
    resource: Json = {
        "resourceType": "Patient",
        "id": pid,
        "meta": {
            "lastUpdated": utc_time(END - randint(rng, DAY, 30 * DAY)),
            "tag": SYNTHETIC_TAG,
        },
        "identifier": [{"system": MRN_SYSTEM, "value": "SYN-" + pid.upper()}],
        "name": [{"use": "official", "family": "Synthetic", "given": [rng.choice(GIVEN_NAMES)]}],
        "gender": gender,
        "birthDate": birth_date,
        "active": True,
    }
    w.write("Patient", resource)
    birth_epoch = int(datetime.fromisoformat(birth_date).replace(tzinfo=CET).timestamp())
    male = True if gender == "male" else False if gender == "female" else None
    old = max(0.0, age - 50.0)
    return Person(
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
    w: Writer,
    rng: random.Random,
    person: Person,
    klass: Json,
    priority: str | None,
    start: int,
    end: int | None,
    *,
    status: str = "finished",
    extra: Json | None = None,
) -> str:
    eid = w.next_encounter_id()
    fmt = utc_time if rng.random() < 0.1 else local_time
    period = {"start": fmt(start)}
    if end is not None and end < END:
        period["end"] = fmt(end)
    elif status == "finished":
        status = "in-progress"  # still admitted when the export was taken
    resource: Json = {
        "resourceType": "Encounter",
        "id": eid,
        "meta": {
            "lastUpdated": utc_time(min((end or start) + randint(rng, 60, 6 * HOUR), END - 1))
        },
        "status": status,
        "class": klass,
        "subject": person.subject,
        "period": period,
    }
    if priority is not None:
        resource["priority"] = {"coding": [PRIORITY[priority]]}
    if extra:
        resource.update(extra)
    w.write("Encounter", resource)
    return eid


def admission(
    w: Writer, rng: random.Random, person: Person, start: int, priority: str, los_days: float
) -> int:
    """Write an inpatient stay; returns its end. A few hospitals code these as ACUTE."""
    end = start + int(los_days * DAY)
    klass = CLASS_ACUTE if rng.random() < 0.05 else CLASS_IMP
    extra = ADMIT_FROM_ED if priority in ("EM", "S") and rng.random() < 0.7 else None
    encounter(w, rng, person, klass, priority, start, end, extra=extra)
    person.admissions.append(start)
    return end


def condition(
    w: Writer,
    rng: random.Random,
    person: Person,
    onset: int,
    encounter_id: str | None,
    *,
    verification: str = "confirmed",
) -> None:
    cid = w.next_condition_id()
    roll = rng.random()
    if roll < 0.03:
        codings = [I21_9]  # billing-only diagnosis
    else:
        codings = [MI_CODES[pick(rng, MI_SNOMED)]]
        if roll < 0.33:
            codings.insert(0 if rng.random() < 0.3 else 1, I21_9)
    resource: Json = {
        "resourceType": "Condition",
        "id": cid,
        "meta": {"lastUpdated": utc_time(onset + randint(rng, DAY, 10 * DAY))},
        "verificationStatus": concept(
            make_coding(CONDITION_VERIFICATION, verification, verification.capitalize())
        ),
        "category": ENCOUNTER_DIAGNOSIS,
        "code": {"coding": codings, "text": "Myocardial infarction"},
        "subject": person.subject,
        # A date-only onset is common in problem lists; it denotes the start of that day.
        "onsetDateTime": date_text(onset) if rng.random() < 0.15 else local_time(onset),
        "recordedDate": local_time(onset + randint(rng, HOUR, 30 * HOUR)),
    }
    clinical = "active" if verification == "confirmed" else "inactive"
    resource["clinicalStatus"] = concept(
        make_coding(CONDITION_CLINICAL, clinical, clinical.capitalize())
    )
    if encounter_id is not None:
        resource["encounter"] = {"reference": f"Encounter/{encounter_id}"}
    w.write("Condition", resource)

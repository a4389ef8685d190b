"""Patient, Encounter and Condition resources, and the person behind them."""

from __future__ import annotations

import random
import zlib
from dataclasses import dataclass, field
from datetime import datetime

from cds_devtools.synth.clock import CET, DAY, END, HOUR, YEAR, date_text, local_time, utc_time
from cds_devtools.synth.codes import (
    ADMIT_FROM_ED,
    CLASS_ACUTE,
    CLASS_IMP,
    CONDITION_CLINICAL,
    CONDITION_VERIFICATION,
    EHR_FHIR_BASE,
    ENCOUNTER_DIAGNOSIS,
    GIVEN_NAMES,
    I21_9,
    I21_CM,
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


def subject_reference(pid: str) -> Json:
    """How this patient's resources point at the Patient: mostly ``Patient/x``; some systems add
    the type, some write the server's absolute URL. Stable per patient and drawn from its id, not
    from the random stream, so the cohort's values do not depend on it."""
    bucket = zlib.crc32(pid.encode()) % 100
    ref = f"Patient/{pid}"
    if bucket < 10:
        return {"type": "Patient", "reference": ref}
    if bucket < 14:
        return {"reference": f"{EHR_FHIR_BASE}/{ref}"}
    return {"reference": ref}


def identifier_reference(pid: str) -> Json | None:
    """A home-monitoring platform that knows the patient only by the hospital's MRN, for a few
    patients: ``{type, identifier}``, attributable through the Patient's identifiers."""
    if zlib.crc32(b"home:" + pid.encode()) % 100 >= 6:
        return None
    return {"type": "Patient", "identifier": {"system": MRN_SYSTEM, "value": "SYN-" + pid.upper()}}


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
        subject=subject_reference(pid),
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


def _mi_codings(rng: random.Random) -> list[Json]:
    """SNOMED CT, often with the billing code (ICD-10 or ICD-10-CM); a few billing codes alone.

    The shares come from the one draw ``roll`` (and the draws the old coding used), so adding
    ICD-10-CM changed which codes are written, not the cohort's values.
    """
    roll = rng.random()
    if roll < 0.03:
        # billing-only diagnosis: WHO ICD-10 in half, ICD-10-CM in the other half
        return [I21_9] if roll < 0.015 else [I21_CM["22298006" if roll < 0.0225 else "401314000"]]
    snomed = pick(rng, MI_SNOMED)
    codings = [MI_CODES[snomed]]
    if roll < 0.33:
        billing = I21_9 if roll < 0.18 else I21_CM[snomed]
        codings.insert(0 if rng.random() < 0.3 else 1, billing)
    return codings


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
    codings = _mi_codings(rng)
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

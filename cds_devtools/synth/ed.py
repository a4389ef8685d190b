"""Emergency department patients: triage physiology, the admission decision, ED data."""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from typing import Final

from cds_devtools.synth.clock import DAY, END, HOUR, MINUTE, YEAR, local_ordinal, local_to_epoch
from cds_devtools.synth.codes import CLASS_EMER, CLASS_IMP
from cds_devtools.synth.draws import (
    clamp,
    cumulative,
    logistic,
    patient_stream,
    pick,
    poisson,
    randint,
)
from cds_devtools.synth.kinds import (
    CREATININE,
    CRP,
    GLUCOSE,
    HEART_RATE,
    LACTATE,
    LEUKOCYTES,
    RESP_RATE,
    SPO2,
    TEMPERATURE,
)
from cds_devtools.synth.ndjson import Writer
from cds_devtools.synth.observations import arrival_mode, blood_pressure, quantity
from cds_devtools.synth.resources import Ctx, Person, admission, encounter, patient

_ED_INTERCEPT: Final = -2.45


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


def _triage(rng: random.Random, person: Person, age: float, acuity: float) -> _Triage:
    """Physiology at arrival: driven by a latent acuity, infection, and chronic disease."""
    a_pos = max(acuity, 0.0)
    infection = rng.random() < logistic(-1.5 + 0.5 * acuity)
    hr = clamp(78 + 9 * acuity + (12 if infection else 0) + rng.gauss(0, 11), 35, 190)
    rr = clamp(16 + 2.5 * acuity + (2 if infection else 0) + rng.gauss(0, 2.5), 8, 45)
    sbp = clamp(
        134 + 0.35 * (age - 55) - 8 * acuity - (6 if infection else 0) + rng.gauss(0, 18),
        60,
        230,
    )
    dbp = clamp(0.5 * sbp + 12 + rng.gauss(0, 9), 30, sbp - 10)
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
        temp=clamp(temp, 32, 42.3),
        spo2=clamp(spo2, 70, 100),
        crp=clamp(crp, 0.3, 450),
        lactate=clamp(lactate, 0.3, 15),
        leukocytes=clamp(leukocytes, 0.5, 80),
        glucose=clamp(glucose, 2.2, 45),
        creatinine=clamp(creatinine, 25, 1500),
    )


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


def ed_visit(w: Writer, rng: random.Random, person: Person, t0: int, acuity: float) -> int:
    """One ED visit with triage, first labs and the admission decision; returns its end."""
    age = person.age(t0)
    v = _triage(rng, person, age, acuity)
    p_amb = logistic(-1.3 + 0.8 * acuity + 0.025 * (age - 55))
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
    lp = _admission_logit(age, person.male, v, ambulance, urgency, prior)
    admitted = rng.random() < logistic(lp + rng.gauss(0, 0.7))

    adm_start = t0 + HOUR + int(rng.random() ** 1.3 * 7 * HOUR)
    ed_end = adm_start if admitted else t0 + randint(rng, 90, 360) * MINUTE
    eid = encounter(w, rng, person, CLASS_EMER, prio, t0, ed_end)
    ctx = Ctx(person.subject, {"reference": f"Encounter/{eid}"})
    _ed_observations(w, rng, ctx, v, mode, t0)

    if admitted:
        los = max(0.4, rng.lognormvariate(math.log(3.5), 0.7))
        return admission(w, rng, person, adm_start, "EM", los)
    if rng.random() < 0.015:
        # Discharged home, back within days: an admission outside the 24-hour label window.
        start = t0 + randint(rng, 30, 96) * HOUR
        return admission(w, rng, person, start, "UR", rng.uniform(1, 5))
    return ed_end


def _ed_observations(
    w: Writer, rng: random.Random, ctx: Ctx, v: _Triage, mode: str, t0: int
) -> None:
    arrival_mode(w, rng, ctx, mode, t0 + randint(rng, 0, 180))
    tv = t0 + randint(rng, 2, 30) * MINUTE
    monitor = (0, 600)
    quantity(w, rng, ctx, HEART_RATE, v.hr, tv, issued_delay=monitor)
    if rng.random() < 0.98:
        blood_pressure(w, rng, ctx, v.sbp, v.dbp, tv, issued_delay=monitor)
    if rng.random() < 0.88:
        quantity(w, rng, ctx, RESP_RATE, v.rr, tv, issued_delay=monitor)
    if rng.random() < 0.95:
        quantity(w, rng, ctx, SPO2, v.spo2, tv, issued_delay=monitor)
    if rng.random() < 0.92:
        quantity(w, rng, ctx, TEMPERATURE, v.temp, tv + randint(rng, 0, 240), issued_delay=monitor)
    if rng.random() < 0.25:
        # A second round before the prediction moment: "last" must pick this one.
        t2 = t0 + randint(rng, 35, 55) * MINUTE
        quantity(w, rng, ctx, HEART_RATE, v.hr - 3 + rng.gauss(0, 5), t2, issued_delay=monitor)
        blood_pressure(w, rng, ctx, v.sbp + rng.gauss(2, 8), v.dbp + rng.gauss(1, 5), t2)
    if rng.random() < 0.35:
        # Measurements after the prediction moment: a feature must never see them.
        t3 = t0 + randint(rng, 90, 240) * MINUTE
        quantity(
            w, rng, ctx, HEART_RATE, 0.6 * v.hr + 32 + rng.gauss(0, 6), t3, issued_delay=monitor
        )
        blood_pressure(w, rng, ctx, 0.6 * v.sbp + 52 + rng.gauss(0, 8), v.dbp + rng.gauss(0, 6), t3)
        quantity(w, rng, ctx, SPO2, min(100.0, v.spo2 + 1.0 + rng.gauss(0, 1)), t3)

    # Blood is drawn on sicker patients more often; lactate mostly when sepsis is considered.
    sick = (v.hr - 80) / 15 + (1.0 if v.infection else 0.0) + (95 - v.spo2) / 4
    if rng.random() < logistic(0.5 + 0.6 * sick):
        tl = t0 + randint(rng, 20, 50) * MINUTE
        lab = (15 * MINUTE, 60 * MINUTE)
        if rng.random() < 0.92:
            quantity(w, rng, ctx, CRP, v.crp, tl, issued_delay=lab)
        if rng.random() < logistic(-0.6 + 0.8 * sick):
            quantity(w, rng, ctx, LACTATE, v.lactate, tl, issued_delay=(5 * MINUTE, 20 * MINUTE))
        if rng.random() < 0.9:
            quantity(w, rng, ctx, LEUKOCYTES, v.leukocytes, tl, issued_delay=lab)
        if rng.random() < 0.85:
            quantity(w, rng, ctx, GLUCOSE, v.glucose, tl, issued_delay=lab)
        if rng.random() < 0.9:
            quantity(w, rng, ctx, CREATININE, v.creatinine, tl, issued_delay=lab)


def ed_patient(w: Writer, index: int) -> None:
    """One ED patient: up to three visits in two years, between earlier hospital stays."""
    rng = patient_stream(w.seed, "ed", index)
    pid = f"ed-p{index:06d}"
    age = 18 + 80 * rng.betavariate(1.6, 1.7)
    r = rng.random()
    gender = "female" if r < 0.495 else "male" if r < 0.99 else "other" if r < 0.995 else "unknown"
    frailty = rng.gauss(0, 1) + 0.02 * (age - 55)
    person = patient(w, rng, pid, age, END, gender, frailty)
    arrivals = _arrivals(rng, frailty)
    history = _history(rng, arrivals, frailty, age)
    events = sorted([(t, 0) for t in history] + [(t, 1) for t in arrivals])
    busy = -(1 << 62)
    for k, (t, is_visit) in enumerate(events):
        if is_visit:
            busy = _visit(w, rng, person, t, busy, frailty)
        else:
            upcoming = [u for u, vis in events[k + 1 :] if vis]
            busy = _history_stay(w, rng, person, t, busy, upcoming)


def _arrivals(rng: random.Random, frailty: float) -> list[int]:
    """ED arrival times, sorted; frailer patients come back more often."""
    n_visits = 1
    if rng.random() < logistic(-1.0 + 0.6 * frailty):
        n_visits += 2 if rng.random() < logistic(-1.2 + 0.6 * frailty) else 1
    first_possible = END - 730 * DAY
    return sorted(
        local_to_epoch(
            local_ordinal(first_possible + randint(rng, 0, 728 * DAY)),
            _arrival_clock(rng),
        )
        for _ in range(n_visits)
    )


def _history(rng: random.Random, arrivals: list[int], frailty: float, age: float) -> list[int]:
    """Start times of earlier stays (a Poisson process), the source of "prior admissions"."""
    rate = math.exp(-1.2 + 0.7 * frailty + 0.02 * (age - 60))  # history admissions per year
    span = arrivals[-1] - (arrivals[0] - 730 * DAY)
    return sorted(
        arrivals[0] - 730 * DAY + randint(rng, 0, span)
        for _ in range(poisson(rng, rate * span / YEAR))
    )


def _visit(w: Writer, rng: random.Random, person: Person, t: int, busy: int, frailty: float) -> int:
    """An ED visit, moved after a stay it would overlap; returns when the patient is free."""
    if t < busy + DAY:
        t = busy + randint(rng, 1, 30) * DAY + randint(rng, 0, DAY)
    if t > END - 2 * DAY:
        return busy
    acuity = 0.45 * frailty + rng.gauss(0, 0.9)
    return ed_visit(w, rng, person, t, acuity)


def _history_stay(
    w: Writer, rng: random.Random, person: Person, t: int, busy: int, upcoming: list[int]
) -> int:
    """An earlier stay, skipped if it would overlap another or the next ED visit."""
    los = max(0.5, rng.lognormvariate(math.log(3), 0.8))
    end = t + int(los * DAY)
    if t < busy + 2 * DAY or (upcoming and end + DAY > upcoming[0]) or end > END:
        return busy
    if rng.random() >= 0.45:
        return admission(w, rng, person, t, "EM", los)
    if rng.random() < 0.05:
        # A planned stay that never happened; it must not count as an admission.
        encounter(w, rng, person, CLASS_IMP, "EL", t, None, status="cancelled")
        return busy
    return admission(w, rng, person, t, "EL", los)


def _arrival_clock(rng: random.Random) -> float:
    """Seconds after local midnight; ED arrivals peak late morning to evening."""
    hour = pick(rng, _ARRIVAL_HOURS)
    return hour * HOUR + randint(rng, 0, HOUR - 1)


_ARRIVAL_HOURS: Final = cumulative(
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

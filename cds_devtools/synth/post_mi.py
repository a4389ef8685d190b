"""Patients after a myocardial infarction: the index stay, then day-by-day home monitoring."""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from typing import Final

from cds_devtools.synth.clock import DAY, END, HOUR, MINUTE, local_ordinal, local_to_epoch
from cds_devtools.synth.codes import CLASS_ACUTE, CLASS_AMB, CLASS_IMP
from cds_devtools.synth.draws import clamp, patient_stream, pick, randint
from cds_devtools.synth.ed import ed_visit
from cds_devtools.synth.kinds import DYSPNEA, HEART_RATE, SPO2, TEMPERATURE, WEIGHT
from cds_devtools.synth.ndjson import Writer
from cds_devtools.synth.observations import blood_pressure, quantity
from cds_devtools.synth.resources import (
    Ctx,
    Person,
    admission,
    condition,
    encounter,
    identifier_reference,
    patient,
)

_EPISODE_HAZARD: Final = 0.0075  # per day, before the patient's risk multiplier
_BASELINE_VISIT_HAZARD: Final = 0.0007  # unplanned visits without warning signs, per day


@dataclass(slots=True)
class _Episode:
    start: int
    gain_per_day: float
    visit_day: int
    leads_to_visit: bool
    febrile: bool


def post_mi_patient(w: Writer, index: int) -> None:
    rng = patient_stream(w.seed, "post-mi", index)
    pid = f"mi-p{index:06d}"
    age = clamp(rng.gauss(66, 11), 32, 94)
    male = rng.random() < 0.72
    z = rng.gauss(0, 1)  # latent cardiac reserve (lower is better)
    onset = END - int(rng.uniform(125, 700) * DAY)
    person = patient(w, rng, pid, age, onset, "male" if male else "female", 0.5 * z + 0.3)
    if rng.random() < 0.02:
        # An earlier suspected infarction that was ruled out.
        condition(w, rng, person, onset - randint(rng, 30, 300) * DAY, None, verification="refuted")

    adm_start = onset + randint(rng, 1 * HOUR, 6 * HOUR)
    los = rng.uniform(2.5, 7.0)
    adm_end = adm_start + int(los * DAY)
    index_eid = encounter(
        w,
        rng,
        person,
        CLASS_ACUTE if rng.random() < 0.05 else CLASS_IMP,
        "EM" if rng.random() < 0.85 else "S",
        adm_start,
        adm_end,
    )
    person.admissions.append(adm_start)
    condition(w, rng, person, onset, index_eid)

    sim = _HomeMonitoring(w, rng, person, onset, adm_end, age, male, z)
    sim.run()


class _HomeMonitoring:
    """Day-by-day simulation of one patient after discharge: latent episodes, visits, data."""

    def __init__(
        self,
        synth: Writer,
        rng: random.Random,
        person: Person,
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
        self.first_day = disch_day + randint(rng, 0, 2)
        self.last_day = randint(rng, 95, 105)
        if rng.random() < 0.15:
            self.last_day = randint(rng, 20, 90)  # stops measuring
        if rng.random() < 0.03:
            self.last_day = 0  # never starts
        self.gap = (-1, -1)
        if rng.random() < 0.08:
            g0 = randint(rng, 20, 80)
            self.gap = (g0, g0 + randint(rng, 5, 14))  # holiday without the devices
        self.adherence = rng.betavariate(9, 2)
        self.evening = rng.uniform(0.1, 0.6) if rng.random() < 0.6 else 0.0
        self.habit = rng.uniform(6.5, 9.5) * HOUR
        self.has_oximeter = rng.random() < 0.75
        self.temp_rate = 0.2 if rng.random() < 0.6 else 0.0
        self.dyspnea_integer = rng.random() < 0.3
        self.weight_unit = WEIGHT.units[-1][1] if rng.random() < 0.05 else WEIGHT.units[0][1]
        self.temp_unit = pick(rng, TEMPERATURE.units)
        self.w0 = clamp(rng.gauss(84 if male else 71, 13), 45, 160)
        self.hr0 = clamp(66 + 4 * z + rng.gauss(0, 7), 45, 100)
        self.sbp0 = clamp(127 - 7 * z + rng.gauss(0, 12), 90, 175)
        self.dbp_ratio = rng.uniform(0.55, 0.65)
        self.spo20 = min(98.5, 96.8 - 0.4 * z + rng.gauss(0, 0.8))
        self.dysp0 = max(0.0, 0.8 + 0.9 * z + rng.gauss(0, 0.5))
        subject = identifier_reference(person.pid) or person.subject
        performer = [subject]
        bp_model = rng.choice(("A", "B", "C"))
        self.ctx_bp = Ctx(
            subject,
            None,
            {"display": f"Home blood pressure monitor (synthetic model {bp_model})"},
            performer,
        )
        self.ctx_scale = Ctx(
            subject, None, {"display": "Bluetooth body weight scale (synthetic)"}, performer
        )
        self.ctx_ox = Ctx(
            subject, None, {"display": "Fingertip pulse oximeter (synthetic)"}, performer
        )
        self.ctx_temp = Ctx(
            subject, None, {"display": "Digital thermometer (synthetic)"}, performer
        )
        self.ctx_app = Ctx(subject, None, {"display": "Home monitoring app (synthetic)"}, performer)
        self.elective_day = randint(rng, 20, 80) if rng.random() < 0.15 else -1
        self.outpatient_day = 42 + randint(rng, -6, 6) if rng.random() < 0.7 else -1

    def run(self) -> None:
        rng, s = self.rng, self.s
        onset_ord = local_ordinal(self.onset)
        episode: _Episode | None = None
        residual = 0.0
        for day in range(1, 113):
            ordinal = onset_ord + day
            midnight = local_to_epoch(ordinal, 0)
            if midnight < self.busy_until:
                continue
            visit_kind = ""  # "", "episode" or "baseline"
            if episode is None:
                early = 1 + 1.5 * math.exp(-day / 20)
                if rng.random() < _EPISODE_HAZARD * self.risk * early:
                    episode = _Episode(
                        start=day,
                        gain_per_day=rng.uniform(0.3, 0.6),
                        visit_day=day + randint(rng, 5, 12),
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
                t = local_to_epoch(ordinal, clock)
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
                start = local_to_epoch(ordinal, 7.5 * HOUR + randint(rng, 0, 3600))
                if rng.random() < 0.08:
                    encounter(s, rng, self.person, CLASS_IMP, "EL", start, None, status="cancelled")
                else:
                    self.busy_until = admission(
                        s, rng, self.person, start, "EL", rng.uniform(0.8, 3)
                    )
            elif day == self.outpatient_day:
                start = local_to_epoch(ordinal, rng.uniform(9, 16) * HOUR)
                encounter(
                    s,
                    rng,
                    self.person,
                    CLASS_AMB,
                    "R",
                    start,
                    start + randint(rng, 15, 45) * MINUTE,
                )

    def _unplanned_visit(self, t: int, severity: float) -> int:
        """Unplanned contact: through the ED (same triage process as everyone) or direct."""
        rng, s = self.rng, self.s
        if rng.random() < 0.75:
            acuity = 0.5 + 0.12 * severity + rng.gauss(0, 0.7) if severity else rng.gauss(-0.2, 0.9)
            return ed_visit(s, rng, self.person, t, acuity)
        return admission(
            s, rng, self.person, t, "EM" if rng.random() < 0.8 else "UR", rng.uniform(2, 8)
        )

    def _session(self, day: int, ordinal: int, severity: float, episode: _Episode | None) -> int:
        """Morning (and sometimes evening) device readings; returns the last reading's time."""
        rng, s = self.rng, self.s
        if not (self.first_day <= day <= self.last_day) or self.gap[0] <= day < self.gap[1]:
            return 0
        fatigue = 0.1 * (day - self.first_day) / 100
        if rng.random() >= self.adherence - fatigue:
            return 0
        clock = clamp(self.habit + rng.gauss(0, 25 * MINUTE), 5.5 * HOUR, 11 * HOUR)
        t = local_to_epoch(ordinal, clock)
        sev = severity
        gain = episode.gain_per_day * sev if episode is not None else 0.4 * sev
        febrile = episode is not None and episode.febrile
        hr = self.hr0 + 1.8 * sev + rng.gauss(0, 4.5)
        sbp = self.sbp0 - 2.5 * sev + rng.gauss(0, 8)
        dbp = self.dbp_ratio * sbp + 3 + rng.gauss(0, 5)
        blood_pressure(s, rng, self.ctx_bp, sbp, dbp, t, issued_delay=(5, 4 * HOUR))
        quantity(s, rng, self.ctx_bp, HEART_RATE, clamp(hr, 35, 180), t, issued_delay=(5, 4 * HOUR))
        last = t
        if rng.random() < 0.95:
            w = self.w0 - 0.01 * day + gain + rng.gauss(0, 0.35)
            tw = t + randint(rng, 2, 10) * MINUTE
            quantity(
                s, rng, self.ctx_scale, WEIGHT, w, tw, unit=self.weight_unit, issued_delay=(5, HOUR)
            )
            last = max(last, tw)
        if self.has_oximeter and rng.random() < 0.9:
            spo2 = clamp(self.spo20 - 0.45 * sev + rng.gauss(0, 1.0), 75, 100)
            tox = t + randint(rng, 60, 180)
            quantity(s, rng, self.ctx_ox, SPO2, spo2, tox, issued_delay=(5, HOUR))
            # The oximeter reports its own pulse rate: a second heart rate from another device.
            pulse = clamp(hr + rng.gauss(0, 3), 35, 180)
            quantity(s, rng, self.ctx_ox, HEART_RATE, pulse, tox, issued_delay=(5, HOUR))
        if self.temp_rate and rng.random() < (0.6 if sev > 1 else self.temp_rate):
            temp = 36.7 + rng.gauss(0, 0.25) + (0.15 * sev if febrile else 0.0)
            quantity(s, rng, self.ctx_temp, TEMPERATURE, temp, t + 3 * MINUTE, unit=self.temp_unit)
        if rng.random() < 0.85:
            early = 1.5 * math.exp(-day / 15)
            score = clamp(round(self.dysp0 + early + 0.55 * sev + rng.gauss(0, 0.7)), 0, 10)
            ta = t + randint(rng, 5, 30) * MINUTE
            quantity(s, rng, self.ctx_app, DYSPNEA, score, ta, integer=self.dyspnea_integer)
            last = max(last, ta)
        if self.evening and rng.random() < self.evening:
            te = local_to_epoch(ordinal, rng.uniform(19, 22) * HOUR)
            hr_e = self.hr0 + 2 + 1.8 * sev + rng.gauss(0, 4.5)
            sbp_e = self.sbp0 + 3 - 2.5 * sev + rng.gauss(0, 8)
            blood_pressure(
                s, rng, self.ctx_bp, sbp_e, self.dbp_ratio * sbp_e + 3 + rng.gauss(0, 5), te
            )
            quantity(s, rng, self.ctx_bp, HEART_RATE, clamp(hr_e, 35, 180), te)
            last = te
        return last

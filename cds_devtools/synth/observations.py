"""Observation resources with the untidiness of real exports: statuses, units, codings."""

from __future__ import annotations

import random
from typing import Final

from cds_devtools.synth.clock import DAY, END, HOUR, local_time, utc_time
from cds_devtools.synth.codes import (
    ARRIVAL,
    DATA_ABSENT_REASONS,
    ERROR_STATUSES,
    LOCAL_FLOWSHEET,
    NON_UCUM_UNITS,
    TRANSPORT_CODE,
    UCUM,
    VITALS,
    Json,
    make_coding,
)
from cds_devtools.synth.draws import pick, randint, rounded
from cds_devtools.synth.kind_types import Kind, Unit
from cds_devtools.synth.kinds import (
    BP_PANEL,
    DBP_CODING,
    DIASTOLIC,
    SBP_CODING,
    SYSTOLIC,
)
from cds_devtools.synth.ndjson import Writer
from cds_devtools.synth.resources import Ctx

# Rates of the encoding variety (per observation unless stated).

_P_ERROR: Final = 0.01  # an extra entered-in-error/cancelled copy carrying an absurd value
_P_ABSENT: Final = 0.01  # dataAbsentReason instead of a value
_P_BAD_UNIT: Final = 0.002  # a unit no converter can map
_P_SEPARATE_BP: Final = 0.10  # standalone 8480-6/8462-4 instead of the 85354-9 panel


def _envelope(
    w: Writer,
    rng: random.Random,
    ctx: Ctx,
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
    res: Json = {
        "resourceType": "Observation",
        "id": w.next_observation_id(),
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
    issued = t + randint(rng, issued_delay[0], issued_delay[1])
    r = rng.random()
    if r < 0.86:
        res["effectiveDateTime"] = local_time(t)
    elif r < 0.93:
        res["effectiveDateTime"] = utc_time(t)
    elif r < 0.975:
        res["effectivePeriod"] = {
            "start": local_time(t),
            "end": local_time(t + randint(rng, 20, 300)),
        }
    if r >= 0.975 or rng.random() < 0.9:
        res["issued"] = utc_time(issued) if rng.random() < 0.3 else local_time(issued)
    updated = issued + randint(rng, 1, 600)
    if late:
        updated += randint(rng, HOUR, 3 * DAY)
    res["meta"] = {"lastUpdated": utc_time(min(updated, END - 1))}
    return res


def _code(rng: random.Random, kind: Kind, unit: Unit) -> Json:
    if kind.local is not None:
        r = rng.random()
        if r < kind.p_local_only:
            return {"coding": [kind.local], "text": kind.text}  # never mapped to LOINC
        if r < kind.p_local:
            codings = list(pick(rng, unit.codings))
            if rng.random() < 0.4:
                codings.insert(0, kind.local)
            else:
                codings.append(kind.local)
            return {"coding": codings, "text": kind.text}
    return {"coding": list(pick(rng, unit.codings)), "text": kind.text}


def _bad_quantity(rng: random.Random, value: float, kind: Kind) -> Json:
    if kind.dimensionless or rng.random() < 0.5:
        # Not UCUM at all: nothing can be converted.
        return {
            "value": round(value, 1),
            "unit": "units",
            "system": NON_UCUM_UNITS,
            "code": "units",
        }
    return {"value": round(value, 1), "unit": "?", "system": UCUM, "code": "{unknown}"}


def _value(rng: random.Random, kind: Kind, unit: Unit, value: float) -> Json:
    if kind.censor_below and value < kind.censor_below and rng.random() < 0.7:
        limit = kind.censor_below * unit.scale + unit.shift
        return {
            "value": rounded(limit, unit.decimals),
            "comparator": "<",
            "unit": unit.display,
            "system": UCUM,
            "code": unit.code,
        }
    return {
        "value": rounded(value * unit.scale + unit.shift, unit.decimals),
        "unit": unit.display,
        "system": UCUM,
        "code": unit.code,
    }


def quantity(
    w: Writer,
    rng: random.Random,
    ctx: Ctx,
    kind: Kind,
    value: float,
    t: int,
    *,
    unit: Unit | None = None,
    issued_delay: tuple[int, int] = (0, 180),
    integer: bool = False,
) -> None:
    """One measurement, sometimes shadowed by an erroneous copy that must be ignored."""
    if rng.random() < _P_ERROR:
        late = t + randint(rng, 60, 600)
        status = pick(rng, ERROR_STATUSES)
        _quantity(w, rng, ctx, kind, kind.absurd, late, unit, issued_delay, status, integer)
    _quantity(w, rng, ctx, kind, value, t, unit, issued_delay, None, integer)


def _quantity(
    w: Writer,
    rng: random.Random,
    ctx: Ctx,
    kind: Kind,
    value: float,
    t: int,
    unit: Unit | None,
    issued_delay: tuple[int, int],
    status: str | None,
    integer: bool,
) -> None:
    u = unit if unit is not None else pick(rng, kind.units)
    res = _envelope(w, rng, ctx, t, kind.category, status, issued_delay)
    res["code"] = _code(rng, kind, u)
    r = rng.random() if status is None else 1.0
    if r < _P_ABSENT:
        res["dataAbsentReason"] = pick(rng, DATA_ABSENT_REASONS)
    elif r < _P_ABSENT + _P_BAD_UNIT:
        res["valueQuantity"] = _bad_quantity(rng, value, kind)
    elif integer:
        res["valueInteger"] = round(value)
    else:
        res["valueQuantity"] = _value(rng, kind, u, value)
    w.observation(res)


def blood_pressure(
    w: Writer,
    rng: random.Random,
    ctx: Ctx,
    sbp: float,
    dbp: float,
    t: int,
    issued_delay: tuple[int, int] = (0, 180),
) -> None:
    """Mostly the vital-signs profile panel; some systems still send two loose values."""
    if rng.random() < _P_SEPARATE_BP:
        quantity(w, rng, ctx, SYSTOLIC, sbp, t, issued_delay=issued_delay)
        quantity(w, rng, ctx, DIASTOLIC, dbp, t, issued_delay=issued_delay)
        return
    if rng.random() < _P_ERROR:
        late = t + randint(rng, 60, 600)
        _bp_panel(w, rng, ctx, 999, 999, late, issued_delay, pick(rng, ERROR_STATUSES))
    _bp_panel(w, rng, ctx, sbp, dbp, t, issued_delay, None)


def _bp_panel(
    w: Writer,
    rng: random.Random,
    ctx: Ctx,
    sbp: float,
    dbp: float,
    t: int,
    issued_delay: tuple[int, int],
    status: str | None,
) -> None:
    res = _envelope(w, rng, ctx, t, VITALS, status, issued_delay)
    coding = [BP_PANEL]
    if rng.random() < 0.1:
        coding.append(make_coding(LOCAL_FLOWSHEET, "RR", "Bloeddruk"))
    res["code"] = {"coding": coding, "text": "Blood pressure"}
    r = rng.random() if status is None else 1.0
    components: list[Json] = []
    for coding_, value in ((SBP_CODING, sbp), (DBP_CODING, dbp)):
        comp: Json = {"code": {"coding": [coding_]}}
        if r < _P_ABSENT:
            comp["dataAbsentReason"] = pick(rng, DATA_ABSENT_REASONS)
        elif r < _P_ABSENT + _P_BAD_UNIT:
            comp["valueQuantity"] = _bad_quantity(rng, value, SYSTOLIC)
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
    w.observation(res)


def arrival_mode(w: Writer, rng: random.Random, ctx: Ctx, mode: str, t: int) -> None:
    if rng.random() < _P_ERROR:
        wrong = "helicopter" if mode != "helicopter" else "self"
        status = pick(rng, ERROR_STATUSES)
        _arrival(w, rng, ctx, wrong, t + randint(rng, 60, 600), status)
    _arrival(w, rng, ctx, mode, t, None)


def _arrival(
    w: Writer, rng: random.Random, ctx: Ctx, mode: str, t: int, status: str | None
) -> None:
    res = _envelope(w, rng, ctx, t, None, status, (0, 300))
    res["code"] = TRANSPORT_CODE
    if status is None and rng.random() < _P_ABSENT:
        res["dataAbsentReason"] = pick(rng, DATA_ABSENT_REASONS)
    else:
        res["valueCodeableConcept"] = {
            "coding": [ARRIVAL[mode]],
            "text": ARRIVAL[mode]["display"],
        }
    w.observation(res)


# -- Emergency department ------------------------------------------------------------------

"""Normalized facts + index time + spec -> feature values with provenance.

The aggregation step is pure and cheap, so training can normalize a patient once and aggregate at
many index times, and serving does both for one index time. Both call exactly this code.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from fhir_mappers.facts import Fact, PatientFacts, normalize
from fhir_mappers.resources import dedupe, flatten
from fhir_mappers.spec import FeatureSpec, ModelSpec
from fhir_mappers.timeutil import ensure_utc
from fhir_mappers.units import UnitConverter

_DAY = 86400.0
NO_ANCHOR = "no encounter to anchor the window on"


@dataclass(frozen=True, slots=True)
class SourceRef:
    reference: str
    time: str


@dataclass(frozen=True, slots=True)
class Provenance:
    """Why a feature has the value it has: the resources that fed it, or why it is missing."""

    value: float | None
    unit: str | None
    time: str | None
    sources: tuple[SourceRef, ...] = ()
    missing_reason: str | None = None
    notes: tuple[str, ...] = ()

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"value": self.value, "unit": self.unit, "time": self.time}
        out["sources"] = [{"reference": s.reference, "time": s.time} for s in self.sources]
        if self.missing_reason:
            out["missing_reason"] = self.missing_reason
        if self.notes:
            out["notes"] = list(self.notes)
        return out


@dataclass(slots=True)
class Extraction:
    index_time: datetime
    values: dict[str, float | None]
    provenance: dict[str, Provenance]
    warnings: Counter[str] = field(default_factory=Counter)

    def vector(self, names: list[str]) -> list[float]:
        """Values in model order, NaN for missing (LightGBM's native missing value)."""
        return [math.nan if self.values[n] is None else float(self.values[n]) for n in names]  # type: ignore[arg-type]

    def missing(self) -> list[str]:
        return [name for name, value in self.values.items() if value is None]

    def missing_required(self, spec: ModelSpec) -> list[str]:
        return [f.name for f in spec.features if f.required and self.values[f.name] is None]


def _iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def _output_unit(feat: FeatureSpec) -> str | None:
    if feat.aggregation == "count":
        return "{count}"
    if feat.aggregation == "days_since":
        return "d"
    if feat.source == "patient":
        return "a" if feat.attribute == "age_years" else None
    if feat.aggregation == "slope_per_day" and feat.unit:
        return f"{feat.unit}/d"
    return feat.unit


def _in_window(facts: list[Fact], lo: datetime, hi: datetime) -> list[Fact]:
    return [f for f in facts if lo < f.time <= hi]


def _slope(facts: list[Fact], index_time: datetime) -> float | None:
    xs = [(f.time - index_time).total_seconds() / _DAY for f in facts]
    if len(set(xs)) < 2:
        return None
    mx = sum(xs) / len(xs)
    my = sum(f.value for f in facts) / len(facts)
    sxx = sum((x - mx) ** 2 for x in xs)
    sxy = sum((x - mx) * (f.value - my) for x, f in zip(xs, facts, strict=True))
    return sxy / sxx


def _aggregate(
    feat: FeatureSpec, facts: list[Fact], index_time: datetime
) -> tuple[float | None, list[Fact], str | None]:
    """(value, the facts that determine it, reason when missing)."""
    agg = feat.aggregation
    if agg == "count":
        return float(len(facts)), facts, None
    if not facts:
        return None, [], "no value in window"
    if agg == "last":
        return facts[-1].value, [facts[-1]], None
    if agg == "first":
        return facts[0].value, [facts[0]], None
    if agg == "min":
        pick = min(facts, key=lambda f: f.value)
        return pick.value, [pick], None
    if agg == "max":
        pick = max(facts, key=lambda f: f.value)
        return pick.value, [pick], None
    if agg == "mean":
        return sum(f.value for f in facts) / len(facts), facts, None
    if agg == "days_since":
        return (index_time - facts[-1].time).total_seconds() / _DAY, [facts[-1]], None
    if len(facts) < 2:
        return None, facts, "needs at least two values in window"
    if agg == "change":
        return facts[-1].value - facts[0].value, [facts[0], facts[-1]], None
    slope = _slope(facts, index_time)
    if slope is None:
        return None, facts, "needs values at two different times"
    return slope, facts, None


def _patient_value(feat: FeatureSpec, pf: PatientFacts, index_time: datetime) -> float | None:
    if feat.attribute == "age_years":
        if pf.birth_date is None:
            return None
        day = index_time.date()
        born = pf.birth_date
        return float(day.year - born.year - ((day.month, day.day) < (born.month, born.day)))
    if pf.gender == "male":
        return 1.0
    if pf.gender == "female":
        return 0.0
    return None


def aggregate(
    pf: PatientFacts, index_time: datetime, spec: ModelSpec, anchor: datetime | None = None
) -> Extraction:
    """``anchor`` is the index event's anchor (the ED encounter's start): windows declared
    ``relative_to = "anchor"`` hang on it, and still never reach past the index time."""
    index_time = ensure_utc(index_time)
    anchor = ensure_utc(anchor) if anchor is not None else None
    values: dict[str, float | None] = {}
    provenance: dict[str, Provenance] = {}
    warnings: Counter[str] = Counter(pf.warnings)
    index_iso = _iso(index_time)
    for i, feat in enumerate(spec.features):
        notes = tuple(f"{reason} x{count}" for reason, count in sorted(pf.notes[i].items()))
        if feat.source == "patient":
            value, used, reason, sources = _from_patient(feat, pf, index_time, index_iso)
        else:
            value, used, reason, sources = _from_window(feat, pf, i, index_time, anchor, notes)
        value, reason = _checked(feat, value, reason, warnings)
        values[feat.name] = value
        provenance[feat.name] = Provenance(
            value=value,
            unit=_output_unit(feat),
            time=_iso(used[-1].time) if used else None,
            sources=sources,
            missing_reason=reason if value is None else None,
            notes=notes,
        )
    return Extraction(
        index_time=index_time, values=values, provenance=provenance, warnings=warnings
    )


_Aggregated = tuple[float | None, list[Fact], str | None, tuple[SourceRef, ...]]


def _from_patient(
    feat: FeatureSpec, pf: PatientFacts, index_time: datetime, index_iso: str
) -> _Aggregated:
    value = _patient_value(feat, pf, index_time)
    reason = None if value is not None else f"patient {feat.attribute} unknown"
    sources = (SourceRef(pf.patient_ref, index_iso),) if pf.patient_ref else ()
    return value, [], reason, sources


def _bounds(
    feat: FeatureSpec, index_time: datetime, anchor: datetime | None
) -> tuple[datetime, datetime] | None:
    """The window's (lo, hi]; an anchored window ends at the index time at the latest (what is
    recorded after the moment of prediction is never seen), None when there is no anchor."""
    assert feat.window is not None
    if feat.relative_to == "index":
        return index_time + feat.window.start, index_time + feat.window.end
    if anchor is None:
        return None
    return anchor + feat.window.start, min(anchor + feat.window.end, index_time)


def _from_window(
    feat: FeatureSpec,
    pf: PatientFacts,
    i: int,
    index_time: datetime,
    anchor: datetime | None,
    notes: tuple[str, ...],
) -> _Aggregated:
    bounds = _bounds(feat, index_time, anchor)
    if bounds is None:
        return None, [], NO_ANCHOR, ()
    lo, hi = bounds
    in_window = _in_window(pf.facts[i], lo, hi)
    value, used, reason = _aggregate(feat, in_window, index_time)
    if value is None and not in_window:
        reason = _why_nothing_in_window(pf, i, lo, notes) or reason
    return value, used, reason, tuple(SourceRef(f.ref, _iso(f.time)) for f in used)


def _why_nothing_in_window(
    pf: PatientFacts, i: int, lo: datetime, notes: tuple[str, ...]
) -> str | None:
    """Stale beats unusable: a value before the window says more than a note about a bad one."""
    earlier = [f.time for f in pf.facts[i] if f.time <= lo]
    skipped = pf.before[i] if pf.before else None
    if skipped is not None:
        earlier.append(skipped)
    if earlier:
        return f"stale: last value {_iso(max(earlier))}, before the window"
    if notes:
        return "no usable value in window"
    return None


def _checked(
    feat: FeatureSpec, value: float | None, reason: str | None, warnings: Counter[str]
) -> tuple[float | None, str | None]:
    """Implausible and non-finite values become missing, with the reason why."""
    if value is not None and feat.plausible is not None:
        low, high = feat.plausible
        if not low <= value <= high:
            warnings["implausible_value"] += 1
            return None, f"value {value:.4g} outside plausible range [{low:g}, {high:g}]"
    if value is not None and not math.isfinite(value):
        return None, "non-finite value"
    return value, reason


def _earliest(spec: ModelSpec, index_time: datetime, anchor: datetime | None) -> datetime:
    """How far back any observation window of the spec reaches."""
    starts = [index_time]
    for feat in spec.features:
        if feat.source == "observation" and feat.window:
            base = anchor if feat.relative_to == "anchor" and anchor is not None else index_time
            starts.append(base + feat.window.start)
    return min(starts)


def extract(
    resources: Any,
    index_time: datetime,
    spec: ModelSpec,
    converter: UnitConverter | None = None,
    anchor: datetime | None = None,
) -> Extraction:
    """Features for one patient at one index time from FHIR JSON (resources, Bundles or lists);
    ``anchor`` as in ``aggregate``."""
    flat = flatten(resources)
    unique, duplicates = dedupe(flat.resources)
    index_time = ensure_utc(index_time)
    anchor = ensure_utc(anchor) if anchor is not None else None
    pf = normalize(unique, spec, converter, earliest=_earliest(spec, index_time, anchor))
    if duplicates:
        pf.warnings["duplicate_resource"] += duplicates
    if flat.outcomes:
        pf.warnings["operation_outcome"] += len(flat.outcomes)
    if flat.skipped:
        pf.warnings["malformed_resource"] += flat.skipped
    return aggregate(pf, index_time, spec, anchor)


__all__ = ["NO_ANCHOR", "Extraction", "Provenance", "SourceRef", "aggregate", "extract"]

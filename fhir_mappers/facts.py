"""FHIR resources -> normalized facts: (feature, time, value in the canonical unit, source).

This is the tolerant edge of the mapper. Every resource is read on its own; anything malformed,
in a status that must not count, without a usable time, or in a unit that cannot be converted is
dropped with a counted warning and a note for the feature's provenance. Nothing here raises.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any, NamedTuple

from fhir_mappers.spec import FeatureSpec, ModelSpec
from fhir_mappers.timeutil import parse_fhir_datetime
from fhir_mappers.units import DEFAULT_CONVERTER, UnitConverter, UnitError, quantity_unit

# FHIR R4 ObservationStatus: only results that exist count. `registered` has no result yet,
# `cancelled` and `entered-in-error` must never feed a prediction.
COUNTED_OBSERVATION_STATUSES = frozenset({"final", "amended", "corrected", "preliminary"})
EXCLUDED_ENCOUNTER_STATUSES = frozenset({"cancelled", "entered-in-error", "planned", "unknown"})
EXCLUDED_CONDITION_VERIFICATION = frozenset({"entered-in-error", "refuted"})
COMPARATORS = frozenset({"<", "<=", ">=", ">", "ad"})


class Fact(NamedTuple):
    """Ordered (time, ref, value) so that plain sorting gives a resource-order-free sequence."""

    time: datetime
    ref: str
    value: float


@dataclass(slots=True)
class PatientFacts:
    """Everything the aggregation step needs, independent of the index time."""

    facts: list[list[Fact]]
    notes: list[Counter[str]]
    warnings: Counter[str] = field(default_factory=Counter)
    birth_date: date | None = None
    gender: str | None = None
    patient_ref: str | None = None
    # Latest time per feature of observations skipped because they predate every window
    # (serving only): enough to say "stale" without converting values nobody will use.
    before: list[datetime | None] = field(default_factory=list)
    earliest: datetime | None = None


@dataclass(frozen=True, slots=True)
class CompiledSpec:
    spec: ModelSpec
    observation_codes: dict[str, tuple[int, ...]]
    observation_by_system: dict[str, dict[str, tuple[int, ...]]]
    condition_codes: dict[str, tuple[int, ...]]
    encounter_features: tuple[int, ...]
    needs_patient: bool


_COMPILED: dict[int, CompiledSpec] = {}


def compile_spec(spec: ModelSpec) -> CompiledSpec:
    cached = _COMPILED.get(id(spec))
    if cached is not None and cached.spec is spec:
        return cached
    obs: dict[str, list[int]] = {}
    cond: dict[str, list[int]] = {}
    enc: list[int] = []
    for i, feat in enumerate(spec.features):
        if feat.source == "observation":
            for code in feat.codes:
                obs.setdefault(code, []).append(i)
        elif feat.source == "condition":
            for code in feat.codes:
                cond.setdefault(code, []).append(i)
        elif feat.source == "encounter":
            enc.append(i)
    by_system: dict[str, dict[str, tuple[int, ...]]] = {}
    for key, idxs in obs.items():
        system, _, code = key.rpartition("|")
        by_system.setdefault(system, {})[code] = tuple(idxs)
    compiled = CompiledSpec(
        spec=spec,
        observation_codes={k: tuple(v) for k, v in obs.items()},
        observation_by_system=by_system,
        condition_codes={k: tuple(v) for k, v in cond.items()},
        encounter_features=tuple(enc),
        needs_patient=any(f.source == "patient" for f in spec.features),
    )
    _COMPILED[id(spec)] = compiled
    return compiled


def coding_keys(concept: Any) -> list[str]:
    """``system|code`` for every coding of a CodeableConcept (or a bare Coding)."""
    if not isinstance(concept, dict):
        return []
    codings = concept.get("coding")
    if codings is None and "code" in concept:
        codings = [concept]
    if not isinstance(codings, list):
        return []
    return [
        f"{c.get('system', '')}|{c.get('code', '')}"
        for c in codings
        if isinstance(c, dict) and isinstance(c.get("code"), str)
    ]


_TIME_CACHE: dict[str, tuple[datetime, bool] | None] = {}
_MISS: tuple[datetime, bool] = (datetime.min.replace(tzinfo=UTC), False)
_TIME_CACHE_MAX = 50_000


def _time(value: Any, warnings: Counter[str]) -> datetime | None:
    """Parse with a bounded cache: a prefetch repeats the same few timestamps many times."""
    if type(value) is not str:
        return None
    hit = _TIME_CACHE.get(value, _MISS)
    if hit is _MISS:
        parsed = parse_fhir_datetime(value)
        hit = None if parsed is None else (parsed.value, parsed.naive)
        if len(_TIME_CACHE) >= _TIME_CACHE_MAX:
            _TIME_CACHE.clear()
        _TIME_CACHE[value] = hit
    if hit is None:
        return None
    if hit[1]:
        warnings["timestamp_without_offset"] += 1
    return hit[0]


def observation_time(obs: dict[str, Any], warnings: Counter[str]) -> datetime | None:
    """When the observation was clinically true; ``issued`` only when no effective[x] exists."""
    for key in ("effectiveDateTime", "effectiveInstant"):
        if key in obs:
            return _time(obs[key], warnings)
    period = obs.get("effectivePeriod")
    if isinstance(period, dict):
        return _time(period.get("end") or period.get("start"), warnings)
    if "issued" in obs:
        warnings["time_from_issued"] += 1
        return _time(obs["issued"], warnings)
    return None


def _unitless(feat: FeatureSpec) -> bool:
    return feat.unit is None or feat.unit == "1" or feat.unit.startswith("{")


def _node_value(
    node: dict[str, Any], feat: FeatureSpec, converter: UnitConverter
) -> tuple[float | None, str | None]:
    """The value of an Observation or component for one feature, or why there is none."""
    if feat.aggregation in ("count", "days_since") and not feat.unit and not feat.value_map:
        return _presence_value(node)
    quantity = node.get("valueQuantity")
    if isinstance(quantity, dict):
        return _quantity_value(quantity, feat, converter)
    if "valueInteger" in node:
        return _integer_value(node["valueInteger"], feat)
    concept = node.get("valueCodeableConcept")
    if concept is not None:
        return _coded_value(concept, feat)
    if "dataAbsentReason" in node:
        return None, "data absent"
    return None, "no value"


def _presence_value(node: dict[str, Any]) -> tuple[float | None, str | None]:
    """Counted features only ask whether a measurement was made, not what it said."""
    if "dataAbsentReason" in node and not any(k.startswith("value") for k in node):
        return None, "data absent"
    return 1.0, None


def _quantity_value(
    quantity: dict[str, Any], feat: FeatureSpec, converter: UnitConverter
) -> tuple[float | None, str | None]:
    raw = quantity.get("value")
    if isinstance(raw, bool) or not isinstance(raw, int | float):
        return None, "malformed value"
    comparator = quantity.get("comparator")
    if comparator is not None and comparator not in COMPARATORS:
        return None, "malformed comparator"
    unit = quantity_unit(quantity)
    if unit is None:
        if not _unitless(feat):
            return None, "unit missing or not UCUM"
        return float(raw), None
    if feat.unit is None:
        return None, "feature has no canonical unit"
    try:
        value = converter.convert(float(raw), unit, feat.unit, feat.molar_mass)
    except UnitError:
        return None, f"unit not convertible ({unit[:20]})"
    return value, ("comparator" if comparator else None)


def _integer_value(raw: Any, feat: FeatureSpec) -> tuple[float | None, str | None]:
    if isinstance(raw, bool) or not isinstance(raw, int):
        return None, "malformed value"
    if not _unitless(feat):
        return None, "integer without unit"
    return float(raw), None


def _coded_value(concept: Any, feat: FeatureSpec) -> tuple[float | None, str | None]:
    if not feat.value_map:
        return None, "coded value for a numeric feature"
    for key in coding_keys(concept):
        if key in feat.value_map:
            return feat.value_map[key], None
    return None, "coded value not in value_map"


def _add(
    out: PatientFacts,
    index: int,
    time: datetime | None,
    value: float | None,
    why: str | None,
    ref: str,
) -> None:
    if why == "comparator":
        out.notes[index]["value with comparator: limit used"] += 1
        out.warnings["value_with_comparator"] += 1
        why = None
    if why is not None or value is None:
        reason = why or "no value"
        out.notes[index][reason] += 1
        out.warnings[_warning_key(reason)] += 1
        return
    if time is None:
        out.notes[index]["no usable time"] += 1
        out.warnings["no_usable_time"] += 1
        return
    if value != value or value in (float("inf"), float("-inf")):
        out.notes[index]["non-finite value"] += 1
        out.warnings["non_finite_value"] += 1
        return
    out.facts[index].append(Fact(time, ref, value))


def _warning_key(reason: str) -> str:
    head = reason.split(" (", 1)[0]
    return head.replace(" ", "_").replace("-", "_")


def _malformed_concept(concept: Any) -> bool:
    """A CodeableConcept (or Coding) that is present but not shaped like one: counted, not read."""
    if concept is None:
        return False
    if type(concept) is not dict:
        return True
    codings = concept.get("coding")
    return codings is not None and (
        type(codings) is not list or any(type(c) is not dict for c in codings)
    )


def _match_codes(concept: Any, lookup: dict[str, dict[str, tuple[int, ...]]]) -> tuple[int, ...]:
    """Feature indices whose codes appear among a CodeableConcept's codings (hot path)."""
    if type(concept) is not dict:
        return ()
    codings = concept.get("coding")
    if type(codings) is not list:
        return ()
    found: tuple[int, ...] = ()
    for coding in codings:
        if type(coding) is dict:
            by_code = lookup.get(str(coding.get("system", "")))
            if by_code is not None:
                hit = by_code.get(str(coding.get("code")))
                if hit is not None:
                    found = hit if not found else tuple(sorted(set(found + hit)))
    return found


def _malformed_observation(code: Any, components: Any) -> bool:
    if _malformed_concept(code):
        return True
    if components is None:
        return False
    return type(components) is not list or any(
        type(c) is not dict or _malformed_concept(c.get("code")) for c in components
    )


def _matched_nodes(
    res: dict[str, Any], code: Any, components: Any, lookup: dict[str, dict[str, tuple[int, ...]]]
) -> list[tuple[int, dict[str, Any]]]:
    """(feature index, node) for the resource's own code and each of its components' codes."""
    matched: list[tuple[int, dict[str, Any]]] = [(idx, res) for idx in _match_codes(code, lookup)]
    if type(components) is list:
        for comp in components:
            if type(comp) is dict:
                matched.extend((idx, comp) for idx in _match_codes(comp.get("code"), lookup))
    return matched


def _keep_latest_before(
    out: PatientFacts, matched: list[tuple[int, dict[str, Any]]], when: datetime
) -> None:
    for idx, _node in matched:
        seen_before = out.before[idx]
        if seen_before is None or when > seen_before:
            out.before[idx] = when


def _observation(
    res: dict[str, Any], compiled: CompiledSpec, out: PatientFacts, converter: UnitConverter
) -> None:
    code = res.get("code")
    components = res.get("component")
    matched = _matched_nodes(res, code, components, compiled.observation_by_system)
    if _malformed_observation(code, components):
        out.warnings["malformed_resource"] += 1
    if not matched:
        return
    status = res.get("status")
    if status not in COUNTED_OBSERVATION_STATUSES:
        for idx, _node in matched:
            out.notes[idx][f"status {str(status)[:20]} not counted"] += 1
        out.warnings["status_not_counted"] += 1
        return
    when = observation_time(res, out.warnings)
    if out.earliest is not None and when is not None and when <= out.earliest:
        _keep_latest_before(out, matched, when)
        return
    ref = f"Observation/{res.get('id', '?')}"
    features = compiled.spec.features
    done: set[int] = set()  # one resource is one measurement per feature
    for idx, node in matched:
        if idx in done:
            continue
        done.add(idx)
        value, why = _node_value(node, features[idx], converter)
        if why is None and value is not None and when is not None and math.isfinite(value):
            out.facts[idx].append(Fact(when, ref, value))
        else:
            _add(out, idx, when, value, why, ref)


def _encounter_keys(res: dict[str, Any], out: PatientFacts) -> set[str]:
    """The coding keys of an Encounter's class (R4 Coding or R5 list) and types."""
    klass = res.get("class")
    keys = set(coding_keys(klass)) if isinstance(klass, dict) else set()
    if isinstance(klass, list):  # R5 shape: a list of CodeableConcepts
        for concept in klass:
            keys.update(coding_keys(concept))
    types = res.get("type")
    if type(klass) is list:
        class_malformed = any(map(_malformed_concept, klass))
    else:
        class_malformed = _malformed_concept(klass)
    types_malformed = types is not None and (
        type(types) is not list or any(map(_malformed_concept, types))
    )
    if class_malformed or types_malformed:
        out.warnings["malformed_resource"] += 1
    if isinstance(types, list):
        for concept in types:
            keys.update(coding_keys(concept))
    return keys


def _encounter_attribute(res: dict[str, Any], feat: FeatureSpec) -> float | None:
    attr = res.get(feat.attribute or "")
    concepts = attr if isinstance(attr, list) else [attr]
    return next(
        (feat.value_map[k] for c in concepts for k in coding_keys(c) if k in feat.value_map),
        None,
    )


def _encounter(res: dict[str, Any], compiled: CompiledSpec, out: PatientFacts) -> None:
    if not compiled.encounter_features:
        return
    keys = _encounter_keys(res, out)
    if not keys:
        return
    spec = compiled.spec
    hits = [i for i in compiled.encounter_features if keys.intersection(spec.features[i].codes)]
    if not hits:
        return
    ref = f"Encounter/{res.get('id', '?')}"
    if res.get("status") in EXCLUDED_ENCOUNTER_STATUSES:
        for idx in hits:
            out.notes[idx][f"encounter status {str(res.get('status'))[:20]} not counted"] += 1
        out.warnings["status_not_counted"] += 1
        return
    period = res.get("period")
    when = _time(period.get("start"), out.warnings) if isinstance(period, dict) else None
    for idx in hits:
        feat = spec.features[idx]
        if feat.attribute is None:
            _add(out, idx, when, 1.0, None, ref)
            continue
        value = _encounter_attribute(res, feat)
        _add(out, idx, when, value, None if value is not None else "code not in value_map", ref)


def condition_onset(res: dict[str, Any]) -> Any:
    """The raw onset of a Condition: onsetDateTime, else onsetPeriod.start, else recordedDate."""
    onset = res.get("onsetDateTime")
    if onset is None and isinstance(res.get("onsetPeriod"), dict):
        onset = res["onsetPeriod"].get("start")
    if onset is None:
        onset = res.get("recordedDate")
    return onset


def _condition(res: dict[str, Any], compiled: CompiledSpec, out: PatientFacts) -> None:
    lookup = compiled.condition_codes
    if _malformed_concept(res.get("code")):
        out.warnings["malformed_resource"] += 1
    hits = sorted({i for key in coding_keys(res.get("code")) for i in lookup.get(key, ())})
    if not hits:
        return
    verification = coding_keys(res.get("verificationStatus"))
    if any(k.rsplit("|", 1)[-1] in EXCLUDED_CONDITION_VERIFICATION for k in verification):
        for idx in hits:
            out.notes[idx]["condition refuted or entered in error"] += 1
        out.warnings["status_not_counted"] += 1
        return
    when = _time(condition_onset(res), out.warnings)
    ref = f"Condition/{res.get('id', '?')}"
    for idx in hits:
        _add(out, idx, when, 1.0, None, ref)


def _patient(res: dict[str, Any], out: PatientFacts) -> None:
    ref = f"Patient/{res.get('id', '?')}"
    if out.patient_ref is not None and out.patient_ref != ref:
        out.warnings["several_patients"] += 1
        if ref > out.patient_ref:  # keep a choice that does not depend on resource order
            return
    out.patient_ref = ref
    birth = parse_fhir_datetime(res.get("birthDate"))
    if birth is None and res.get("birthDate") is not None:
        out.warnings["malformed_birth_date"] += 1
    out.birth_date = birth.value.date() if birth is not None else None
    gender = res.get("gender")
    out.gender = gender if isinstance(gender, str) else None


def normalize(
    resources: list[dict[str, Any]],
    spec: ModelSpec,
    converter: UnitConverter | None = None,
    *,
    earliest: datetime | None = None,
) -> PatientFacts:
    """Turn one patient's resources into per-feature facts, sorted so that order cannot matter.

    ``earliest`` (serving, one index time): observations at or before it cannot fall in any
    window, so their values are not converted; only their latest time is kept per feature.
    """
    compiled = compile_spec(spec)
    conv = converter or DEFAULT_CONVERTER
    n = len(spec.features)
    out = PatientFacts(
        facts=[[] for _ in range(n)],
        notes=[Counter() for _ in range(n)],
        before=[None] * n,
        earliest=earliest,
    )
    for res in resources:
        try:
            rtype = res.get("resourceType")
            if rtype == "Observation":
                _observation(res, compiled, out, conv)
            elif rtype == "Encounter":
                _encounter(res, compiled, out)
            elif rtype == "Condition":
                _condition(res, compiled, out)
            elif rtype == "Patient" and compiled.needs_patient:
                _patient(res, out)
        except (AttributeError, TypeError, ValueError, KeyError, OverflowError):
            out.warnings["malformed_resource"] += 1
    for facts in out.facts:
        facts.sort()
    return out

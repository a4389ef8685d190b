"""FHIR resources -> normalized facts: (feature, time, value in the canonical unit, source).

This is the tolerant edge of the mapper. Every resource is read on its own; anything malformed,
in a status that must not count, without a usable time, or in a unit that cannot be converted is
dropped with a counted warning and a note for the feature's provenance. Nothing here raises.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any, NamedTuple

from fhir_mappers.concepts import coding_keys, element_concepts, malformed_concept, match_codes
from fhir_mappers.spec import FeatureSpec, ModelSpec
from fhir_mappers.timeutil import cached_time, observation_time, parse_fhir_datetime
from fhir_mappers.units import DEFAULT_CONVERTER, UnitConverter
from fhir_mappers.values import node_value

# FHIR R4 ObservationStatus: only results that exist count. `registered` has no result yet,
# `cancelled` and `entered-in-error` must never feed a prediction.
COUNTED_OBSERVATION_STATUSES = frozenset({"final", "amended", "corrected", "preliminary"})
EXCLUDED_ENCOUNTER_STATUSES = frozenset({"cancelled", "entered-in-error", "planned", "unknown"})
EXCLUDED_CONDITION_VERIFICATION = frozenset({"entered-in-error", "refuted"})


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
    # (feature index, Encounter element path) for coded observations also recorded on Encounters
    encounter_elements: tuple[tuple[int, str], ...] = ()


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
        encounter_elements=tuple(
            (i, path) for i, f in enumerate(spec.features) for path in f.encounter_elements
        ),
    )
    _COMPILED[id(spec)] = compiled
    return compiled


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


def _malformed_observation(code: Any, components: Any) -> bool:
    if malformed_concept(code):
        return True
    if components is None:
        return False
    return type(components) is not list or any(
        type(c) is not dict or malformed_concept(c.get("code")) for c in components
    )


def _matched_nodes(
    res: dict[str, Any], code: Any, components: Any, lookup: dict[str, dict[str, tuple[int, ...]]]
) -> list[tuple[int, dict[str, Any]]]:
    """(feature index, node) for the resource's own code and each of its components' codes."""
    matched: list[tuple[int, dict[str, Any]]] = [(idx, res) for idx in match_codes(code, lookup)]
    if type(components) is list:
        for comp in components:
            if type(comp) is dict:
                matched.extend((idx, comp) for idx in match_codes(comp.get("code"), lookup))
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
        value, why = node_value(node, features[idx], converter)
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
        class_malformed = any(map(malformed_concept, klass))
    else:
        class_malformed = malformed_concept(klass)
    types_malformed = types is not None and (
        type(types) is not list or any(map(malformed_concept, types))
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
    when = cached_time(period.get("start"), out.warnings) if isinstance(period, dict) else None
    for idx in hits:
        feat = spec.features[idx]
        if feat.attribute is None:
            _add(out, idx, when, 1.0, None, ref)
            continue
        if res.get(feat.attribute) is None:
            continue  # not recorded (Synthea sends no priority): missing, not a mapping failure
        value = _encounter_attribute(res, feat)
        _add(out, idx, when, value, None if value is not None else "code not in value_map", ref)


def _encounter_elements(res: dict[str, Any], compiled: CompiledSpec, out: PatientFacts) -> None:
    """A coded answer recorded on the Encounter (arrival mode) counts at the encounter's start.

    Only codes in the feature's value_map count: an element such as admitSource carries other
    meanings too ("from the GP"), which are not an unmapped answer to the feature's question.
    """
    if not compiled.encounter_elements or res.get("status") in EXCLUDED_ENCOUNTER_STATUSES:
        return
    features = compiled.spec.features
    for idx, path in compiled.encounter_elements:
        value_map = features[idx].value_map
        keys = [k for c in element_concepts(res, path) for k in coding_keys(c) if k in value_map]
        if keys:
            period = res.get("period")
            start = period.get("start") if isinstance(period, dict) else None
            when = cached_time(start, out.warnings)
            _add(out, idx, when, value_map[keys[0]], None, f"Encounter/{res.get('id', '?')}")


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
    if malformed_concept(res.get("code")) or malformed_concept(res.get("verificationStatus")):
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
    when = cached_time(condition_onset(res), out.warnings)
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
                _encounter_elements(res, compiled, out)
            elif rtype == "Condition":
                _condition(res, compiled, out)
            elif rtype == "Patient" and compiled.needs_patient:
                _patient(res, out)
        except (AttributeError, TypeError, ValueError, KeyError, OverflowError):
            out.warnings["malformed_resource"] += 1
    for facts in out.facts:
        facts.sort()
    return out

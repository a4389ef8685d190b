"""An independent, deliberately simple reading of raw FHIR: is there a value for a feature?

Mapping recall needs a second opinion that shares no code with fhir_mappers: this module reads the
generators' files itself, attributes resources to patients by the plain rules of FHIR references
(``Patient/x``, absolute URLs, ``urn:uuid:`` through the Bundle's ``fullUrl``), and says a feature
has a value when a resource with any of the feature's codes (the spec's code list) and a value
lies in the feature's window. It converts no unit and judges no plausibility: a value the mapper
cannot use is a recall miss to look at, not something to explain away here.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from fhir_mappers.spec import FeatureSpec, ModelSpec

COUNTED = {"final", "amended", "corrected", "preliminary"}
NOT_ENCOUNTERS = {"cancelled", "entered-in-error", "planned", "unknown"}
NOT_CONDITIONS = {"refuted", "entered-in-error"}
NEEDS_TWO = {"change", "slope_per_day"}
ACT_CODE = "http://terminology.hl7.org/CodeSystem/v3-ActCode"


def _time(raw: Any) -> datetime | None:
    if not isinstance(raw, str) or len(raw) < 10:
        return None
    if len(raw) == 10:
        raw += "T00:00:00+00:00"
    moment = datetime.fromisoformat(raw.replace("Z", "+00:00"))
    return moment if moment.tzinfo else None


def _codes(concept: Any) -> set[str]:
    """``system|code`` of a CodeableConcept's codings, or of a bare Coding (Encounter.class)."""
    if not isinstance(concept, dict):
        return set()
    codings = concept.get("coding", [concept] if "code" in concept else [])
    return {f"{c.get('system')}|{c.get('code')}" for c in codings}


def _target_patient(ref: Any, full_urls: dict[str, dict[str, Any]]) -> str | None:
    target = ref.get("reference") if isinstance(ref, dict) else None
    if not isinstance(target, str):
        return None
    if target in full_urls:
        res = full_urls[target]
        return str(res["id"]) if res.get("resourceType") == "Patient" else None
    if "Patient/" in target:
        return target.rsplit("Patient/", 1)[1].split("/")[0]
    return None


def _owner(res: dict[str, Any], full_urls: dict[str, dict[str, Any]]) -> str | None:
    if res["resourceType"] == "Patient":
        return str(res["id"])
    return _target_patient(res.get("subject") or res.get("patient"), full_urls)


TYPES = ("Patient", "Encounter", "Condition", "Observation")


def read_ndjson_export(folder: Path) -> dict[str, list[dict[str, Any]]]:
    """Patient id -> resources, from one NDJSON file per type."""
    out: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for rtype in TYPES:
        for path in sorted(folder.glob(f"{rtype}*.ndjson")):
            for line in path.read_text(encoding="utf-8").splitlines():
                if line.strip():
                    res = json.loads(line)
                    owner = _owner(res, {})
                    assert owner is not None, f"{path.name}: a {rtype} without a patient"
                    out[owner].append(res)
    return dict(out)


def read_bundles(folder: Path) -> dict[str, list[dict[str, Any]]]:
    """Patient id -> resources, from one transaction Bundle per patient (urn:uuid refs)."""
    out: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for path in sorted(folder.glob("*.json")):
        bundle = json.loads(path.read_text(encoding="utf-8"))
        entries = [e for e in bundle.get("entry", []) if "resource" in e]
        full_urls = {e["fullUrl"]: e["resource"] for e in entries if "fullUrl" in e}
        for entry in entries:
            res = entry["resource"]
            if res["resourceType"] in TYPES:
                owner = _owner(res, full_urls)
                assert owner is not None, f"{path.name}: a {res['resourceType']} without a patient"
                out[owner].append(res)
    return dict(out)


def bundle_files(folder: Path) -> Iterator[tuple[Path, dict[str, Any]]]:
    for path in sorted(folder.glob("*.json")):
        yield path, json.loads(path.read_text(encoding="utf-8"))


def _observation_time(res: dict[str, Any]) -> datetime | None:
    for key in ("effectiveDateTime", "effectiveInstant"):
        if key in res:
            return _time(res[key])
    period = res.get("effectivePeriod")
    if isinstance(period, dict):
        return _time(period.get("end") or period.get("start"))
    return _time(res.get("issued"))


def _has_value(node: dict[str, Any], feat: FeatureSpec) -> bool:
    if feat.value_map:
        return bool(_codes(node.get("valueCodeableConcept")) & set(feat.value_map))
    if feat.aggregation in ("count", "days_since") and not feat.unit:
        return True
    quantity = node.get("valueQuantity")
    if isinstance(quantity, dict) and isinstance(quantity.get("value"), int | float):
        return True
    return isinstance(node.get("valueInteger"), int)


@dataclass(frozen=True, slots=True)
class Seen:
    time: datetime
    value: float | None  # the number as written (None for coded or presence-only values)
    unit: str | None  # its UCUM code as written


def _number(node: dict[str, Any]) -> tuple[float | None, str | None]:
    quantity = node.get("valueQuantity")
    if isinstance(quantity, dict) and isinstance(quantity.get("value"), int | float):
        return float(quantity["value"]), quantity.get("code")
    if isinstance(node.get("valueInteger"), int):
        return float(node["valueInteger"]), None
    return None, None


def _observation_times(resources: list[dict[str, Any]], feat: FeatureSpec) -> list[Seen]:
    wanted = set(feat.codes)
    seen = []
    for res in resources:
        if res["resourceType"] != "Observation" or res.get("status") not in COUNTED:
            continue
        nodes = [res, *res.get("component", [])]
        node = next(
            (n for n in nodes if _codes(n.get("code")) & wanted and _has_value(n, feat)), None
        )
        when = _observation_time(res)
        if node is not None and when is not None:
            seen.append(Seen(when, *_number(node)))
    return seen


def _condition_times(resources: list[dict[str, Any]], feat: FeatureSpec) -> list[Seen]:
    times = []
    for res in resources:
        if res["resourceType"] != "Condition" or not _codes(res.get("code")) & set(feat.codes):
            continue
        if {k.split("|")[1] for k in _codes(res.get("verificationStatus"))} & NOT_CONDITIONS:
            continue
        onset = res.get("onsetDateTime") or (res.get("onsetPeriod") or {}).get("start")
        when = _time(onset or res.get("recordedDate"))
        if when is not None:
            times.append(Seen(when, None, None))
    return times


def _encounter_times(resources: list[dict[str, Any]], feat: FeatureSpec) -> list[Seen]:
    times = []
    for res in resources:
        if res["resourceType"] != "Encounter" or res.get("status") in NOT_ENCOUNTERS:
            continue
        if not _codes(res.get("class")) & set(feat.codes):
            continue
        if feat.attribute and not _codes(res.get(feat.attribute)) & set(feat.value_map):
            continue
        when = _time((res.get("period") or {}).get("start"))
        if when is not None:
            times.append(Seen(when, None, None))
    return times


@dataclass(frozen=True, slots=True)
class Event:
    patient: str
    index_time: datetime


def ed_events(patients: dict[str, list[dict[str, Any]]], offset: timedelta) -> list[Event]:
    """One prediction moment per ED encounter (class EMER), ``offset`` after arrival."""
    events = []
    for pid, resources in patients.items():
        for res in resources:
            if res["resourceType"] != "Encounter" or res.get("status") in NOT_ENCOUNTERS:
                continue
            if f"{ACT_CODE}|EMER" in _codes(res["class"]):
                start = _time((res.get("period") or {}).get("start"))
                if start is not None:
                    events.append(Event(pid, start + offset))
    return sorted(events, key=lambda e: (e.patient, e.index_time))


class Oracle:
    """Which features have a value at an index time, for one patient's raw resources."""

    def __init__(self, spec: ModelSpec, resources: list[dict[str, Any]]) -> None:
        self.spec = spec
        self.times: dict[str, list[Seen]] = {}
        self.patient = next((r for r in resources if r["resourceType"] == "Patient"), {})
        for feat in spec.features:
            if feat.source == "observation":
                self.times[feat.name] = _observation_times(resources, feat)
            elif feat.source == "condition":
                self.times[feat.name] = _condition_times(resources, feat)
            elif feat.source == "encounter":
                self.times[feat.name] = _encounter_times(resources, feat)

    def checked(self) -> list[str]:
        """The features recall is measured on (a count is never missing: 0 is a value)."""
        return [f.name for f in self.spec.features if f.aggregation != "count"]

    def present(self, name: str, index_time: datetime) -> bool:
        feat = self.spec.feature(name)
        if feat.source == "patient":
            if feat.attribute == "age_years":
                return _time(self.patient.get("birthDate")) is not None
            return self.patient.get("gender") in ("male", "female")
        assert feat.window is not None
        lo, hi = index_time + feat.window.start, index_time + feat.window.end
        inside = sorted((s for s in self.times[name] if lo < s.time <= hi), key=lambda s: s.time)
        if len({s.time for s in inside}) < (2 if feat.aggregation in NEEDS_TWO else 1):
            return False
        return not self.implausible(feat, inside)

    @staticmethod
    def implausible(feat: FeatureSpec, inside: list[Seen]) -> bool:
        """The value the aggregation picks is outside the spec's plausible range: a child's 13 kg
        for an adult model is rightly missing. Judged only where no unit needs converting."""
        if feat.plausible is None or not inside:
            return False
        values = [s.value for s in inside if s.unit == feat.unit and s.value is not None]
        if len(values) != len(inside):
            return False
        picked = {
            "last": values[-1],
            "first": values[0],
            "min": min(values),
            "max": max(values),
            "mean": sum(values) / len(values),
        }.get(feat.aggregation)
        return picked is not None and not feat.plausible[0] <= picked <= feat.plausible[1]


@dataclass
class Recall:
    """Per feature: moments the oracle sees a value, and how many of those the mapper filled."""

    expected: dict[str, int]
    found: dict[str, int]
    extra: dict[str, int]  # the mapper filled it and the oracle saw nothing: must stay 0

    @classmethod
    def empty(cls) -> Recall:
        return cls(defaultdict(int), defaultdict(int), defaultdict(int))

    def add(self, oracle: Oracle, index_time: datetime, values: dict[str, Any]) -> None:
        for name in oracle.checked():
            seen = oracle.present(name, index_time)
            filled = values.get(name) is not None
            self.expected[name] += seen
            self.found[name] += seen and filled
            self.extra[name] += filled and not seen

    def per_feature(self) -> dict[str, float]:
        return {n: self.found[n] / self.expected[n] for n in self.expected if self.expected[n]}

    def report(self) -> str:
        return ", ".join(f"{n} {self.found[n]}/{self.expected[n]}" for n in sorted(self.expected))

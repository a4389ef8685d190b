"""Index events and labels from a patient's resources, as declared in the spec's [index]/[label].

Training needs prediction moments that look like the moment the service is called (an ED arrival
plus an hour; weekly points after an infarction) and the outcome that followed. Both are declared
in the feature spec so that a new model needs no Python.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from fhir_mappers.concepts import coding_keys
from fhir_mappers.facts import (
    EXCLUDED_CONDITION_VERIFICATION,
    EXCLUDED_ENCOUNTER_STATUSES,
    condition_onset,
)
from fhir_mappers.spec import IndexSpec, LabelSpec, ModelSpec
from fhir_mappers.timeutil import cached_time


@dataclass(frozen=True, slots=True)
class IndexEvent:
    anchor_ref: str
    anchor_time: datetime
    index_time: datetime


def encounter_codes(res: dict[str, Any]) -> set[str]:
    klass = res.get("class")
    keys = set(coding_keys(klass)) if isinstance(klass, dict) else set()
    if isinstance(klass, list):
        for concept in klass:
            keys.update(coding_keys(concept))
    return keys


def _encounter_start(res: dict[str, Any], warnings: Counter[str]) -> datetime | None:
    period = res.get("period")
    return cached_time(period.get("start"), warnings) if isinstance(period, dict) else None


def encounter_anchor(res: dict[str, Any]) -> datetime | None:
    """An Encounter's anchor (``period.start``, UTC), read as training reads its index events:
    serving anchors on the context encounter with this same rule."""
    try:
        return _encounter_start(res, Counter())
    except (AttributeError, TypeError, ValueError, OverflowError):
        return None


def _anchor(
    res: dict[str, Any], idx: IndexSpec, wanted: set[str], warnings: Counter[str]
) -> datetime | None:
    """The anchor time of a resource that is an index event, else None."""
    if res.get("resourceType") != idx.resource:
        return None
    if idx.resource == "Encounter":
        if res.get("status") in EXCLUDED_ENCOUNTER_STATUSES or not wanted & encounter_codes(res):
            return None
        return _encounter_start(res, warnings)
    if not wanted & set(coding_keys(res.get("code"))):
        return None
    verification = coding_keys(res.get("verificationStatus"))
    if any(k.rsplit("|", 1)[-1] in EXCLUDED_CONDITION_VERIFICATION for k in verification):
        return None
    # the same onset rule as the days-since feature, so that day 14 is day 14
    return cached_time(condition_onset(res), warnings)


def _representable(events: list[IndexEvent], margins: list[timedelta]) -> bool:
    """Every window around the events can be computed (a sentinel 9999-12-31 cannot)."""
    try:
        for event in events:
            for moment in (event.anchor_time, event.index_time):
                for delta in margins:
                    _ = moment + delta
    except OverflowError:
        return False
    return True


def index_events(resources: list[dict[str, Any]], spec: ModelSpec) -> list[IndexEvent]:
    """Prediction moments for one patient, sorted, independent of resource order."""
    idx = spec.index
    wanted = set(idx.codes)
    warnings: Counter[str] = Counter()
    events: list[IndexEvent] = []
    windows = [f.window for f in spec.features if f.window is not None] + [spec.label.window]
    margins = [min(w.start for w in windows), max(w.end for w in windows)]
    for res in resources:
        try:
            anchor = _anchor(res, idx, wanted, warnings)
        except (AttributeError, TypeError, ValueError, OverflowError):
            continue
        if anchor is None:
            continue
        ref = f"{idx.resource}/{res.get('id', '?')}"
        try:
            new = [IndexEvent(ref, anchor, anchor + offset) for offset in idx.offsets]
        except OverflowError:  # a sentinel date such as 9999-12-31: no prediction moment
            continue
        if _representable(new, margins):
            events.extend(new)
    events.sort(key=lambda e: (e.index_time, e.anchor_ref))
    # One infarction coded twice (SNOMED and ICD-10 Conditions) is one prediction moment.
    unique: list[IndexEvent] = []
    for event in events:
        if not unique or unique[-1].index_time != event.index_time:
            unique.append(event)
    return unique


def label_for(resources: list[dict[str, Any]], event: IndexEvent, label: LabelSpec) -> int:
    """1 when an outcome encounter starts in the label window, else 0."""
    base = event.anchor_time if label.relative_to == "anchor" else event.index_time
    lo, hi = base + label.window.start, base + label.window.end
    wanted = set(label.codes)
    excluded = set(label.exclude_priority)
    warnings: Counter[str] = Counter()
    for res in resources:
        try:
            if res.get("resourceType") != "Encounter":
                continue
            if res.get("status") in EXCLUDED_ENCOUNTER_STATUSES:
                continue
            if f"Encounter/{res.get('id')}" == event.anchor_ref:
                continue
            if not wanted & encounter_codes(res):
                continue
            if excluded and excluded & set(coding_keys(res.get("priority"))):
                continue
            start = _encounter_start(res, warnings)
        except (AttributeError, TypeError, ValueError, OverflowError):
            continue
        if start is not None and lo < start <= hi:
            return 1
    return 0

"""Data coverage of a FHIR export for one model: what the features see, and what they miss.

The first run on a hospital's export tells whether the feature specs understand its codes. This
profile makes that actionable in minutes: per feature the share of index events with a value;
for features that are often empty, the codes in the export that look like the same concept but are
not in the spec (by the words of their display text), with counts; the units seen per mapped code
and whether they convert; the label balance of kept rows and of rows a missing required input
would drop; and the resources no patient could be attributed to.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fhir_mappers.bulk import TableStats
from fhir_mappers.events import index_events, label_for
from fhir_mappers.extract import aggregate
from fhir_mappers.facts import normalize
from fhir_mappers.jobs import run_patient_job
from fhir_mappers.spec import FeatureSpec, ModelSpec
from fhir_mappers.units import DEFAULT_CONVERTER, UnitError, quantity_unit

# Words that say nothing about which analyte or sign a code measures.
_STOP = frozenset(
    {
        "the",
        "body",
        "and",
        "of",
        "in",
        "by",
        "or",
        "with",
        "from",
        "for",
        "per",
        "mass",
        "volume",
        "moles",
        "serum",
        "plasma",
        "blood",
        "level",
        "measurement",
        "count",
        "number",
        "rate",
        "score",
        "total",
        "pressure",
        # aggregation words in feature names ("weight_last" matched "in the last year")
        "last",
        "first",
        "mean",
        "max",
        "min",
        "change",
        "slope",
        "days",
        "since",
        "highest",
        "lowest",
    }
)
CANDIDATES_PER_FEATURE = 5
_RESOURCES_WITH_CODES = frozenset({"Observation", "Condition"})


@dataclass(slots=True)
class CodeSeen:
    resource: str
    display: str = ""
    count: int = 0
    units: Counter[str] = field(default_factory=Counter)


@dataclass(slots=True)
class Profile:
    model: str
    stats: TableStats
    events: int = 0
    positives: int = 0
    present: Counter[str] = field(default_factory=Counter)
    missing_required_rows: int = 0
    missing_required_positives: int = 0
    codes: dict[str, CodeSeen] = field(default_factory=dict)

    def coverage(self, feature: str) -> float:
        return self.present[feature] / self.events if self.events else 0.0


def _coded_nodes(resource: dict[str, Any]) -> list[tuple[str, str, str | None]]:
    """(system|code, display, UCUM unit) for a resource's code and each component's code."""
    nodes = [resource]
    components = resource.get("component")
    if isinstance(components, list):
        nodes += [c for c in components if isinstance(c, dict)]
    found = []
    for node in nodes:
        concept = node.get("code")
        codings = concept.get("coding") if isinstance(concept, dict) else None
        quantity = node.get("valueQuantity")
        unit = quantity_unit(quantity) if isinstance(quantity, dict) else None
        for coding in codings if isinstance(codings, list) else []:
            if isinstance(coding, dict) and isinstance(coding.get("code"), str):
                key = f"{coding.get('system', '')}|{coding['code']}"
                text = concept.get("text") if isinstance(concept, dict) else None
                display = coding.get("display") or text or ""
                found.append((key, str(display)[:120], unit))
    return found


def _note_codes(profile: Profile, resources: list[dict[str, Any]]) -> None:
    for res in resources:
        if res.get("resourceType") not in _RESOURCES_WITH_CODES:
            continue
        for key, display, unit in _coded_nodes(res):
            seen = profile.codes.setdefault(key, CodeSeen(str(res["resourceType"]), display))
            seen.count += 1
            if unit is not None:
                seen.units[unit] += 1


def _note_patient(
    profile: Profile, resources: list[dict[str, Any]], spec: ModelSpec, stats: TableStats
) -> None:
    _note_codes(profile, resources)
    events = index_events(resources, spec)
    if not events:
        return
    facts = normalize(resources, spec)
    stats.warnings.update(facts.warnings)
    for event in events:
        extraction = aggregate(facts, event.index_time, spec, event.anchor_time)
        label = label_for(resources, event, spec.label)
        profile.events += 1
        profile.positives += label
        profile.present.update(n for n, v in extraction.values.items() if v is not None)
        if extraction.missing_required(spec):
            profile.missing_required_rows += 1
            profile.missing_required_positives += label


@dataclass(frozen=True, slots=True)
class ProfileJob:
    """One profile per patient, in a worker of ``fhir_mappers.jobs``; added up in patient order."""

    spec: ModelSpec
    model: str

    def run(
        self, patients: Iterator[tuple[str, list[dict[str, Any]]]], stats: TableStats
    ) -> Iterator[tuple[str, Profile]]:
        for pid, resources in patients:
            mine = Profile(self.model, TableStats())
            _note_patient(mine, resources, self.spec, stats)
            yield pid, mine


def _add(profile: Profile, part: Profile) -> None:
    """A code's display is the one of the first patient (by id) that has the code."""
    profile.events += part.events
    profile.positives += part.positives
    profile.present.update(part.present)
    profile.missing_required_rows += part.missing_required_rows
    profile.missing_required_positives += part.missing_required_positives
    for key, seen in part.codes.items():
        known = profile.codes.get(key)
        if known is None:
            profile.codes[key] = seen
            continue
        known.count += seen.count
        known.units.update(seen.units)


def profile_export(
    export_dir: Path, spec: ModelSpec, model: str, *, progress: bool = False, jobs: int = 1
) -> Profile:
    """One pass over the export with the same mapper as training and serving, in ``jobs``
    processes; the profile is the same for any."""
    profile = Profile(model=model, stats=TableStats())
    job = ProfileJob(spec, model)
    for _pid, part in run_patient_job(export_dir, job, profile.stats, jobs=jobs, progress=progress):
        _add(profile, part)
    return profile


def _words(text: str) -> set[str]:
    return {w for w in re.findall(r"[a-z][a-z0-9]+", text.lower()) if len(w) > 2} - _STOP


def candidates(
    profile: Profile, feat: FeatureSpec, spec: ModelSpec | None = None
) -> list[tuple[str, CodeSeen]]:
    """Codes of the feature's resource type, read by no feature of the spec, whose display shares
    a meaningful word with the feature's name or display: the likeliest local or alternative
    codes. A code another feature reads (diastolic next to systolic) is not a candidate."""
    wanted = _words(f"{feat.name.replace('_', ' ')} {feat.display}")
    resource = feat.source.capitalize()
    mapped = {code for f in (spec.features if spec else (feat,)) for code in f.codes}
    found = [
        (key, seen)
        for key, seen in profile.codes.items()
        if seen.resource == resource and key not in mapped and wanted & _words(seen.display)
    ]
    found.sort(key=lambda item: (-item[1].count, item[0]))
    return found[:CANDIDATES_PER_FEATURE]


def unit_report(profile: Profile, feat: FeatureSpec) -> list[tuple[str, int, bool]]:
    """(unit, count, converts to the feature's unit) over the feature's mapped codes; nothing for
    a feature that reads no unit (a count, days since)."""
    if feat.unit is None:
        return []
    units: Counter[str] = Counter()
    for code in feat.codes:
        seen = profile.codes.get(code)
        if seen is not None:
            units.update(seen.units)
    report = []
    for unit, count in units.most_common():
        ok = feat.unit is not None
        if ok and feat.unit is not None:
            try:
                DEFAULT_CONVERTER.convert(1.0, unit, feat.unit, feat.molar_mass)
            except UnitError:
                ok = False
        report.append((unit, count, ok))
    return report

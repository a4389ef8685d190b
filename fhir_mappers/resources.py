"""Flatten what EHRs send (Bundles, lists, single resources) into plain resource dicts.

Prefetch slots and bulk files carry searchset Bundles, sometimes with OperationOutcome entries
(``search.mode = outcome``) or nested Bundles. The mapper wants a flat list of resources and a
separate account of what the server reported as a problem.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import orjson

MAX_BUNDLE_DEPTH = 4
MAX_LIST_DEPTH = 4


@dataclass(slots=True)
class Flattened:
    resources: list[dict[str, Any]] = field(default_factory=list)
    outcomes: list[dict[str, Any]] = field(default_factory=list)
    next_links: list[str] = field(default_factory=list)
    skipped: int = 0
    full_urls: dict[str, dict[str, Any]] = field(default_factory=dict)  # entry.fullUrl -> resource


def next_link(bundle: dict[str, Any]) -> str | None:
    """The ``next`` paging link of a searchset Bundle, if any."""
    links = bundle.get("link")
    if not isinstance(links, list):
        return None
    for link in links:
        if isinstance(link, dict) and link.get("relation") == "next":
            url = link.get("url")
            if isinstance(url, str) and url:
                return url
    return None


def outcome_messages(outcome: dict[str, Any]) -> list[str]:
    """Human-readable diagnostics of an OperationOutcome (for logs that carry no patient data)."""
    out: list[str] = []
    issues = outcome.get("issue")
    if isinstance(issues, list):
        for issue in issues:
            if isinstance(issue, dict):
                sev, code = issue.get("severity", "?"), issue.get("code", "?")
                out.append(f"{sev}/{code}")
    return out


def flatten(items: Any) -> Flattened:
    result = Flattened()
    _walk(items, result, 0)
    return result


def _walk(item: Any, result: Flattened, depth: int, lists: int = 0) -> None:
    if isinstance(item, list | tuple):
        if lists >= MAX_LIST_DEPTH:  # lists of lists of ...: no FHIR shape, and no recursion
            result.skipped += 1
            return
        for sub in item:
            _walk(sub, result, depth, lists + 1)
        return
    if not isinstance(item, dict):
        result.skipped += 1
        return
    rtype = item.get("resourceType")
    if rtype == "Bundle":
        if depth >= MAX_BUNDLE_DEPTH:
            result.skipped += 1
            return
        link = next_link(item)
        if link:
            result.next_links.append(link)
        entries = item.get("entry")
        if isinstance(entries, list):
            for entry in entries:
                if isinstance(entry, dict) and "resource" in entry:
                    full_url, resource = entry.get("fullUrl"), entry["resource"]
                    if isinstance(full_url, str) and full_url and isinstance(resource, dict):
                        result.full_urls[full_url] = resource
                    _walk(resource, result, depth + 1)
                else:
                    result.skipped += 1
        elif entries is not None:  # an entry that is not a list hides whatever it holds
            result.skipped += 1
        return
    if rtype == "OperationOutcome":
        result.outcomes.append(item)
        return
    if isinstance(rtype, str):
        result.resources.append(item)
    else:
        result.skipped += 1


def iter_resources(items: Iterable[Any]) -> Iterator[dict[str, Any]]:
    for item in items:
        yield from flatten(item).resources


def patient_id_of(
    resource: dict[str, Any],
    full_urls: Mapping[str, dict[str, Any]] | None = None,
    identifiers: Mapping[tuple[str, str], str] | None = None,
) -> str | None:
    """The Patient id a resource belongs to (Patient.id, or its subject/patient reference).

    References are read the way FHIR writes them: relative or absolute ``Patient/x``,
    ``urn:uuid:`` through the ``fullUrl`` of a Bundle's entries (``full_urls``),
    ``{type, reference}``, and ``{type: Patient, identifier}`` against the identifiers of the
    Patients already read (``identifiers``: (system, value) -> id).
    """
    if resource.get("resourceType") == "Patient":
        rid = resource.get("id")
        return rid if isinstance(rid, str) else None
    for key in ("subject", "patient"):
        ref = resource.get(key)
        if isinstance(ref, dict):
            found = _reference_patient_id(ref, key, full_urls or {}, identifiers or {})
            if found is not None:
                return found
    return None


def _reference_patient_id(
    ref: dict[str, Any],
    key: str,
    full_urls: Mapping[str, dict[str, Any]],
    identifiers: Mapping[tuple[str, str], str],
) -> str | None:
    rtype = ref.get("type")
    if isinstance(rtype, str) and rtype not in ("Patient", ""):
        return None  # a Group, Device, Location ... is not a patient
    target = ref.get("reference")
    if isinstance(target, str) and target:
        resolved = full_urls.get(target)
        if resolved is not None:
            rid = resolved.get("id")
            is_patient = resolved.get("resourceType") == "Patient" and isinstance(rid, str)
            return rid if is_patient else None
        if "Patient/" in target:
            return target.rsplit("Patient/", 1)[1].split("/", 1)[0] or None
        return None
    if rtype == "Patient" or key == "patient":
        for ident in _identifiers({"identifier": ref.get("identifier")}):
            if ident in identifiers:
                return identifiers[ident]
    return None


def patient_identifiers(resource: dict[str, Any]) -> set[tuple[str, str]]:
    """A Patient's (system, value) identifiers, for ``{type, identifier}`` references."""
    return _identifiers(resource)


def _version_key(resource: dict[str, Any]) -> tuple[str, bytes]:
    meta = resource.get("meta")
    updated = meta.get("lastUpdated") if isinstance(meta, dict) else None
    try:
        canonical = orjson.dumps(resource, option=orjson.OPT_SORT_KEYS)
    except TypeError:  # integers beyond 64 bits, nesting beyond orjson's 255 levels
        try:
            canonical = json.dumps(resource, sort_keys=True, default=repr).encode()
        except RecursionError:  # nested near the parser's limit: never preferred
            canonical = b""
    return (updated if isinstance(updated, str) else "", canonical)


def _differs(a: dict[str, Any], b: dict[str, Any]) -> bool:
    try:
        return a != b
    except RecursionError:  # deeply nested copies: treat as different, let the key decide
        return True


def dedupe(resources: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], int]:
    """One copy per (resourceType, id): overlapping pages or prefetch keys must not count a
    measurement twice. Differing copies keep the latest ``meta.lastUpdated`` (then the larger
    canonical JSON), so the choice does not depend on order. Returns (resources, dropped)."""
    chosen: dict[tuple[str, str], dict[str, Any]] = {}
    keep: list[dict[str, Any]] = []
    dropped = 0
    for res in resources:
        rid = res.get("id")
        if not isinstance(rid, str):
            keep.append(res)
            continue
        key = (str(res.get("resourceType")), rid)
        current = chosen.get(key)
        if current is None:
            chosen[key] = res
            continue
        dropped += 1
        if (
            current is not res
            and _differs(current, res)
            and _version_key(res) > _version_key(current)
        ):
            chosen[key] = res
    keep.extend(chosen.values())
    return keep, dropped


# --- whose data is it: references the way FHIR writes them --------------------------------------
# https://hl7.org/fhir/R4/references.html and https://hl7.org/fhir/R4/bundle.html#references

Verdict = Literal["patient", "other", "unknown"]

# Relative (Patient/x), absolute (https://host/fhir/Patient/x) and versioned (.../_history/n).
_PATIENT_REF = re.compile(r"(?:^|/)Patient/([A-Za-z0-9\-.]{1,64})(?:/_history/[^/]+)?$")
_OTHER_TYPE_REF = re.compile(r"(?:^|/)([A-Z][A-Za-z]+)/[A-Za-z0-9\-.]{1,64}(?:/_history/[^/]+)?$")
# Resources about one patient: one without subject/patient cannot be attributed. Other types
# without one (Practitioner, Organization, Medication ...) are simply not patient data.
_PATIENT_DATA = frozenset(
    {
        "AllergyIntolerance",
        "CarePlan",
        "Condition",
        "DiagnosticReport",
        "Encounter",
        "EpisodeOfCare",
        "Flag",
        "Immunization",
        "MedicationAdministration",
        "MedicationRequest",
        "MedicationStatement",
        "Observation",
        "Procedure",
        "QuestionnaireResponse",
        "ServiceRequest",
    }
)


def has_modifier_extension(resource: dict[str, Any]) -> bool:
    """A ``modifierExtension`` anywhere in the resource (on it or on a backbone element).

    FHIR: an application must not process a resource (or element) whose modifier extension it
    does not understand; this service understands none. Iterative, so nesting cannot recurse.
    """
    stack: list[Any] = [resource]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            if item.get("modifierExtension"):
                return True
            stack.extend(v for v in item.values() if isinstance(v, dict | list))
        elif isinstance(item, list):
            stack.extend(v for v in item if isinstance(v, dict | list))
    return False


def _identifiers(resource: dict[str, Any]) -> set[tuple[str, str]]:
    out: set[tuple[str, str]] = set()
    raw = resource.get("identifier")
    for ident in raw if isinstance(raw, list) else [raw]:
        if isinstance(ident, dict):
            system, value = ident.get("system"), ident.get("value")
            if isinstance(system, str) and isinstance(value, str) and system and value:
                out.add((system, value))
    return out


@dataclass(slots=True)
class Attribution:
    """Tells whether a resource is about the patient in context.

    ``learn`` the Bundles of a call first (their entries' ``fullUrl`` and the Patient's
    identifiers), then ask ``of(resource)``: "patient" (this patient's), "other" (another
    patient's, or no patient data), "unknown" (a patient reference that cannot be resolved).
    """

    patient_id: str
    full_urls: dict[str, dict[str, Any]] = field(default_factory=dict)
    identifiers: set[tuple[str, str]] = field(default_factory=set)

    def learn(self, resources: Iterable[dict[str, Any]], full_urls: dict[str, Any]) -> None:
        self.full_urls.update(full_urls)
        for res in resources:
            if res.get("resourceType") == "Patient" and res.get("id") == self.patient_id:
                self.identifiers |= _identifiers(res)

    def of(self, resource: dict[str, Any]) -> Verdict:
        if resource.get("resourceType") == "Patient":
            return "patient" if resource.get("id") == self.patient_id else "other"
        verdicts = [
            self._reference(resource, resource[key], key)
            for key in ("subject", "patient")
            if key in resource
        ]
        if not verdicts:
            return "unknown" if resource.get("resourceType") in _PATIENT_DATA else "other"
        if "patient" in verdicts:
            return "patient"
        return "other" if "other" in verdicts else "unknown"

    def _reference(self, container: dict[str, Any], ref: Any, key: str) -> Verdict:
        if not isinstance(ref, dict):
            return "unknown"
        rtype = ref.get("type")
        if isinstance(rtype, str) and rtype not in ("Patient", ""):
            return "other"  # a Group, Device, Location ... is not this patient
        target = ref.get("reference")
        if isinstance(target, str) and target:
            return self._target(container, target)
        if rtype == "Patient" or key == "patient":
            ident = _identifiers({"identifier": ref.get("identifier")})
            if ident and self.identifiers & ident:
                return "patient"
        return "unknown"

    def _target(self, container: dict[str, Any], target: str) -> Verdict:
        if target.startswith("#"):
            return self._patient_resource(_contained(container, target[1:]), contained=True)
        if target in self.full_urls:
            return self._patient_resource(self.full_urls[target], contained=False)
        match = _PATIENT_REF.search(target)
        if match:
            return "patient" if match.group(1) == self.patient_id else "other"
        if _OTHER_TYPE_REF.search(target):
            return "other"
        return "unknown"  # urn:uuid / urn:oid not in any Bundle of the call, or not a reference

    def _patient_resource(self, target: dict[str, Any] | None, *, contained: bool) -> Verdict:
        """A resolved target (Bundle entry or contained): this Patient by id or identifier.

        A contained Patient's id is local to its container, so only identifiers can tell; a
        Bundle entry's Patient with another id is another patient's."""
        if target is None:
            return "unknown"
        if target.get("resourceType") != "Patient":
            return "other"
        if self.identifiers & _identifiers(target):
            return "patient"
        rid = target.get("id")
        if contained or not isinstance(rid, str):
            return "unknown"
        return "patient" if rid == self.patient_id else "other"


def _contained(container: dict[str, Any], local_id: str) -> dict[str, Any] | None:
    contained = container.get("contained")
    if isinstance(contained, list):
        for res in contained:
            if isinstance(res, dict) and res.get("id") == local_id:
                return res
    return None

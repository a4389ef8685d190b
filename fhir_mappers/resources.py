"""Flatten what EHRs send (Bundles, lists, single resources) into plain resource dicts.

Prefetch slots and bulk files carry searchset Bundles, sometimes with OperationOutcome entries
(``search.mode = outcome``) or nested Bundles. The mapper wants a flat list of resources and a
separate account of what the server reported as a problem.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import orjson

MAX_BUNDLE_DEPTH = 4
MAX_LIST_DEPTH = 4


@dataclass(slots=True)
class Flattened:
    resources: list[dict[str, Any]] = field(default_factory=list)
    outcomes: list[dict[str, Any]] = field(default_factory=list)
    next_links: list[str] = field(default_factory=list)
    skipped: int = 0


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
                    _walk(entry["resource"], result, depth + 1)
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


def patient_id_of(resource: dict[str, Any]) -> str | None:
    """The Patient id a resource belongs to (Patient.id, or its subject/patient reference)."""
    if resource.get("resourceType") == "Patient":
        rid = resource.get("id")
        return rid if isinstance(rid, str) else None
    for key in ("subject", "patient"):
        ref = resource.get(key)
        if isinstance(ref, dict):
            target = ref.get("reference")
            if isinstance(target, str) and "Patient/" in target:
                return target.rsplit("Patient/", 1)[1].split("/", 1)[0] or None
    return None


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

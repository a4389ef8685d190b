"""Reading codes from CodeableConcepts and Codings, tolerant of what real systems send."""

from __future__ import annotations

from typing import Any


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


def malformed_concept(concept: Any) -> bool:
    """A CodeableConcept (or Coding) that is present but not shaped like one: counted, not read."""
    if concept is None:
        return False
    if type(concept) is not dict:
        return True
    codings = concept.get("coding")
    return codings is not None and (
        type(codings) is not list or any(type(c) is not dict for c in codings)
    )


def match_codes(concept: Any, lookup: dict[str, dict[str, tuple[int, ...]]]) -> tuple[int, ...]:
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

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


def element_concepts(resource: dict[str, Any], path: str) -> list[Any]:
    """The CodeableConcepts (or Codings) at an element path of a resource, repeats flattened.

    ``hospitalization.admitSource`` walks nested elements; ``extension:<url>`` takes the
    valueCoding or valueCodeableConcept of the resource's extensions with that url. Anything not
    shaped as FHIR writes it yields nothing: the caller treats that as "not recorded here".
    """
    if path.startswith("extension:"):
        url = path.removeprefix("extension:")
        extensions = resource.get("extension")
        if type(extensions) is not list:
            return []
        return [
            ext.get("valueCoding", ext.get("valueCodeableConcept"))
            for ext in extensions
            if type(ext) is dict and ext.get("url") == url
        ]
    nodes: list[Any] = [resource]
    for name in path.split("."):
        step: list[Any] = []
        for node in nodes:
            value = node.get(name) if type(node) is dict else None
            step.extend(value if type(value) is list else [value])
        nodes = [n for n in step if n is not None]
    return nodes

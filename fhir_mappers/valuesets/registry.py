"""The bundled value sets, read from the FHIR R4 ValueSet files beside this module.

A feature spec names a clinical concept; which codes stand for it is data that a clinician reviews
(docs/terminology.md is generated from these files) and that a site may extend. Only enumerated
value sets are accepted (``compose.include[].concept``): an intensional rule ("every LOINC code
with component Glucose") needs a terminology server at load time, and the model must not change
because a server answered differently.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from importlib import resources
from typing import Any

from fhir.resources.R4B.valueset import ValueSet
from pydantic import ValidationError

CANONICAL_BASE = "https://fhir.cds-risk.example/ValueSet/"


class ValueSetError(ValueError):
    """A value set that cannot be used; the message names the value set, never patient data."""


@dataclass(frozen=True, slots=True)
class Concept:
    system: str
    code: str
    display: str

    @property
    def key(self) -> str:
        """The ``system|code`` form the feature spec and the mapper match on."""
        return f"{self.system}|{self.code}"


@dataclass(frozen=True, slots=True)
class BundledValueSet:
    name: str
    url: str
    title: str
    description: str
    concepts: tuple[Concept, ...]

    @property
    def keys(self) -> tuple[str, ...]:
        return tuple(c.key for c in self.concepts)


def parse_value_set(
    text: str, where: str, *, canonical_base: str | None = CANONICAL_BASE
) -> BundledValueSet:
    """Validate one ValueSet (R4) and expand its enumerated concepts, in file order.

    Bundled sets live under the project's canonical base; a caller reading someone else's value
    set (a site's) passes ``canonical_base=None`` and keeps that set's own url.
    """
    try:
        vs = ValueSet.model_validate_json(text)
    except (ValidationError, ValueError) as exc:
        raise ValueSetError(f"{where}: not a valid FHIR R4 ValueSet ({_first_error(exc)})") from exc
    if not vs.url or not vs.id:
        raise ValueSetError(f"{where}: a bundled value set needs an id and a canonical url")
    if canonical_base is not None and vs.url != canonical_base + vs.id:
        raise ValueSetError(f"{where}: url must be {canonical_base}{vs.id}")
    return BundledValueSet(
        name=vs.id,
        url=vs.url,
        title=vs.title or vs.id,
        description=str(vs.description or ""),
        concepts=_expand(vs, where),
    )


def _first_error(exc: Exception) -> str:
    if isinstance(exc, ValidationError) and exc.errors():
        err = exc.errors()[0]
        return f"{'.'.join(str(p) for p in err.get('loc', ()))}: {err.get('msg', '')}"
    return type(exc).__name__


def _expand(vs: Any, where: str) -> tuple[Concept, ...]:
    compose = vs.compose
    if compose is None or not compose.include:
        raise ValueSetError(f"{where}: compose.include with concepts is required")
    if compose.exclude:
        raise ValueSetError(f"{where}: compose.exclude is not supported in bundled value sets")
    seen: set[str] = set()
    concepts: list[Concept] = []
    for include in compose.include:
        if include.filter or include.valueSet or not include.system or not include.concept:
            raise ValueSetError(
                f"{where}: every include must enumerate concepts of one system "
                "(no filter, no valueSet)"
            )
        for item in include.concept:
            concept = Concept(include.system, item.code, item.display or "")
            if concept.key in seen:
                raise ValueSetError(f"{where}: {concept.key} is listed twice")
            seen.add(concept.key)
            concepts.append(concept)
    return tuple(concepts)


@functools.cache
def bundled() -> dict[str, BundledValueSet]:
    """Every bundled value set by canonical url, read once per process."""
    found: dict[str, BundledValueSet] = {}
    folder = resources.files(__package__ or "fhir_mappers.valuesets")
    for entry in sorted(folder.iterdir(), key=lambda e: e.name):
        if not entry.name.endswith(".json"):
            continue
        vs = parse_value_set(entry.read_text(encoding="utf-8"), entry.name)
        if entry.name != f"{vs.name}.json":
            raise ValueSetError(f"{entry.name}: file name must be the value set id ({vs.name})")
        found[vs.url] = vs
    return found


def canonical_url(ref: str) -> str:
    """``glucose`` and ``https://fhir.cds-risk.example/ValueSet/glucose`` name the same set."""
    return ref if "/" in ref else CANONICAL_BASE + ref


def resolve(ref: str) -> BundledValueSet:
    """The bundled value set a spec names, or a ValueSetError that lists the known names."""
    vs = bundled().get(canonical_url(ref))
    if vs is None:
        names = sorted(v.name for v in bundled().values())
        raise ValueSetError(f"unknown value set {ref[:100]!r}; bundled value sets: {names}")
    return vs

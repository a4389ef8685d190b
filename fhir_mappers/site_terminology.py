"""A hospital's local codes: FHIR ConceptMap and ValueSet files kept apart from the model.

A site folder says "our code X means the concept the model knows as LOINC Y". Reading it never
changes a model or its feature-spec hash; it changes what the model *sees*, so its content hash
(``SiteTerminology.sha256``) travels with every training manifest and audit row. Everything that
cannot be read with one safe meaning is refused here, naming the file and the element: a site
folder either loads completely or the service does not start. How the loaded mappings extend a
feature spec is :mod:`fhir_mappers.site_binding`; the format is in ``docs/terminology-site.md``.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = [
    "ACCEPTED_EQUIVALENCES",
    "EMPTY_TERMINOLOGY_SHA256",
    "NO_SITE_TERMINOLOGY",
    "CodeMapping",
    "SiteTerminology",
    "TerminologyError",
    "ValueSetExtension",
    "load_site_terminology",
    "parse_site_resources",
]

# sha256 of no resources at all (the empty string): the value every row carries without a site
# folder. Fixed forever: migration 0005 gives it to audit rows written before the column existed.
EMPTY_TERMINOLOGY_SHA256 = hashlib.sha256(b"").hexdigest()
UCUM = "http://unitsofmeasure.org"

# R4 ConceptMap equivalence is read from the target's side: "wider" means the target concept is
# wider than the local code, i.e. every result under the local code is an instance of the
# model's concept. That (and sameness) is safe to feed a feature; the rest is not.
ACCEPTED_EQUIVALENCES = ("equal", "equivalent", "wider", "subsumes")
_REFUSED_EQUIVALENCES = {
    "narrower": "the local code is broader than the model's concept",
    "specializes": "the local code is broader than the model's concept",
    "inexact": "the meanings only overlap",
    "relatedto": "the relationship is not known",
    "disjoint": "the meanings do not overlap",
    "unmatched": "there is no target concept",
}


class TerminologyError(ValueError):
    """A site terminology that cannot be applied safely; the message names file and element."""


@dataclass(frozen=True, slots=True)
class CodeMapping:
    """Local ``system|code`` -> a code the model knows, with the unit the site reports it in."""

    source: str
    target: str
    unit: str | None
    where: str


@dataclass(frozen=True, slots=True)
class ValueSetExtension:
    """Codes a site adds to one or more bundled value sets (``compose.include.valueSet``)."""

    value_sets: tuple[str, ...]
    codes: tuple[str, ...]
    where: str


@dataclass(frozen=True, slots=True)
class SiteTerminology:
    mappings: tuple[CodeMapping, ...] = ()
    extensions: tuple[ValueSetExtension, ...] = ()
    files: tuple[str, ...] = ()
    sha256: str = EMPTY_TERMINOLOGY_SHA256


NO_SITE_TERMINOLOGY = SiteTerminology()


def load_site_terminology(folder: Path | None) -> SiteTerminology:
    """Every ``*.json`` under ``folder`` (a resource or a Bundle of them); None: no site codes."""
    if folder is None:
        return NO_SITE_TERMINOLOGY
    if not folder.is_dir():
        raise TerminologyError(f"site terminology folder {folder} does not exist")
    named: list[tuple[str, dict[str, Any]]] = []
    files: list[str] = []
    for path in sorted(folder.rglob("*.json")):
        name = path.relative_to(folder).as_posix()
        files.append(name)
        try:
            doc = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, ValueError) as exc:
            raise TerminologyError(f"{name}: not readable JSON ({type(exc).__name__})") from exc
        named.extend(_resources_of(doc, name))
    return parse_site_resources(named, tuple(files))


def parse_site_resources(
    named: list[tuple[str, dict[str, Any]]], files: tuple[str, ...] = ()
) -> SiteTerminology:
    """Parse (where, resource) pairs; the hash covers content, not file names or formatting."""
    mappings: list[CodeMapping] = []
    extensions: list[ValueSetExtension] = []
    canonical: list[str] = []
    for where, res in named:
        canonical.append(json.dumps(res, sort_keys=True, separators=(",", ":"), ensure_ascii=False))
        kind = res.get("resourceType")
        if kind == "ConceptMap":
            mappings.extend(_concept_map(res, where))
        elif kind == "ValueSet":
            extensions.append(_value_set(res, where))
        else:
            raise TerminologyError(f"{where}: {kind!r} is not a ConceptMap or ValueSet")
    if not canonical:
        return SiteTerminology(files=files)
    digest = hashlib.sha256("\n".join(sorted(canonical)).encode()).hexdigest()
    return SiteTerminology(tuple(mappings), tuple(extensions), files, digest)


def _resources_of(doc: Any, name: str) -> list[tuple[str, dict[str, Any]]]:
    if not isinstance(doc, dict):
        raise TerminologyError(f"{name}: not a FHIR resource (a JSON object)")
    if doc.get("resourceType") != "Bundle":
        return [(name, doc)]
    out = []
    for i, entry in enumerate(doc.get("entry") or []):
        res = entry.get("resource") if isinstance(entry, dict) else None
        if not isinstance(res, dict):
            raise TerminologyError(f"{name} entry #{i + 1}: no resource")
        out.append((f"{name} entry #{i + 1}", res))
    return out


def _validated(model: Any, res: dict[str, Any], where: str) -> Any:
    from pydantic import ValidationError

    try:
        return model.model_validate(res)
    except ValidationError as exc:
        first = exc.errors()[0]
        loc = ".".join(str(p) for p in first.get("loc", ()))
        raise TerminologyError(
            f"{where}: not a valid FHIR R4B {res.get('resourceType')} ({loc}: {first.get('msg')})"
        ) from exc


def _concept_map(res: dict[str, Any], where: str) -> list[CodeMapping]:
    from fhir.resources.R4B.conceptmap import ConceptMap

    cm = _validated(ConceptMap, res, where)
    where = f"{where} ConceptMap {cm.url or cm.id or ''}".rstrip()
    out: list[CodeMapping] = []
    for g, group in enumerate(cm.group or [], start=1):
        at = f"{where} group #{g}"
        if not group.source or not group.target:
            raise TerminologyError(f"{at}: needs its source and target code systems")
        if group.unmapped is not None:
            raise TerminologyError(f"{at}: 'unmapped' is not supported; list each local code")
        for element in group.element or []:
            if not element.code:
                raise TerminologyError(f"{at}: an element without a code")
            el_at = f"{at} element {element.code!r}"
            if not element.target:
                raise TerminologyError(f"{el_at}: no target (leave unmapped codes out)")
            for t, target in enumerate(element.target, start=1):
                target_at = f"{el_at} target #{t}"
                out.append(
                    CodeMapping(
                        source=f"{group.source}|{element.code}",
                        target=f"{group.target}|{_target_code(target, target_at)}",
                        unit=_unit_of(target, target_at),
                        where=target_at,
                    )
                )
    return out


def _target_code(target: Any, where: str) -> str:
    equivalence = target.equivalence
    if equivalence in _REFUSED_EQUIVALENCES:
        why = _REFUSED_EQUIVALENCES[equivalence]
        raise TerminologyError(
            f"{where}: equivalence {equivalence!r} is refused ({why}); only "
            f"{', '.join(ACCEPTED_EQUIVALENCES)} can feed a model input"
        )
    if equivalence not in ACCEPTED_EQUIVALENCES:
        raise TerminologyError(f"{where}: unknown equivalence {equivalence!r}")
    if not target.code:
        raise TerminologyError(f"{where}: the target has no code")
    if target.dependsOn:
        raise TerminologyError(f"{where}: 'dependsOn' (a conditional mapping) is not evaluated")
    return str(target.code)


def _unit_of(target: Any, where: str) -> str | None:
    """A ``product`` with property ``unit`` (or in the UCUM system) names the reported unit."""
    units = []
    for product in target.product or []:
        prop = str(product.property or "")
        if prop.rsplit("/", 1)[-1].rsplit("#", 1)[-1] == "unit" or product.system == UCUM:
            units.append(str(product.value or ""))
        else:
            raise TerminologyError(f"{where}: product {prop!r} is not understood (only 'unit')")
    if len(units) > 1 or (units and not units[0]):
        raise TerminologyError(f"{where}: give one UCUM unit")
    return units[0] if units else None


def _value_set(res: dict[str, Any], where: str) -> ValueSetExtension:
    from fhir.resources.R4B.valueset import ValueSet

    vs = _validated(ValueSet, res, where)
    where = f"{where} ValueSet {vs.url or vs.id or ''}".rstrip()
    compose = vs.compose
    if compose is None:
        raise TerminologyError(f"{where}: no compose (a site value set lists the codes it adds)")
    if compose.exclude:
        raise TerminologyError(f"{where}: 'exclude' is refused: a site value set only adds codes")
    bases: list[str] = []
    codes: list[str] = []
    for i, include in enumerate(compose.include or [], start=1):
        at = f"{where} include #{i}"
        if include.filter:
            raise TerminologyError(f"{at}: filters are not expanded here; list the codes")
        if include.valueSet and include.concept:
            raise TerminologyError(
                f"{at}: valueSet with codes means their intersection in FHIR; put the added "
                "codes in an include of their own"
            )
        if include.valueSet:
            bases.extend(str(u) for u in include.valueSet)
        elif include.concept and include.system:
            codes.extend(f"{include.system}|{c.code}" for c in include.concept)
        else:
            raise TerminologyError(f"{at}: list a code system's codes (a whole system is refused)")
    if not bases:
        raise TerminologyError(f"{where}: names no bundled value set (compose.include.valueSet)")
    return ValueSetExtension(tuple(bases), tuple(codes), where)

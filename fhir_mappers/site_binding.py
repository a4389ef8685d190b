"""Apply a site terminology to a loaded feature spec: local codes join the codes they mean.

A local code takes over the *role* of the code it is mapped to: feature code, ``value_map`` key
(with the same number), index-event or label code. The spec's sha256 is computed from the file
before this runs, so the model, its manifest check and its hash stay exactly as trained. Every
code must end up with one meaning per model: a mapping that would make a local code count as
two different inputs, or report a unit the feature cannot convert, is refused by name.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from pathlib import Path

from fhir_mappers.site_terminology import SiteTerminology, TerminologyError
from fhir_mappers.spec import FeatureSpec, ModelSpec, load_spec
from fhir_mappers.units import DEFAULT_CONVERTER, UnitConverter, UnitError

__all__ = ["apply_site_terminology", "load_site_spec", "unused_site_entries"]

# A role: ("feature", name) | ("value", name, number) | ("index",) | ("label",) | ("exclude",)
Role = tuple[str | float, ...]
Roles = frozenset[Role]


def _roles(spec: ModelSpec) -> dict[str, set[Role]]:
    out: dict[str, set[Role]] = {}
    for feat in spec.features:
        for code in feat.codes:
            out.setdefault(code, set()).add(("feature", feat.name))
        for code, number in feat.value_map.items():
            out.setdefault(code, set()).add(("value", feat.name, number))
    for code in spec.index.codes:
        out.setdefault(code, set()).add(("index",))
    for code in spec.label.codes:
        out.setdefault(code, set()).add(("label",))
    for code in spec.label.exclude_priority:
        out.setdefault(code, set()).add(("exclude",))
    return out


def _describe(roles: Roles) -> str:
    parts = []
    for role in sorted(roles, key=str):
        if role[0] == "feature":
            parts.append(f"feature {role[1]}")
        elif role[0] == "value":
            parts.append(f"value {role[2]:g} of feature {role[1]}")
        else:
            parts.append(
                {"index": "the index event", "label": "the label"}.get(
                    str(role[0]), "an excluded priority"
                )
            )
    return ", ".join(parts)


def _bound(spec: ModelSpec, urls: tuple[str, ...]) -> list[FeatureSpec]:
    return [f for f in spec.features if f.value_set in urls]


def _bound_events(spec: ModelSpec, urls: tuple[str, ...]) -> set[Role]:
    """Index-event and label codes bound to one of ``urls`` (when the spec binds them)."""
    out: set[Role] = set()
    if getattr(spec.index, "value_set", None) in urls:
        out.add(("index",))
    if getattr(spec.label, "value_set", None) in urls:
        out.add(("label",))
    return out


def _claims(spec: ModelSpec, site: SiteTerminology) -> dict[str, list[tuple[Roles, str]]]:
    """Local code -> the meanings the site gives it in this model, each with where it is said."""
    roles = _roles(spec)
    claims: dict[str, list[tuple[Roles, str]]] = {}
    for m in site.mappings:
        target = frozenset(roles.get(m.target, ()))
        if target:
            claims.setdefault(m.source, []).append((target, f"{m.where} (-> {m.target})"))
    for ext in site.extensions:
        features = _bound(spec, ext.value_sets)
        for feat in features:
            if feat.value_map:
                raise TerminologyError(
                    f"{ext.where}: feature {feat.name} of model {spec.name} maps codes to "
                    "numbers; add local codes through a ConceptMap to one of its codes"
                )
        bound = frozenset(
            {("feature", f.name) for f in features} | _bound_events(spec, ext.value_sets)
        )
        for code in ext.codes if bound else ():
            claims.setdefault(code, []).append((bound, ext.where))
    for code, said in claims.items():
        own = frozenset(roles.get(code, ()))
        if own:
            said.insert(0, (own, "the bundled feature spec"))
    return claims


def _check_one_meaning(spec: ModelSpec, code: str, said: list[tuple[Roles, str]]) -> None:
    first_roles, first_where = said[0]
    for roles, where in said[1:]:
        if roles != first_roles:
            raise TerminologyError(
                f"{where}: {code} would mean {_describe(roles)} in model {spec.name}, but "
                f"{first_where} makes it {_describe(first_roles)}; one code, one meaning"
            )


def _check_units(spec: ModelSpec, site: SiteTerminology, converter: UnitConverter) -> None:
    roles = _roles(spec)
    for m in site.mappings:
        if m.unit is None:
            continue
        for role in roles.get(m.target, ()):
            if role[0] != "feature":
                continue
            feat = spec.feature(str(role[1]))
            if feat.unit is None:
                continue
            try:
                converter.converter(m.unit, feat.unit, feat.molar_mass)
            except UnitError as exc:
                raise TerminologyError(
                    f"{m.where}: unit {m.unit!r} of {m.source} does not convert to the unit "
                    f"{feat.unit!r} of feature {feat.name} in model {spec.name} ({exc})"
                ) from exc


def _extended(codes: tuple[str, ...], added: Iterable[str]) -> tuple[str, ...]:
    return codes + tuple(sorted(set(added) - set(codes)))


def apply_site_terminology(
    spec: ModelSpec, site: SiteTerminology, converter: UnitConverter = DEFAULT_CONVERTER
) -> ModelSpec:
    """The spec with the site's local codes added where they belong; ``sha256`` unchanged."""
    if not site.mappings and not site.extensions:
        return spec
    claims = _claims(spec, site)
    for code, said in claims.items():
        _check_one_meaning(spec, code, said)
    _check_units(spec, site, converter)
    new: dict[Role, set[str]] = {}
    for code, said in claims.items():
        for role in said[0][0]:
            new.setdefault(role, set()).add(code)
    features = []
    for feat in spec.features:
        value_map = dict(feat.value_map)
        for role, codes in new.items():
            if role[0] == "value" and role[1] == feat.name:
                value_map.update({c: float(role[2]) for c in codes if c not in value_map})
        features.append(
            dataclasses.replace(
                feat,
                codes=_extended(feat.codes, new.get(("feature", feat.name), ())),
                value_map=value_map,
            )
        )
    label = spec.label
    label = dataclasses.replace(
        label,
        codes=_extended(label.codes, new.get(("label",), ())),
        exclude_priority=_extended(label.exclude_priority, new.get(("exclude",), ())),
    )
    index = dataclasses.replace(
        spec.index, codes=_extended(spec.index.codes, new.get(("index",), ()))
    )
    return dataclasses.replace(spec, features=tuple(features), index=index, label=label)


def unused_site_entries(site: SiteTerminology, specs: Iterable[ModelSpec]) -> list[str]:
    """Mappings and value-set extensions no served model uses (a national map has many)."""
    specs = list(specs)
    used = set().union(*(_roles(s) for s in specs)) if specs else set()
    out = [f"{m.where} (-> {m.target})" for m in site.mappings if m.target not in used]
    out += [
        e.where
        for e in site.extensions
        if not any(_bound(s, e.value_sets) or _bound_events(s, e.value_sets) for s in specs)
    ]
    return out


def load_site_spec(path: Path, site: SiteTerminology) -> ModelSpec:
    """A model's spec file read as training, the gate and outcomes read it: with the site's
    local codes, the hash still the file's."""
    return apply_site_terminology(load_spec(path), site)

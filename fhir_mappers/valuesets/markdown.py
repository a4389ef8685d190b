"""docs/terminology.md, generated: the codes behind each concept, in a table a clinician reviews.

The page is never edited by hand; a test regenerates it and fails when it differs, so what a
reviewer signs off is what the mapper matches.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from fhir_mappers.spec import ModelSpec, load_spec
from fhir_mappers.valuesets.registry import BundledValueSet, bundled

SYSTEM_NAMES = {
    "http://loinc.org": "LOINC",
    "http://snomed.info/sct": "SNOMED CT",
    "http://hl7.org/fhir/sid/icd-10": "ICD-10 (WHO)",
    "http://hl7.org/fhir/sid/icd-10-cm": "ICD-10-CM",
    "http://terminology.hl7.org/CodeSystem/v3-ActCode": "HL7 v3 ActCode",
}
_PROJECT_SYSTEMS = "https://fhir.cds-risk.example/CodeSystem/"

_INTRO = """# Terminology: the codes behind each clinical concept

Generated from the FHIR ValueSet files in `fhir_mappers/valuesets/` by
`python -m fhir_mappers.valuesets --markdown > docs/terminology.md`. Do not edit this page: edit
the JSON file of the concept and regenerate; `tests/fhir_mappers/test_valuesets.py` fails while
the two disagree. A feature spec binds a concept with `value_set = "<concept>"`
([feature-spec.md](feature-spec.md)); a code that is not listed here is not read, whatever it
means. A hospital adds its local codes through site terminology, not by editing these files.
"""


def spec_paths(models_dir: Path) -> list[Path]:
    return sorted(models_dir.glob("*/features.toml"))


def usages(specs: Iterable[ModelSpec]) -> dict[str, list[str]]:
    """Canonical url -> where it is bound, as ``model: feature`` lines a reader can search for."""
    used: dict[str, list[str]] = {}
    for spec in specs:
        for feat in spec.features:
            if feat.value_set is not None:
                used.setdefault(feat.value_set, []).append(f"{spec.name}: `{feat.name}`")
            for url, number in feat.value_map_sets.items():
                line = f"{spec.name}: `{feat.name}` (answer = {number:g})"
                used.setdefault(url, []).append(line)
        for part, bound in (("[index]", spec.index.value_set), ("[label]", spec.label.value_set)):
            if bound is not None:
                used.setdefault(bound, []).append(f"{spec.name}: {part}")
    return used


def system_name(system: str) -> str:
    if system.startswith(_PROJECT_SYSTEMS):
        return f"project ({system.removeprefix(_PROJECT_SYSTEMS)})"
    return SYSTEM_NAMES.get(system, system)


def _section(vs: BundledValueSet, used: list[str]) -> list[str]:
    lines = [f"## {vs.title}", "", f"`{vs.url}` ({len(vs.concepts)} codes)", ""]
    if vs.description:
        lines += [vs.description, ""]
    lines += [f"Used by: {'; '.join(used) if used else 'no bundled model'}", ""]
    lines += ["| system | code | display |", "|---|---|---|"]
    lines += [f"| {system_name(c.system)} | {c.code} | {c.display} |" for c in vs.concepts]
    return [*lines, ""]


def terminology_markdown(specs: Iterable[ModelSpec]) -> str:
    used = usages(specs)
    sets = sorted(bundled().values(), key=lambda v: v.title.lower())
    lines = [_INTRO, "| concept | codes | used by |", "|---|---|---|"]
    lines += [
        f"| [{vs.title}](#{_anchor(vs.title)}) | {len(vs.concepts)} | {len(used.get(vs.url, []))} |"
        for vs in sets
    ]
    lines.append("")
    for vs in sets:
        lines += _section(vs, used.get(vs.url, []))
    return "\n".join(lines).rstrip() + "\n"


def _anchor(title: str) -> str:
    """The heading id GitHub-flavoured Markdown gives ``## <title>``."""
    kept = "".join(ch for ch in title.lower() if ch.isalnum() or ch in " -")
    return kept.replace(" ", "-")


def models_markdown(models_dir: Path) -> str:
    return terminology_markdown(load_spec(path) for path in spec_paths(models_dir))

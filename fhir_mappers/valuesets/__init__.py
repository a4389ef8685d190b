"""Clinical concepts as data: one FHIR R4 ValueSet file per concept, bundled with the mapper.

A feature spec says ``value_set = "glucose"``; the codes that stand for glucose (serum, blood,
point-of-care; mass and molar) live in ``glucose.json`` here, where a clinician reviews them through
``docs/terminology.md`` (``python -m fhir_mappers.valuesets --markdown``).
"""

from fhir_mappers.valuesets.registry import (
    CANONICAL_BASE,
    BundledValueSet,
    Concept,
    ValueSetError,
    bundled,
    canonical_url,
    parse_value_set,
    resolve,
)

__all__ = [
    "CANONICAL_BASE",
    "BundledValueSet",
    "Concept",
    "ValueSetError",
    "bundled",
    "canonical_url",
    "parse_value_set",
    "resolve",
]

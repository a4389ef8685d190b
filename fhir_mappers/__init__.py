"""Pure FHIR R4 -> features mapping, shared by training (bulk NDJSON) and serving (prefetch).

No web framework or database imports here: the package is usable from a notebook on a bulk export.
"""

from fhir_mappers.extract import Extraction, Provenance, SourceRef, aggregate, extract
from fhir_mappers.facts import PatientFacts, normalize
from fhir_mappers.resources import flatten, next_link, patient_id_of
from fhir_mappers.site_binding import apply_site_terminology
from fhir_mappers.site_terminology import (
    SiteTerminology,
    TerminologyError,
    load_site_terminology,
)
from fhir_mappers.spec import FeatureSpec, ModelSpec, SpecError, load_spec, spec_from_dict
from fhir_mappers.units import UnitConverter, UnitError

__all__ = [
    "Extraction",
    "FeatureSpec",
    "ModelSpec",
    "PatientFacts",
    "Provenance",
    "SiteTerminology",
    "SourceRef",
    "SpecError",
    "TerminologyError",
    "UnitConverter",
    "UnitError",
    "aggregate",
    "apply_site_terminology",
    "extract",
    "flatten",
    "load_site_terminology",
    "load_spec",
    "next_link",
    "normalize",
    "patient_id_of",
    "spec_from_dict",
]

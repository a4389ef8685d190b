"""The value of one Observation (or component) for one feature, in the feature's canonical unit.

Each reader returns ``(value, None)`` or ``(None, why)``: the reason becomes the feature's
provenance note, so a value that cannot be read is reported, never guessed.
"""

from __future__ import annotations

from typing import Any

from fhir_mappers.concepts import coding_keys
from fhir_mappers.spec import FeatureSpec
from fhir_mappers.units import UnitConverter, UnitError, quantity_unit

COMPARATORS = frozenset({"<", "<=", ">=", ">", "ad"})


def _unitless(feat: FeatureSpec) -> bool:
    return feat.unit is None or feat.unit == "1" or feat.unit.startswith("{")


def node_value(
    node: dict[str, Any], feat: FeatureSpec, converter: UnitConverter
) -> tuple[float | None, str | None]:
    """The value of an Observation or component for one feature, or why there is none."""
    if feat.aggregation in ("count", "days_since") and not feat.unit and not feat.value_map:
        return _presence_value(node)
    quantity = node.get("valueQuantity")
    if isinstance(quantity, dict):
        return _quantity_value(quantity, feat, converter)
    if "valueInteger" in node:
        return _integer_value(node["valueInteger"], feat)
    concept = node.get("valueCodeableConcept")
    if concept is not None:
        return _coded_value(concept, feat)
    if "dataAbsentReason" in node:
        return None, "data absent"
    return None, "no value"


def _presence_value(node: dict[str, Any]) -> tuple[float | None, str | None]:
    """Counted features only ask whether a measurement was made, not what it said."""
    if "dataAbsentReason" in node and not any(k.startswith("value") for k in node):
        return None, "data absent"
    return 1.0, None


def _quantity_value(
    quantity: dict[str, Any], feat: FeatureSpec, converter: UnitConverter
) -> tuple[float | None, str | None]:
    raw = quantity.get("value")
    if isinstance(raw, bool) or not isinstance(raw, int | float):
        return None, "malformed value"
    comparator = quantity.get("comparator")
    if comparator is not None and comparator not in COMPARATORS:
        return None, "malformed comparator"
    unit = quantity_unit(quantity)
    if unit is None:
        if not _unitless(feat):
            return None, "unit missing or not UCUM"
        return float(raw), None
    if feat.unit is None:
        return None, "feature has no canonical unit"
    try:
        value = converter.convert(float(raw), unit, feat.unit, feat.molar_mass)
    except UnitError:
        return None, f"unit not convertible ({unit[:20]})"
    return value, ("comparator" if comparator else None)


def _integer_value(raw: Any, feat: FeatureSpec) -> tuple[float | None, str | None]:
    if isinstance(raw, bool) or not isinstance(raw, int):
        return None, "malformed value"
    if not _unitless(feat):
        return None, "integer without unit"
    return float(raw), None


def _coded_value(concept: Any, feat: FeatureSpec) -> tuple[float | None, str | None]:
    if not feat.value_map:
        return None, "coded value for a numeric feature"
    for key in coding_keys(concept):
        if key in feat.value_map:
            return feat.value_map[key], None
    return None, "coded value not in value_map"

"""UCUM unit conversion: the converter itself, Quantity unit resolution, and the effect on features.

Expected numbers are computed by hand from the unit definitions: 1 [lb_av] = 0.45359237 kg,
T(Cel) = (T([degF]) - 32) * 5/9, molar masses glucose 180.156, creatinine 113.12, lactate 90.08
g/mol.
"""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from fhir_mappers import UnitConverter, UnitError, extract
from fhir_mappers.units import IDENTITY, UCUM_SYSTEM, UNIT_ALIASES, quantity_unit

INDEX = datetime(2024, 3, 10, 12, 0, tzinfo=UTC)
GLUCOSE = 180.156
CREATININE = 113.12
LACTATE = 90.08


@pytest.fixture(scope="module")
def conv() -> UnitConverter:
    return UnitConverter()


# --- the converter --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "unit", "canonical", "molar_mass", "expected"),
    [
        # temperature: an affine conversion, not a plain scale
        (98.6, "[degF]", "Cel", None, 37.0),
        (32.0, "[degF]", "Cel", None, 0.0),
        (212.0, "[degF]", "Cel", None, 100.0),
        (-40.0, "[degF]", "Cel", None, -40.0),
        (37.0, "Cel", "[degF]", None, 98.6),
        (37.0, "Cel", "K", None, 310.15),
        # body weight
        (1.0, "[lb_av]", "kg", None, 0.45359237),
        (150.0, "[lb_av]", "kg", None, 68.0388555),
        (2500.0, "g", "kg", None, 2.5),
        # glucose: US mg/dL <-> Dutch mmol/L through the molar mass
        (100.0, "mg/dL", "mmol/L", GLUCOSE, 5.550744909966918),
        (180.156, "mg/dL", "mmol/L", GLUCOSE, 10.0),
        (5.5, "mmol/L", "mg/dL", GLUCOSE, 99.0858),
        (10.0, "mmol/L", "mg/dL", GLUCOSE, 180.156),
        # creatinine mg/dL -> umol/L (the classic factor 88.4)
        (1.0, "mg/dL", "umol/L", CREATININE, 88.40169731258840),
        (88.4, "umol/L", "mg/dL", CREATININE, 0.9999808),
        # lactate mg/dL -> mmol/L
        (9.008, "mg/dL", "mmol/L", LACTATE, 1.0),
        (18.0, "mg/dL", "mmol/L", LACTATE, 1.99822380106572),
        # same dimension: the molar mass must not be applied
        (1.0, "mmol/L", "umol/L", CREATININE, 1000.0),
        (1.0, "g/L", "mg/dL", None, 100.0),
        (12.0, "mg/L", "mg/dL", None, 1.2),
        # cell counts: 10*3/uL is exactly 10*9/L
        (7.5, "10*3/uL", "10*9/L", None, 7.5),
        (7500.0, "/uL", "10*9/L", None, 7.5),
        # pressure: UCUM defines m[Hg] through 13.5951 g/cm3 and g = 9.80665 m/s2
        (13.3322387415, "kPa", "mm[Hg]", None, 100.0),
        (1.0, "mm[Hg]", "Pa", None, 133.322387415),
        (120.0, "mm[Hg]", "mm[Hg]", None, 120.0),
        (0.97, "1", "%", None, 97.0),
    ],
)
def test_convert_known_values(conv, value, unit, canonical, molar_mass, expected):
    assert conv.convert(value, unit, canonical, molar_mass) == pytest.approx(expected, rel=1e-6)


def test_same_unit_is_identity_without_loading_a_registry():
    fresh = UnitConverter()
    assert fresh.converter("kg", "kg") is IDENTITY
    assert fresh.convert(72.0, "/min", "/min") == 72.0


def test_affine_is_reused_for_the_same_pair(conv):
    first = conv.converter("[degF]", "Cel")
    assert conv.converter("[degF]", "Cel") is first
    assert first(212.0) == pytest.approx(100.0)


@pytest.mark.parametrize(
    ("unit", "canonical", "molar_mass"),
    [
        ("mg/dL", "mmol/L", None),  # mass -> molar needs the analyte's molar mass
        ("mmol/L", "mg/dL", None),  # and so does molar -> mass
        ("mg/dL", "umol/L", None),
        ("kg", "mmol/L", None),
        ("kg", "mmol/L", GLUCOSE),  # a molar mass does not make mass into concentration
        ("Cel", "kg", None),
        ("mm[Hg]", "/min", None),
        ("{unknown}", "mmol/L", None),  # an annotation alone is not a unit
        ("{score}", "mmol/L", None),
        ("not a unit!", "kg", None),
        ("mmHg", "mm[Hg]", None),  # display spelling is not valid UCUM
        ("kg", "{unknown}", None),
    ],
)
def test_unconvertible_pairs_raise(conv, unit, canonical, molar_mass):
    with pytest.raises(UnitError):
        conv.convert(1.0, unit, canonical, molar_mass)
    # the refusal is cached, and still a refusal the second time
    with pytest.raises(UnitError):
        conv.converter(unit, canonical, molar_mass)


def test_unit_error_is_a_value_error():
    assert issubclass(UnitError, ValueError)


# --- which unit a FHIR Quantity is in -------------------------------------------------------


@pytest.mark.parametrize(
    ("q", "expected"),
    [
        ({"value": 1, "system": UCUM_SYSTEM, "code": "mg/dL", "unit": "mg/dl"}, "mg/dL"),
        # UCUM code wins over the human-readable unit
        ({"value": 1, "system": UCUM_SYSTEM, "code": "[lb_av]", "unit": "kg"}, "[lb_av]"),
        # no system: the code is read through the alias table, else taken as UCUM
        ({"value": 1, "code": "mmHg"}, "mm[Hg]"),
        ({"value": 1, "code": "mg/dL"}, "mg/dL"),
        ({"value": 1, "code": "10*9/L"}, "10*9/L"),
        # only a display unit: used only when it is an unambiguous alias
        ({"value": 1, "unit": "mmHg"}, "mm[Hg]"),
        ({"value": 1, "unit": "mm Hg"}, "mm[Hg]"),
        ({"value": 1, "unit": "bpm"}, "/min"),
        ({"value": 1, "unit": "°F"}, "[degF]"),
        ({"value": 1, "unit": "lbs"}, "[lb_av]"),
        ({"value": 1, "unit": "µmol/L"}, "umol/L"),
        ({"value": 1, "unit": "K/uL"}, "10*3/uL"),
        ({"value": 1, "unit": "milligrams per decilitre"}, None),
        # a non-UCUM system: the code only counts through the alias table
        ({"value": 1, "system": "urn:oid:1.2.3", "code": "MGDL", "unit": "mg per dl"}, None),
        ({"value": 1, "system": "urn:oid:1.2.3", "code": "mmHg"}, "mm[Hg]"),
        ({"value": 1, "system": "urn:oid:1.2.3", "code": "X", "unit": "bpm"}, "/min"),
        # nothing to go on
        ({"value": 1}, None),
        ({"value": 1, "code": ""}, None),
        ({"value": 1, "code": 42, "unit": 7}, None),
        ({"value": 1, "code": None, "unit": "kg"}, "kg"),
    ],
)
def test_quantity_unit(q, expected):
    assert quantity_unit(q) == expected


def test_every_alias_target_is_valid_ucum(conv):
    for alias, target in UNIT_ALIASES.items():
        assert conv.convert(2.0, target, target) == 2.0, alias
        conv._parse(target)  # raises UnitError when the alias table points at invalid UCUM


# --- the effect on features -----------------------------------------------------------------


def _lab_feature(fhir, name, codes, unit, molar_mass=None, **extra):
    feat = fhir.obs_feature(name, codes=[f"{fhir.LOINC}|{c}" for c in codes], unit=unit)
    feat["window"] = ["-PT12H", "PT0S"]
    if molar_mass is not None:
        feat["molar_mass"] = molar_mass
    feat.update(extra)
    return feat


@pytest.fixture(scope="module")
def lab_spec(make_spec, fhir):
    return make_spec(
        _lab_feature(fhir, "glucose", ["2345-7", "14749-6"], "mmol/L", GLUCOSE),
        _lab_feature(fhir, "glucose_no_mm", ["2345-7"], "mmol/L"),
        _lab_feature(fhir, "creatinine", ["2160-0"], "umol/L", CREATININE),
        _lab_feature(fhir, "lactate", ["2524-7"], "mmol/L", LACTATE),
        _lab_feature(fhir, "leukocytes", ["6690-2"], "10*9/L"),
        _lab_feature(fhir, "temperature", ["8310-5"], "Cel"),
        _lab_feature(fhir, "weight", ["29463-7"], "kg"),
        _lab_feature(fhir, "systolic", ["8480-6"], "mm[Hg]"),
        _lab_feature(fhir, "pain", ["72514-3"], "{score}"),
    )


def _one(fhir, spec, code, value, q_extra=None, **obs_extra):
    res = fhir.observation("o1", code, at="2024-03-10T09:00:00Z", **obs_extra)
    res["valueQuantity"] = {"value": value, **(q_extra or {})}
    return extract([res], INDEX, spec)


@pytest.mark.parametrize(
    ("feature", "code", "value", "q", "expected"),
    [
        ("glucose", "2345-7", 100, {"system": UCUM_SYSTEM, "code": "mg/dL"}, 5.550744909966918),
        ("glucose", "14749-6", 5.5, {"system": UCUM_SYSTEM, "code": "mmol/L"}, 5.5),
        ("creatinine", "2160-0", 1.2, {"system": UCUM_SYSTEM, "code": "mg/dL"}, 106.08203677),
        ("creatinine", "2160-0", 80, {"unit": "µmol/L"}, 80.0),
        ("lactate", "2524-7", 27.024, {"system": UCUM_SYSTEM, "code": "mg/dL"}, 3.0),
        ("leukocytes", "6690-2", 12.3, {"system": UCUM_SYSTEM, "code": "10*3/uL"}, 12.3),
        ("leukocytes", "6690-2", 12.3, {"unit": "x10^9/L"}, 12.3),
        ("temperature", "8310-5", 101.3, {"system": UCUM_SYSTEM, "code": "[degF]"}, 38.5),
        ("temperature", "8310-5", 38.5, {"unit": "°C"}, 38.5),
        ("weight", "29463-7", 176.0, {"system": UCUM_SYSTEM, "code": "[lb_av]"}, 79.83225712),
        ("weight", "29463-7", 176.0, {"unit": "lbs"}, 79.83225712),
        ("systolic", "8480-6", 130, {"unit": "mmHg"}, 130.0),
        ("systolic", "8480-6", 130, {"code": "mmHg"}, 130.0),
        ("pain", "72514-3", 4, {"system": UCUM_SYSTEM, "code": "{score}"}, 4.0),
        ("pain", "72514-3", 4, {}, 4.0),  # an annotation-only canonical unit accepts no unit
    ],
)
def test_feature_value_in_canonical_unit(lab_spec, fhir, feature, code, value, q, expected):
    out = _one(fhir, lab_spec, code, value, q)
    assert out.values[feature] == pytest.approx(expected, rel=1e-6)
    assert out.provenance[feature].unit == lab_spec.feature(feature).unit
    assert out.provenance[feature].sources[0].reference == "Observation/o1"
    assert out.provenance[feature].notes == ()


def test_us_and_dutch_glucose_give_the_same_feature(lab_spec, fhir):
    us = _one(fhir, lab_spec, "2345-7", 180.156, {"system": UCUM_SYSTEM, "code": "mg/dL"})
    nl = _one(fhir, lab_spec, "2345-7", 10.0, {"system": UCUM_SYSTEM, "code": "mmol/L"})
    assert us.values["glucose"] == pytest.approx(nl.values["glucose"]) == pytest.approx(10.0)


@pytest.mark.parametrize(
    ("feature", "code", "q", "warning"),
    [
        ("glucose", "2345-7", {}, "unit_missing_or_not_UCUM"),
        ("glucose", "2345-7", {"system": UCUM_SYSTEM, "code": "{unknown}"}, "unit_not_convertible"),
        ("glucose", "2345-7", {"system": UCUM_SYSTEM, "code": "mg/dl%%"}, "unit_not_convertible"),
        ("glucose", "2345-7", {"system": "urn:local", "code": "MGDL"}, "unit_missing_or_not_UCUM"),
        ("glucose", "2345-7", {"unit": "milligram per decilitre"}, "unit_missing_or_not_UCUM"),
        ("glucose", "2345-7", {"system": UCUM_SYSTEM, "code": "kg"}, "unit_not_convertible"),
        # mass -> molar without a declared molar mass: refused, never a guess
        (
            "glucose_no_mm",
            "2345-7",
            {"system": UCUM_SYSTEM, "code": "mg/dL"},
            "unit_not_convertible",
        ),
        (
            "creatinine",
            "2160-0",
            {"system": UCUM_SYSTEM, "code": "mmol/L/h"},
            "unit_not_convertible",
        ),
        ("temperature", "8310-5", {"unit": "degrees"}, "unit_missing_or_not_UCUM"),
        ("pain", "72514-3", {"system": UCUM_SYSTEM, "code": "{unknown}"}, "unit_not_convertible"),
    ],
)
def test_unconvertible_unit_makes_the_feature_missing_with_a_warning(
    lab_spec, fhir, feature, code, q, warning
):
    out = _one(fhir, lab_spec, code, 100, q)
    assert out.values[feature] is None
    prov = out.provenance[feature]
    assert prov.sources == ()
    assert prov.missing_reason == "no usable value in window"
    assert any(n.startswith("unit ") for n in prov.notes), prov.notes
    assert out.warnings[warning] >= 1


def test_unknown_unit_does_not_hide_a_good_value_from_another_resource(lab_spec, fhir):
    bad = fhir.observation("bad", "2345-7", at="2024-03-10T11:00:00Z")
    bad["valueQuantity"] = {"value": 99, "system": UCUM_SYSTEM, "code": "{unknown}"}
    good = fhir.observation("good", "2345-7", 6.1, "mmol/L", at="2024-03-10T08:00:00Z")
    out = extract([bad, good], INDEX, lab_spec)
    # the later value is unusable, so the last *usable* one is reported, and the warning stays
    assert out.values["glucose"] == pytest.approx(6.1)
    assert out.provenance["glucose"].sources[0].reference == "Observation/good"
    assert out.warnings["unit_not_convertible"] == 2  # glucose and glucose_no_mm both saw it


def test_unit_on_feature_without_canonical_unit_is_not_used(make_spec, fhir):
    spec = make_spec(
        fhir.obs_feature(
            "mode",
            codes=[f"{fhir.LOINC}|11459-5"],
            unit=None,
            value_map={f"{fhir.ARRIVAL}|ambulance": 1},
        )
    )
    res = fhir.observation("o", "11459-5", 3, "kg", at="2024-03-10T11:00:00Z")
    out = extract([res], INDEX, spec)
    assert out.values["mode"] is None
    assert out.warnings["feature_has_no_canonical_unit"] == 1


def test_ucum_system_with_common_display_code_is_read_through_the_alias_table(ed_spec) -> None:
    """EHRs often send system=UCUM with code "mmHg"; its one meaning is mm[Hg]."""
    from datetime import UTC, datetime

    from fhir_mappers import extract

    obs = {
        "resourceType": "Observation",
        "id": "o1",
        "status": "final",
        "code": {"coding": [{"system": "http://loinc.org", "code": "8480-6"}]},
        "effectiveDateTime": "2024-03-10T10:00:00Z",
        "valueQuantity": {"value": 121, "system": UCUM_SYSTEM, "code": "mmHg"},
    }
    out = extract([obs], datetime(2024, 3, 10, 10, 30, tzinfo=UTC), ed_spec)
    assert out.values["systolic_bp"] == 121

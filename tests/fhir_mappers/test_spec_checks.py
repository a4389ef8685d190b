"""Feature validation split into one check per part: the order of the checks (the first failure
is the one reported), the normalised values, and fhir_mappers' freedom from web and SQL imports.

The per-message rejections live in test_spec.py beside this file; these pin what the split changed.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from fhir_mappers import SpecError, spec_from_dict

ROOT = Path(__file__).resolve().parents[2]


def _feature(**overrides: Any) -> dict[str, Any]:
    raw: dict[str, Any] = {
        "name": "hr",
        "description": "heart rate",
        "source": "observation",
        "codes": ["http://loinc.org|8867-4"],
        "unit": "/min",
        "window": ["-PT6H", "PT0S"],
        "aggregation": "last",
    }
    raw.update(overrides)
    return {k: v for k, v in raw.items() if v is not None}


# Each case breaks two parts; the message must name the one checked first.
@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"units": "/min", "name": ""}, "unknown keys ['units']"),
        ({"name": "", "source": "medication"}, "'name' is required"),
        ({"source": "medication", "aggregation": "median"}, "source must be one of"),
        ({"aggregation": "median", "codes": ["8867-4"]}, "aggregation must be one of"),
        ({"codes": ["8867-4"], "window": "-PT6H"}, "codes must be a list"),
        ({"window": "-PT6H", "value_map": ["x"]}, "window must be two ISO 8601"),
        ({"value_map": ["x"], "codes": []}, "value_map maps"),
        ({"codes": [], "unit": None}, "observation features need codes"),
        ({"unit": None, "plausible": [2, 1]}, "needs a canonical 'unit'"),
        (
            {"source": "encounter", "attribute": "ward", "plausible": [2, 1]},
            "encounter attribute must be one of",
        ),
        ({"source": "condition", "plausible": [2, 1]}, "aggregate with count or days_since"),
        ({"plausible": [2, 1], "required": "yes"}, "plausible must be [low, high]"),
        ({"required": "yes", "molar_mass": 0}, "required must be true or false"),
        ({"molar_mass": 0}, "molar_mass must be a positive number"),
    ],
)
def test_the_first_failing_part_is_reported(
    spec_doc: Any, overrides: dict[str, Any], message: str
) -> None:
    with pytest.raises(SpecError) as err:
        spec_from_dict(spec_doc(_feature(**overrides)), "models/x/features.toml")
    assert message in str(err.value)
    assert str(err.value).startswith("models/x/features.toml feature #1")


def test_an_encounter_feature_needs_a_window_even_without_codes(spec_doc: Any) -> None:
    feature = _feature(source="encounter", codes=None, window=None, aggregation="count")
    with pytest.raises(SpecError, match=r"\(hr\): encounter features need a window"):
        spec_from_dict(spec_doc(feature))


def test_a_patient_feature_needs_neither_window_nor_codes(spec_doc: Any) -> None:
    feature = _feature(source="patient", attribute="age_years", codes=None, window=None)
    spec = spec_from_dict(spec_doc(feature))
    assert spec.features[0].attribute == "age_years"
    assert spec.features[0].window is None


def test_numbers_are_normalised_to_floats(spec_doc: Any) -> None:
    feature = _feature(
        plausible=[20, 300],
        molar_mass=180,
        value_map={"s|a": 1, "s|b": 0},
        required=True,
        display="Heart rate",
    )
    feat = spec_from_dict(spec_doc(feature)).features[0]
    assert feat.plausible == (20.0, 300.0)
    assert all(isinstance(x, float) for x in feat.plausible)
    assert feat.molar_mass == 180.0
    assert isinstance(feat.molar_mass, float)
    assert feat.value_map == {"s|a": 1.0, "s|b": 0.0}
    assert all(isinstance(v, float) for v in feat.value_map.values())
    assert feat.required is True
    assert feat.label == "Heart rate"


def test_optional_parts_default_to_absent(spec_doc: Any) -> None:
    feat = spec_from_dict(spec_doc(_feature())).features[0]
    assert feat.plausible is None
    assert feat.molar_mass is None
    assert feat.value_map == {}
    assert feat.required is False
    assert feat.label == "hr"


def test_an_encounter_attribute_with_a_value_map_is_accepted(spec_doc: Any) -> None:
    feature = _feature(
        source="encounter",
        codes=None,
        unit=None,
        attribute="priority",
        value_map={"http://terminology.hl7.org/CodeSystem/v3-ActPriority|EM": 1},
    )
    feat = spec_from_dict(spec_doc(feature)).features[0]
    assert feat.attribute == "priority"
    assert feat.codes == ()


def test_fhir_mappers_imports_no_web_or_sql_package() -> None:
    """Usable from a notebook on a bulk export: importing it must not pull in a server or a DB."""
    code = (
        "import sys, fhir_mappers, fhir_mappers.spec, fhir_mappers.bulk\n"
        "banned = {'fastapi', 'starlette', 'uvicorn', 'httpx', 'sqlalchemy', 'sqlmodel',"
        " 'alembic', 'psycopg', 'psycopg2', 'cds_service'}\n"
        "print(sorted({m.split('.')[0] for m in sys.modules} & banned))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"

"""A synthetic hospital's local lab codes: the site folder and the resources that use them."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from fhir_mappers.spec import load_spec
from tests.conftest import MODELS_DIR

LAB = "https://lab.example-hospital.nl/codes"
LOINC = "http://loinc.org"
LOCAL_GLUCOSE = "GLU-P"
# Every code of the bundled glucose value set (serum/plasma, blood, point of care): a lab that
# sends its own code sends it for all of them.
GLUCOSE_CODES = frozenset(
    load_spec(MODELS_DIR / "ed-admission" / "features.toml").feature("glucose").codes
)


def glucose_concept_map(
    equivalence: str = "equivalent", unit: str | None = "mmol/L", extra_target: str | None = None
) -> dict[str, Any]:
    """The docs' example: the lab's plasma glucose code is LOINC 2345-7."""
    target: dict[str, Any] = {"code": "2345-7", "equivalence": equivalence}
    if unit is not None:
        target["product"] = [
            {"property": "unit", "system": "http://unitsofmeasure.org", "value": unit}
        ]
    targets = [target]
    if extra_target:
        targets.append({"code": extra_target, "equivalence": "equivalent"})
    return {
        "resourceType": "ConceptMap",
        "id": "lab-to-loinc",
        "url": "https://lab.example-hospital.nl/fhir/ConceptMap/lab-to-loinc",
        "status": "active",
        "group": [
            {
                "source": LAB,
                "target": LOINC,
                "element": [{"code": LOCAL_GLUCOSE, "display": "Glucose (P)", "target": targets}],
            }
        ],
    }


def write_site(folder: Path, *resources: dict[str, Any]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for old in folder.glob("*.json"):
        old.unlink()
    for i, res in enumerate(resources):
        (folder / f"{i:02d}-{res['resourceType'].lower()}.json").write_text(
            json.dumps(res, indent=2), encoding="utf-8"
        )
    return folder


def localize_glucose(res: dict[str, Any]) -> dict[str, Any]:
    """The same Observation as the lab system sends it: its local code instead of LOINC."""
    coding = (res.get("code") or {}).get("coding") or []
    if res.get("resourceType") == "Observation" and any(
        f"{c.get('system')}|{c.get('code')}" in GLUCOSE_CODES for c in coding
    ):
        res = dict(res, code={"coding": [{"system": LAB, "code": LOCAL_GLUCOSE}]})
    return res


def localize_export(export: Path) -> Path:
    """Rewrite a Bulk export's Observation files in place as that lab sends them."""
    for path in export.glob("Observation*.ndjson"):
        lines = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
        path.write_text(
            "".join(json.dumps(localize_glucose(r)) + "\n" for r in lines), encoding="utf-8"
        )
    return export

"""The data-coverage profile of an export: coverage per feature, look-alike codes that are not
mapped, units that do not convert, and the positives a missing required input would drop."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from typer.testing import CliRunner

from cds_service.cli import app
from cds_service.cli.exit_codes import ExitCode
from cds_service.training.profile import candidates, profile_export, unit_report
from cds_service.training.profile_report import html_report, text_report
from tests.utils.exports import write_ed_export

LOINC = "http://loinc.org"
# A hospital's own lab code for blood glucose: LOINC 2339-0 is in the glucose value set now, so
# the look-alike the profiler must point at is a local code.
LOCAL_LAB = "https://lab.example.org/codes"


def _add(export: Path, rtype: str, *resources: dict[str, Any]) -> None:
    with (export / f"{rtype}.ndjson").open("a", encoding="utf-8") as out:
        for res in resources:
            out.write(json.dumps(res) + "\n")


def _export(tmp_path: Path, fhir: Any) -> Path:
    export = write_ed_export(tmp_path / "export", fhir)
    glucose_blood = {
        "resourceType": "Observation",
        "id": "g-blood",
        "status": "final",
        "code": {
            "coding": [
                {"system": LOCAL_LAB, "code": "GLU-B", "display": "Glucose in blood (local)"}
            ]
        },
        "subject": {"reference": "Patient/p1"},
        "effectiveDateTime": "2024-02-01T10:20:00Z",
        "valueQuantity": {
            "value": 140,
            "unit": "mg/dL",
            "system": "http://unitsofmeasure.org",
            "code": "mg/dL",
        },
    }
    odd_unit = fhir.observation(
        "hr-odd", "8867-4", 80, "m", at="2024-02-03T08:10:00Z", patient="p2"
    )
    _add(export, "Observation", glucose_blood, odd_unit)
    return export


def test_coverage_lookalikes_units_and_dropped_positives(
    tmp_path: Path, fhir: Any, ed_spec: Any
) -> None:
    profile = profile_export(_export(tmp_path, fhir), ed_spec, "ed-admission")
    assert profile.events == 4  # e1, e4, e2 and p3's e3
    assert profile.positives == 2  # e1 and e3 were followed by an admission
    assert profile.missing_required_rows == 1 and profile.missing_required_positives == 1
    assert profile.coverage("age") == 1.0
    assert profile.coverage("heart_rate") == 0.75  # p3 has no heart rate
    assert profile.coverage("glucose") == 0.0  # the local code is not in the value set
    glucose = next(f for f in ed_spec.features if f.name == "glucose")
    assert [key for key, _ in candidates(profile, glucose)] == [f"{LOCAL_LAB}|GLU-B"]
    heart_rate = next(f for f in ed_spec.features if f.name == "heart_rate")
    assert ("m", 1, False) in unit_report(profile, heart_rate)  # metres never become /min
    assert all(ok for unit, _, ok in unit_report(profile, heart_rate) if unit != "m")
    lines = text_report(profile, ed_spec)
    assert "missing a required input: 1 events, 1 positive (50.0% of all positives)" in lines
    assert any(f"not mapped: {LOCAL_LAB}|GLU-B x1" in line for line in lines)
    page = html_report(profile, ed_spec)
    assert "Glucose in blood (local)" in page and "<script" not in page


def test_another_features_code_is_no_lookalike_and_counts_report_no_unit(
    tmp_path: Path, fhir: Any, ed_spec: Any
) -> None:
    """Diastolic pressure shares words with systolic but is read by its own feature: pointing at
    it would send the integrator mapping it twice. A count reads no unit, so none can fail."""
    export = write_ed_export(tmp_path / "export", fhir)
    local_sbp = fhir.observation("sbp-l", "8480-6", 120, "mm[Hg]", at="2024-02-03T08:12:00Z")
    local_sbp["code"] = {
        "coding": [{"system": LOCAL_LAB, "code": "SBP", "display": "Systolic pressure (local)"}]
    }
    _add(export, "Observation", local_sbp)
    profile = profile_export(export, ed_spec, "ed-admission")
    systolic = ed_spec.feature("systolic_bp")
    keys = [key for key, _ in candidates(profile, systolic, ed_spec)]
    assert f"{LOCAL_LAB}|SBP" in keys
    assert not any(key in ed_spec.feature("diastolic_bp").codes for key in keys)
    assert unit_report(profile, ed_spec.feature("prior_admissions_365d")) == []


def test_the_cli_prints_and_writes_the_report(tmp_path: Path, fhir: Any) -> None:
    export = _export(tmp_path, fhir)
    out = tmp_path / "report.html"
    result = CliRunner().invoke(
        app,
        ["profile", "ed-admission", "--export", str(export), "--out", str(out), "--no-progress"],
    )
    assert result.exit_code == 0, result.output
    assert "heart_rate" in result.output and f"report: {out}" in result.output
    assert out.read_text().startswith("<!doctype html>")
    missing = CliRunner().invoke(
        app, ["profile", "ed-admission", "--export", str(tmp_path / "nowhere"), "--no-progress"]
    )
    assert missing.exit_code == ExitCode.BAD_INPUT

"""FHIR R4 resources -> normalized facts -> features with provenance (``fhir_mappers.extract``).

All data here is hand-made and synthetic. Expected numbers are worked out by hand in comments.
"""

from __future__ import annotations

import copy
import json
import math
from datetime import UTC, date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fhir_mappers import Extraction, extract, flatten, next_link, normalize, patient_id_of
from fhir_mappers.extract import aggregate
from fhir_mappers.resources import MAX_BUNDLE_DEPTH, iter_resources, outcome_messages
from fhir_mappers.timeutil import ensure_utc, parse_fhir_datetime

GOLDEN = Path(__file__).resolve().parents[1] / "data" / "mappers"
INDEX = datetime(2024, 3, 10, 12, 0, tzinfo=UTC)
CET = timezone(timedelta(hours=1))
NZDT = timezone(timedelta(hours=13))
LOCAL_CODE = "urn:oid:2.16.840.1.113883.2.4.3.11.60.40.2.12.19"


def _at(hours: float = 0.0, *, days: float = 0.0) -> str:
    """An instant relative to INDEX (negative = before), as FHIR text in UTC."""
    moment = INDEX + timedelta(hours=hours, days=days)
    return moment.isoformat().replace("+00:00", "Z")


def _sources(out: Extraction, name: str) -> list[tuple[str, str]]:
    return [(s.reference, s.time) for s in out.provenance[name].sources]


@pytest.fixture(scope="module")
def hr_spec(make_spec, fhir):
    """One heart-rate feature per aggregation over a 7-day window, plus a 6-hour 'last'."""
    week = ["-P7D", "PT0S"]
    codes = [f"{fhir.LOINC}|8867-4", f"{LOCAL_CODE}|HR"]
    feats = [
        fhir.obs_feature(f"hr_{agg}", codes=codes, window=week, aggregation=agg)
        for agg in (
            "last",
            "first",
            "min",
            "max",
            "mean",
            "count",
            "slope_per_day",
            "change",
            "days_since",
        )
    ]
    feats.append(fhir.obs_feature("hr_6h", codes=codes, plausible=[20, 300], required=True))
    return make_spec(*feats)


def _hr(fhir, rid, value, at, **extra):
    return fhir.observation(rid, "8867-4", value, "/min", at=at, **extra)


# --- FHIR vital-signs profile shapes ---------------------------------------------------------


def test_blood_pressure_panel_components(ed_spec, fhir):
    out = extract([fhir.bp_panel("bp1", 128, 82, at=_at(-1))], INDEX, ed_spec)
    assert out.values["systolic_bp"] == 128.0
    assert out.values["diastolic_bp"] == 82.0
    assert _sources(out, "systolic_bp") == [("Observation/bp1", "2024-03-10T11:00:00Z")]
    assert _sources(out, "diastolic_bp") == [("Observation/bp1", "2024-03-10T11:00:00Z")]
    assert out.provenance["systolic_bp"].unit == "mm[Hg]"
    assert sum(out.warnings.values()) == 0


def test_standalone_blood_pressure_observations(ed_spec, fhir):
    sys_obs = fhir.observation("s", "8480-6", 141, "mm[Hg]", at=_at(-2))
    dia_obs = fhir.observation("d", "8462-4", 91, "mm[Hg]", at=_at(-2))
    out = extract([sys_obs, dia_obs], INDEX, ed_spec)
    assert (out.values["systolic_bp"], out.values["diastolic_bp"]) == (141.0, 91.0)
    assert _sources(out, "systolic_bp") == [("Observation/s", "2024-03-10T10:00:00Z")]


def test_panel_and_standalone_mix_uses_the_latest(ed_spec, fhir):
    resources = [
        fhir.bp_panel("panel", 150, 95, at=_at(-3)),
        fhir.observation("s", "8480-6", at=_at(-1), valueQuantity={"value": 135, "unit": "mmHg"}),
    ]
    out = extract(resources, INDEX, ed_spec)
    assert out.values["systolic_bp"] == 135.0
    assert out.values["diastolic_bp"] == 95.0


def test_panel_component_with_data_absent_reason(ed_spec, fhir):
    out = extract([fhir.bp_panel("bp1", 128, None, at=_at(-1))], INDEX, ed_spec)
    assert out.values["systolic_bp"] == 128.0
    assert out.values["diastolic_bp"] is None
    prov = out.provenance["diastolic_bp"]
    assert prov.missing_reason == "no usable value in window"
    assert prov.notes == ("data absent x1",)
    assert out.warnings["data_absent"] == 1


def test_blood_pressure_panel_components_in_the_post_mi_spec(mi_spec, fhir):
    panels = [
        fhir.bp_panel("bp1", 120, 80, at=_at(days=-2.5)),
        fhir.bp_panel("bp2", 130, 70, at=_at(days=-1)),
        fhir.bp_panel("bp0", 150, 90, at=_at(days=-5)),
    ]
    out = extract(panels, INDEX, mi_spec)
    assert out.values["systolic_bp_mean_3d"] == pytest.approx(125.0)  # 3-day window: bp1, bp2
    assert out.values["diastolic_bp_mean_3d"] == pytest.approx(75.0)
    assert out.values["systolic_bp_change_7d"] == pytest.approx(130.0 - 150.0)
    assert _sources(out, "systolic_bp_change_7d") == [
        ("Observation/bp0", "2024-03-05T12:00:00Z"),
        ("Observation/bp2", "2024-03-09T12:00:00Z"),
    ]


@pytest.mark.parametrize(
    "codings",
    [
        [("http://loinc.org", "8867-4"), (LOCAL_CODE, "HR")],
        [(LOCAL_CODE, "HR"), ("http://loinc.org", "8867-4")],
        [(LOCAL_CODE, "HR")],
        [("http://loinc.org", "8867-4")],
        [("urn:other", "pulse"), ("http://loinc.org", "8867-4"), (LOCAL_CODE, "HR")],
    ],
)
def test_several_codings_per_concept_count_once(hr_spec, fhir, codings):
    res = fhir.observation("o1", codings, 77, "/min", at=_at(-1))
    out = extract([res], INDEX, hr_spec)
    assert out.values["hr_count"] == 1.0
    assert out.values["hr_mean"] == 77.0
    assert out.values["hr_6h"] == 77.0
    assert _sources(out, "hr_count") == [("Observation/o1", "2024-03-10T11:00:00Z")]


def test_pulse_oximetry_with_both_codes_counts_once(mi_spec, ed_spec, fhir):
    # the vital-signs profile's oxygen saturation carries 2708-6 next to 59408-5
    codings = [("http://loinc.org", "59408-5"), ("http://loinc.org", "2708-6")]
    res = fhir.observation("sat", codings, 93, "%", at=_at(-2))
    assert extract([res], INDEX, ed_spec).values["spo2"] == 93.0
    mi = extract([res], INDEX, mi_spec)
    assert mi.values["spo2_min_3d"] == 93.0
    assert _sources(mi, "spo2_min_3d") == [("Observation/sat", "2024-03-10T10:00:00Z")]


def test_one_weight_feeds_every_weight_feature_once(mi_spec, fhir):
    res = fhir.observation(
        "w", [("http://loinc.org", "29463-7"), ("http://loinc.org", "3141-9")], 82.4, "kg"
    )
    res["effectiveDateTime"] = _at(days=-1)
    out = extract([res], INDEX, mi_spec)
    assert out.values["weight_last"] == 82.4
    assert out.values["measurements_7d"] == 1.0
    assert out.values["weight_change_7d"] is None
    assert out.provenance["weight_change_7d"].missing_reason == (
        "needs at least two values in window"
    )


def test_duplicated_component_in_one_panel_is_not_double_counted(mi_spec, ed_spec, fhir):
    panel = fhir.bp_panel("bp", 120, 80, at=_at(-1))
    panel["component"].append(copy.deepcopy(panel["component"][0]))
    panel["component"][-1]["valueQuantity"]["value"] = 140
    mi = extract([panel], INDEX, mi_spec)
    ed = extract([panel], INDEX, ed_spec)
    # one resource is one measurement: the first matching component, whatever the spec
    assert ed.values["systolic_bp"] == 120.0
    assert mi.values["systolic_bp_mean_3d"] == 120.0
    assert len(mi.provenance["systolic_bp_mean_3d"].sources) == 1


@pytest.mark.parametrize(
    ("comparator", "expected"),
    [("<", 5.0), ("<=", 5.0), (">", 5.0), (">=", 5.0), ("ad", 5.0)],
)
def test_value_with_comparator_uses_the_limit_and_warns(ed_spec, fhir, comparator, expected):
    res = fhir.observation("crp", "1988-5", 5, "mg/L", at=_at(-1))
    res["valueQuantity"]["comparator"] = comparator
    out = extract([res], INDEX, ed_spec)
    assert out.values["crp"] == expected
    assert out.warnings["value_with_comparator"] == 1
    assert out.provenance["crp"].notes == ("value with comparator: limit used x1",)


def test_unknown_comparator_makes_the_value_missing(ed_spec, fhir):
    res = fhir.observation("crp", "1988-5", 5, "mg/L", at=_at(-1))
    res["valueQuantity"]["comparator"] = "~"
    out = extract([res], INDEX, ed_spec)
    assert out.values["crp"] is None
    assert out.warnings["malformed_comparator"] == 1


def test_value_integer_for_a_score(mi_spec, fhir):
    resources = []
    for rid, score, day in (("s1", 3, -2.0), ("s2", 6, -1.0), ("s3", 8, -4.0)):
        res = fhir.observation(rid, (fhir.SYMPTOMS, "dyspnea-score"), at=_at(days=day))
        res["valueInteger"] = score
        resources.append(res)
    out = extract(resources, INDEX, mi_spec)
    assert out.values["dyspnea_score_max_3d"] == 6.0  # s3 is outside the 3-day window
    assert _sources(out, "dyspnea_score_max_3d") == [("Observation/s2", "2024-03-09T12:00:00Z")]


def test_value_integer_for_a_feature_with_a_physical_unit_is_refused(ed_spec, fhir):
    res = fhir.observation("hr", "8867-4", at=_at(-1))
    res["valueInteger"] = 72
    out = extract([res], INDEX, ed_spec)
    assert out.values["heart_rate"] is None
    assert out.warnings["integer_without_unit"] == 1


@pytest.mark.parametrize(
    ("code", "expected"),
    [("ambulance", 1.0), ("helicopter", 1.0), ("self", 0.0), ("referral", 0.0)],
)
def test_value_codeable_concept_through_the_value_map(ed_spec, fhir, code, expected):
    res = fhir.observation("arr", "11459-5", at=_at(-1))
    res["valueCodeableConcept"] = fhir.concept(("urn:local", "x"), (fhir.ARRIVAL, code))
    out = extract([res], INDEX, ed_spec)
    assert out.values["arrival_ambulance"] == expected
    assert out.provenance["arrival_ambulance"].unit is None


def test_value_codeable_concept_not_in_the_value_map(ed_spec, fhir):
    res = fhir.observation("arr", "11459-5", at=_at(-1))
    res["valueCodeableConcept"] = fhir.concept((fhir.ARRIVAL, "on-foot"))
    out = extract([res], INDEX, ed_spec)
    assert out.values["arrival_ambulance"] is None
    assert out.warnings["coded_value_not_in_value_map"] == 1


def test_coded_value_for_a_numeric_feature_is_refused(ed_spec, fhir):
    res = fhir.observation("hr", "8867-4", at=_at(-1))
    res["valueCodeableConcept"] = fhir.concept((fhir.SNOMED, "260385009"), text="Negative")
    out = extract([res], INDEX, ed_spec)
    assert out.values["heart_rate"] is None
    assert out.warnings["coded_value_for_a_numeric_feature"] == 1


def test_data_absent_reason_on_the_observation(ed_spec, fhir):
    res = fhir.observation("rr", "9279-1", at=_at(-1))
    res["dataAbsentReason"] = fhir.concept((fhir.DATA_ABSENT, "asked-declined"))
    out = extract([res], INDEX, ed_spec)
    assert out.values["resp_rate"] is None
    assert out.provenance["resp_rate"].missing_reason == "no usable value in window"
    assert out.provenance["resp_rate"].notes == ("data absent x1",)
    assert out.warnings["data_absent"] == 1


def test_data_absent_measurement_is_not_counted(mi_spec, fhir):
    present = fhir.observation("w1", "29463-7", 80, "kg", at=_at(days=-2))
    absent = fhir.observation("w2", "29463-7", at=_at(days=-1))
    absent["dataAbsentReason"] = fhir.concept((fhir.DATA_ABSENT, "not-performed"))
    out = extract([present, absent], INDEX, mi_spec)
    assert out.values["measurements_7d"] == 1.0
    assert out.values["weight_last"] == 80.0


def test_observation_without_any_value(ed_spec, fhir):
    out = extract([fhir.observation("hr", "8867-4", at=_at(-1))], INDEX, ed_spec)
    assert out.values["heart_rate"] is None
    assert out.warnings["no_value"] == 1


def test_encounter_priority_attribute(ed_spec, fhir):
    ed = fhir.encounter("ed1", "EMER", _at(-1), status="in-progress", priority="EM")
    out = extract([ed], INDEX, ed_spec)
    assert out.values["triage_urgency"] == 3.0
    assert _sources(out, "triage_urgency") == [("Encounter/ed1", "2024-03-10T11:00:00Z")]
    no_priority = fhir.encounter("ed2", "EMER", _at(-1), status="in-progress")
    out = extract([no_priority], INDEX, ed_spec)
    assert out.values["triage_urgency"] is None
    assert sum(out.warnings.values()) == 0  # not recorded is missing, not a mapping failure
    unmapped = fhir.encounter("ed3", "EMER", _at(-1), status="in-progress", priority="XX")
    out = extract([unmapped], INDEX, ed_spec)
    assert out.values["triage_urgency"] is None
    assert out.warnings["code_not_in_value_map"] == 1


# --- statuses -------------------------------------------------------------------------------


@pytest.mark.parametrize("status", ["final", "amended", "corrected", "preliminary"])
def test_counted_observation_statuses(ed_spec, fhir, status):
    res = fhir.observation("hr", "8867-4", 88, "/min", at=_at(-1), status=status)
    out = extract([res], INDEX, ed_spec)
    assert out.values["heart_rate"] == 88.0
    assert out.warnings["status_not_counted"] == 0


@pytest.mark.parametrize(
    "status", ["entered-in-error", "cancelled", "registered", "unknown", "FINAL", None, 7]
)
def test_observation_statuses_that_must_not_count(ed_spec, fhir, status):
    res = fhir.observation("hr", "8867-4", 88, "/min", at=_at(-1))
    res["status"] = status
    out = extract([res], INDEX, ed_spec)
    assert out.values["heart_rate"] is None
    assert out.warnings["status_not_counted"] == 1
    assert out.provenance["heart_rate"].notes == (f"status {status} not counted x1",)
    assert out.provenance["heart_rate"].missing_reason == "no usable value in window"


def test_entered_in_error_does_not_hide_an_earlier_valid_value(ed_spec, fhir):
    resources = [
        fhir.observation("good", "8867-4", 90, "/min", at=_at(-3)),
        fhir.observation("oops", "8867-4", 190, "/min", at=_at(-1), status="entered-in-error"),
    ]
    out = extract(resources, INDEX, ed_spec)
    assert out.values["heart_rate"] == 90.0
    assert _sources(out, "heart_rate") == [("Observation/good", "2024-03-10T09:00:00Z")]


def test_status_also_filters_panel_components(ed_spec, fhir):
    out = extract([fhir.bp_panel("bp", 120, 80, at=_at(-1), status="cancelled")], INDEX, ed_spec)
    assert out.values["systolic_bp"] is None
    assert out.values["diastolic_bp"] is None
    assert out.warnings["status_not_counted"] == 1


@pytest.mark.parametrize(
    ("status", "counted"),
    [
        ("finished", True),
        ("in-progress", True),
        ("arrived", True),
        ("triaged", True),
        ("onleave", True),
        ("cancelled", False),
        ("entered-in-error", False),
        ("planned", False),
        ("unknown", False),
    ],
)
def test_encounter_statuses(ed_spec, fhir, status, counted):
    admissions = [
        fhir.encounter("a1", "IMP", _at(days=-100), status="finished"),
        fhir.encounter("a2", "IMP", _at(days=-30), status=status),
    ]
    out = extract(admissions, INDEX, ed_spec)
    assert out.values["prior_admissions_365d"] == (2.0 if counted else 1.0)
    assert out.warnings["status_not_counted"] == (0 if counted else 1)


@pytest.mark.parametrize(
    ("verification", "counted"),
    [
        ("confirmed", True),
        ("provisional", True),
        ("unconfirmed", True),
        (None, True),
        ("refuted", False),
        ("entered-in-error", False),
    ],
)
def test_condition_verification_status(mi_spec, fhir, verification, counted):
    mi = fhir.condition("mi", onset=_at(days=-20), verification=verification)
    out = extract([mi], INDEX, mi_spec)
    if counted:
        assert out.values["days_since_mi"] == pytest.approx(20.0)
        assert _sources(out, "days_since_mi") == [("Condition/mi", "2024-02-19T12:00:00Z")]
    else:
        assert out.values["days_since_mi"] is None
        assert out.warnings["status_not_counted"] == 1
        assert out.provenance["days_since_mi"].notes == (
            "condition refuted or entered in error x1",
        )


def test_refuted_condition_does_not_hide_a_confirmed_one(mi_spec, fhir):
    resources = [
        fhir.condition("old", onset=_at(days=-40)),
        fhir.condition("new", onset=_at(days=-10), verification="refuted"),
    ]
    assert extract(resources, INDEX, mi_spec).values["days_since_mi"] == pytest.approx(40.0)


def test_condition_onset_fallbacks(mi_spec, fhir):
    by_period = fhir.condition("a", onset=None, onsetPeriod={"start": _at(days=-12)})
    assert extract([by_period], INDEX, mi_spec).values["days_since_mi"] == pytest.approx(12.0)
    recorded = fhir.condition("b", onset=None, recordedDate=_at(days=-9))
    assert extract([recorded], INDEX, mi_spec).values["days_since_mi"] == pytest.approx(9.0)
    icd = fhir.condition("c", ("http://hl7.org/fhir/sid/icd-10", "I21.9"), _at(days=-5))
    assert extract([icd], INDEX, mi_spec).values["days_since_mi"] == pytest.approx(5.0)


# --- time -----------------------------------------------------------------------------------


def test_offsets_are_compared_as_instants(ed_spec, fhir):
    # 11:30+01:00 is 10:30Z, earlier than 10:45Z although its wall-clock text is later
    resources = [
        _hr(fhir, "cet", 100, "2024-03-10T11:30:00+01:00"),
        _hr(fhir, "utc", 80, "2024-03-10T10:45:00Z"),
    ]
    out = extract(resources, INDEX, ed_spec)
    assert out.values["heart_rate"] == 80.0
    assert _sources(out, "heart_rate") == [("Observation/utc", "2024-03-10T10:45:00Z")]
    later = [
        _hr(fhir, "cet", 100, "2024-03-10T11:50:00+01:00"),  # 10:50Z
        _hr(fhir, "utc", 80, "2024-03-10T10:45:00Z"),
    ]
    out = extract(later, INDEX, ed_spec)
    assert out.values["heart_rate"] == 100.0
    assert _sources(out, "heart_rate") == [("Observation/cet", "2024-03-10T10:50:00Z")]


@pytest.mark.parametrize(
    ("text", "inside"),
    [
        ("2024-03-10T12:30:00+01:00", True),  # 11:30Z
        ("2024-03-10T13:00:00+01:00", True),  # 12:00Z, exactly the index time
        ("2024-03-10T13:00:01+01:00", False),  # after the index
        ("2024-03-10T07:00:00+01:00", False),  # 06:00Z, the excluded window start
        ("2024-03-10T07:00:01+01:00", True),
        ("2024-03-10T01:00:00-05:00", False),  # 06:00Z again, from the other side
        ("2024-03-10T01:00:01-05:00", True),
        ("2024-03-11T00:59:00+13:00", True),  # 11:59Z
    ],
)
def test_window_membership_with_offsets(ed_spec, fhir, text, inside):
    out = extract([_hr(fhir, "o", 70, text)], INDEX, ed_spec)
    assert (out.values["heart_rate"] == 70.0) is inside


def test_effective_period_end_is_preferred(ed_spec, fhir):
    res = fhir.observation("hr", "8867-4", 75, "/min", at=None)
    res["effectivePeriod"] = {"start": _at(-7), "end": _at(-5)}  # starts before the window
    out = extract([res], INDEX, ed_spec)
    assert out.values["heart_rate"] == 75.0
    assert out.provenance["heart_rate"].time == "2024-03-10T07:00:00Z"
    only_start = fhir.observation("hr2", "8867-4", 76, "/min", at=None)
    only_start["effectivePeriod"] = {"start": _at(-2)}
    out = extract([only_start], INDEX, ed_spec)
    assert out.provenance["heart_rate"].time == "2024-03-10T10:00:00Z"


def test_effective_period_ending_after_the_index_is_not_used(ed_spec, fhir):
    res = fhir.observation("hr", "8867-4", 75, "/min", at=None)
    res["effectivePeriod"] = {"start": _at(-2), "end": _at(2)}
    out = extract([res], INDEX, ed_spec)
    assert out.values["heart_rate"] is None
    assert out.provenance["heart_rate"].missing_reason == "no value in window"


def test_issued_is_a_fallback_with_a_warning(ed_spec, fhir):
    res = fhir.observation("hr", "8867-4", 81, "/min", at=None, issued=_at(-2))
    out = extract([res], INDEX, ed_spec)
    assert out.values["heart_rate"] == 81.0
    assert out.provenance["heart_rate"].time == "2024-03-10T10:00:00Z"
    assert out.warnings["time_from_issued"] == 1
    # effective[x] wins over issued
    both = fhir.observation("hr", "8867-4", 81, "/min", at=_at(-3), issued=_at(-1))
    out = extract([both], INDEX, ed_spec)
    assert out.provenance["heart_rate"].time == "2024-03-10T09:00:00Z"
    assert out.warnings["time_from_issued"] == 0


def test_naive_timestamp_is_read_as_utc_with_a_warning(ed_spec, fhir):
    out = extract([_hr(fhir, "o", 70, "2024-03-10T09:00:00")], INDEX, ed_spec)
    assert out.values["heart_rate"] == 70.0
    assert out.provenance["heart_rate"].time == "2024-03-10T09:00:00Z"
    assert out.warnings["timestamp_without_offset"] == 1


def test_date_only_values(mi_spec, fhir):
    weights = [
        fhir.observation("w1", "29463-7", 80.0, "kg", at="2024-03-05"),
        fhir.observation("w2", "29463-7", 81.5, "kg", at="2024-03-09"),
    ]
    out = extract(weights, INDEX, mi_spec)
    assert out.values["weight_change_7d"] == pytest.approx(1.5)
    assert [t for _, t in _sources(out, "weight_change_7d")] == [
        "2024-03-05T00:00:00Z",
        "2024-03-09T00:00:00Z",
    ]
    assert out.warnings["timestamp_without_offset"] == 0


@pytest.mark.parametrize("text", ["yesterday", "2024-13-01T00:00:00Z", "", "10/03/2024"])
def test_unparseable_time_makes_the_value_missing(ed_spec, fhir, text):
    res = _hr(fhir, "o", 70, text, issued=_at(-1))
    out = extract([res], INDEX, ed_spec)
    assert out.values["heart_rate"] is None
    assert out.warnings["no_usable_time"] == 1
    assert out.provenance["heart_rate"].notes == ("no usable time x1",)


def test_observation_without_any_time(ed_spec, fhir):
    out = extract([_hr(fhir, "o", 70, None)], INDEX, ed_spec)
    assert out.values["heart_rate"] is None
    assert out.warnings["no_usable_time"] == 1


def test_index_time_must_be_timezone_aware(ed_spec, fhir):
    with pytest.raises(ValueError, match="timezone-aware"):
        extract([], datetime(2024, 3, 10, 12, 0), ed_spec)
    with pytest.raises(ValueError, match="timezone-aware"):
        ensure_utc(datetime(2024, 3, 10, 12, 0))


def test_non_utc_index_time_is_the_same_instant(ed_spec, fhir):
    resources = [
        _hr(fhir, "a", 70, "2024-03-10T06:30:00Z"),
        _hr(fhir, "b", 75, "2024-03-10T11:59:00Z"),
        _hr(fhir, "c", 99, "2024-03-10T12:01:00Z"),
        fhir.patient(birth_date="1980-03-10"),
    ]
    local = datetime(2024, 3, 10, 13, 0, tzinfo=CET)
    far = datetime(2024, 3, 11, 1, 0, tzinfo=NZDT)
    utc = extract(resources, INDEX, ed_spec)
    for index in (local, far):
        out = extract(resources, index, ed_spec)
        assert out.index_time == INDEX
        assert out.index_time.utcoffset() == timedelta(0)
        assert out.values == utc.values
        assert out.provenance == utc.provenance
    assert utc.values["heart_rate"] == 75.0
    assert utc.values["age"] == 44.0


@pytest.mark.parametrize(
    ("text", "expected", "naive"),
    [
        ("2024", datetime(2024, 1, 1, tzinfo=UTC), False),
        ("2024-03", datetime(2024, 3, 1, tzinfo=UTC), False),
        ("2024-03-10", datetime(2024, 3, 10, tzinfo=UTC), False),
        ("2024-03-10T10:00:00Z", datetime(2024, 3, 10, 10, tzinfo=UTC), False),
        ("2024-03-10T10:00:00.123+00:00", datetime(2024, 3, 10, 10, 0, 0, 123000, UTC), False),
        ("2024-03-10T11:00:00+01:00", datetime(2024, 3, 10, 10, tzinfo=UTC), False),
        ("2024-03-10T00:30:00-05:00", datetime(2024, 3, 10, 5, 30, tzinfo=UTC), False),
        ("2024-03-10T10:00:00", datetime(2024, 3, 10, 10, tzinfo=UTC), True),
    ],
)
def test_parse_fhir_datetime(text, expected, naive):
    parsed = parse_fhir_datetime(text)
    assert parsed is not None
    assert parsed.value == expected
    assert parsed.value.tzinfo is not None
    assert parsed.naive is naive


@pytest.mark.parametrize(
    "text",
    [
        None,
        20240310,
        "",
        "abcd",
        "2024-13",
        "2024-02-30",
        "2024-03-10T25:00:00Z",
        "not a date",
        ["2024"],
        "0001-01-01T00:00:00+01:00",  # before the first representable UTC instant
        "9999-12-31T23:00:00-05:00",  # after the last one
    ],
)
def test_parse_fhir_datetime_rejects(text):
    assert parse_fhir_datetime(text) is None


# --- windows --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("hours", "inside"),
    [(-6.0, False), (-6.0 + 1 / 3600, True), (-3.0, True), (0.0, True), (1 / 3600, False)],
)
def test_window_is_half_open(ed_spec, fhir, hours, inside):
    out = extract([_hr(fhir, "o", 70, _at(hours))], INDEX, ed_spec)
    assert (out.values["heart_rate"] is not None) is inside


def test_stale_value_before_the_window(ed_spec, fhir):
    out = extract([_hr(fhir, "old", 70, _at(-6)), _hr(fhir, "older", 60, _at(-30))], INDEX, ed_spec)
    assert out.values["heart_rate"] is None
    prov = out.provenance["heart_rate"]
    assert prov.missing_reason == "stale: last value 2024-03-10T06:00:00Z, before the window"
    assert prov.sources == ()
    assert out.missing_required(ed_spec) == ["age", "heart_rate", "systolic_bp"]


def test_value_only_after_the_index_is_not_stale(ed_spec, fhir):
    out = extract([_hr(fhir, "future", 70, _at(2))], INDEX, ed_spec)
    assert out.provenance["heart_rate"].missing_reason == "no value in window"


def test_no_data_at_all(ed_spec):
    out = extract([], INDEX, ed_spec)
    assert out.provenance["heart_rate"].missing_reason == "no value in window"
    assert out.provenance["age"].missing_reason == "patient age_years unknown"
    assert out.values["prior_admissions_365d"] == 0.0
    assert out.provenance["prior_admissions_365d"].missing_reason is None
    assert sum(out.warnings.values()) == 0


def test_window_excludes_the_current_day_for_prior_counts(ed_spec, fhir):
    encounters = [
        fhir.encounter("now", "EMER", _at(-1), status="in-progress"),  # the current visit
        fhir.encounter("e1", "EMER", _at(-24)),  # exactly 24 h before: inside (-365d, -24h]
        fhir.encounter("e2", "EMER", _at(-23)),  # inside the last 24 h: excluded
        fhir.encounter("e3", "EMER", _at(days=-365)),  # the excluded window start
        fhir.encounter("e4", "EMER", _at(days=-364)),
        fhir.encounter("i1", "IMP", _at(days=-200)),
        fhir.encounter("i2", "ACUTE", _at(days=-50)),
        fhir.encounter("amb", "AMB", _at(days=-10)),
    ]
    out = extract(encounters, INDEX, ed_spec)
    assert out.values["prior_ed_visits_365d"] == 2.0
    assert [r for r, _ in _sources(out, "prior_ed_visits_365d")] == ["Encounter/e4", "Encounter/e1"]
    assert out.values["prior_admissions_365d"] == 2.0
    assert out.values["triage_urgency"] is None  # no priority on these encounters


def test_encounter_without_start_is_not_counted(ed_spec, fhir):
    out = extract([fhir.encounter("i", "IMP", None, end=_at(days=-3))], INDEX, ed_spec)
    assert out.values["prior_admissions_365d"] == 0.0
    assert out.warnings["no_usable_time"] == 1


def test_encounter_type_codes_also_match(make_spec, fhir):
    spec = make_spec(
        {
            "name": "cardiology_visits",
            "description": "d",
            "source": "encounter",
            "codes": ["http://snomed.info/sct|183519002"],
            "window": ["-P30D", "PT0S"],
            "aggregation": "count",
        }
    )
    enc = fhir.encounter("c", "AMB", _at(days=-3))
    enc["type"] = [fhir.concept((fhir.SNOMED, "183519002"))]
    r5_style = fhir.encounter("d", "AMB", _at(days=-2))
    r5_style["class"] = [fhir.concept((fhir.SNOMED, "183519002"))]
    assert extract([enc, r5_style], INDEX, spec).values["cardiology_visits"] == 2.0


# --- every aggregation ----------------------------------------------------------------------

# heart rate at days -6, -4, -2, -1 before the index: 70, 80, 75, 90
SERIES = [("d6", 70, -6), ("d4", 80, -4), ("d2", 75, -2), ("d1", 90, -1)]


@pytest.fixture
def series(fhir):
    return [_hr(fhir, rid, value, _at(days=day)) for rid, value, day in SERIES]


@pytest.mark.parametrize(
    ("feature", "expected", "refs"),
    [
        ("hr_last", 90.0, ["d1"]),
        ("hr_first", 70.0, ["d6"]),
        ("hr_min", 70.0, ["d6"]),
        ("hr_max", 90.0, ["d1"]),
        ("hr_mean", 78.75, ["d6", "d4", "d2", "d1"]),
        ("hr_count", 4.0, ["d6", "d4", "d2", "d1"]),
        ("hr_change", 20.0, ["d6", "d1"]),
        ("hr_days_since", 1.0, ["d1"]),
        # x = -6,-4,-2,-1 (mean -3.25), y = 70,80,75,90 (mean 78.75): Sxy 43.75 / Sxx 14.75
        ("hr_slope_per_day", 43.75 / 14.75, ["d6", "d4", "d2", "d1"]),
    ],
)
def test_aggregations(hr_spec, series, feature, expected, refs):
    out = extract(series, INDEX, hr_spec)
    assert out.values[feature] == pytest.approx(expected, rel=1e-12)
    assert [r for r, _ in _sources(out, feature)] == [f"Observation/{r}" for r in refs]
    assert out.provenance[feature].missing_reason is None


def test_aggregation_output_units(hr_spec, series):
    out = extract(series, INDEX, hr_spec)
    units = {name: prov.unit for name, prov in out.provenance.items()}
    assert units["hr_last"] == "/min"
    assert units["hr_mean"] == "/min"
    assert units["hr_change"] == "/min"
    assert units["hr_count"] == "{count}"
    assert units["hr_days_since"] == "d"
    assert units["hr_slope_per_day"] == "/min/d"


def test_provenance_time_is_that_of_the_latest_source(hr_spec, series):
    out = extract(series, INDEX, hr_spec)
    assert out.provenance["hr_mean"].time == "2024-03-09T12:00:00Z"
    assert out.provenance["hr_first"].time == "2024-03-04T12:00:00Z"
    assert out.provenance["hr_min"].time == "2024-03-04T12:00:00Z"


@pytest.mark.parametrize("slope", [2.5, -3.0, 0.0, 0.125])
def test_slope_of_exactly_linear_data(hr_spec, fhir, slope):
    # y = 60 + slope * day, sampled unevenly, including an hour offset
    days = [-6.5, -5.0, -2.25, -1.0, -1 / 24]
    resources = [_hr(fhir, f"o{i}", 60 + slope * d, _at(days=d)) for i, d in enumerate(days)]
    out = extract(resources, INDEX, hr_spec)
    assert out.values["hr_slope_per_day"] == pytest.approx(slope, abs=1e-9)
    assert out.values["hr_change"] == pytest.approx(slope * (days[-1] - days[0]), abs=1e-9)


def test_count_is_zero_not_missing(hr_spec):
    out = extract([], INDEX, hr_spec)
    assert out.values["hr_count"] == 0.0
    assert out.provenance["hr_count"].sources == ()
    assert out.provenance["hr_count"].missing_reason is None
    assert out.provenance["hr_count"].time is None
    for name in ("hr_last", "hr_first", "hr_min", "hr_max", "hr_mean", "hr_days_since"):
        assert out.values[name] is None
        assert out.provenance[name].missing_reason == "no value in window"


def test_two_point_aggregations_with_a_single_value(hr_spec, fhir):
    out = extract([_hr(fhir, "only", 80, _at(days=-2))], INDEX, hr_spec)
    for name in ("hr_change", "hr_slope_per_day"):
        assert out.values[name] is None
        assert out.provenance[name].missing_reason == "needs at least two values in window"
        assert _sources(out, name) == [("Observation/only", "2024-03-08T12:00:00Z")]
    assert out.values["hr_mean"] == 80.0
    assert out.values["hr_days_since"] == pytest.approx(2.0)


def test_slope_needs_two_different_times(hr_spec, fhir):
    same = [_hr(fhir, "a", 80, _at(days=-2)), _hr(fhir, "b", 90, _at(days=-2))]
    out = extract(same, INDEX, hr_spec)
    assert out.values["hr_slope_per_day"] is None
    assert out.provenance["hr_slope_per_day"].missing_reason == (
        "needs values at two different times"
    )
    assert out.values["hr_mean"] == 85.0
    assert out.values["hr_count"] == 2.0


def test_days_since_is_fractional(hr_spec, fhir):
    out = extract([_hr(fhir, "a", 80, _at(-36))], INDEX, hr_spec)
    assert out.values["hr_days_since"] == pytest.approx(1.5)


def test_ties_are_broken_independently_of_order(hr_spec, fhir):
    a = _hr(fhir, "a", 80, _at(-1))
    b = _hr(fhir, "b", 95, _at(-1))
    low = _hr(fhir, "low1", 60, _at(days=-3))
    low2 = _hr(fhir, "low2", 60, _at(days=-2))
    one = extract([a, b, low, low2], INDEX, hr_spec)
    two = extract([low2, b, low, a], INDEX, hr_spec)
    assert one.values == two.values
    assert one.provenance == two.provenance
    # min over equal values picks the earliest measurement
    assert _sources(one, "hr_min") == [("Observation/low1", "2024-03-07T12:00:00Z")]


# --- patient attributes ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("birth", "index", "age"),
    [
        ("1960-05-15", datetime(2024, 5, 14, 23, 59, tzinfo=UTC), 63.0),
        ("1960-05-15", datetime(2024, 5, 15, 0, 0, tzinfo=UTC), 64.0),
        ("1960-05-15", datetime(2024, 5, 16, 0, 0, tzinfo=UTC), 64.0),
        ("2000-02-29", datetime(2023, 2, 28, 12, tzinfo=UTC), 22.0),
        ("2000-02-29", datetime(2023, 3, 1, 12, tzinfo=UTC), 23.0),
        ("2000-02-29", datetime(2024, 2, 29, 12, tzinfo=UTC), 24.0),
        ("2024-03-01", datetime(2024, 3, 10, 12, tzinfo=UTC), 0.0),
        ("1960", datetime(2024, 1, 1, 0, tzinfo=UTC), 64.0),  # partial dates: their first day
        ("1960-05", datetime(2024, 4, 30, 0, tzinfo=UTC), 63.0),
        ("1960-05-15", datetime(2024, 5, 15, 12, tzinfo=CET), 64.0),
    ],
)
def test_age_years(ed_spec, fhir, birth, index, age):
    out = extract([fhir.patient(birth_date=birth)], index, ed_spec)
    assert out.values["age"] == age
    assert out.provenance["age"].unit == "a"
    assert [r for r, _ in _sources(out, "age")] == ["Patient/p1"]


@pytest.mark.parametrize(
    ("gender", "expected"),
    [("male", 1.0), ("female", 0.0), ("other", None), ("unknown", None), (None, None), (1, None)],
)
def test_sex_male(ed_spec, fhir, gender, expected):
    out = extract([fhir.patient(gender=gender)], INDEX, ed_spec)
    assert out.values["sex_male"] == expected
    if expected is None:
        assert out.provenance["sex_male"].missing_reason == "patient sex_male unknown"


@pytest.mark.parametrize("birth", ["15-05-1960", "1960-13-01", 19600515, "", ["1960-05-15"]])
def test_garbage_birth_date(ed_spec, fhir, birth):
    out = extract([fhir.patient(birth_date=birth)], INDEX, ed_spec)
    assert out.values["age"] is None
    assert out.values["sex_male"] == 1.0
    assert out.provenance["age"].missing_reason == "patient age_years unknown"
    assert out.warnings["malformed_birth_date"] == 1
    assert out.missing_required(ed_spec) == ["age", "heart_rate", "systolic_bp"]


def test_several_patients_pick_one_independently_of_order(ed_spec, fhir):
    p1 = fhir.patient("p1", "1950-01-01", "female")
    p2 = fhir.patient("p2", "1990-01-01", "male")
    for resources in ([p1, p2], [p2, p1]):
        out = extract(resources, INDEX, ed_spec)
        assert out.values["age"] == 74.0
        assert out.values["sex_male"] == 0.0
        assert out.warnings["several_patients"] == 1


# --- plausible range, required features -----------------------------------------------------


@pytest.mark.parametrize(
    ("value", "kept"), [(19.9, False), (20, True), (300, True), (300.1, False), (-5, False)]
)
def test_plausible_range_is_inclusive(hr_spec, fhir, value, kept):
    out = extract([_hr(fhir, "o", value, _at(-1))], INDEX, hr_spec)
    assert (out.values["hr_6h"] == value) is kept
    if not kept:
        assert out.values["hr_6h"] is None
        assert out.warnings["implausible_value"] == 1
        prov = out.provenance["hr_6h"]
        assert prov.missing_reason == f"value {value:.4g} outside plausible range [20, 300]"
        # the audit can still see which measurement was refused
        assert [r for r, _ in _sources(out, "hr_6h")] == ["Observation/o"]
        assert out.missing_required(hr_spec) == ["hr_6h"]


def test_plausible_range_applies_to_the_aggregate_not_to_each_value(mi_spec, fhir):
    # Documents current behaviour (flagged for clinical review): one artefact of 400/min is not
    # refused on its own; it drags the 3-day mean to 150/min, which is inside [20, 250].
    resources = [_hr(fhir, f"h{i}", v, _at(days=-i / 2)) for i, v in enumerate([400, 70, 60, 70])]
    out = extract(resources, INDEX, mi_spec)
    assert out.values["heart_rate_mean_3d"] == pytest.approx(150.0)
    # only the slope it produces (exactly +200/min per day) falls outside its range
    assert out.values["heart_rate_slope_7d"] is None
    assert out.provenance["heart_rate_slope_7d"].missing_reason.startswith("value 2")
    assert out.warnings["implausible_value"] == 1


def test_wrong_unit_caught_by_the_plausible_range(ed_spec, fhir):
    # a Fahrenheit reading labelled Celsius: no conversion can fix it, the range catches it
    res = fhir.observation("t", "8310-5", 101.3, "Cel", at=_at(-1))
    out = extract([res], INDEX, ed_spec)
    assert out.values["temperature"] is None
    assert out.warnings["implausible_value"] == 1
    res_f = fhir.observation("t", "8310-5", 101.3, "[degF]", at=_at(-1))
    assert extract([res_f], INDEX, ed_spec).values["temperature"] == pytest.approx(38.5)


def test_required_features_and_vector(ed_spec, fhir):
    resources = [
        fhir.patient(birth_date="1950-06-01"),
        _hr(fhir, "hr", 101, _at(-1)),
    ]
    out = extract(resources, INDEX, ed_spec)
    assert out.missing_required(ed_spec) == ["systolic_bp"]
    vector = out.vector(ed_spec.feature_names)
    assert len(vector) == len(ed_spec.features)
    assert vector[:3] == [73.0, 1.0, 101.0]
    assert all(math.isnan(v) for v in vector[3:13])
    assert vector[-2:] == [0.0, 0.0]
    assert out.missing() == [n for n, v in out.values.items() if v is None]
    assert "systolic_bp" in out.missing()
    out = extract([*resources, fhir.bp_panel("bp", 110, 70, at=_at(-1))], INDEX, ed_spec)
    assert out.missing_required(ed_spec) == []


# --- provenance -----------------------------------------------------------------------------


def test_provenance_as_dict(ed_spec, fhir):
    resources = [
        fhir.patient(),
        _hr(fhir, "hr1", 95, _at(-2)),
        _hr(fhir, "hr0", 90, _at(-4), status="entered-in-error"),
    ]
    out = extract(resources, INDEX, ed_spec)
    assert out.provenance["heart_rate"].as_dict() == {
        "value": 95.0,
        "unit": "/min",
        "time": "2024-03-10T10:00:00Z",
        "sources": [{"reference": "Observation/hr1", "time": "2024-03-10T10:00:00Z"}],
        "notes": ["status entered-in-error not counted x1"],
    }
    assert out.provenance["crp"].as_dict() == {
        "value": None,
        "unit": "mg/L",
        "time": None,
        "sources": [],
        "missing_reason": "no value in window",
    }
    assert out.provenance["age"].as_dict()["sources"] == [
        {"reference": "Patient/p1", "time": "2024-03-10T12:00:00Z"}
    ]
    json.dumps({k: p.as_dict() for k, p in out.provenance.items()})  # JSON-serializable


def test_every_feature_has_provenance_and_missing_ones_say_why(ed_spec, mi_spec, fhir):
    for spec in (ed_spec, mi_spec):
        out = extract([_hr(fhir, "hr", 70, _at(days=-40))], INDEX, spec)
        assert list(out.provenance) == spec.feature_names
        assert list(out.values) == spec.feature_names
        for name, prov in out.provenance.items():
            assert prov.value == out.values[name]
            if prov.value is None:
                assert prov.missing_reason, name
            else:
                assert prov.missing_reason is None


def test_missing_resource_id_still_gives_a_reference(ed_spec, fhir):
    res = _hr(fhir, "x", 70, _at(-1))
    del res["id"]
    out = extract([res], INDEX, ed_spec)
    assert _sources(out, "heart_rate") == [("Observation/?", "2024-03-10T11:00:00Z")]


def test_normalize_once_aggregate_many(mi_spec, fhir):
    resources = [
        fhir.condition("mi", onset="2024-01-01T00:00:00Z"),
        *[_hr(fhir, f"h{d}", 60 + d, f"2024-01-{d:02d}T08:00:00Z") for d in range(2, 30)],
    ]
    facts = normalize(resources, mi_spec)
    for day in (15, 22, 29):
        at = datetime(2024, 1, day, 12, tzinfo=UTC)
        assert aggregate(facts, at, mi_spec).values == extract(resources, at, mi_spec).values
    out = aggregate(facts, datetime(2024, 1, 15, 12, tzinfo=UTC), mi_spec)
    assert out.values["days_since_mi"] == pytest.approx(14.5)
    assert out.values["heart_rate_slope_7d"] == pytest.approx(1.0)
    assert out.values["heart_rate_mean_3d"] == pytest.approx((73 + 74 + 75) / 3)


# --- Bundles --------------------------------------------------------------------------------


def test_searchset_bundle_equals_the_plain_list(ed_spec, fhir):
    resources = [fhir.patient(), _hr(fhir, "hr", 80, _at(-1)), fhir.bp_panel("bp", 120, 70)]
    resources[-1]["effectiveDateTime"] = _at(-1)
    plain = extract(resources, INDEX, ed_spec)
    bundled = extract(fhir.bundle(*resources), INDEX, ed_spec)
    assert bundled.values == plain.values
    assert bundled.provenance == plain.provenance
    assert bundled.warnings == plain.warnings
    # prefetch: several slots, each a Bundle, as a list
    slots = [fhir.bundle(resources[0]), fhir.bundle(*resources[1:]), fhir.bundle()]
    assert extract(slots, INDEX, ed_spec).values == plain.values


def test_nested_bundles(ed_spec, fhir):
    inner = fhir.bundle(_hr(fhir, "hr", 80, _at(-1)))
    outer = fhir.bundle(fhir.patient(), inner)
    flat = flatten(outer)
    assert [r["resourceType"] for r in flat.resources] == ["Patient", "Observation"]
    out = extract(outer, INDEX, ed_spec)
    assert out.values["heart_rate"] == 80.0
    assert out.values["age"] == 63.0


def test_bundle_nesting_is_bounded(ed_spec, fhir):
    nested: Any = _hr(fhir, "deep", 80, _at(-1))
    for _ in range(MAX_BUNDLE_DEPTH + 1):
        nested = fhir.bundle(nested)
    flat = flatten(nested)
    assert flat.resources == []
    assert flat.skipped == 1
    out = extract(nested, INDEX, ed_spec)
    assert out.values["heart_rate"] is None
    assert out.warnings["malformed_resource"] == 1


def test_operation_outcome_entries_are_counted(ed_spec, fhir):
    searchset = fhir.bundle(_hr(fhir, "hr", 80, _at(-1)))
    searchset["entry"].append(
        {"resource": fhir.operation_outcome("too-costly"), "search": {"mode": "outcome"}}
    )
    out = extract([searchset, fhir.operation_outcome("not-found")], INDEX, ed_spec)
    assert out.values["heart_rate"] == 80.0
    assert out.warnings["operation_outcome"] == 2
    flat = flatten([searchset, fhir.operation_outcome("not-found")])
    assert [outcome_messages(o) for o in flat.outcomes] == [
        ["warning/too-costly"],
        ["warning/not-found"],
    ]


def test_bundle_entries_without_resource(ed_spec, fhir):
    broken = fhir.bundle(_hr(fhir, "hr", 80, _at(-1)))
    broken["entry"] += [{"fullUrl": "urn:uuid:1"}, "entry", None]
    out = extract(broken, INDEX, ed_spec)
    assert out.values["heart_rate"] == 80.0
    assert out.warnings["malformed_resource"] == 3


def test_next_link(fhir):
    page = fhir.bundle(next_url="https://fhir.example/Observation?page=2")
    assert next_link(page) == "https://fhir.example/Observation?page=2"
    assert flatten([page]).next_links == ["https://fhir.example/Observation?page=2"]
    assert next_link(fhir.bundle()) is None
    assert next_link({"link": [{"relation": "self", "url": "x"}]}) is None
    assert next_link({"link": "next"}) is None
    assert next_link({"link": [None, {"relation": "next", "url": ""}]}) is None
    assert next_link({"link": [{"relation": "next"}]}) is None


def test_iter_resources(fhir):
    items = [fhir.bundle(fhir.patient()), fhir.condition("c"), 3]
    assert [r["resourceType"] for r in iter_resources(items)] == ["Patient", "Condition"]


@pytest.mark.parametrize(
    ("resource", "expected"),
    [
        ({"resourceType": "Patient", "id": "p1"}, "p1"),
        ({"resourceType": "Patient"}, None),
        ({"resourceType": "Patient", "id": 7}, None),
        ({"resourceType": "Observation", "subject": {"reference": "Patient/p2"}}, "p2"),
        (
            {
                "resourceType": "Observation",
                "subject": {"reference": "https://fhir.example/r4/Patient/p3/_history/2"},
            },
            "p3",
        ),
        ({"resourceType": "AllergyIntolerance", "patient": {"reference": "Patient/p4"}}, "p4"),
        ({"resourceType": "Observation", "subject": {"reference": "Group/g1"}}, None),
        ({"resourceType": "Observation", "subject": {"reference": "Patient/"}}, None),
        ({"resourceType": "Observation", "subject": "Patient/p5"}, None),
        ({"resourceType": "Observation", "subject": {"reference": 5}}, None),
        ({"resourceType": "Observation"}, None),
    ],
)
def test_patient_id_of(resource, expected):
    assert patient_id_of(resource) == expected


# --- resource-order independence (property test) --------------------------------------------


def _home_monitoring(fhir) -> list[dict[str, Any]]:
    """A realistic post-MI record with duplicate times, ties and things that must not count."""
    weight = [("http://loinc.org", "29463-7"), ("http://loinc.org", "3141-9")]
    res: list[dict[str, Any]] = [
        fhir.patient("p1", "1958-07-01", "male"),
        fhir.condition("mi-snomed", onset="2024-02-10T08:00:00+01:00"),
        fhir.condition("mi-icd", ("http://hl7.org/fhir/sid/icd-10", "I21.9"), "2024-02-10T07:00Z"),
        fhir.condition("mi-refuted", onset="2024-03-01T00:00:00Z", verification="refuted"),
        fhir.observation("w1", weight, 80.0, "kg", at=_at(days=-6)),
        fhir.observation("w2", weight, 176.4, "[lb_av]", at=_at(days=-3)),
        fhir.observation("w3", weight, 81.2, "kg", at=_at(days=-1)),
        fhir.observation("w4", weight, 81.0, "kg", at=_at(days=-1)),  # tie in time with w3
        fhir.observation("w5", weight, 95.0, "kg", at=_at(days=-1), status="entered-in-error"),
        fhir.observation("w6", weight, 80.5, "kg", at=_at(days=-2), status="amended"),
        _hr(fhir, "h1", 72, _at(days=-5)),
        _hr(fhir, "h2", 75, "2024-03-08T12:00:00"),  # naive
        _hr(fhir, "h3", 80, _at(days=-1)),
        _hr(fhir, "h4", 84, _at(days=-1)),  # tie in time with h3
        _hr(fhir, "h5", 84, _at(days=-0.5)),
        _hr(fhir, "h6", 400, _at(days=-0.25)),  # implausible... only for some features
        fhir.bp_panel("bp1", 118, 76, at=_at(days=-2)),
        fhir.bp_panel("bp2", 122, 78, at=_at(days=-2)),  # tie in time with bp1
        fhir.bp_panel("bp3", 130, None, at=_at(days=-1)),
        fhir.observation(
            "sbp", "8480-6", at=_at(days=-0.5), valueQuantity={"value": 126, "unit": "mmHg"}
        ),
        fhir.observation("sat1", "59408-5", 94, "%", at=_at(days=-1)),
        fhir.observation("sat2", "2708-6", 94, "%", at=_at(days=-2)),  # min tie
        fhir.observation("sat3", "59408-5", 0.91, "{fraction}", at=_at(days=-1.5)),
        fhir.observation("t1", "8310-5", 99.5, "[degF]", at=_at(days=-1)),
        fhir.observation("t2", "8310-5", 37.5, "Cel", at=_at(days=-1)),  # same time as t1
        fhir.operation_outcome(),
    ]
    score = fhir.observation("dys", (fhir.SYMPTOMS, "dyspnea-score"), at=_at(days=-1))
    score["valueInteger"] = 4
    res.append(score)
    crp = fhir.observation("crp", "1988-5", 5, "mg/L", at=_at(days=-1))
    crp["valueQuantity"]["comparator"] = "<"
    res.append(crp)
    return res


@pytest.fixture(scope="module")
def home_monitoring(fhir):
    return _home_monitoring(fhir)


@pytest.fixture(scope="module")
def home_baseline(home_monitoring, mi_spec, ed_spec):
    return {
        "mi": extract(home_monitoring, INDEX, mi_spec),
        "ed": extract(home_monitoring, INDEX, ed_spec),
    }


def test_home_monitoring_baseline_values(home_baseline):
    mi = home_baseline["mi"].values
    assert mi["age"] == 65.0
    assert mi["days_since_mi"] == pytest.approx(29.0 + 5 / 24)  # mi-snomed: 07:00Z
    # w3 (81.2) and w4 (81.0) tie at the same instant: the tie goes to the higher reference
    assert mi["weight_last"] == 81.0
    assert mi["measurements_7d"] == 5.0  # w1, w2 (lb), w6 (amended), w3, w4; not w5
    assert mi["weight_change_7d"] == pytest.approx(1.0)
    assert mi["systolic_bp_mean_3d"] == pytest.approx((118 + 122 + 130 + 126) / 4)
    assert mi["diastolic_bp_mean_3d"] == pytest.approx((76 + 78) / 2)
    # h2 (naive, exactly 2 days back), h3, h4, h5 and the 400/min artefact h6
    assert mi["heart_rate_mean_3d"] == pytest.approx((75 + 80 + 84 + 84 + 400) / 5)
    assert mi["spo2_min_3d"] == 94.0
    assert mi["temperature_max_3d"] == pytest.approx(37.5)
    assert mi["dyspnea_score_max_3d"] == 4.0
    assert home_baseline["mi"].warnings["operation_outcome"] == 1


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(data=st.data())
def test_result_does_not_depend_on_resource_order(
    home_monitoring, home_baseline, mi_spec, ed_spec, data
):
    order = data.draw(st.permutations(home_monitoring), label="order")
    split = data.draw(st.integers(0, len(order)), label="split")
    wrap = data.draw(st.booleans(), label="wrap")
    payload: Any = order
    if wrap:  # part of the record arrives as a prefetch Bundle, part as loose resources
        payload = [
            order[:split],
            {"resourceType": "Bundle", "entry": [{"resource": r} for r in order[split:]]},
        ]
    for key, spec in (("mi", mi_spec), ("ed", ed_spec)):
        out = extract(payload, INDEX, spec)
        base = home_baseline[key]
        assert out.values == base.values
        assert out.provenance == base.provenance
        assert out.warnings == base.warnings


# --- malformed input ------------------------------------------------------------------------


def _hr_obs(fhir, **changes):
    res = _hr(fhir, "o", 80, _at(-1))
    for key, value in changes.items():
        res[key] = value
    return res


def _malformed_cases(fhir) -> list[tuple[str, Any, str]]:
    bad_q = _hr(fhir, "o", 80, _at(-1))
    cases: list[tuple[str, Any, str]] = [
        ("code as string", _hr_obs(fhir, code="8867-4"), "malformed_resource"),
        (
            "code as list",
            _hr_obs(fhir, code=[fhir.concept((fhir.LOINC, "8867-4"))]),
            "malformed_resource",
        ),
        (
            "coding as dict",
            _hr_obs(fhir, code={"coding": {"system": fhir.LOINC, "code": "8867-4"}}),
            "malformed_resource",
        ),
        ("coding with strings", _hr_obs(fhir, code={"coding": ["8867-4"]}), None),
        (
            "value as string",
            _hr_obs(fhir, valueQuantity={"value": "80", "unit": "/min"}),
            "malformed_value",
        ),
        ("value missing", _hr_obs(fhir, valueQuantity={"unit": "/min"}), "malformed_value"),
        (
            "value bool",
            _hr_obs(fhir, valueQuantity={"value": True, "unit": "/min"}),
            "malformed_value",
        ),
        (
            "value NaN",
            _hr_obs(fhir, valueQuantity={"value": math.nan, "unit": "/min"}),
            "non_finite_value",
        ),
        (
            "value inf",
            _hr_obs(fhir, valueQuantity={"value": math.inf, "unit": "/min"}),
            "non_finite_value",
        ),
        (
            "value huge int",
            _hr_obs(fhir, valueQuantity={"value": 10**400, "unit": "/min"}),
            "malformed_resource",
        ),
        (
            "valueQuantity as list",
            _hr_obs(fhir, valueQuantity=[{"value": 80, "unit": "/min"}]),
            "no_value",
        ),
        ("valueQuantity as number", _hr_obs(fhir, valueQuantity=80), "no_value"),
        (
            "valueInteger as string",
            _hr_obs(fhir, valueQuantity=None, valueInteger="80"),
            "malformed_value",
        ),
        (
            "unit as number",
            _hr_obs(fhir, valueQuantity={"value": 80, "code": 5, "unit": 5}),
            "unit_missing_or_not_UCUM",
        ),
        (
            "comparator as list",
            _hr_obs(fhir, valueQuantity={"value": 80, "unit": "/min", "comparator": ["<"]}),
            "malformed_resource",
        ),
        ("status as list", _hr_obs(fhir, status=["final"]), "malformed_resource"),
        (
            "effectiveDateTime as number",
            _hr_obs(fhir, effectiveDateTime=1710064800),
            "no_usable_time",
        ),
        (
            "effectiveDateTime as dict",
            _hr_obs(fhir, effectiveDateTime={"value": _at(-1)}),
            "no_usable_time",
        ),
        (
            "period as string",
            {
                **{k: v for k, v in bad_q.items() if k != "effectiveDateTime"},
                "effectivePeriod": _at(-1),
            },
            "no_usable_time",
        ),
        (
            "period values as numbers",
            {
                **{k: v for k, v in bad_q.items() if k != "effectiveDateTime"},
                "effectivePeriod": {"end": 5},
            },
            "no_usable_time",
        ),
        ("resource is a string", "Observation", "malformed_resource"),
        ("resource is a number", 42, "malformed_resource"),
        ("resource is None", None, "malformed_resource"),
        ("list with None", [None, None], "malformed_resource"),
        (
            "resourceType missing",
            {k: v for k, v in bad_q.items() if k != "resourceType"},
            "malformed_resource",
        ),
        (
            "resourceType not a string",
            _hr_obs(fhir, resourceType=["Observation"]),
            "malformed_resource",
        ),
        ("bundle entry not a list", {"resourceType": "Bundle", "entry": {"resource": bad_q}}, None),
        (
            "bundle entries without resource",
            {"resourceType": "Bundle", "entry": [bad_q, 5]},
            "malformed_resource",
        ),
    ]
    panel = fhir.bp_panel("bp", 120, 80, at=_at(-1))
    as_dict = copy.deepcopy(panel)
    as_dict["component"] = panel["component"][0]
    cases.append(("component not a list", as_dict, "malformed_resource"))
    with_junk = copy.deepcopy(panel)
    with_junk["component"] = ["8480-6", None, 5]
    cases.append(("components not dicts", with_junk, "malformed_resource"))
    comp_code_str = copy.deepcopy(panel)
    comp_code_str["component"][0]["code"] = "8480-6"
    comp_code_str["component"][1]["code"] = "8462-4"
    cases.append(("component code as string", comp_code_str, "malformed_resource"))
    return cases


def test_malformed_inputs_never_raise_and_warn(ed_spec, fhir):
    for name, payload, warning in _malformed_cases(fhir):
        out = extract(payload, INDEX, ed_spec)
        assert out.values["heart_rate"] is None, name
        assert out.values["systolic_bp"] is None, name
        assert out.values["diastolic_bp"] is None, name
        if warning is not None:
            assert out.warnings[warning] >= 1, (name, dict(out.warnings))
        assert sum(out.warnings.values()) >= 1, name


@pytest.mark.parametrize(
    ("mutation", "urgency", "warning"),
    [
        ({"class": "EMER"}, None, "malformed_resource"),
        ({"class": [["EMER"]]}, None, "malformed_resource"),
        ({"period": "2024-03-10T11:00:00Z"}, None, "no_usable_time"),
        ({"period": {"start": 5}}, None, "no_usable_time"),
        ({"priority": "EM"}, None, "code_not_in_value_map"),
        ({"priority": [{"coding": "EM"}]}, None, "code_not_in_value_map"),
        # a malformed type does not hide a well-formed class and priority: counted, still read
        ({"type": "emergency"}, 2.0, "malformed_resource"),
        ({"status": {"code": "finished"}}, None, "malformed_resource"),
    ],
)
def test_malformed_encounters(ed_spec, fhir, mutation, urgency, warning):
    enc = fhir.encounter("ed", "EMER", _at(-1), status="in-progress", priority="UR")
    enc.update(mutation)
    out = extract([enc, fhir.encounter("i1", "IMP", _at(days=-30))], INDEX, ed_spec)
    assert out.values["prior_admissions_365d"] == 1.0  # the healthy resource still counts
    assert out.values["triage_urgency"] == urgency
    assert out.warnings[warning] >= 1, dict(out.warnings)


@pytest.mark.parametrize(
    ("mutation", "days", "warning"),
    [
        ({"code": "22298006"}, None, "malformed_resource"),
        (
            {"code": {"coding": {"system": "http://snomed.info/sct", "code": "22298006"}}},
            None,
            "malformed_resource",
        ),
        ({"onsetDateTime": "last spring"}, None, "no_usable_time"),
        ({"onsetDateTime": 20240101}, None, "no_usable_time"),
        ({"onsetPeriod": "2024"}, None, "no_usable_time"),
        # an unreadable verificationStatus cannot say "refuted": the diagnosis counts, warned
        ({"verificationStatus": "refuted"}, 20.0, "malformed_resource"),
        ({"verificationStatus": {"coding": "refuted"}}, 20.0, "malformed_resource"),
    ],
)
def test_malformed_conditions(mi_spec, fhir, mutation, days, warning):
    cond = fhir.condition("mi", onset=_at(days=-20))
    cond.update(mutation)
    if "onsetPeriod" in mutation:
        del cond["onsetDateTime"]
    out = extract([cond], INDEX, mi_spec)
    value = out.values["days_since_mi"]
    assert value == (None if days is None else pytest.approx(days))
    assert out.warnings[warning] >= 1, dict(out.warnings)


def test_garbage_does_not_hide_good_data(ed_spec, fhir):
    good = [fhir.patient(), _hr(fhir, "good", 77, _at(-1))]
    garbage = [payload for _, payload, _ in _malformed_cases(fhir)]
    out = extract([*garbage, *good], INDEX, ed_spec)
    assert out.values["heart_rate"] == 77.0
    assert out.values["age"] == 63.0


_FHIR_KEYS = [
    "resourceType", "id", "status", "code", "coding", "system", "value", "unit", "comparator",
    "valueQuantity", "valueInteger", "valueCodeableConcept", "component", "effectiveDateTime",
    "effectivePeriod", "start", "end", "issued", "dataAbsentReason", "subject", "reference",
    "class", "type", "period", "priority", "onsetDateTime", "onsetPeriod", "recordedDate",
    "verificationStatus", "birthDate", "gender", "entry", "resource", "link", "relation", "url",
    "issue",
]  # fmt: skip
_FHIR_WORDS = [
    "Observation", "Encounter", "Condition", "Patient", "Bundle", "OperationOutcome", "final",
    "entered-in-error", "finished", "refuted", "male", "female", "http://loinc.org", "8867-4",
    "8480-6", "8462-4", "85354-9", "59408-5", "8310-5", "2345-7", "11459-5", "29463-7",
    "http://unitsofmeasure.org", "mm[Hg]", "mg/dL", "mmol/L", "/min", "{unknown}", "[degF]",
    "kg", "%", "mmHg", "<", "2024-03-10T10:00:00Z", "2024-03-10", "2024-03-10T10:00:00",
    "2024-03", "0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-05:00", "Patient/p1",
    "http://terminology.hl7.org/CodeSystem/v3-ActCode", "EMER", "IMP",
    "http://snomed.info/sct", "22298006", "next", "outcome",
]  # fmt: skip
_LEAF = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**20), max_value=10**20),
    st.floats(),
    st.text(max_size=8),
    st.sampled_from(_FHIR_WORDS),
)
_JSONISH = st.recursive(
    _LEAF,
    lambda children: st.one_of(
        st.lists(children, max_size=4),
        st.dictionaries(
            st.one_of(st.sampled_from(_FHIR_KEYS), st.text(max_size=5)), children, max_size=6
        ),
    ),
    max_leaves=40,
)
_RESOURCEISH = st.fixed_dictionaries(
    {
        "resourceType": st.sampled_from(
            ["Observation", "Encounter", "Condition", "Patient", "Bundle"]
        )
    },
    optional={key: _JSONISH for key in _FHIR_KEYS[1:]},
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(payload=st.one_of(_JSONISH, st.lists(st.one_of(_RESOURCEISH, _JSONISH), max_size=6)))
def test_arbitrary_json_never_raises(ed_spec, mi_spec, payload):
    for spec in (ed_spec, mi_spec):
        out = extract(payload, INDEX, spec)
        assert list(out.values) == spec.feature_names
        for name, value in out.values.items():
            assert value is None or math.isfinite(value), name
            assert (value is None) == bool(out.provenance[name].missing_reason), name


# --- golden cases ---------------------------------------------------------------------------


def _golden_cases() -> list[str]:
    if not GOLDEN.is_dir():
        return []
    return sorted(p.name for p in GOLDEN.iterdir() if (p / "input.json").is_file())


def test_there_are_golden_cases():
    # NB: the repository .gitignore has a bare `data/` pattern, which also matches tests/data/
    assert len(_golden_cases()) >= 3, f"golden cases missing under {GOLDEN} (gitignored?)"
    assert (GOLDEN / "README.md").is_file()


@pytest.mark.parametrize("case", _golden_cases())
def test_golden(case, ed_spec, mi_spec):
    given_ = json.loads((GOLDEN / case / "input.json").read_text(encoding="utf-8"))
    expected = json.loads((GOLDEN / case / "expected.json").read_text(encoding="utf-8"))
    spec = {"ed-admission": ed_spec, "post-mi-unplanned-visit": mi_spec}[given_["spec"]]
    index = datetime.fromisoformat(given_["index_time"])
    out = extract(given_["resources"], index, spec)
    assert out.index_time == index
    assert set(expected["features"]) == set(spec.feature_names)
    for name, want in expected["features"].items():
        prov = out.provenance[name]
        if want["value"] is None:
            assert out.values[name] is None, name
        else:
            assert out.values[name] == pytest.approx(want["value"], rel=1e-9, abs=1e-12), name
        assert [[s.reference, s.time] for s in prov.sources] == want["sources"], name
        assert prov.missing_reason == want.get("missing_reason"), name
    assert dict(out.warnings) == expected["warnings"]


def test_golden_dates_are_today_independent():
    # the golden data must not drift with the calendar: every case pins its own index time
    for case in _golden_cases():
        given_ = json.loads((GOLDEN / case / "input.json").read_text(encoding="utf-8"))
        index = datetime.fromisoformat(given_["index_time"])
        assert index.tzinfo is not None
        assert index.date() < date(2030, 1, 1)

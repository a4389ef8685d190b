"""Bulk NDJSON export -> training table, and index events / labels from the spec.

The exports are written by hand into ``tmp_path``: tiny, synthetic, and with the disorder of a
real FHIR Bulk Data export (resources of one patient spread over files, shuffled, a garbage line).
"""

from __future__ import annotations

import csv
import json
import random
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fhir_mappers import extract
from fhir_mappers.bulk import (
    META_COLUMNS,
    TableStats,
    export_files,
    export_sha256,
    iter_rows,
    write_training_table,
)
from fhir_mappers.events import IndexEvent, index_events, label_for
from fhir_mappers.spec import load_spec
from tests.utils.exports import ed_resources, ndjson, write_ed_export


def _read_csv(path: Path) -> list[dict[str, str]]:
    with path.open(encoding="utf-8", newline="") as handle:
        return list(csv.DictReader(handle))


@pytest.fixture
def ed_export(tmp_path, fhir) -> Path:
    return write_ed_export(tmp_path / "export", fhir)


def test_export_files_are_the_known_types_in_a_stable_order(ed_export):
    names = [p.name for p in export_files(ed_export)]
    assert names == [
        "Patient.ndjson",
        "Encounter.ndjson",
        "Condition.ndjson",
        "Observation.000.ndjson",
        "Observation.001.ndjson",
    ]


def test_training_table_rows_labels_and_stats(ed_export, ed_spec, tmp_path):
    out_csv = tmp_path / "table" / "ed.csv"
    stats = write_training_table(ed_export, ed_spec, out_csv)
    rows = _read_csv(out_csv)
    with out_csv.open(encoding="utf-8") as handle:
        header = handle.readline().strip().split(",")
    assert header == [*META_COLUMNS, *ed_spec.feature_names, "admitted_24h"]

    assert [(r["patient_id"], r["anchor"], r["admitted_24h"]) for r in rows] == [
        ("p1", "Encounter/e1", "1"),
        ("p1", "Encounter/e4", "0"),
        ("p2", "Encounter/e2", "0"),
        ("p3", "Encounter/e3", "1"),  # lacks its required vitals: kept, not scored at serving
    ]
    assert [r["index_time"] for r in rows][:3] == [
        "2024-02-01T11:00:00+00:00",
        "2024-03-10T09:00:00+00:00",  # 09:00+01:00 arrival, plus one hour, in UTC
        "2024-02-03T09:00:00+00:00",
    ]
    p1, p1_again, p2, p3 = rows
    assert p3["heart_rate"] == p3["systolic_bp"] == ""
    assert float(p1["age"]) == 74.0
    assert float(p1["sex_male"]) == 1.0
    assert float(p1["heart_rate"]) == 118.0
    assert float(p1["systolic_bp"]) == 92.0
    assert float(p1["diastolic_bp"]) == 55.0
    assert float(p1["temperature"]) == pytest.approx(39.0)  # 102.2 degF
    assert float(p1["triage_urgency"]) == 3.0
    assert p1["crp"] == ""  # missing is an empty cell
    assert float(p1["prior_admissions_365d"]) == 0.0
    assert float(p1_again["prior_admissions_365d"]) == 1.0  # a1; the cancelled a4 never counts
    assert float(p1_again["prior_ed_visits_365d"]) == 1.0  # e1
    assert float(p1_again["heart_rate"]) == 84.0
    assert float(p2["heart_rate"]) == 76.0  # the entered-in-error 190 is not the last
    assert float(p2["triage_urgency"]) == 1.0
    assert float(p2["sex_male"]) == 0.0

    assert stats.rows == 4
    assert stats.positives == 2
    assert stats.patients == 3
    assert stats.unscorable == 1  # p3: no heart rate, no systolic pressure
    # ... and p3 was admitted (ACUTE 3 h later): the unscored positive is counted, with the reasons
    assert stats.unscorable_positives == 1
    assert stats.unscorable_for == {"heart_rate": 1, "systolic_bp": 1}
    assert stats.unparseable_lines == 1
    assert stats.without_patient == 2  # the orphan Observation and the JSON array
    assert stats.resources == 3 + 9 + 10
    # hr2x (entered-in-error), the cancelled a4 and the planned e5
    assert stats.warnings["status_not_counted"] == 3
    assert stats.export_sha256 == export_sha256(ed_export)


def test_rows_equal_the_live_extraction(ed_export, ed_spec, fhir):
    """Training rows are computed by exactly the code that serves: same numbers."""
    stats = TableStats()
    rows = list(iter_rows(ed_export, ed_spec, stats))
    res = ed_resources(fhir)
    everything = [r for group in res.values() for r in group]
    for row in rows:
        mine = [r for r in everything if f"Patient/{row['patient_id']}" in json.dumps(r)]
        mine += [r for r in res["Patient"] if r["id"] == row["patient_id"]]
        live = extract(mine, datetime.fromisoformat(row["index_time"]), ed_spec)
        assert {n: row[n] for n in ed_spec.feature_names} == live.values


def test_a_missing_required_input_never_removes_a_row(ed_export, ed_spec):
    stats = TableStats()
    rows = list(iter_rows(ed_export, ed_spec, stats))
    assert [r["anchor"] for r in rows] == [
        "Encounter/e1",
        "Encounter/e4",
        "Encounter/e2",
        "Encounter/e3",
    ]
    p3 = rows[-1]
    assert p3["heart_rate"] is None
    assert p3["systolic_bp"] is None
    assert p3["temperature"] == pytest.approx(37.1)
    assert p3["admitted_24h"] == 1  # ACUTE encounter 3 h after arrival
    assert (stats.rows, stats.unscorable, stats.unscorable_positives) == (4, 1, 1)


def _sorted_rows(path: Path) -> list[tuple[tuple[str, str], ...]]:
    return sorted(tuple(sorted(r.items())) for r in _read_csv(path))


@pytest.mark.parametrize("shard_bytes", [64, 300, 1000])
def test_several_shards_give_the_same_rows(ed_export, ed_spec, tmp_path, shard_bytes):
    one = write_training_table(ed_export, ed_spec, tmp_path / "one.csv")
    many = write_training_table(ed_export, ed_spec, tmp_path / "many.csv", shard_bytes=shard_bytes)
    assert _sorted_rows(tmp_path / "many.csv") == _sorted_rows(tmp_path / "one.csv")
    assert (many.rows, many.positives, many.unscorable) == (
        one.rows,
        one.positives,
        one.unscorable,
    )
    assert many.patients == one.patients == 3
    assert many.warnings == one.warnings


def test_file_order_and_shuffling_do_not_change_the_table(tmp_path, fhir, ed_spec):
    a = write_ed_export(tmp_path / "a", fhir, seed=1)
    b = write_ed_export(tmp_path / "b", fhir, seed=99)
    write_training_table(a, ed_spec, tmp_path / "a.csv")
    write_training_table(b, ed_spec, tmp_path / "b.csv")
    assert (tmp_path / "a.csv").read_bytes() == (tmp_path / "b.csv").read_bytes()


def test_single_shard_table_is_deterministic_and_sorted(ed_export, ed_spec, tmp_path):
    write_training_table(ed_export, ed_spec, tmp_path / "1.csv", progress=True)
    write_training_table(ed_export, ed_spec, tmp_path / "2.csv")
    assert (tmp_path / "1.csv").read_bytes() == (tmp_path / "2.csv").read_bytes()
    rows = _read_csv(tmp_path / "1.csv")
    keys = [(r["patient_id"], datetime.fromisoformat(r["index_time"])) for r in rows]
    assert keys == sorted(keys)


def test_export_sha256_follows_content(ed_export, tmp_path, fhir):
    before = export_sha256(ed_export)
    assert len(before) == 64
    assert export_sha256(ed_export) == before
    # the same content elsewhere hashes the same
    assert export_sha256(write_ed_export(tmp_path / "copy", fhir)) == before
    # files the reader ignores do not count
    (ed_export / "Medication.ndjson").write_text("changed\n", encoding="utf-8")
    assert export_sha256(ed_export) == before
    # one changed value does
    path = ed_export / "Patient.ndjson"
    path.write_text(path.read_text(encoding="utf-8").replace("1950-02-01", "1950-02-02"), "utf-8")
    changed = export_sha256(ed_export)
    assert changed != before
    # and so does a renamed file with the same bytes
    (ed_export / "Observation.001.ndjson").rename(ed_export / "Observation.002.ndjson")
    assert export_sha256(ed_export) not in (before, changed)


def test_empty_export_is_an_error(tmp_path, ed_spec):
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="ndjson"):
        write_training_table(tmp_path / "empty", ed_spec, tmp_path / "out.csv")


# --- post-MI: Condition-anchored weekly index events ----------------------------------------

ONSET = datetime(2024, 1, 1, 8, 0, tzinfo=UTC)


def _iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def _home_export(root: Path, fhir) -> Path:
    """One post-MI patient with 90 days of daily home data, and a control without an MI."""
    rng = random.Random(3)
    observations: list[dict[str, Any]] = []
    for day in range(1, 91):
        at = ONSET + timedelta(days=day, hours=-1)
        observations.append(
            fhir.observation(f"hr{day}", "8867-4", 70 + day % 5, "/min", at=_iso(at), patient="m1")
        )
        observations.append(fhir.bp_panel(f"bp{day}", 120, 75, at=_iso(at), patient="m1"))
        observations.append(
            fhir.observation(f"w{day}", "29463-7", 80.0, "kg", at=_iso(at), patient="m1")
        )
    observations.append(fhir.observation("c-hr", "8867-4", 66, "/min", patient="c1"))
    rng.shuffle(observations)
    root.mkdir(parents=True, exist_ok=True)
    ndjson(
        root / "Patient.ndjson",
        [fhir.patient("m1", "1955-03-03", "male"), fhir.patient("c1", "1960-01-01", "female")],
    )
    ndjson(
        root / "Condition.ndjson",
        [
            fhir.condition("mi", onset=_iso(ONSET), patient="m1"),
            fhir.condition("mi-ruled-out", onset=_iso(ONSET), verification="refuted", patient="c1"),
            fhir.condition("htn", (fhir.SNOMED, "38341003"), _iso(ONSET), patient="c1"),
        ],
    )
    ndjson(
        root / "Encounter.ndjson",
        [
            # unplanned: an ED visit on day 30 -> label 1 for the index days 21 and 28
            fhir.encounter("ed30", "EMER", _iso(ONSET + timedelta(days=30)), patient="m1"),
            # elective admission on day 60 -> never a label
            fhir.encounter(
                "el60", "IMP", _iso(ONSET + timedelta(days=60)), priority="EL", patient="m1"
            ),
        ],
    )
    third = len(observations) // 3
    for i in range(3):
        chunk = observations[i * third : (i + 1) * third if i < 2 else None]
        ndjson(root / f"Observation.{i}.ndjson", chunk)
    return root


def test_post_mi_training_table(tmp_path, fhir, mi_spec):
    export = _home_export(tmp_path / "home", fhir)
    out_csv = tmp_path / "mi.csv"
    stats = write_training_table(export, mi_spec, out_csv, shard_bytes=4096)
    rows = _read_csv(out_csv)
    assert stats.patients == 2
    assert stats.rows == 11
    assert {r["patient_id"] for r in rows} == {"m1"}
    assert [float(r["days_since_mi"]) for r in rows] == [float(d) for d in range(14, 85, 7)]
    assert [int(r["unplanned_visit_14d"]) for r in rows] == [0, 1, 1] + [0] * 8
    assert stats.positives == 2
    assert all(float(r["measurements_7d"]) == 7.0 for r in rows)
    assert all(float(r["weight_change_7d"]) == 0.0 for r in rows)
    assert all(float(r["systolic_bp_mean_3d"]) == 120.0 for r in rows)
    assert all(r["anchor"] == "Condition/mi" for r in rows)


def test_index_events_for_an_mi(mi_spec, fhir):
    events = index_events([fhir.condition("mi", onset=_iso(ONSET))], mi_spec)
    assert [e.index_time - ONSET for e in events] == [timedelta(days=d) for d in range(14, 85, 7)]
    assert {(e.anchor_ref, e.anchor_time) for e in events} == {("Condition/mi", ONSET)}


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({}, 11),
        ({"verificationStatus": None}, 11),
        ({"code": {"coding": [{"system": "http://snomed.info/sct", "code": "38341003"}]}}, 0),
        (
            {"code": {"coding": [{"system": "http://hl7.org/fhir/sid/icd-10", "code": "I21.9"}]}},
            11,
        ),
        ({"onsetDateTime": None}, 0),
        ({"onsetDateTime": "garbage"}, 0),
        ({"onsetDateTime": "9999-12-30"}, 0),  # a sentinel date: no prediction moment
        ({"onsetDateTime": "9999-09-30T00:00:00Z"}, 0),  # label windows would overflow
        ({"onsetDateTime": "0001-01-01T00:00:00+01:00"}, 0),
        ({"onsetDateTime": "0001-01-02"}, 0),  # feature windows would underflow
    ],
)
def test_index_events_condition_variants(mi_spec, fhir, changes, expected):
    cond = fhir.condition("mi", onset=_iso(ONSET))
    for key, value in changes.items():
        if value is None:
            cond.pop(key, None)
        else:
            cond[key] = value
    assert len(index_events([cond], mi_spec)) == expected


@pytest.mark.parametrize("verification", ["refuted", "entered-in-error"])
def test_index_events_skip_refuted_mi(mi_spec, fhir, verification):
    assert index_events([fhir.condition("mi", verification=verification)], mi_spec) == []


def test_index_anchor_uses_the_same_onset_as_days_since_mi(mi_spec, fhir):
    cond = fhir.condition(
        "mi",
        onset=None,
        onsetPeriod={"start": "2024-01-01T08:00:00Z", "end": "2024-01-01T12:00:00Z"},
        recordedDate="2024-01-03T09:30:00Z",
    )
    events = index_events([cond], mi_spec)
    assert events[0].anchor_time == ONSET
    first = extract([cond], events[0].index_time, mi_spec)
    assert first.values["days_since_mi"] == pytest.approx(14.0)
    only_recorded = fhir.condition("mi2", onset=None, recordedDate="2024-01-03T09:30:00Z")
    assert index_events([only_recorded], mi_spec)[0].anchor_time == datetime(
        2024, 1, 3, 9, 30, tzinfo=UTC
    )


def test_several_mi_conditions_give_sorted_events(mi_spec, fhir):
    later = fhir.condition("b-mi", onset=_iso(ONSET + timedelta(days=3)))
    first = fhir.condition("a-mi", onset=_iso(ONSET))
    events = index_events([later, first, {"resourceType": "Patient"}, "junk"], mi_spec)
    assert len(events) == 22
    assert events == sorted(events, key=lambda e: (e.index_time, e.anchor_ref))
    assert events == index_events([first, later], mi_spec)


def _event(hours_after_onset: float = 14 * 24) -> IndexEvent:
    return IndexEvent("Condition/mi", ONSET, ONSET + timedelta(hours=hours_after_onset))


@pytest.mark.parametrize(
    ("klass", "offset", "priority", "status", "label"),
    [
        ("EMER", timedelta(days=3), None, "finished", 1),
        ("EMER", timedelta(days=14), None, "finished", 1),  # the window end is included
        ("EMER", timedelta(days=14, seconds=1), None, "finished", 0),
        ("EMER", timedelta(0), None, "finished", 0),  # the window start is excluded
        ("EMER", timedelta(days=-1), None, "finished", 0),
        ("IMP", timedelta(days=5), None, "finished", 1),
        ("IMP", timedelta(days=5), "EM", "finished", 1),
        ("IMP", timedelta(days=5), "UR", "in-progress", 1),
        ("IMP", timedelta(days=5), "EL", "finished", 0),  # elective: not unplanned
        ("ACUTE", timedelta(days=5), None, "finished", 1),
        ("AMB", timedelta(days=5), None, "finished", 0),
        ("EMER", timedelta(days=5), None, "cancelled", 0),
        ("EMER", timedelta(days=5), None, "entered-in-error", 0),
        ("IMP", timedelta(days=5), None, "planned", 0),
    ],
)
def test_post_mi_label(mi_spec, fhir, klass, offset, priority, status, label):
    event = _event()
    enc = fhir.encounter(
        "x", klass, _iso(event.index_time + offset), status=status, priority=priority
    )
    assert label_for([enc], event, mi_spec.label) == label


def test_post_mi_label_with_offsets_in_the_data(mi_spec, fhir):
    event = _event()
    # 2024-01-29T09:00+01:00 is 08:00Z: exactly 14 days after the index, so inside
    enc = fhir.encounter("x", "EMER", "2024-01-29T09:00:00+01:00")
    assert label_for([enc], event, mi_spec.label) == 1
    late = fhir.encounter("y", "EMER", "2024-01-29T08:00:01Z")
    assert label_for([late], event, mi_spec.label) == 0


def test_ed_index_events_and_label(ed_spec, fhir):
    resources = [
        fhir.encounter("ed", "EMER", "2024-02-01T10:00:00Z", status="in-progress"),
        fhir.encounter("planned", "EMER", "2024-02-02T10:00:00Z", status="planned"),
        fhir.encounter("far", "EMER", "9999-12-31T23:30:00Z"),
        fhir.encounter("amb", "AMB", "2024-02-01T09:00:00Z"),
        fhir.encounter("nostart", "EMER", None),
    ]
    events = index_events(resources, ed_spec)
    assert events == [
        IndexEvent(
            "Encounter/ed",
            datetime(2024, 2, 1, 10, tzinfo=UTC),
            datetime(2024, 2, 1, 11, tzinfo=UTC),
        )
    ]
    event = events[0]
    assert label_for(resources, event, ed_spec.label) == 0
    admit = fhir.encounter("adm", "IMP", "2024-02-02T10:00:00Z")  # exactly 24 h: inside
    assert label_for([*resources, admit], event, ed_spec.label) == 1
    late = fhir.encounter("adm", "IMP", "2024-02-02T10:00:01Z")
    assert label_for([*resources, late], event, ed_spec.label) == 0
    # an admission before the index time but after arrival still counts (relative to anchor)
    early = fhir.encounter("adm", "IMP", "2024-02-01T10:30:00Z")
    assert label_for([*resources, early], event, ed_spec.label) == 1


def test_anchor_encounter_is_not_its_own_label(make_spec, fhir):
    spec = make_spec(
        fhir.obs_feature(),
        index={"resource": "Encounter", "codes": [f"{fhir.ACT_CODE}|IMP"], "offsets": ["PT0S"]},
        label={
            "name": "readmitted",
            "resource": "Encounter",
            "codes": [f"{fhir.ACT_CODE}|IMP"],
            "window": ["-PT1H", "P30D"],
        },
    )
    first = fhir.encounter("a1", "IMP", "2024-02-01T10:00:00Z")
    events = index_events([first], spec)
    assert len(events) == 1
    assert label_for([first], events[0], spec.label) == 0
    again = fhir.encounter("a2", "IMP", "2024-02-20T10:00:00Z")
    assert label_for([first, again], events[0], spec.label) == 1


_WORDS = st.sampled_from(
    [
        "Encounter",
        "Condition",
        "EMER",
        "IMP",
        "EL",
        "finished",
        "planned",
        "refuted",
        "http://snomed.info/sct",
        "22298006",
        "http://terminology.hl7.org/CodeSystem/v3-ActCode",
        "http://terminology.hl7.org/CodeSystem/v3-ActPriority",
        "2024-01-01T08:00:00Z",
        "2024-01-20",
        "9999-12-31",
        "0001-01-01T00:00:00+14:00",
        "2024-01-05T10:00:00",
    ]
)
_VALUE = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(), st.text(max_size=6), _WORDS),
    lambda c: (
        st.lists(c, max_size=3)
        | st.dictionaries(
            st.sampled_from(["system", "code", "coding", "start", "end", "reference"]),
            c,
            max_size=3,
        )
    ),
    max_leaves=12,
)
_RESOURCE = st.fixed_dictionaries(
    {"resourceType": st.sampled_from(["Encounter", "Condition", "Observation"])},
    optional={
        key: _VALUE
        for key in (
            "id",
            "status",
            "class",
            "code",
            "priority",
            "period",
            "onsetDateTime",
            "onsetPeriod",
            "recordedDate",
            "verificationStatus",
        )
    },
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(resources=st.lists(_RESOURCE, max_size=6))
def test_events_and_labels_never_raise(ed_spec, mi_spec, resources):
    for spec in (ed_spec, mi_spec):
        events = index_events(resources, spec)
        assert events == sorted(events, key=lambda e: (e.index_time, e.anchor_ref))
        for event in events:
            assert label_for(resources, event, spec.label) in (0, 1)
            extract(resources, event.index_time, spec)


def test_gzip_compressed_export_gives_the_same_table(ed_export, ed_spec, tmp_path):
    """Bulk Data servers often hand out ``.ndjson.gz``: read them as they come."""
    import gzip
    import shutil

    packed = tmp_path / "gz-export"
    packed.mkdir()
    for path in ed_export.iterdir():
        if path.suffix == ".ndjson":
            with path.open("rb") as src, gzip.open(packed / f"{path.name}.gz", "wb") as dst:
                shutil.copyfileobj(src, dst)
    plain = write_training_table(ed_export, ed_spec, tmp_path / "plain.csv")
    zipped = write_training_table(packed, ed_spec, tmp_path / "zipped.csv")
    assert [p.name for p in export_files(packed)] == [
        f"{p.name}.gz" for p in export_files(ed_export)
    ]
    assert (tmp_path / "zipped.csv").read_bytes() == (tmp_path / "plain.csv").read_bytes()
    assert (zipped.rows, zipped.positives, zipped.unscorable_positives, zipped.resources) == (
        plain.rows,
        plain.positives,
        plain.unscorable_positives,
        plain.resources,
    )


def test_resources_with_a_modifier_extension_are_skipped_and_counted(
    ed_export, ed_spec, fhir, tmp_path
):
    """The same rule as serving: a modifier extension no one here understands (here: the heart
    rate was not measured on this patient) means the resource must not be read."""
    before = _read_csv_rows(ed_export, ed_spec, tmp_path / "before.csv")
    odd = fhir.observation("hr-mod", "8867-4", 190, "/min", at="2024-02-01T10:30:00Z", patient="p1")
    odd["modifierExtension"] = [
        {"url": "https://example.org/not-this-patient", "valueBoolean": True}
    ]
    with (ed_export / "Observation.ndjson").open("a", encoding="utf-8") as out:
        out.write(json.dumps(odd) + "\n")
    stats = write_training_table(ed_export, ed_spec, tmp_path / "after.csv")
    assert stats.warnings["modifier_extension_skipped"] == 1
    assert _read_csv(tmp_path / "after.csv") == before


def _read_csv_rows(export, spec, out):
    write_training_table(export, spec, out)
    return _read_csv(out)


# --- windows anchored on the ED encounter's start ------------------------------------------


def _anchored_spec(make_spec):
    """A first-of-visit heart rate hanging on the encounter's start, next to the usual one."""
    from tests.conftest import obs_feature

    return make_spec(
        obs_feature("hr_last_6h", required=True),
        obs_feature("hr_first_of_visit", aggregation="first", window=["-PT15M", "PT2H"],
                    relative_to="anchor"),
    )  # fmt: skip


def _serving_rows(export_rows, spec, resources, now_after):
    """What the service computes for each training row's visit, called ``now_after`` after the
    moment training used: the moment placed by ``anchoring.index_time``, the anchor read from the
    context encounter by ``encounter_anchor``."""
    from cds_service.cds_hooks.anchoring import Visit, index_time
    from fhir_mappers.events import encounter_anchor

    everything = [r for group in resources.values() for r in group]
    for row in export_rows:
        mine = [r for r in everything if f"Patient/{row['patient_id']}" in json.dumps(r)]
        mine += [r for r in resources["Patient"] if r["id"] == row["patient_id"]]
        visit = next(r for r in mine if f"Encounter/{r['id']}" == row["anchor"])
        start = encounter_anchor(visit)
        assert start is not None
        trained_at = datetime.fromisoformat(row["index_time"])
        at = index_time(Visit(start), spec, trained_at + now_after)
        assert at == trained_at
        yield row, extract(mine, at, spec, anchor=start)


@pytest.mark.parametrize("now_after", [timedelta(0), timedelta(hours=5)])
def test_anchored_rows_equal_the_live_extraction(ed_export, make_spec, fhir, now_after):
    spec = _anchored_spec(make_spec)
    rows = list(iter_rows(ed_export, spec, TableStats()))
    assert rows
    for row, live in _serving_rows(rows, spec, ed_resources(fhir), now_after):
        assert {n: row[n] for n in spec.feature_names} == live.values


def test_arrival_model_rows_equal_the_live_extraction(ed_export, fhir):
    from tests.conftest import MODELS_DIR

    spec = load_spec(MODELS_DIR / "ed-admission-arrival" / "features.toml")
    rows = list(iter_rows(ed_export, spec, TableStats()))
    assert [r["anchor"] for r in rows] == ["Encounter/e1", "Encounter/e4", "Encounter/e2",
                                           "Encounter/e3"]  # fmt: skip
    assert {r["index_time"][11:16] for r in rows} == {"10:05", "08:05", "12:05"}
    for row, live in _serving_rows(rows, spec, ed_resources(fhir), timedelta(hours=2)):
        assert {n: row[n] for n in spec.feature_names} == live.values
    assert [r["triage_urgency"] for r in rows] == [3.0, 2.0, 1.0, None]


def test_an_anchored_window_ignores_what_precedes_the_visit(make_spec, fhir):
    """A heart rate 3 h before arrival is inside the 6 h before the index but not in the visit's
    window; a value after the index time is never seen, even inside the anchored window."""
    spec = _anchored_spec(make_spec)
    start = datetime(2024, 2, 1, 10, 0, tzinfo=UTC)
    resources = [
        fhir.patient("p1", "1950-02-01", "male"),
        fhir.encounter("e1", "EMER", "2024-02-01T10:00:00Z", patient="p1"),
        fhir.observation("h0", "8867-4", 61, "/min", at="2024-02-01T07:00:00Z", patient="p1"),
        fhir.observation("h1", "8867-4", 118, "/min", at="2024-02-01T10:20:00Z", patient="p1"),
        fhir.observation("h2", "8867-4", 99, "/min", at="2024-02-01T11:30:00Z", patient="p1"),
    ]
    at = start + timedelta(hours=1)
    anchored = extract(resources, at, spec, anchor=start)
    assert anchored.values == {"hr_last_6h": 118.0, "hr_first_of_visit": 118.0}
    early = extract(resources, start + timedelta(minutes=10), spec, anchor=start)
    assert early.values["hr_first_of_visit"] is None  # h1 (10:20) is after the index time
    unanchored = extract(resources, at, spec)
    assert unanchored.values["hr_first_of_visit"] is None
    assert unanchored.provenance["hr_first_of_visit"].missing_reason == (
        "no encounter to anchor the window on"
    )

"""Third-party exports through the real bulk reader: every value the oracle sees is read.

clinosim writes a Bulk-style NDJSON export (``Patient/x`` references); Synthea writes one
transaction Bundle per patient (``urn:uuid:`` references through ``fullUrl``). Both go through
``fhir_mappers.bulk`` exactly as ``cds-service table``/``train``/``profile`` read them; the oracle
(tests/thirdparty/oracle.py) reads the same files on its own.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from fhir_mappers.bulk import TableStats, iter_rows
from fhir_mappers.spec import ModelSpec
from tests.thirdparty.oracle import (
    Oracle,
    Recall,
    ed_events,
    read_bundles,
    read_ndjson_export,
)

MIN_RECALL = 0.99


_ROWS: dict[tuple[Path, str], tuple[list[dict[str, Any]], TableStats]] = {}


def _rows(folder: Path, spec: ModelSpec) -> tuple[list[dict[str, Any]], TableStats]:
    """Every row, also those a missing required input drops (read once per export and model)."""
    key = (folder, spec.name)
    if key not in _ROWS:
        stats = TableStats()
        _ROWS[key] = (list(iter_rows(folder, spec, stats)), stats)
    return _ROWS[key]


def _recall(
    rows: list[dict[str, Any]], spec: ModelSpec, patients: dict[str, list[dict[str, Any]]]
) -> Recall:
    recall = Recall.empty()
    oracles: dict[str, Oracle] = {}
    for row in rows:
        pid = row["patient_id"]
        if pid not in oracles:
            oracles[pid] = Oracle(spec, patients[pid])
        recall.add(oracles[pid], datetime.fromisoformat(row["index_time"]), row)
    return recall


def _assert_recall(recall: Recall) -> None:
    low = {n: r for n, r in recall.per_feature().items() if r < MIN_RECALL}
    assert not low, f"recall below {MIN_RECALL:.0%}: {recall.report()}"
    extra = {n: v for n, v in recall.extra.items() if v}
    assert not extra, f"values the oracle does not see: {extra}"


@pytest.fixture(scope="module")
def clinosim_patients(clinosim_export: Path) -> dict[str, list[dict[str, Any]]]:
    return read_ndjson_export(clinosim_export)


@pytest.fixture(scope="module")
def synthea_patients(synthea_bundles: Path) -> dict[str, list[dict[str, Any]]]:
    return read_bundles(synthea_bundles)


@pytest.mark.parametrize("model", ["ed_spec", "mi_spec"])
def test_clinosim_export_recall(
    model: str,
    request: pytest.FixtureRequest,
    clinosim_export: Path,
    clinosim_patients: dict[str, list[dict[str, Any]]],
) -> None:
    spec: ModelSpec = request.getfixturevalue(model)
    rows, stats = _rows(clinosim_export, spec)
    assert stats.without_patient == 0
    assert stats.unparseable_lines == 0
    assert stats.patients == len(clinosim_patients)
    _assert_recall(_recall(rows, spec, clinosim_patients))


@pytest.mark.parametrize("model", ["ed_spec", "mi_spec"])
def test_synthea_bundles_recall(
    model: str,
    request: pytest.FixtureRequest,
    synthea_bundles: Path,
    synthea_patients: dict[str, list[dict[str, Any]]],
) -> None:
    """urn:uuid references through fullUrl: every resource of every Bundle has its patient."""
    spec: ModelSpec = request.getfixturevalue(model)
    rows, stats = _rows(synthea_bundles, spec)
    assert stats.without_patient == 0
    assert stats.unparseable_lines == 0
    assert stats.patients == len(synthea_patients)
    assert stats.resources == sum(len(r) for r in synthea_patients.values())
    _assert_recall(_recall(rows, spec, synthea_patients))


def test_every_ed_visit_is_a_prediction_moment(
    ed_spec: ModelSpec,
    clinosim_export: Path,
    clinosim_patients: dict[str, list[dict[str, Any]]],
    synthea_bundles: Path,
    synthea_patients: dict[str, list[dict[str, Any]]],
) -> None:
    for folder, patients in (
        (clinosim_export, clinosim_patients),
        (synthea_bundles, synthea_patients),
    ):
        rows, _ = _rows(folder, ed_spec)
        got = sorted((r["patient_id"], datetime.fromisoformat(r["index_time"])) for r in rows)
        want = [(e.patient, e.index_time) for e in ed_events(patients, timedelta(hours=1))]
        assert got == sorted(set(want))
        assert len(got) >= 10


def test_clinosim_table_keeps_the_admitted_visits_and_says_which_the_service_cannot_score(
    ed_spec: ModelSpec,
    clinosim_export: Path,
    clinosim_patients: dict[str, list[dict[str, Any]]],
) -> None:
    """clinosim records no triage vitals for the ED visits it admits (its own record has none).
    The table keeps every visit (at least 80% of the admitted ones is the issue's bar) and counts
    the rows the service would show no risk, with their outcomes and the inputs they lacked; the
    oracle confirms that no such row had a value for the input it lacks."""
    stats = TableStats()
    kept = list(iter_rows(clinosim_export, ed_spec, stats))
    everything, _ = _rows(clinosim_export, ed_spec)
    admitted = sum(r["admitted_24h"] for r in everything)
    assert admitted >= 3
    assert stats.rows == len(kept) == len(everything)
    assert sum(r["admitted_24h"] for r in kept) == stats.positives == admitted
    required = [f.name for f in ed_spec.features if f.required]
    lacked = 0
    unscorable = unscorable_positives = 0
    for row in kept:
        missing = [n for n in required if row[n] is None]
        if not missing:
            continue
        unscorable += 1
        unscorable_positives += row["admitted_24h"]
        oracle = Oracle(ed_spec, clinosim_patients[row["patient_id"]])
        when = datetime.fromisoformat(row["index_time"])
        assert not any(oracle.present(n, when) for n in missing)
        lacked += len(missing)
    assert (stats.unscorable, stats.unscorable_positives) == (unscorable, unscorable_positives)
    assert unscorable_positives > 0  # the data lack them: the serving-time rule still applies
    assert sum(stats.unscorable_for.values()) == lacked

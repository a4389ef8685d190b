"""Parallel table builds (fhir_mappers.jobs, table_job): the same bytes for any number of processes,
chunks or shards, with identifier references resolved as one pass would; shard K/N + merge gives
the whole table; one progress bar per phase across all workers."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cds_devtools.synth import generate_cohort
from fhir_mappers.bulk import TableStats, export_sha256, partition_export, write_training_table
from fhir_mappers.jobs import JobReport, default_jobs, run_patient_job
from fhir_mappers.shards import Selection, plan_chunks
from fhir_mappers.spec import ModelSpec, load_spec
from fhir_mappers.table_job import (
    TableJob,
    merge_table_parts,
    part_stats_path,
    table_rows,
    write_part_stats,
)
from tests.conftest import MODELS_DIR

MRN = "urn:oid:2.16.840.1.113883.2.4.6.3"


@pytest.fixture(scope="module")
def export(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("synth")
    generate_cohort(out, ed_patients=60, post_mi_patients=12, seed=3)
    return out


@pytest.fixture(scope="module")
def spec() -> ModelSpec:
    return load_spec(MODELS_DIR / "ed-admission" / "features.toml")


def _stats_view(stats: TableStats) -> dict[str, object]:
    """Stats as the CLI prints and the manifest records them (Counter order included)."""
    return {
        "resources": stats.resources,
        "patients": stats.patients,
        "rows": stats.rows,
        "positives": stats.positives,
        "unscorable": stats.unscorable,
        "unscorable_positives": stats.unscorable_positives,
        "unscorable_for": list(stats.unscorable_for.most_common()),
        "warnings": list(stats.warnings.items()),
        "without_patient": stats.without_patient,
        "unparseable": stats.unparseable_lines,
    }


def test_two_processes_write_the_same_table_as_one(export, spec, tmp_path):
    one = write_training_table(export, spec, tmp_path / "1.csv", jobs=1)
    two = write_training_table(export, spec, tmp_path / "2.csv", jobs=2)
    assert (tmp_path / "1.csv").read_bytes() == (tmp_path / "2.csv").read_bytes()
    assert _stats_view(one) == _stats_view(two)
    assert one.rows > 50 and one.patients == 72


def test_the_table_is_the_single_pass_rows_in_patient_order(export, spec, tmp_path):
    """One shard in one process (the reader before parallel builds) yields the same rows."""
    serial = TableStats()
    patients = partition_export(export, serial, shard_bytes=1 << 40)
    expected = [
        r
        for _, rows in sorted(
            (pid, list(TableJob(spec).run(iter([(pid, res)]), serial))) for pid, res in patients
        )
        for _, r in rows
    ]
    parallel = TableStats()
    got = list(table_rows(export, spec, parallel, jobs=2, shard_bytes=200_000))
    assert got == expected
    assert (parallel.rows, parallel.patients, parallel.resources) == (
        serial.rows,
        serial.patients,
        serial.resources,
    )


def test_byte_range_chunks_and_many_shards_change_nothing(export, spec, tmp_path):
    observations = export / "Observation.ndjson"
    chunks = plan_chunks([observations], 50_000)
    assert len(chunks) > 3 and chunks[0].end == 50_000 and chunks[1].start == 50_000
    base, cut = TableStats(), TableStats()
    whole = list(run_patient_job(export, TableJob(spec), base, jobs=1))
    pieces = list(
        run_patient_job(export, TableJob(spec), cut, jobs=2, chunk_bytes=50_000, shard_bytes=9_000)
    )
    assert pieces == whole
    assert _stats_view(cut) == _stats_view(base)


def _identifier_export(folder: Path) -> Path:
    """Observations referencing their Patient by identifier; a Bundle after them holds a Patient
    that takes over MRN 3, and an Observation for it (a single pass resolves each reference
    to the Patient read before it)."""
    folder.mkdir()
    patients = [
        {"resourceType": "Patient", "id": f"p{i}", "identifier": [{"system": MRN, "value": f"{i}"}]}
        for i in range(30)
    ]
    late = {"resourceType": "Patient", "id": "late", "identifier": [{"system": MRN, "value": "3"}]}
    obs = [
        {
            "resourceType": "Observation",
            "id": f"o{i}",
            "status": "final",
            "code": {"coding": [{"system": "http://loinc.org", "code": "8867-4"}]},
            "subject": {"type": "Patient", "identifier": {"system": MRN, "value": f"{i % 31}"}},
            "effectiveDateTime": "2026-07-01T10:00:00Z",
            "valueQuantity": {"value": 80, "system": "http://unitsofmeasure.org", "code": "/min"},
        }
        for i in range(120)
    ]
    lines = [json.dumps(r) for r in patients]
    (folder / "Patient.ndjson").write_text("\n".join(lines) + "\n", encoding="utf-8")
    (folder / "Observation.ndjson").write_text(
        "\n".join(json.dumps(r) for r in obs) + "\n", encoding="utf-8"
    )
    late_obs = {**obs[3], "id": "o-late"}
    bundle = {
        "resourceType": "Bundle",
        "type": "collection",
        "entry": [{"resource": late_obs}, {"resource": late}],
    }
    (folder / "late.json").write_text(json.dumps(bundle), encoding="utf-8")
    return folder


class _Ids:
    """Which resources each patient got (picklable: it runs in the workers)."""

    def run(self, patients, stats):
        for pid, resources in patients:
            yield pid, sorted(f"{r['resourceType']}/{r['id']}" for r in resources)


def test_identifier_references_resolve_as_one_pass_would(tmp_path):
    folder = _identifier_export(tmp_path / "export")
    serial = TableStats()
    expected = sorted(
        (pid, sorted(f"{r['resourceType']}/{r['id']}" for r in res))
        for pid, res in partition_export(folder, serial)
    )
    parallel = TableStats()
    got = list(run_patient_job(folder, _Ids(), parallel, jobs=2, chunk_bytes=600))
    assert got == expected
    owned = dict(got)
    assert owned["p3"] == [
        "Observation/o3",
        "Observation/o34",
        "Observation/o65",
        "Observation/o96",
        "Patient/p3",
    ]
    assert owned["late"] == ["Observation/o-late", "Patient/late"]
    assert (parallel.resources, parallel.without_patient) == (serial.resources, 3)
    assert serial.without_patient == 3  # MRN 30 is no Patient's: o30, o61, o92


def test_shards_merge_into_the_whole_table(export, spec, tmp_path):
    whole = write_training_table(export, spec, tmp_path / "whole.csv", jobs=1)
    parts = tmp_path / "parts"
    for k in range(3):
        selection = Selection(k, 3)
        target = parts / f"table-{k}.csv"
        stats = write_training_table(export, spec, target, jobs=1, selection=selection)
        assert 0 < stats.rows < whole.rows
        write_part_stats(target, stats, selection)
    merged = merge_table_parts(parts, tmp_path / "merged.csv")
    assert (tmp_path / "merged.csv").read_bytes() == (tmp_path / "whole.csv").read_bytes()
    assert _stats_view(merged) == _stats_view(whole)
    assert merged.export_sha256 == whole.export_sha256 == export_sha256(export)

    part_stats_path(parts / "table-1.csv").unlink()
    with pytest.raises(ValueError, match=r"shards \[0, 2\]"):
        merge_table_parts(parts, tmp_path / "again.csv")


@pytest.mark.parametrize("text", ["3/3", "1", "-1/2", "a/b", "2/0"])
def test_a_bad_shard_is_refused_with_the_form_it_needs(text):
    with pytest.raises(ValueError, match="shard"):
        Selection.parse(text)


def test_one_progress_bar_per_phase_counts_all_workers(export, spec, tmp_path, capfd):
    report = JobReport()
    stats = TableStats()
    rows = list(table_rows(export, spec, stats, jobs=2, progress=True, report=report))
    err = capfd.readouterr().err
    assert rows
    assert "partition: 100%" in err and "extract: 100%" in err
    assert len(report.workers) == 2  # the bar followed both worker processes
    assert all(u.cpu_seconds > 0 and u.peak_rss_kib > 0 for u in report.workers.values())
    list(table_rows(export, spec, TableStats(), jobs=2, progress=False))
    assert "partition" not in capfd.readouterr().err


def test_default_jobs_are_the_cpus_this_process_may_use(monkeypatch, tmp_path):
    import os

    from fhir_mappers import jobs

    monkeypatch.setattr(jobs, "_cgroup_cpu_quota", lambda: None)
    assert default_jobs() == len(os.sched_getaffinity(0))
    monkeypatch.setattr(jobs, "_cgroup_cpu_quota", lambda: 0.5)  # limits.cpu: 500m
    assert default_jobs() == 1


@pytest.mark.parametrize(
    ("files", "expected"),
    [
        ({"cpu.max": "150000 100000\n"}, 1.5),
        ({"cpu.max": "max 100000\n"}, None),
        ({"cpu/cpu.cfs_quota_us": "200000\n", "cpu/cpu.cfs_period_us": "100000\n"}, 2.0),
        ({"cpu/cpu.cfs_quota_us": "-1\n", "cpu/cpu.cfs_period_us": "100000\n"}, None),
        ({}, None),
    ],
)
def test_the_cgroup_cpu_quota_is_read_from_v2_or_v1(tmp_path, files, expected):
    from fhir_mappers.jobs import _cgroup_cpu_quota

    for name, text in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    assert _cgroup_cpu_quota(tmp_path) == expected

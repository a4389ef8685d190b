"""The site-terminology trail record: once per change, even when workers record it together."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from cds_service.db.deployments import TERMINOLOGY_RECORD, all_records, current_state
from cds_service.db.engine import upgrade
from cds_service.lifecycle.site_terminology import operator_name, record_site_terminology
from fhir_mappers.site_terminology import NO_SITE_TERMINOLOGY, load_site_terminology
from tests.utils.service import BACKENDS, new_database
from tests.utils.site_terminology import glucose_concept_map, write_site


@pytest.mark.parametrize("backend", BACKENDS)
def test_workers_recording_together_append_one_record(backend: str, tmp_path: Path) -> None:
    db = new_database(backend, tmp_path)
    try:
        upgrade(db.engine)
        site = load_site_terminology(write_site(tmp_path / "site", glucose_concept_map()))
        barrier = threading.Barrier(4)
        results: list[bool] = []

        def worker() -> None:
            barrier.wait()
            results.append(record_site_terminology(db.engine, "production", site, "it-ops"))

        threads = [threading.Thread(target=worker) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert sorted(results) == [False, False, False, True]
        records = [r for r in all_records(db.engine) if r["model_name"] == TERMINOLOGY_RECORD]
        assert [(r["environment"], r["artifact_sha256"]) for r in records] == [
            ("production", site.sha256)
        ]
        # the record is not a model: the serving state ignores it
        assert current_state(all_records(db.engine), "production") == {}
        # the same hash elsewhere is a change there; no folder where none was recorded is not
        assert record_site_terminology(db.engine, "acceptance", site, "it-ops")
        assert not record_site_terminology(db.engine, "acceptance", site, "it-ops")
        assert not record_site_terminology(db.engine, "development", site, "it-ops")
        assert not record_site_terminology(db.engine, "production", site, "it-ops")
        fresh = new_database("sqlite", tmp_path / "fresh") if backend == "sqlite" else None
        if fresh is not None:
            upgrade(fresh.engine)
            assert not record_site_terminology(
                fresh.engine, "production", NO_SITE_TERMINOLOGY, "it-ops"
            )
            fresh.close()
    finally:
        db.close()


def test_operator_is_the_configured_one_or_the_process_user() -> None:
    assert operator_name("qa-lead") == "qa-lead"
    assert operator_name(None)

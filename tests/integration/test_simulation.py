"""The simulation drives a real, signed service over simulated days; the monitor must flag an
injected shift and stay quiet without one. On SQLite and PostgreSQL."""

from __future__ import annotations

from contextlib import AbstractContextManager
from pathlib import Path

import pytest

from cds_devtools.simulate import SimulationReport
from cds_service.config import Settings
from tests.utils.service import BACKENDS, Database
from tests.utils.simulation import simulated


@pytest.fixture(scope="module")
def cohort_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("sim-cohort")


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def _run(
    backend: str, tmp: Path, cohort: Path, shift: str
) -> AbstractContextManager[tuple[SimulationReport, Database, Settings]]:
    return simulated(
        backend,
        tmp,
        cohort,
        days=28,
        shift=shift,
        shift_day=14,
        cohort_patients=12000,
        monitor_window_days=14,
    )


@pytest.mark.slow
@pytest.mark.parametrize(("shift", "feature"), [("population", "age"), ("lactate-unit", "lactate")])
def test_simulation_flags_an_injected_shift(
    shift: str, feature: str, backend: str, tmp_path: Path, cohort_dir: Path
) -> None:
    with _run(backend, tmp_path, cohort_dir, shift) as (report, db, _):
        _assert_flagged(report, db, feature)


def _assert_flagged(report: SimulationReport, db: Database, feature: str) -> None:
    assert report.outcomes is not None and report.window_start is not None
    assert report.status_counts == {200: report.calls} and report.calls > 300
    assert report.feedback > 0 and report.outcomes.outcomes_written > 0
    flagged = [a for a in report.drift_alerts if a.endswith(f" {feature}")]
    assert flagged, report.monitor_summary
    first_window = report.window_start.strftime("%Y-%m-%d")
    assert all(not a.startswith(first_window) for a in flagged), "flagged before the shift"
    rows = db.rows("SELECT metric FROM v_alerts WHERE feature = :f", f=feature)
    assert rows
    perf = db.rows("SELECT model_name, value FROM v_performance WHERE metric = 'auroc'")
    # The arrival model answers only the few visits without triage vitals at start + 1 h: too
    # few outcomes in a window for a stable AUROC, so only the range is checked for it.
    main = [r for r in perf if r["model_name"] != "ed-admission-arrival"]
    assert main and all(0.5 < r["value"] <= 1 for r in main)
    assert all(r["value"] is None or 0 <= r["value"] <= 1 for r in perf)


@pytest.mark.slow
def test_simulation_without_shift_raises_no_drift_alert(
    backend: str, tmp_path: Path, cohort_dir: Path
) -> None:
    with _run(backend, tmp_path, cohort_dir, "none") as (report, _, _):
        assert report.calls > 300
        assert report.drift_alerts == [], report.monitor_summary

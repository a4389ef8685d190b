"""Estimated performance on a simulated period (issue 16, item 1): with the outcomes of the last
week withheld, the monitor stores estimates only for it; once the outcomes are added, the
estimated AUROC, event rate (calibration-in-the-large) and Brier score lie within the sampling
error of the realized ones, and the estimate is the same number it was before the outcomes.
On SQLite and PostgreSQL, with a real signed service and a real simulation."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from cds_devtools.estimate_check import check_estimates
from cds_service.monitoring.estimate_report import estimate_rows, render_estimates
from tests.utils.service import BACKENDS
from tests.utils.simulation import simulated

MODEL = "ed-admission"


@pytest.fixture(scope="module")
def cohort_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("estimate-cohort")


@pytest.mark.parametrize("backend", BACKENDS)
def test_estimates_within_sampling_error_once_outcomes_arrive(
    backend: str, tmp_path: Path, cohort_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    options = {"days": 14, "cohort_patients": 20000, "monitor_window_days": 7}
    with simulated(backend, tmp_path, cohort_dir, **options) as (report, db, settings):
        assert report.window_start is not None and report.window_end is not None
        start, end = report.window_start, report.window_end
        week = timedelta(days=7)
        check = check_estimates(
            db.engine,
            settings.models_dir,
            start=start,
            end=end,
            window=week,
            withhold_from=end - week,
        )
        assert check.withheld > 50

        before = [r for r in estimate_rows(db.engine, check.before.run_id) if r.model_name == MODEL]
        after = [r for r in estimate_rows(db.engine, check.after.run_id) if r.model_name == MODEL]
        print("outcomes withheld for the last week:")
        print(render_estimates(before, 10))
        print("outcomes added:")
        print(render_estimates(after, 10))

        last = end - week
        withheld = {r.figure: r for r in before if r.window_start == last}
        assert {"auroc", "prevalence", "brier"} <= set(withheld)
        assert all(r.realized is None for r in withheld.values())  # no outcomes: estimate only
        added = {r.figure: r for r in after if r.window_start == last}
        for figure in ("auroc", "prevalence", "brier"):
            r = added[figure]
            assert r.estimate == withheld[figure].estimate  # the same estimate as before
            assert r.realized is not None and r.standard_error is not None
            assert r.realized_n > 100
            assert abs(r.estimate - r.realized) <= 1.96 * r.standard_error + 1e-9, r  # type: ignore[operator]
            assert r.within_band
        # The earlier window had its outcomes all along: realized beside estimated in both runs.
        assert any(r.realized is not None for r in before if r.window_start == start)
        realized = db.rows(
            "SELECT value FROM monitoring_results WHERE run_id = :r AND metric = 'auroc' "
            "AND model_name = :m AND subgroup = '' AND role = 'live' ORDER BY window_start",
            r=check.after.run_id,
            m=MODEL,
        )
        assert len(realized) == 2
        assert realized[-1]["value"] == pytest.approx(added["auroc"].realized, abs=1e-6)
    out = capsys.readouterr().out
    with capsys.disabled():
        print(out)

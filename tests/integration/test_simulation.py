"""The simulation drives a real, signed service over simulated days; the monitor must flag an
injected shift and stay quiet without one. On SQLite and PostgreSQL."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import respx

from cds_devtools.simulate import run_simulation
from cds_service.audit.spool import Spool
from cds_service.audit.writer import AuditWriter
from cds_service.main import create_app
from cds_service.security.local_issuer import generate_key, public_jwks, sign
from tests.utils.server import ServerThread
from tests.utils.service import BACKENDS, PUBLIC_BASE, make_settings, new_database

ISS = "urn:cds-risk:simulator"


@pytest.fixture(scope="module")
def cohort_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("sim-cohort")


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def _run(backend: str, tmp: Path, cohort: Path, shift: str) -> Iterator[object]:
    db = new_database(backend, tmp)
    key = generate_key("ES384")
    callers = tmp / "callers.json"
    callers.write_text(json.dumps([{"iss": ISS, "jwks": public_jwks(key), "fhir_servers": []}]))
    settings = make_settings(
        db.url, tmp, auth_disabled=False, trusted_issuers=callers, allow_simulated_time=True
    )
    app = create_app(settings, transport=httpx.MockTransport(respx.MockRouter().async_handler))
    try:
        with ServerThread(app) as server:
            report = run_simulation(
                base_url=server.url,
                public_base_url=PUBLIC_BASE,
                engine=db.engine,
                writer=AuditWriter(db.engine, Spool(tmp / "spool-sim")),
                models_dir=settings.models_dir,
                pseudonym_key=settings.effective_pseudonym_key,
                workdir=cohort,
                sign=lambda aud: sign(key, iss=ISS, aud=aud),
                days=28,
                shift=shift,
                shift_day=14,
                cohort_patients=12000,
                monitor_window_days=14,
            )
            yield report
            yield db
    finally:
        db.close()


@pytest.mark.slow
@pytest.mark.parametrize(("shift", "feature"), [("population", "age"), ("lactate-unit", "lactate")])
def test_simulation_flags_an_injected_shift(
    shift: str, feature: str, backend: str, tmp_path: Path, cohort_dir: Path
) -> None:
    run = _run(backend, tmp_path, cohort_dir, shift)
    report = next(run)
    db = next(run)
    assert report.status_counts == {200: report.calls} and report.calls > 300  # type: ignore[attr-defined]
    assert report.feedback > 0 and report.outcomes.outcomes_written > 0  # type: ignore[attr-defined]
    flagged = [a for a in report.drift_alerts if a.endswith(f" {feature}")]  # type: ignore[attr-defined]
    assert flagged, report.monitor_summary  # type: ignore[attr-defined]
    first_window = report.window_start.strftime("%Y-%m-%d")  # type: ignore[attr-defined]
    assert all(not a.startswith(first_window) for a in flagged), "flagged before the shift"
    rows = db.rows("SELECT metric FROM v_alerts WHERE feature = :f", f=feature)  # type: ignore[attr-defined]
    assert rows
    perf = db.rows("SELECT model_name, value FROM v_performance WHERE metric = 'auroc'")  # type: ignore[attr-defined]
    # The arrival model answers only the few visits without triage vitals at start + 1 h: too
    # few outcomes in a window for a stable AUROC, so only the range is checked for it.
    main = [r for r in perf if r["model_name"] != "ed-admission-arrival"]
    assert main and all(0.5 < r["value"] <= 1 for r in main)
    assert all(r["value"] is None or 0 <= r["value"] <= 1 for r in perf)
    next(run, None)


@pytest.mark.slow
def test_simulation_without_shift_raises_no_drift_alert(
    backend: str, tmp_path: Path, cohort_dir: Path
) -> None:
    run = _run(backend, tmp_path, cohort_dir, "none")
    report = next(run)
    next(run)
    assert report.calls > 300  # type: ignore[attr-defined]
    assert report.drift_alerts == [], report.monitor_summary  # type: ignore[attr-defined]
    next(run, None)

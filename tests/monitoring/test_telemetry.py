"""Monitoring figures as OpenTelemetry gauges, read by the SDK's in-memory metric reader from a
real database (SQLite and PostgreSQL): the latest window only, the latest run's value, no
subgroup figures, no figure from a small cell, no patient data in the attributes."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from opentelemetry.sdk.metrics.export import InMemoryMetricReader

from cds_service.db.engine import upgrade
from cds_service.db.tables import MonitoringResult
from cds_service.monitoring.telemetry import configure_metrics
from tests.utils.service import BACKENDS, Database, new_database

RESULTS: sa.Table = MonitoringResult.__table__  # type: ignore[attr-defined]
W1 = datetime(2026, 3, 2, tzinfo=UTC)
W2 = W1 + timedelta(days=7)


@pytest.fixture(params=BACKENDS)
def db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Database]:
    d = new_database(str(request.param), tmp_path)
    upgrade(d.engine)
    try:
        yield d
    finally:
        d.close()


def _row(
    run: str, start: datetime, metric: str, value: float | None, n: int, **kw: str
) -> dict[str, Any]:
    return {
        "run_id": run,
        "service_id": "ed-admission-risk",
        "model_name": kw.get("model", "ed-admission"),
        "model_version": "1.0.0",
        "environment": "production",
        "role": "live",
        "window_start": start,
        "window_end": start + timedelta(days=7),
        "metric": metric,
        "feature": kw.get("feature", ""),
        "subgroup": kw.get("subgroup", ""),
        "value": value,
        "n": n,
        "details": "{}",
    }


def _collect(reader: InMemoryMetricReader) -> dict[str, list[tuple[dict[str, Any], float]]]:
    data = reader.get_metrics_data()
    out: dict[str, list[tuple[dict[str, Any], float]]] = {}
    assert data is not None
    for rm in data.resource_metrics:
        for sm in rm.scope_metrics:
            for m in sm.metrics:
                out[m.name] = [(dict(p.attributes or {}), p.value) for p in m.data.data_points]
    return out


def test_latest_figures_exported_as_gauges_with_small_cells_left_out(db: Database) -> None:
    rows = [
        _row("r1", W1, "auroc", 0.70, 300),  # an older window: not exported
        _row("r1", W2, "auroc", 0.79, 250),  # replaced by the later run's figure below
        _row("r2", W2, "auroc", 0.81, 260),
        _row("r2", W2, "estimated_auroc", 0.80, 400),
        _row("r2", W2, "estimated_prevalence", 0.31, 400),
        _row("r2", W2, "prevalence", 0.30, 260),
        _row("r2", W2, "calibration_intercept", 0.05, 260),
        _row("r2", W2, "missing_rate", 0.12, 400, feature="lactate"),
        _row("r2", W2, "psi", 0.03, 350, feature="age"),
        _row("r2", W2, "volume", 400, 400),
        _row("r2", W2, "auroc", 0.55, 40, subgroup="sex=female"),  # subgroups stay in SQL
        _row("r2", W2, "alert_ppv", 0.5, 6),  # a small cell: never exported
        _row("r2", W2, "estimated_alert_ppv", 0.45, 9),  # a small cell
        _row("r2", W2, "volume", 3, 3, model="ed-admission-arrival"),  # a small cell
        _row("r2", W2, "volume", 0, 0, model="quiet-model"),  # zero names nobody
        _row("r2", W2, "ece", None, 260),  # no value: nothing observed
    ]
    with db.engine.begin() as conn:
        conn.execute(RESULTS.insert(), rows)
    reader = InMemoryMetricReader()
    provider = configure_metrics(db.engine, 10, reader=reader, environment="test")
    assert provider is not None
    try:
        got = _collect(reader)
    finally:
        provider.shutdown()

    auroc = {a["estimate"]: v for a, v in got["cds.monitoring.auroc"]}
    assert auroc == {"realized": pytest.approx(0.81), "estimated": pytest.approx(0.80)}
    attrs = got["cds.monitoring.auroc"][0][0]
    assert attrs == {
        "cds.service": "ed-admission-risk",
        "cds.model.name": "ed-admission",
        "cds.model.version": "1.0.0",
        "deployment.environment": "production",
        "cds.role": "live",
        "cds.monitoring.window": "168h",
        "estimate": attrs["estimate"],
    }
    rates = {a["estimate"]: v for a, v in got["cds.monitoring.event_rate"]}
    assert rates == {"realized": pytest.approx(0.30), "estimated": pytest.approx(0.31)}
    assert got["cds.monitoring.calibration_intercept"][0][1] == pytest.approx(0.05)
    [(missing_attrs, missing)] = got["cds.monitoring.missing_rate"]
    assert missing_attrs["cds.feature"] == "lactate" and missing == pytest.approx(0.12)
    assert got["cds.monitoring.psi"][0][0]["cds.feature"] == "age"
    volumes = {a["cds.model.name"]: v for a, v in got["cds.monitoring.volume"]}
    assert volumes == {"ed-admission": 400, "quiet-model": 0}
    assert "cds.monitoring.alert_ppv" not in got  # both figures were small cells
    assert "cds.monitoring.ece" not in got
    for points in got.values():
        for a, _ in points:
            assert not {"patient", "card_uuid", "encounter"} & {k.split(".")[-1] for k in a}
            assert "subgroup" not in a


def test_nothing_configured_without_an_endpoint(
    db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("OTEL_EXPORTER_OTLP_ENDPOINT", raising=False)
    monkeypatch.delenv("OTEL_EXPORTER_OTLP_METRICS_ENDPOINT", raising=False)
    assert configure_metrics(db.engine, 10) is None

"""Monitoring figures as OpenTelemetry gauges, read by the SDK's in-memory metric reader from a
real database (SQLite and PostgreSQL): the latest window only, the latest run's value, no
subgroup figures, no figure from a small cell, no patient data in the attributes."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

import pytest
import sqlalchemy as sa
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
)
from opentelemetry.sdk.metrics.export import InMemoryMetricReader

from cds_service.db.engine import upgrade
from cds_service.db.tables import MonitoringResult
from cds_service.main import create_app
from cds_service.monitoring.telemetry import configure_metrics
from tests.utils.server import ServerThread
from tests.utils.service import Database, make_settings, new_database

RESULTS: sa.Table = MonitoringResult.__table__  # type: ignore[attr-defined]
W1 = datetime(2026, 3, 2, tzinfo=UTC)
W2 = W1 + timedelta(days=7)


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
        "details": kw.get("details", "{}"),
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
        _row("r2", W2, "outcomes", 260, 260, details='{"positives": 80}'),
        _row("r2", W2, "auroc", 0.81, 260),
        _row("r2", W2, "estimated_auroc", 0.80, 400),
        _row("r2", W2, "estimated_prevalence", 0.31, 400),
        _row("r2", W2, "prevalence", 0.30, 260),
        _row("r2", W2, "calibration_intercept", 0.05, 260),
        _row("r2", W2, "missing_rate", 0.12, 400, feature="lactate", details='{"missing": 48}'),
        _row("r2", W2, "missing_rate", 0.01, 400, feature="crp", details='{"missing": 4}'),
        _row("r2", W2, "alert_rate", 0.98, 400, details='{"alerting": 392}'),  # 8 not alerting
        _row("r2", W2, "outcomes", 200, 200, model="few-positives", details='{"positives": 6}'),
        _row("r2", W2, "auroc", 0.9, 200, model="few-positives"),
        _row("r2", W2, "estimated_auroc", 0.88, 200, model="few-positives"),
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

    auroc = {(a["cds.model.name"], a["estimate"]): v for a, v in got["cds.monitoring.auroc"]}
    assert auroc == {
        ("ed-admission", "realized"): pytest.approx(0.81),
        ("ed-admission", "estimated"): pytest.approx(0.80),
        # six positive outcomes: the realized AUROC is a small cell; the estimate is not
        ("few-positives", "estimated"): pytest.approx(0.88),
    }
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
    assert "cds.monitoring.alert_rate" not in got  # 8 cards did not alert: a small complement
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


class _Collector(BaseHTTPRequestHandler):
    """A real OTLP/HTTP receiver on loopback: keeps the decoded metric export requests."""

    received: ClassVar[list[ExportMetricsServiceRequest]] = []

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        if self.path == "/v1/metrics":
            request = ExportMetricsServiceRequest()
            request.ParseFromString(body)
            self.received.append(request)
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


def test_the_service_exports_the_gauges_over_otlp(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    db = new_database("sqlite", tmp_path)
    upgrade(db.engine)
    with db.engine.begin() as conn:
        conn.execute(
            RESULTS.insert(),
            [_row("r1", W2, "estimated_auroc", 0.8, 400), _row("r1", W2, "volume", 4, 4)],
        )
    collector = ThreadingHTTPServer(("127.0.0.1", 0), _Collector)
    thread = threading.Thread(target=collector.serve_forever, daemon=True)
    thread.start()
    _Collector.received.clear()
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", f"http://127.0.0.1:{collector.server_port}")
    monkeypatch.setenv("OTEL_METRIC_EXPORT_INTERVAL", "100")
    settings = make_settings(db.url, tmp_path)
    try:
        with ServerThread(create_app(settings)):
            deadline = time.monotonic() + 20
            while not _names(_Collector.received) and time.monotonic() < deadline:
                time.sleep(0.05)
    finally:
        collector.shutdown()
        collector.server_close()
        db.close()
    points = _names(_Collector.received)
    assert points.get("cds.monitoring.auroc") == [0.8]
    assert "cds.monitoring.volume" not in points  # 4 cards: a small cell


def _names(requests: list[ExportMetricsServiceRequest]) -> dict[str, list[float]]:
    out: dict[str, list[float]] = {}
    for request in requests:
        for rm in request.resource_metrics:
            for sm in rm.scope_metrics:
                for m in sm.metrics:
                    out[m.name] = [p.as_double for p in m.gauge.data_points]
    return out

"""Monitoring figures as OpenTelemetry metrics, so a hospital's Grafana / Prometheus sees the
same numbers as the quality views: one observable gauge per figure, observed per model, version,
service, environment, role and window length, from the latest window monitoring_results holds.

The gauges read PostgreSQL (or SQLite) at each collection, not a per-process copy: every replica
exports the same values whichever replica ran the monitor. Attributes name models, features and
windows, never a patient, card or encounter. A figure from fewer than ``small_cell_min`` cards
or whose numerator (outcomes of either class, alerting or missing cards) is that small (the
small-cell rule, suppression.py) is not observed at all; subgroup figures are not exported.
Exporting failures are the SDK's to log: a collector that is down never fails the service.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable, Iterable
from typing import Any

import sqlalchemy as sa
from opentelemetry.metrics import CallbackOptions, Observation
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import MetricReader, PeriodicExportingMetricReader
from opentelemetry.sdk.resources import Resource
from sqlalchemy.engine import Engine

from cds_service.db.tables import MonitoringResult
from cds_service.monitoring.suppression import is_small
from fhir_mappers.timeutil import as_utc

__all__ = ["GAUGES", "configure_metrics", "latest_figures"]

log = logging.getLogger("cds_service.monitoring.telemetry")
RESULTS: sa.Table = MonitoringResult.__table__  # type: ignore[attr-defined]

# gauge -> (unit, description, {monitoring_results metric: extra attributes})
GAUGES: dict[str, tuple[str, str, dict[str, dict[str, str]]]] = {
    "cds.monitoring.auroc": (
        "1",
        "AUROC of the latest window: realized (outcomes in) or estimated (from the risks)",
        {"auroc": {"estimate": "realized"}, "estimated_auroc": {"estimate": "estimated"}},
    ),
    "cds.monitoring.event_rate": (
        "1",
        "Outcome rate, observed or predicted by the calibrated risks (calibration in the large)",
        {"prevalence": {"estimate": "realized"}, "estimated_prevalence": {"estimate": "estimated"}},
    ),
    "cds.monitoring.alert_ppv": (
        "1",
        "Share of alerting cards with a positive outcome, realized or estimated",
        {"alert_ppv": {"estimate": "realized"}, "estimated_alert_ppv": {"estimate": "estimated"}},
    ),
    "cds.monitoring.brier": (
        "1",
        "Brier score, realized or estimated",
        {"brier": {"estimate": "realized"}, "estimated_brier": {"estimate": "estimated"}},
    ),
    "cds.monitoring.calibration_intercept": (
        "1",
        "Calibration-in-the-large (logit)",
        {"calibration_intercept": {}},
    ),
    "cds.monitoring.calibration_slope": ("1", "Calibration slope", {"calibration_slope": {}}),
    "cds.monitoring.ece": ("1", "Expected calibration error", {"ece": {}}),
    "cds.monitoring.psi": ("1", "Population stability index of an input", {"psi": {}}),
    "cds.monitoring.prediction_psi": (
        "1",
        "Population stability index of the predicted risks",
        {"prediction_psi": {}},
    ),
    "cds.monitoring.missing_rate": ("1", "Share of cards missing an input", {"missing_rate": {}}),
    "cds.monitoring.volume": ("{card}", "Cards in the latest window", {"volume": {}}),
    "cds.monitoring.alert_rate": ("1", "Share of risk cards that alerted", {"alert_rate": {}}),
}
_METRICS = sorted({m for _, _, metrics in GAUGES.values() for m in metrics})

# (metric, attributes, value): what the gauges observe.
Figure = tuple[str, dict[str, str], float]


# Realized figures on the outcomes: small when either outcome class is (the `outcomes` row's
# positives). Rates: small when their numerator (in `details`) or its complement is.
_ON_OUTCOMES = {"auroc", "prevalence", "brier", "calibration_intercept", "calibration_slope", "ece"}
_NUMERATORS = {"alert_rate": "alerting", "missing_rate": "missing", "alert_ppv": "positives"}


def _small(
    metric: str, n: int, details: dict[str, Any], positives: int | None, minimum: int
) -> bool:
    counts = [n]
    if metric in _ON_OUTCOMES:
        if positives is None:
            return True  # the classes are unknown: whether a cell is small cannot be told
        counts += [positives, n - positives]
    elif metric in _NUMERATORS:
        part = int(details.get(_NUMERATORS[metric], 0))
        counts += [part, n - part]
    return any(is_small(c, minimum) for c in counts)


def latest_figures(engine: Engine, small_cell_min: int) -> list[Figure]:
    """The whole-population figures of each group's latest window (by window end, then the
    latest run's row), without those that rest on a small cell (suppression.py)."""
    r = RESULTS
    group = [r.c.service_id, r.c.model_name, r.c.model_version, r.c.environment, r.c.role]
    latest = (
        sa.select(*group, sa.func.max(r.c.window_end).label("window_end"))
        .where(r.c.subgroup == "")
        .group_by(*group)
        .subquery()
    )
    on = sa.and_(
        *[col == latest.c[col.name] for col in group], r.c.window_end == latest.c.window_end
    )
    query = (
        sa.select(
            *group,
            r.c.window_start,
            r.c.window_end,
            r.c.metric,
            r.c.feature,
            r.c.value,
            r.c.n,
            r.c.details,
        )
        .select_from(r.join(latest, on))
        .where(r.c.subgroup == "", r.c.metric.in_([*_METRICS, "outcomes"]))
        .order_by(r.c.id)
    )
    rows: dict[tuple[Any, ...], tuple[Any, ...]] = {}
    positives: dict[tuple[Any, ...], int] = {}
    with engine.connect() as conn:
        for (
            service,
            model,
            version,
            env,
            role,
            ws,
            we,
            metric,
            feature,
            value,
            n,
            details,
        ) in conn.execute(query):
            g = (service, model, version, env, role)
            if metric == "outcomes":
                positives[g] = int(json.loads(details).get("positives", 0))
                continue
            rows[(*g, metric, feature)] = (as_utc(ws), as_utc(we), value, int(n), details)
    out: list[Figure] = []
    for (service, model, version, env, role, metric, feature), (
        ws,
        we,
        value,
        n,
        details,
    ) in rows.items():
        g = (service, model, version, env, role)
        if value is None or _small(
            metric, n, json.loads(details), positives.get(g), small_cell_min
        ):
            continue
        attributes = {
            "cds.service": service,
            "cds.model.name": model,
            "cds.model.version": version,
            "deployment.environment": env,
            "cds.role": role,
            "cds.monitoring.window": f"{(we - ws).total_seconds() / 3600:g}h",
        }
        if feature:
            attributes["cds.feature"] = feature
        out.append((metric, attributes, float(value)))
    return out


def _callback(
    figures: Callable[[], list[Figure]], metrics: dict[str, dict[str, str]]
) -> Callable[[CallbackOptions], Iterable[Observation]]:
    def observe(_options: CallbackOptions) -> Iterable[Observation]:
        return [
            Observation(value, {**attributes, **metrics[metric]})
            for metric, attributes, value in figures()
            if metric in metrics
        ]

    return observe


class _Snapshot:
    """One database read per collection, shared by all gauges' callbacks."""

    def __init__(self, engine: Engine, small_cell_min: int) -> None:
        self.engine, self.minimum = engine, small_cell_min
        self.pending: set[str] = set()
        self.figures: list[Figure] = []

    def get(self, gauge: str) -> list[Figure]:
        if not self.pending:
            try:
                self.figures = latest_figures(self.engine, self.minimum)
            except sa.exc.SQLAlchemyError as exc:
                log.warning("monitoring metrics: figures not read (%s)", type(exc).__name__)
                self.figures = []
            self.pending = set(GAUGES)
        self.pending.discard(gauge)
        return self.figures


def configure_metrics(
    engine: Engine,
    small_cell_min: int,
    reader: MetricReader | None = None,
    environment: str = "",
) -> MeterProvider | None:
    """A meter provider with the monitoring gauges: on ``reader`` when given, else on an OTLP
    exporter when OTEL_EXPORTER_OTLP_ENDPOINT or OTEL_EXPORTER_OTLP_METRICS_ENDPOINT is set
    (the exporter reads the standard OTEL_* variables itself); else None, nothing exported."""
    if reader is None:
        if not (
            os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT")
            or os.environ.get("OTEL_EXPORTER_OTLP_METRICS_ENDPOINT")
        ):
            return None
        from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter

        reader = PeriodicExportingMetricReader(OTLPMetricExporter())
    provider = MeterProvider(
        metric_readers=[reader],
        resource=Resource.create(
            {"service.name": "cds-risk-service", "deployment.environment": environment}
        ),
    )
    meter = provider.get_meter("cds_service.monitoring")
    snapshot = _Snapshot(engine, small_cell_min)
    for name, (unit, description, metrics) in GAUGES.items():

        def figures(gauge: str = name) -> list[Figure]:
            return snapshot.get(gauge)

        meter.create_observable_gauge(
            name, callbacks=[_callback(figures, metrics)], unit=unit, description=description
        )
    return provider

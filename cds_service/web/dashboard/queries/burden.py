"""The alert-burden panel's figures: the grid of ``cds-service thresholds`` (one definition, the
function monitoring/alert_burden.py) for the selected model, period, role, version and
environment, with the band limits of today's hook definitions added and marked, and every figure
through the small-cell rule of monitoring/suppression.py before it reaches the page or its JSON."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, time, timedelta

from sqlalchemy.engine import Engine

from cds_service.monitoring.alert_burden import DEFAULT_GRID, ThresholdFigures, alert_burden
from cds_service.monitoring.suppression import SUPPRESSED, is_small, suppressed_ratio
from cds_service.serving.registry import Registry
from cds_service.web.dashboard.queries.filters import Filters

__all__ = ["Burden", "BurdenRow", "band_limits", "burden", "outcome_labels"]


@dataclass(slots=True)
class BurdenRow:
    """One threshold; a figure is None when withheld (its name then in ``suppressed``)."""

    threshold: float
    band_limit: bool
    alerts: int | None
    per_day: float | None
    sensitivity: float | None
    ppv: float | None
    nna: float | None
    suppressed: list[str] = field(default_factory=list)


@dataclass(slots=True)
class Burden:
    model: str | None
    days: int = 0
    risk_cards: int | None = 0
    labelled: int | None = 0
    positives: int | None = 0
    rows: list[BurdenRow] = field(default_factory=list)


def outcome_labels(registry: Registry, model: str) -> dict[str, str]:
    """Model version -> outcome label name, from the manifests the service loaded."""
    out: dict[str, str] = {}
    for (name, version), loaded in registry.models.items():
        label = (loaded.manifest.get("label") or {}).get("name")
        if name == model and label:
            out[version] = str(label)
    return out


def band_limits(registry: Registry, model: str) -> list[float]:
    """The band limits (``below``) of the hook definitions that answer with ``model``."""
    return sorted(
        {
            band.below
            for d in registry.services.values()
            if any(name == model for name, _version in d.model_versions)
            for band in d.bands
            if band.below != float("inf")
        }
    )


def _ratio(numerator: int, denominator: int, minimum: int) -> float | None:
    """The ratio, or None where the printed grid shows "-" or "suppressed" (the same rule)."""
    if suppressed_ratio(numerator, denominator, minimum) in ("-", SUPPRESSED):
        return None
    return numerator / denominator


def _shown(count: int, minimum: int) -> int | None:
    return None if is_small(count, minimum) else count


def _row(f: ThresholdFigures, days: int, positives: int, current: bool, minimum: int) -> BurdenRow:
    alerts = _shown(f.alerts, minimum)
    sensitivity = _ratio(f.true_alerts, positives, minimum)
    ppv = _ratio(f.true_alerts, f.labelled_alerts, minimum)
    nna = f.labelled_alerts / f.true_alerts if ppv is not None and f.true_alerts else None
    row = BurdenRow(
        f.threshold,
        current,
        alerts,
        None if alerts is None else f.alerts / days,
        sensitivity,
        ppv,
        nna,
    )
    row.suppressed = [
        name
        for name, hidden in (
            ("alerts", alerts is None),
            ("per_day", alerts is None),
            ("sensitivity", sensitivity is None and positives > 0),
            ("ppv", ppv is None and f.labelled_alerts > 0),
            ("nna", ppv is None and f.labelled_alerts > 0),
        )
        if hidden
    ]
    return row


def burden(engine: Engine, registry: Registry, f: Filters, minimum: int) -> Burden:
    """The grid over the selected days (``f.start`` to ``f.end`` inclusive, UTC)."""
    if f.model_name is None:
        return Burden(None)
    current = band_limits(registry, f.model_name)
    start = datetime.combine(f.start, time(), UTC)
    b = alert_burden(
        engine,
        f.model_name,
        start,
        datetime.combine(f.end + timedelta(days=1), time(), UTC),
        labels=outcome_labels(registry, f.model_name),
        grid=sorted({*DEFAULT_GRID, *current}),
        role=f.role,
        version=f.model_version,
        environment=f.environment,
    )
    rows = [
        _row(t, b.days, b.positives, any(abs(t.threshold - c) < 1e-9 for c in current), minimum)
        for t in b.rows
    ]
    return Burden(
        f.model_name,
        b.days,
        _shown(b.risk_cards, minimum),
        _shown(b.labelled, minimum),
        _shown(b.positives, minimum),
        rows if b.risk_cards else [],
    )

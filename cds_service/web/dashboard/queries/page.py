"""Everything one dashboard page shows, collected on one connection."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from cds_service.db.views import (
    V_CALIBRATION,
    V_CARDS,
    V_DRIFT,
    V_PERFORMANCE,
    V_SUBGROUPS,
)
from cds_service.monitoring import PERFORMANCE_METRICS as MONITORED_PERFORMANCE
from cds_service.serving.hook_defs import HookDefinition
from cds_service.serving.registry import Registry
from cds_service.web.dashboard.queries.burden import Burden, burden
from cds_service.web.dashboard.queries.cards import (
    DayVolume,
    Feedback,
    Histogram,
    MissingRate,
    Shadow,
    feedback,
    latency_mean,
    missing_rates,
    outcome_counts,
    risk_histogram,
    shadow_comparison,
    volume_by_day,
)
from cds_service.web.dashboard.queries.filters import Filters
from cds_service.web.dashboard.queries.monitoring import (
    CalibrationBin,
    Figure,
    SubgroupRow,
    Windows,
    monitoring_figures,
    monitoring_windows,
    pooled_calibration,
    pooled_subgroups,
)
from cds_service.web.dashboard.queries.small_cells import (
    suppress_calibration,
    suppress_reasons,
    suppress_subgroups,
)
from cds_service.web.dashboard.queries.trail import AlertItem, DeploymentItem, alerts, deployments

DRIFT_METRICS = ("psi", "ks_statistic", "ks_pvalue", "prediction_psi", "reference_too_small")
# The monitor's performance figures plus the counts it stores beside them (one list, not two).
PERFORMANCE_METRICS = (*MONITORED_PERFORMANCE, "outcomes", "volume")
SUBGROUP_METRICS = ("volume", "alert_rate", "outcomes", "prevalence", "auroc", "brier")


@dataclass(slots=True)
class DashboardData:
    filters: Filters
    volume: list[DayVolume]
    latency_ms: float | None
    histogram: Histogram
    missing: list[MissingRate]
    feedback: Feedback
    outcomes: tuple[int, int]
    shadow: Shadow
    windows: Windows
    drift: list[Figure]
    performance: list[Figure]
    calibration: list[CalibrationBin]
    subgroups: list[SubgroupRow]
    alerts: list[AlertItem]
    deployments: list[DeploymentItem]
    model_name: str | None
    feature_labels: dict[str, str]
    gate: dict[str, Any]
    small_cell_min: int = 10
    burden: Burden | None = None

    @property
    def total_cards(self) -> int:
        return sum(d.cards for d in self.volume)


def collect(
    engine: Engine, registry: Registry, f: Filters, small_cell_min: int = 10
) -> DashboardData:
    hook_def = registry.services.get(f.service_id)
    model_name = f.model_name or (hook_def.model if hook_def else None)
    with engine.connect() as conn:
        if model_name is None:
            row = conn.execute(
                sa.select(V_CARDS.c.model_name).where(V_CARDS.c.service_id == f.service_id).limit(1)
            ).first()
            model_name = row[0] if row else None
        f = replace(f, model_name=model_name)
        windows = monitoring_windows(conn, f)
        version = (
            windows.version or f.model_version or _serving_version(registry, hook_def, model_name)
        )
        model = registry.models.get((model_name or "", version or ""))
        if model is None and hook_def is not None:
            model = registry.models.get((hook_def.model, hook_def.model_version))
        features: list[tuple[str, str, bool]] = []
        labels: dict[str, str] = {}
        reference: dict[str, float] = {}
        gate: dict[str, Any] = {}
        if model is not None:
            features = [(ft.name, ft.label, ft.required) for ft in model.spec.features]
            labels = {ft.name: ft.label for ft in model.spec.features}
            for name, ref in (model.manifest.get("reference") or {}).items():
                if isinstance(ref, dict) and isinstance(ref.get("missing_rate"), int | float):
                    reference[name] = float(ref["missing_rate"])
            gate = dict(model.manifest.get("gate") or {})
        performance = monitoring_figures(conn, f, windows, V_PERFORMANCE, PERFORMANCE_METRICS)
        return DashboardData(
            filters=f,
            volume=volume_by_day(conn, f),
            latency_ms=latency_mean(conn, f),
            histogram=risk_histogram(conn, f, hook_def),
            missing=missing_rates(conn, f, features, reference),
            feedback=suppress_reasons(feedback(conn, f), small_cell_min),
            outcomes=outcome_counts(conn, f),
            shadow=shadow_comparison(conn, f),
            windows=windows,
            drift=monitoring_figures(conn, f, windows, V_DRIFT, DRIFT_METRICS),
            performance=performance,
            calibration=suppress_calibration(
                pooled_calibration(
                    monitoring_figures(conn, f, windows, V_CALIBRATION, ("calibration_bin",))
                ),
                small_cell_min,
            ),
            subgroups=suppress_subgroups(
                pooled_subgroups(
                    monitoring_figures(conn, f, windows, V_SUBGROUPS, SUBGROUP_METRICS)
                ),
                small_cell_min,
            ),
            alerts=alerts(conn, f),
            deployments=deployments(conn, model_name, f.environment),
            model_name=model_name,
            feature_labels=labels,
            gate=gate,
            small_cell_min=small_cell_min,
            burden=burden(engine, registry, f, small_cell_min),
        )


def _serving_version(
    registry: Registry, hook_def: HookDefinition | None, model_name: str | None
) -> str | None:
    """The version the service serves of the selected model (live, else the hook file's)."""
    for name, default in hook_def.model_versions if hook_def else ():
        if name == model_name:
            return registry.live(name, default).version
    return None

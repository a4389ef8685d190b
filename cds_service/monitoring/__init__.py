"""Monitoring of deployed models over the audit trail: drift, performance, calibration,
subgroups, feedback and shadow agreement per time window, written to monitoring_results and
alerts (read through the v_* views). docs/monitoring.md explains every figure.

Modules: thresholds (when a figure alerts), windows (time windows), context (what a model
version's manifest says), accumulate (streaming the cards), figures (the statistics of a
window), results and alerts (rows written), run (one run), schedule (the scheduled run).
Evidence for the quality team: alert_burden and burden_report (alerts per threshold), fairness
and fairness_report (ratios to a reference group), suppression (the small-cell rule); cbpe,
estimated and estimate_report (performance estimated from the risks before the outcomes, and
its error once they arrive); telemetry (the figures as OpenTelemetry gauges).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from cds_service.monitoring.report import AlertRecord, GroupKey, MonitorReport
from cds_service.monitoring.thresholds import KS_SAMPLE_SIZE, PERFORMANCE_METRICS, Thresholds
from cds_service.monitoring.windows import parse_duration, recent_windows

if TYPE_CHECKING:
    from cds_service.monitoring.run import run_monitoring
    from cds_service.monitoring.schedule import run_recent


def __getattr__(name: str) -> Any:
    """The runs import SciPy and scikit-learn (~0.8 s): loaded on first use, so that a serving
    worker that only reads the thresholds (the dashboard's legend) starts without them."""
    if name == "run_monitoring":
        from cds_service.monitoring.run import run_monitoring

        return run_monitoring
    if name == "run_recent":
        from cds_service.monitoring.schedule import run_recent

        return run_recent
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "KS_SAMPLE_SIZE",
    "PERFORMANCE_METRICS",
    "AlertRecord",
    "GroupKey",
    "MonitorReport",
    "Thresholds",
    "parse_duration",
    "recent_windows",
    "run_monitoring",
    "run_recent",
]

"""Estimated performance of one group in one window, beside the realized figures: written as
``estimated_*`` rows of monitoring_results from every risk card of the window (outcomes known or
not), an alert when the estimated AUROC is below the gate, and, once outcomes are in, one
``estimate_error`` row per figure: estimate minus realized, with the realized figure's standard
error and whether the estimate lies within BAND_Z of them.

Every run recomputes a window from the same cards, and the estimate is exact (cbpe.py), so the
estimate a run stored before the outcomes and the one checked after them are the same number.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.metrics import roc_auc_score

from cds_service.monitoring import cbpe
from cds_service.monitoring.accumulate import WindowAccumulator
from cds_service.monitoring.results import WindowResults
from cds_service.monitoring.thresholds import Thresholds
from cds_service.stats import FloatArray

__all__ = ["ESTIMATED_METRICS", "estimated_performance"]

# Estimated figure -> the realized figure it predicts (the `feature` of its estimate_error row).
ESTIMATED_METRICS = {
    "estimated_auroc": "auroc",
    "estimated_prevalence": "prevalence",
    "estimated_brier": "brier",
    "estimated_alert_ppv": "alert_ppv",
}
_METHOD = "expected concordance of Bernoulli(p) outcomes, exact (CBPE)"


# (realized value, its standard error, n, positives among the n)
_Realized = tuple[float | None, float | None, int, int]


def _realized(y: FloatArray, p: FloatArray) -> dict[str, _Realized]:
    """figure -> realized figure on the cards with an outcome."""
    n, positives = len(y), int(y.sum())
    auroc = float(roc_auc_score(y, p)) if 0 < positives < n else None
    return {
        "auroc": (auroc, cbpe.auroc_standard_error(y, p), n, positives),
        "prevalence": (float(np.mean(y)), cbpe.rate_standard_error(p), n, positives),
        "brier": (float(np.mean((y - p) ** 2)), cbpe.brier_standard_error(p), n, positives),
    }


def _error_row(
    w: WindowResults,
    figure: str,
    estimate: float | None,
    estimate_n: int,
    realized: _Realized,
) -> None:
    value, se, n, positives = realized
    if estimate is None or value is None or se is None or not n:
        return
    band = cbpe.BAND_Z * se
    w.row(
        "estimate_error",
        estimate - value,
        n,
        feature=figure,
        details={
            "estimate": round(estimate, 6),
            "realized": round(value, 6),
            "standard_error": round(se, 6),
            "band": round(band, 6),
            "within_band": abs(estimate - value) <= band,
            "estimate_n": estimate_n,
            "realized_n": n,
            "positives": positives,
        },
    )


def estimated_performance(w: WindowResults, t: Thresholds, acc: WindowAccumulator) -> None:
    """The estimated figures, the gate alert and (with outcomes) the realized alert PPV and the
    estimates' errors."""
    p, alerting = acc.risks_and_alerting()
    n = len(p)
    if n < 2:
        return
    k = int(alerting.sum())
    estimates: dict[str, tuple[float | None, int, dict[str, Any]]] = {
        "estimated_auroc": (cbpe.expected_auroc(p), n, {"method": _METHOD}),
        "estimated_prevalence": (cbpe.expected_rate(p), n, {}),
        "estimated_brier": (cbpe.expected_brier(p), n, {}),
        "estimated_alert_ppv": (cbpe.expected_alert_ppv(p, alerting), k, {"alerting": k}),
    }
    for metric, (value, count, details) in estimates.items():
        if value is not None:
            w.row(metric, value, count, details=details)
    _gate_alert(w, t, estimates["estimated_auroc"][0], n)

    y_all = acc.performance_inputs()
    p_lab, y_lab = y_all[0], y_all[1]
    if not len(y_lab):
        return
    realized = _realized(y_lab, p_lab)
    p_alert, y_alert = acc.alerting_outcomes()
    if len(y_alert):
        ppv = float(np.mean(y_alert))
        positives = int(y_alert.sum())
        w.row("alert_ppv", ppv, len(y_alert), details={"positives": positives})
        se = cbpe.rate_standard_error(p_alert)
        realized["alert_ppv"] = (ppv, se, len(y_alert), positives)
    for metric, figure in ESTIMATED_METRICS.items():
        if figure in realized:
            value, count, _ = estimates[metric]
            _error_row(w, figure, value, count, realized[figure])


def _gate_alert(w: WindowResults, t: Thresholds, estimate: float | None, n: int) -> None:
    """The estimated AUROC below the gate (threshold, else the manifest's validation gate), on
    at least ``min_outcomes`` risk cards: a warning, since it is an estimate."""
    min_auroc = t.min_auroc if t.min_auroc is not None else w.ctx.gate.get("min_auroc")
    if min_auroc is None or estimate is None or n < t.min_outcomes:
        return
    if estimate < float(min_auroc):
        w.alert("estimated_auroc", estimate, float(min_auroc), "warning", "below", n)

"""When a monitoring figure becomes an alert, and how much data a figure needs.

The dashboard's legend reads these defaults too, so the page and the alerts never disagree.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["KS_SAMPLE_SIZE", "PERFORMANCE_METRICS", "Thresholds"]

# Values per feature kept for the two-sample KS test (a bounded, order-free sample).
KS_SAMPLE_SIZE = 5000
PERFORMANCE_METRICS = (
    "prevalence",
    "auroc",
    "auprc",
    "brier",
    "calibration_intercept",
    "calibration_slope",
    "ece",
)


@dataclass(frozen=True, slots=True)
class Thresholds:
    """Override any field: ``Thresholds(psi_warning=0.1)``. ``None`` for min_auroc /
    max_abs_calibration_intercept means: the model's validation gate in its manifest."""

    psi_warning: float = 0.2
    psi_critical: float = 0.25
    # PSI of an unchanged distribution is about (bins - 1) / n by chance alone (0.18 at n = 50
    # with ten bins), so PSI alerts need this many values in the window.
    psi_min_n: int = 200
    ks_pvalue: float = 0.001
    # The KS p-value already accounts for the sample size, so a smaller window still gives a
    # controlled false-alarm rate; this catches a strong shift in a sparsely measured input
    # (a lab's unit change in lactate, measured in a quarter of ED visits) that PSI must skip.
    ks_min_n: int = 50
    missing_rate_excess: float = 0.2
    missing_min_n: int = 50
    prediction_psi_warning: float = 0.2
    prediction_psi_critical: float = 0.25
    min_outcomes: int = 50
    min_auroc: float | None = None
    max_abs_calibration_intercept: float | None = None
    # Fewer values than this in a window (or in the manifest's reference sample): no PSI / KS,
    # a `reference_too_small` row says so instead.
    min_values: int = 50
    min_reference_sample: int = 50

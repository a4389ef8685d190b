"""Calibration measures: how far predicted risks are from observed rates.

scikit-learn lacks calibration-in-the-large with an offset and the calibration slope; both are
small logistic fits on the logit of the prediction. The equal-width bins of ``calibration_bins``
are the bins of ``expected_calibration_error`` (one bin rule, ``bins.calibration_bin_index``).
"""

from __future__ import annotations

import numpy as np
from sklearn.linear_model import LogisticRegression

from cds_service.stats.arrays import FloatArray
from cds_service.stats.bins import CALIBRATION_BINS, calibration_bin_index

__all__ = [
    "calibration_bins",
    "calibration_curve",
    "calibration_in_the_large",
    "calibration_slope",
    "expected_calibration_error",
    "logit",
]

_EPS = 1e-7


def logit(p: FloatArray) -> FloatArray:
    clipped = np.clip(p, _EPS, 1 - _EPS)
    return np.asarray(np.log(clipped / (1 - clipped)), dtype=np.float64)


def calibration_in_the_large(y: FloatArray, p: FloatArray) -> float:
    """Intercept of logit(P(y)) = a + logit(p) (offset fixed at slope 1); 0 is perfect."""
    offset = logit(p)
    a = 0.0
    for _ in range(50):
        s = 1 / (1 + np.exp(-(a + offset)))
        grad = float(np.sum(y - s))
        hess = float(np.sum(s * (1 - s)))
        if hess <= 0:
            break
        step = grad / hess
        a += step
        if abs(step) < 1e-10:
            break
    return a


def calibration_slope(y: FloatArray, p: FloatArray) -> float:
    """Slope of logit(P(y)) = b0 + b1 * logit(p); 1 is perfect, < 1 means overfitted."""
    model = LogisticRegression(C=1e9, solver="lbfgs", max_iter=1000)
    model.fit(logit(p).reshape(-1, 1), y)
    return float(model.coef_[0][0])


def expected_calibration_error(y: FloatArray, p: FloatArray, bins: int = CALIBRATION_BINS) -> float:
    """Share-weighted mean |predicted - observed| over the equal-width risk bins."""
    _, which = calibration_bin_index(p, bins)
    total = 0.0
    for b in range(bins):
        mask = which == b
        if mask.any():
            total += float(mask.mean()) * abs(float(p[mask].mean()) - float(y[mask].mean()))
    return total


def calibration_bins(
    y: FloatArray, p: FloatArray, bins: int = CALIBRATION_BINS
) -> list[dict[str, float]]:
    """Observed vs predicted per equal-width risk bin (monitoring's ``calibration_bin`` rows);
    empty bins are left out."""
    edges, which = calibration_bin_index(p, bins)
    out = []
    for b in range(bins):
        mask = which == b
        if mask.any():
            out.append(
                {
                    "bin": b,
                    "lo": round(float(edges[b]), 6),
                    "hi": round(float(edges[b + 1]), 6),
                    "n": int(mask.sum()),
                    "predicted": float(p[mask].mean()),
                    "observed": float(y[mask].mean()),
                }
            )
    return out


def calibration_curve(
    y: FloatArray, p: FloatArray, bins: int = CALIBRATION_BINS
) -> list[dict[str, float]]:
    """Observed vs predicted per quantile bin of the prediction (model cards): equal counts, so
    every point of the card's curve rests on as many patients."""
    if len(p) == 0:
        return []
    order = np.argsort(p, kind="stable")
    out = []
    for chunk in np.array_split(order, min(bins, len(p))):
        if len(chunk):
            out.append(
                {
                    "n": len(chunk),
                    "predicted": float(p[chunk].mean()),
                    "observed": float(y[chunk].mean()),
                }
            )
    return out

"""Discrimination and calibration metrics, shared by training, the validation gate and monitoring.

Statistics come from scikit-learn; the two calibration measures it lacks (calibration-in-the-large
with an offset, and the calibration slope) are small logistic fits on the logit of the prediction.
"""

from __future__ import annotations

import itertools
import math
from typing import Any

import numpy as np
from numpy.typing import NDArray
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import average_precision_score, brier_score_loss, roc_auc_score

FloatArray = NDArray[np.float64]
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


def expected_calibration_error(y: FloatArray, p: FloatArray, bins: int = 10) -> float:
    edges = np.linspace(0, 1, bins + 1)
    which = np.clip(np.digitize(p, edges[1:-1]), 0, bins - 1)
    total = 0.0
    for b in range(bins):
        mask = which == b
        if mask.any():
            total += float(mask.mean()) * abs(float(p[mask].mean()) - float(y[mask].mean()))
    return total


def calibration_curve(y: FloatArray, p: FloatArray, bins: int = 10) -> list[dict[str, float]]:
    """Observed vs predicted per quantile bin of the prediction (for plots and model cards)."""
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


def subgroup_masks(
    names: list[str], x: NDArray[np.float64], age_bands: tuple[float, ...]
) -> dict[str, NDArray[np.bool_]]:
    """Row masks per sex and age band ([low, high) years), from the model's own features, so
    that training, the validation gate and their reports cut the same groups."""
    masks: dict[str, NDArray[np.bool_]] = {}
    if "sex_male" in names:
        sex = x[:, names.index("sex_male")]
        masks["sex=female"], masks["sex=male"] = sex == 0, sex == 1
    if "age" in names:
        age = x[:, names.index("age")]
        for lo, hi in itertools.pairwise(age_bands):
            masks[f"age={lo:g}-{hi:g}"] = (age >= lo) & (age < hi)
    return masks


def binary_metrics(y: FloatArray, p: FloatArray) -> dict[str, Any]:
    """All figures for one group; discrimination is None where a group has one class only."""
    n = len(y)
    positives = int(np.sum(y))
    out: dict[str, Any] = {"n": n, "positives": positives}
    out["prevalence"] = positives / n if n else None
    out["mean_predicted"] = float(np.mean(p)) if n else None
    two_classes = 0 < positives < n
    out["auroc"] = float(roc_auc_score(y, p)) if two_classes else None
    out["auprc"] = float(average_precision_score(y, p)) if two_classes else None
    out["brier"] = float(brier_score_loss(y, p)) if n else None
    out["calibration_intercept"] = calibration_in_the_large(y, p) if two_classes else None
    out["calibration_slope"] = calibration_slope(y, p) if two_classes and n >= 20 else None
    out["ece"] = expected_calibration_error(y, p) if n else None
    return {
        k: (round(v, 6) if isinstance(v, float) and math.isfinite(v) else v) for k, v in out.items()
    }

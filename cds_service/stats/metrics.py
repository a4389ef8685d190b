"""All figures for one group of binary outcomes and predicted risks: shared by training, the
validation gate and monitoring, so a model card, a gate decision and a monitoring figure mean the
same thing. Discrimination comes from scikit-learn.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from sklearn.metrics import average_precision_score, brier_score_loss, roc_auc_score

from cds_service.stats.arrays import FloatArray
from cds_service.stats.calibration import (
    calibration_in_the_large,
    calibration_slope,
    expected_calibration_error,
)

__all__ = ["binary_metrics"]


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

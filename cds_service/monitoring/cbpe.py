"""Performance expected from calibrated probabilities alone (NannyML's CBPE idea), and the
sampling error a realized figure has, so an estimate made before the outcomes arrive can be
checked against the outcomes once they do.

If the model is calibrated, card i's outcome is Bernoulli(p_i). Then:

- expected AUROC: the expected share of concordant (positive, negative) pairs, each ordered pair
  (i, j), i != j, weighted by p_i (1 - p_j), ties counting a half. Computed exactly in
  O(n log n) by sorting, not by sampling labels from Bernoulli(p_i): the exact sum is the same
  number on every run, replica and database (no seed, no Monte Carlo noise to tell apart from a
  real change), and it costs one sort where sampling would cost one AUROC per draw. It is the
  ratio of the expected concordant weight to the expected pair weight; the expectation of the
  ratio differs from it by O(1/n), far inside the sampling error of any window that is reported.
- expected event rate (calibration-in-the-large on the probability scale): mean p_i; expected
  Brier score: mean p_i (1 - p_i); expected alert PPV: mean p_i over the alerting cards.

Sampling error of the realized figures: DeLong's standard error for the AUROC (structural
components from the ranks); for rates and the Brier score, the standard error they have when the
outcomes are Bernoulli(p_i), i.e. under the very hypothesis the estimate rests on.
"""

from __future__ import annotations

import math

import numpy as np

from cds_service.stats import BoolArray, FloatArray

__all__ = [
    "BAND_Z",
    "auroc_standard_error",
    "brier_standard_error",
    "expected_alert_ppv",
    "expected_auroc",
    "expected_brier",
    "expected_rate",
    "rate_standard_error",
]

# The band an estimate must fall in: 1.96 standard errors of the realized figure (95%).
BAND_Z = 1.96


def expected_auroc(p: FloatArray) -> float | None:
    """AUROC expected if each outcome is Bernoulli(p_i); None with fewer than two cards or when
    every p is 0 or 1 on one side (no pair can be weighed)."""
    p = np.asarray(p, dtype=np.float64)
    if len(p) < 2:
        return None
    values, inverse = np.unique(p, return_inverse=True)
    pos = np.bincount(inverse, weights=p, minlength=len(values))
    neg = np.bincount(inverse, weights=1.0 - p, minlength=len(values))
    same = np.bincount(inverse, weights=p * (1.0 - p), minlength=len(values))
    neg_below = np.cumsum(neg) - neg
    concordant = float(np.sum(pos * neg_below)) + 0.5 * float(np.sum(pos * neg - same))
    pairs = float(p.sum()) * float((1.0 - p).sum()) - float(same.sum())
    if pairs <= 0:
        return None
    return concordant / pairs


def expected_rate(p: FloatArray) -> float | None:
    """Expected share of positive outcomes (the event rate a calibrated model predicts)."""
    return float(np.mean(p)) if len(p) else None


def expected_brier(p: FloatArray) -> float | None:
    return float(np.mean(p * (1.0 - p))) if len(p) else None


def expected_alert_ppv(p: FloatArray, alerting: BoolArray) -> float | None:
    """Expected share of alerting cards whose outcome is positive."""
    return expected_rate(p[alerting])


def rate_standard_error(p: FloatArray) -> float | None:
    """Standard error of an observed event rate when outcome i is Bernoulli(p_i)."""
    n = len(p)
    return math.sqrt(float(np.sum(p * (1.0 - p)))) / n if n else None


def brier_standard_error(p: FloatArray) -> float | None:
    """Standard error of the Brier score when outcome i is Bernoulli(p_i): (y - p)^2 has
    variance p (1 - p) (1 - 2p)^2."""
    n = len(p)
    if not n:
        return None
    return math.sqrt(float(np.sum(p * (1.0 - p) * (1.0 - 2.0 * p) ** 2))) / n


def auroc_standard_error(y: FloatArray, p: FloatArray) -> float | None:
    """DeLong's standard error of the realized AUROC; None without two of each class."""
    positives = np.sort(p[y == 1])
    negatives = np.sort(p[y == 0])
    m, n = len(positives), len(negatives)
    if m < 2 or n < 2:
        return None
    below = np.searchsorted(negatives, positives, side="left")
    upto = np.searchsorted(negatives, positives, side="right")
    v10 = (below + upto) / (2.0 * n)  # per positive: share of negatives scored lower
    above = m - np.searchsorted(positives, negatives, side="right")
    from_ = m - np.searchsorted(positives, negatives, side="left")
    v01 = (above + from_) / (2.0 * m)  # per negative: share of positives scored higher
    variance = float(np.var(v10, ddof=1)) / m + float(np.var(v01, ddof=1)) / n
    return math.sqrt(variance)

"""binary_metrics and the calibration measures: against scikit-learn and hand-computed cases."""

from __future__ import annotations

import math

import numpy as np
import pytest
from sklearn.metrics import average_precision_score, brier_score_loss, roc_auc_score

from cds_service.stats import (
    binary_metrics,
    calibration_curve,
    calibration_in_the_large,
    calibration_slope,
    expected_calibration_error,
    logit,
)


def _sample(n: int, seed: int, *, scale: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """Outcomes drawn from true risks; predictions are the true risks with their logit scaled
    (scale 1: perfectly calibrated; scale 2: overconfident)."""
    rng = np.random.default_rng(seed)
    z = rng.normal(-1.0, 1.2, n)
    truth = 1 / (1 + np.exp(-z))
    y = (rng.random(n) < truth).astype(np.float64)
    p = 1 / (1 + np.exp(-scale * z))
    return y, p


def test_hand_computed_case() -> None:
    y = np.array([0.0, 0.0, 1.0, 1.0])
    p = np.array([0.1, 0.4, 0.35, 0.8])
    m = binary_metrics(y, p)
    assert m["n"] == 4
    assert m["positives"] == 2
    assert m["prevalence"] == 0.5
    assert m["mean_predicted"] == pytest.approx(0.4125)
    # 4 positive-negative pairs, 3 ranked right: (0.35 > 0.1), (0.8 > 0.1), (0.8 > 0.4).
    assert m["auroc"] == 0.75
    assert m["brier"] == pytest.approx((0.01 + 0.16 + 0.4225 + 0.04) / 4, abs=1e-6)
    assert m["calibration_slope"] is None  # fewer than 20 outcomes


def test_discrimination_equals_scikit_learn() -> None:
    y, p = _sample(2000, seed=1)
    m = binary_metrics(y, p)
    assert m["auroc"] == round(roc_auc_score(y, p), 6)
    assert m["auprc"] == round(average_precision_score(y, p), 6)
    assert m["brier"] == round(brier_score_loss(y, p), 6)
    assert m["prevalence"] == pytest.approx(y.mean())


def test_one_class_has_no_discrimination_and_empty_has_nothing() -> None:
    m = binary_metrics(np.zeros(30), np.full(30, 0.2))
    assert m["auroc"] is None and m["auprc"] is None
    assert m["calibration_intercept"] is None and m["calibration_slope"] is None
    assert m["brier"] == pytest.approx(0.04)
    empty = binary_metrics(np.array([]), np.array([]))
    assert empty["n"] == 0
    assert all(empty[k] is None for k in ("prevalence", "auroc", "brier", "ece"))


def test_calibration_in_the_large_is_the_log_odds_gap() -> None:
    # Every prediction 0.5, three in four positive: the intercept is logit(0.75) = ln 3.
    y = np.array([1.0, 1.0, 1.0, 0.0] * 25)
    assert calibration_in_the_large(y, np.full(100, 0.5)) == pytest.approx(math.log(3), abs=1e-8)
    y, p = _sample(20_000, seed=2)
    assert calibration_in_the_large(y, p) == pytest.approx(0.0, abs=0.05)


def test_calibration_slope_is_one_when_calibrated_and_half_when_overconfident() -> None:
    y, p = _sample(20_000, seed=3)
    assert calibration_slope(y, p) == pytest.approx(1.0, abs=0.06)
    y, p = _sample(20_000, seed=3, scale=2.0)
    assert calibration_slope(y, p) == pytest.approx(0.5, abs=0.04)


def test_expected_calibration_error_by_hand() -> None:
    # Bin 0 holds 0.05 (observed 0), bin 9 holds 0.95 (observed 1): 0.5 * 0.05 + 0.5 * 0.05.
    assert expected_calibration_error(np.array([0.0, 1.0]), np.array([0.05, 0.95])) == (
        pytest.approx(0.05)
    )
    # Risk 0.3 four times, one positive: |0.3 - 0.25| in a single bin.
    y = np.array([1.0, 0.0, 0.0, 0.0])
    assert expected_calibration_error(y, np.full(4, 0.3)) == pytest.approx(0.05)


def test_calibration_curve_has_equal_count_bins() -> None:
    y = np.array([0.0, 0.0, 1.0, 0.0, 1.0, 1.0])
    p = np.array([0.1, 0.2, 0.3, 0.4, 0.5, 0.6])
    curve = calibration_curve(y, p, bins=3)
    assert [c["n"] for c in curve] == [2, 2, 2]
    assert [c["predicted"] for c in curve] == pytest.approx([0.15, 0.35, 0.55])
    assert [c["observed"] for c in curve] == pytest.approx([0.0, 0.5, 1.0])
    assert calibration_curve(np.array([]), np.array([])) == []


def test_logit_is_finite_at_zero_and_one() -> None:
    out = logit(np.array([0.0, 0.5, 1.0]))
    assert np.all(np.isfinite(out))
    assert out[1] == 0.0
    assert out[0] == pytest.approx(-out[2])

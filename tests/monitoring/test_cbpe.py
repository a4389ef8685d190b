"""The estimation statistics against their definitions: the exact expected AUROC against the
pair sum written out and against labels sampled from Bernoulli(p); DeLong's standard error
against the structural components by brute force; the Bernoulli standard errors against the
spread of sampled labels. And the gate alert on the estimate, through a real monitoring run."""

from __future__ import annotations

import math
import random
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from cds_service.monitoring import cbpe, run_monitoring
from cds_service.monitoring.estimate_report import EstimateRow, render_estimates
from tests.utils.audit_rows import card_row, insert
from tests.utils.service import Database

REPO = Path(__file__).resolve().parents[2]


def _pairs(p: np.ndarray) -> float:
    num = den = 0.0
    for i in range(len(p)):
        for j in range(len(p)):
            if i == j:
                continue
            w = p[i] * (1 - p[j])
            den += w
            num += w * (1.0 if p[i] > p[j] else 0.5 if p[i] == p[j] else 0.0)
    return num / den


def test_expected_auroc_is_the_weighted_pair_sum_with_ties() -> None:
    rng = np.random.default_rng(3)
    p = np.round(rng.beta(1, 2, size=60), 2)  # rounded: many ties
    assert cbpe.expected_auroc(p) == pytest.approx(_pairs(p), rel=1e-12)


def test_expected_auroc_matches_sampled_labels() -> None:
    rng = np.random.default_rng(11)
    p = rng.beta(0.8, 1.8, size=400)
    draws = []
    for _ in range(2000):
        y = rng.random(len(p)) < p
        if 0 < y.sum() < len(p):
            draws.append(roc_auc_score(y, p))
    mean, se = float(np.mean(draws)), float(np.std(draws)) / math.sqrt(len(draws))
    estimate = cbpe.expected_auroc(p)
    assert estimate is not None and abs(estimate - mean) < 4 * se + 1e-3


def test_expected_auroc_undefined_without_pairs() -> None:
    assert cbpe.expected_auroc(np.array([0.4])) is None
    assert cbpe.expected_auroc(np.array([0.0, 0.0, 0.0])) is None


def test_delong_standard_error_by_brute_force() -> None:
    rng = np.random.default_rng(5)
    p = np.round(rng.random(80), 1)
    y = (rng.random(80) < p).astype(float)
    pos, neg = p[y == 1], p[y == 0]
    psi = (pos[:, None] > neg[None, :]) + 0.5 * (pos[:, None] == neg[None, :])
    v10, v01 = psi.mean(axis=1), psi.mean(axis=0)
    expected = math.sqrt(v10.var(ddof=1) / len(pos) + v01.var(ddof=1) / len(neg))
    assert cbpe.auroc_standard_error(y, p) == pytest.approx(expected, rel=1e-12)
    assert cbpe.auroc_standard_error(np.array([1.0, 0.0]), np.array([0.6, 0.2])) is None


def test_bernoulli_standard_errors_match_sampled_labels() -> None:
    rng = np.random.default_rng(8)
    p = rng.beta(1, 3, size=300)
    ys = rng.random((4000, len(p))) < p
    rates = ys.mean(axis=1)
    briers = ((ys - p) ** 2).mean(axis=1)
    assert cbpe.rate_standard_error(p) == pytest.approx(float(np.std(rates)), rel=0.05)
    assert cbpe.brier_standard_error(p) == pytest.approx(float(np.std(briers)), rel=0.05)
    assert float(np.mean(rates)) == pytest.approx(cbpe.expected_rate(p), abs=0.002)
    assert float(np.mean(briers)) == pytest.approx(cbpe.expected_brier(p), abs=0.002)
    alerting = p > 0.4
    assert cbpe.expected_alert_ppv(p, alerting) == pytest.approx(float(p[alerting].mean()))


START = datetime(2026, 3, 2, tzinfo=UTC)


def _week(db: Database, low: float, high: float, seed: int) -> str:
    """80 cards without outcomes, risks uniform in [low, high]; returns the monitoring run id
    after checking its alerts."""
    rng = random.Random(seed)
    cards = [
        card_row(START + timedelta(hours=2 * i), round(rng.uniform(low, high), 4), patient=f"s{i}")
        for i in range(80)
    ]
    insert(db.engine, cards)
    report = run_monitoring(
        db.engine, REPO / "models", window_start=START, window_end=START + timedelta(days=7)
    )
    return report.run_id


def test_estimated_auroc_below_the_gate_raises_an_alert(db: Database) -> None:
    # Risks all near 0.5 cannot tell anyone apart: expected AUROC near 0.5, gate 0.75.
    run_id = _week(db, 0.45, 0.55, 1)
    alerts = db.rows(
        "SELECT metric, severity, value, threshold FROM alerts WHERE run_id = :r", r=run_id
    )
    estimated = [a for a in alerts if a["metric"] == "estimated_auroc"]
    assert len(estimated) == 1
    assert estimated[0]["severity"] == "warning" and estimated[0]["threshold"] == 0.75
    assert 0.5 <= estimated[0]["value"] < 0.6
    rows = db.rows(
        "SELECT metric, value, n FROM monitoring_results WHERE run_id = :r AND metric LIKE "
        "'estimate%' AND subgroup = ''",
        r=run_id,
    )
    got = {r["metric"]: r for r in rows}
    assert {"estimated_auroc", "estimated_prevalence", "estimated_brier"} <= set(got)
    assert "estimate_error" not in got  # no outcomes yet
    assert got["estimated_auroc"]["n"] == 80


def test_spread_risks_estimate_above_the_gate_raise_no_alert(db: Database) -> None:
    run_id = _week(db, 0.01, 0.99, 2)
    alerts = db.rows("SELECT metric FROM alerts WHERE run_id = :r", r=run_id)
    assert "estimated_auroc" not in {a["metric"] for a in alerts}
    [row] = db.rows(
        "SELECT value FROM monitoring_results WHERE run_id = :r AND metric = 'estimated_auroc'",
        r=run_id,
    )
    assert row["value"] > 0.75


def test_printed_table_withholds_small_cells() -> None:
    at = START
    rows = [
        # 11 outcomes but 5 positives: the realized figure is a small cell
        EstimateRow("m", "1", at, at, "prevalence", 0.31, 400, 0.45, 0.05, 11, True, 5),
        # an estimate from 6 cards
        EstimateRow("m", "1", at, at, "auroc", 0.7, 6),
        EstimateRow("m", "1", at, at, "brier", 0.15, 400, 0.143, 0.012, 300, True, 90),
    ]
    lines = render_estimates(rows, 10).splitlines()[1:]
    prevalence, auroc, brier = (line.split() for line in lines)
    assert prevalence[4:] == ["0.310", "400", "suppressed", "-", "11", "-"]
    assert auroc[4:] == ["suppressed", "<10", "-", "-", "0", "-"]
    assert brier[4:] == ["0.150", "400", "0.143", "0.024", "300", "yes"]

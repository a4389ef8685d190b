"""Decile bins (the drift reference) and equal-width calibration bins."""

from __future__ import annotations

import numpy as np
import pytest

from cds_service.stats import (
    calibration_bin_index,
    calibration_bins,
    decile_bins,
    expected_calibration_error,
    reference_bins,
)


def test_deciles_of_a_uniform_spread_give_ten_equal_bins() -> None:
    bins = decile_bins(np.arange(100, dtype=np.float64))
    assert bins.bins == 10
    assert list(bins.edges) == pytest.approx([9.9 * k for k in range(1, 10)])
    assert list(bins.fractions) == [0.1] * 10
    assert list(bins.counts(np.array([0.0, 9.9, 50.0, 1000.0]))) == [1, 1, 0, 0, 0, 1, 0, 0, 0, 1]


def test_tied_deciles_merge_bins() -> None:
    # 11 values: every decile falls on a value (no interpolation), all 0 or 1.
    flag = np.array([0.0] * 6 + [1.0] * 5)
    bins = decile_bins(flag)
    assert list(bins.edges) == []  # a 0/1 flag keeps one bin (reference_bins rebuilds two)
    assert list(bins.fractions) == [1.0]


def test_training_and_monitoring_read_the_same_bins() -> None:
    values = np.random.default_rng(5).normal(size=1000)
    built = decile_bins(values)
    entry = {"edges": [float(e) for e in built.edges], "fractions": list(built.fractions)}
    read, reason = reference_bins(entry)
    assert reason == ""
    assert read is not None
    assert list(read.edges) == list(built.edges)
    assert list(read.counts(values)) == list(built.counts(values))


def test_a_two_valued_reference_is_rebuilt_from_its_mean() -> None:
    entry = {"edges": [], "fractions": [1.0], "sample": [0.0, 1.0, 1.0], "mean": 0.3}
    bins, reason = reference_bins(entry)
    assert reason == ""
    assert bins is not None
    assert list(bins.edges) == [1.0]
    assert list(bins.fractions) == pytest.approx([0.7, 0.3])
    constant, why = reference_bins({"edges": [], "fractions": [1.0], "sample": [2.0]})
    assert constant is None and "single bin" in why
    missing, why = reference_bins({"edges": [1.0], "fractions": [1.0]})
    assert missing is None and "no reference bins" in why


def test_calibration_bins_are_left_closed_and_the_last_holds_one() -> None:
    edges, which = calibration_bin_index(np.array([0.0, 0.0999, 0.1, 0.95, 1.0]))
    assert list(edges) == pytest.approx([k / 10 for k in range(11)])
    assert list(which) == [0, 0, 1, 9, 9]


def test_calibration_bins_leave_out_empty_bins_and_agree_with_the_ece() -> None:
    y = np.array([0.0, 1.0, 1.0, 0.0, 1.0])
    p = np.array([0.05, 0.12, 0.18, 0.91, 0.99])
    rows = calibration_bins(y, p)
    assert [r["bin"] for r in rows] == [0, 1, 9]
    assert [r["n"] for r in rows] == [1, 2, 2]
    assert rows[1] == {"bin": 1, "lo": 0.1, "hi": 0.2, "n": 2, "predicted": 0.15, "observed": 1.0}
    ece = sum(r["n"] / len(y) * abs(r["predicted"] - r["observed"]) for r in rows)
    assert expected_calibration_error(y, p) == pytest.approx(ece)

"""The small-cell rule itself: which counts and ratios may be printed."""

from __future__ import annotations

import pytest

from cds_service.monitoring.suppression import SUPPRESSED, is_small, suppressed, suppressed_ratio


@pytest.mark.parametrize(
    ("count", "shown"), [(0, "0"), (1, "<10"), (9, "<10"), (10, "10"), (1234, "1234")]
)
def test_counts(count: int, shown: str) -> None:
    assert suppressed(count, 10) == shown


@pytest.mark.parametrize(
    ("num", "den", "shown"),
    [
        (0, 0, "-"),
        (5, 9, SUPPRESSED),  # small denominator
        (3, 50, SUPPRESSED),  # small numerator
        (45, 50, SUPPRESSED),  # small rest: 5 cards did not alert
        (0, 50, "0.000"),  # zero names nobody
        (50, 50, "1.000"),
        (20, 50, "0.400"),
    ],
)
def test_ratios(num: int, den: int, shown: str) -> None:
    assert suppressed_ratio(num, den, 10) == shown


def test_minimum_is_a_setting() -> None:
    assert suppressed(4, 5) == "<5" and suppressed(5, 5) == "5"
    assert not is_small(None, 10) and not is_small(0, 10) and is_small(9, 10)

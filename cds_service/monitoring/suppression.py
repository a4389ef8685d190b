"""Small-cell suppression: a figure computed from fewer than ``minimum`` cards or patients never
leaves the database (a count of 3 cards on one ward on one night can name the patients).

One rule for every output (command, report, dashboard): a count from 1 to ``minimum - 1`` is
printed as ``<minimum``; a rate, PPV or sensitivity whose denominator is below ``minimum`` is
withheld, and so is a count that, with the total beside it, would give a small cell back (the
complement). Zero is printed: it names nobody. The default minimum, 10, is the setting
``CDS_SMALL_CELL_MIN``.
"""

from __future__ import annotations

__all__ = ["SUPPRESSED", "is_small", "suppressed", "suppressed_ratio"]

SUPPRESSED = "suppressed"


def is_small(n: int | None, minimum: int) -> bool:
    """True when a figure from ``n`` cards/patients must not be shown (0 is shown)."""
    return n is not None and 0 < n < minimum


def suppressed(count: int, minimum: int) -> str:
    """The count as it may be printed."""
    return f"<{minimum}" if is_small(count, minimum) else str(count)


def suppressed_ratio(numerator: int, denominator: int, minimum: int, digits: int = 3) -> str:
    """numerator/denominator as printed: withheld when the denominator, the numerator or what
    the denominator leaves over (denominator - numerator) is a small cell; "-" for 0/0."""
    if denominator == 0:
        return "-"
    if any(is_small(n, minimum) for n in (denominator, numerator, denominator - numerator)):
        return SUPPRESSED
    return f"{numerator / denominator:.{digits}f}"

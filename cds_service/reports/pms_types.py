"""The shapes of the PMS report (sections of tables of printed cells) and the one function that
turns a monitoring figure into a printable cell under the small-cell rule."""

from __future__ import annotations

from dataclasses import dataclass, field

from cds_service.monitoring.suppression import SUPPRESSED, is_small

__all__ = ["Section", "Table", "figure"]

# Figures that are a count over n (the complement is a count too): a small count is withheld.
_RATES = frozenset(
    {
        "alert_rate",
        "override_rate",
        "acceptance_rate",
        "missing_rate",
        "missing_rate_reference",
        "prevalence",
    }
)


@dataclass(slots=True)
class Table:
    header: list[str]
    rows: list[list[str]]


@dataclass(slots=True)
class Section:
    key: str
    title: str
    notes: list[str] = field(default_factory=list)
    tables: list[Table] = field(default_factory=list)


def figure(metric: str, value: float | None, n: int, minimum: int) -> str:
    """One figure as it may leave the database: withheld when its n is a small cell, or, for a
    rate, when the count or its complement is."""
    if is_small(n, minimum):
        return SUPPRESSED
    if value is None:
        return "-"
    if metric in _RATES:
        count = round(value * n)
        if is_small(count, minimum) or is_small(n - count, minimum):
            return SUPPRESSED
    return f"{value:.3f}"

"""Small-cell suppression of the dashboard's figures (the rule of monitoring/suppression.py):
a subgroup figure, a calibration bin or an override-reason count from fewer than the minimum
cards (``CDS_SMALL_CELL_MIN``) never reaches the page or its JSON."""

from __future__ import annotations

from cds_service.monitoring.suppression import is_small
from cds_service.web.dashboard.queries.cards import Feedback
from cds_service.web.dashboard.queries.monitoring import SUBGROUP_SUMS, CalibrationBin, SubgroupRow

__all__ = ["suppress_calibration", "suppress_reasons", "suppress_subgroups"]


def suppress_subgroups(rows: list[SubgroupRow], minimum: int) -> list[SubgroupRow]:
    """Each figure of a subgroup whose count (cards, outcomes) or n is a small cell is
    withheld: value None, n 0, and its metric listed in ``suppressed``."""
    out = []
    for row in rows:
        figures: dict[str, tuple[float | None, int]] = {}
        hidden: list[str] = []
        for metric, (value, n) in row.figures.items():
            count = int(value) if metric in SUBGROUP_SUMS and value is not None else None
            if is_small(n, minimum) or is_small(count, minimum):
                figures[metric] = (None, 0)
                hidden.append(metric)
            else:
                figures[metric] = (value, n)
        out.append(SubgroupRow(row.subgroup, figures, hidden))
    return out


def suppress_calibration(bins: list[CalibrationBin], minimum: int) -> list[CalibrationBin]:
    """Bins with fewer cards than the minimum are left out of the plot (and its total)."""
    return [b for b in bins if not is_small(b.n, minimum)]


def suppress_reasons(feedback: Feedback, minimum: int) -> Feedback:
    """Override reasons given fewer times than the minimum are left out of the list."""
    feedback.reasons = [(r, n) for r, n in feedback.reasons if not is_small(n, minimum)]
    return feedback

"""The alert-burden panel: the grid of ``cds-service thresholds`` for the selected model and
days, so thresholds can be chosen on the cards the hospital actually saw (or a shadow run).
Withheld figures (small cells) show as "suppressed", never as a number."""

from __future__ import annotations

from cds_service.web.dashboard.layout import panel
from cds_service.web.dashboard.queries import DashboardData
from cds_service.web.html import esc

__all__ = ["burden_panel"]

TITLE = "Alert burden by threshold"


def _cell(value: float | None, fmt: str, hidden: bool) -> str:
    if value is None:
        return "<td class='muted'>suppressed</td>" if hidden else "<td class='muted'>-</td>"
    return f"<td>{esc(format(value, fmt))}</td>"


def burden_panel(data: DashboardData) -> str:
    b = data.burden
    if b is None or not b.rows:
        return panel(
            TITLE,
            "Cards that would alert at each candidate threshold.",
            "<p class='muted'>No risk cards of this model in this selection.</p>",
            wide=True,
            pid="burden",
        )
    rows = []
    for r in b.rows:
        mark = " class='current'" if r.band_limit else ""
        star = " *" if r.band_limit else ""
        rows.append(
            f"<tr{mark}><th scope='row'>{r.threshold:.2f}{star}</th>"
            + _cell(r.alerts, ",", "alerts" in r.suppressed)
            + _cell(r.per_day, ".1f", "per_day" in r.suppressed)
            + _cell(r.sensitivity, ".3f", "sensitivity" in r.suppressed)
            + _cell(r.ppv, ".3f", "ppv" in r.suppressed)
            + _cell(r.nna, ".1f", "nna" in r.suppressed)
            + "</tr>"
        )
    table = (
        "<table class='grid compact' data-table='burden'><thead><tr><th>Threshold</th>"
        "<th>Alerts</th><th>Per day</th><th>Sensitivity</th><th>PPV</th><th>NNA</th>"
        f"</tr></thead><tbody>{''.join(rows)}</tbody></table>"
    )
    total = "suppressed" if b.risk_cards is None else f"{b.risk_cards:,}"
    return panel(
        TITLE,
        f"Risk cards of {b.model} over {b.days} day(s): {total}. An alert is a card with risk at "
        "or above the threshold; sensitivity and PPV count the cards whose outcome is in, NNA is "
        "alerts with an outcome per true alert. * marks a band limit of today's hook "
        f"definitions. Figures from fewer than {data.small_cell_min} cards are suppressed. "
        "Per shift: cds-service thresholds.",
        table,
        wide=True,
        pid="burden",
    )

"""Panels on what the clinicians saw: volume of cards, the risks, missing inputs, and the
clinicians' responses."""

from __future__ import annotations

from cds_service.web.dashboard import charts
from cds_service.web.dashboard.layout import day_label, figures_table, panel
from cds_service.web.dashboard.queries import DashboardData
from cds_service.web.html import esc, pct

__all__ = ["feedback_panel", "missing_panel", "risk_panel", "volume_panel"]


def volume_panel(data: DashboardData) -> str:
    days = data.volume
    labels = [day_label(d.day) for d in days]
    index = {d.day: i for i, d in enumerate(days)}
    markers = []
    for dep in data.deployments:
        i = index.get(dep.created_at.date())
        if i is not None:
            markers.append((i, f"{dep.model_version} {dep.role}"))
    chart = charts.stacked_bars(
        "volume",
        "Cards per day",
        labels,
        [
            ("warning or critical", "s-alert", [d.alerting_cards for d in days]),
            ("other risk cards", "s-risk", [d.other_risk_cards for d in days]),
            ("no risk (data missing)", "s-norisk", [d.no_risk_cards for d in days]),
        ],
        markers=markers,
    )
    table = figures_table(
        ("day", "cards", "risk cards", "warning or critical", "no risk"),
        [
            (
                d.day.isoformat(),
                str(d.cards),
                str(d.risk_cards),
                str(d.alerting_cards),
                str(d.no_risk_cards),
            )
            for d in days
            if d.cards
        ],
        "Figures per day",
    )
    return panel(
        "Volume",
        "Cards per day (UTC), split by what the clinician saw. A vertical line marks a "
        "deployment on that day.",
        chart + table,
        wide=True,
        pid="volume",
    )


def risk_panel(data: DashboardData) -> str:
    h = data.histogram
    chart = charts.histogram("risk", "Distribution of predicted risk", h.edges, h.counts, h.bands)
    bands = ", ".join(
        f"{name}: {h.band_counts.get(name, 0):,} ({pct(h.band_counts.get(name, 0) / h.total)})"
        for name, _b, _i in h.bands
        if h.total
    )
    note = f"<p class='note'>{esc(bands)}</p>" if bands else ""
    days = data.volume
    trend = charts.line_chart(
        "mean-risk",
        "Mean predicted risk per day",
        [day_label(d.day) for d in days],
        [("mean predicted risk", "s-risk", [d.mean_risk for d in days])],
        y_range=(0.0, max([0.5, *(d.mean_risk or 0 for d in days)])),
        height=170,
        as_pct=True,
    )
    return panel(
        "Risk distribution",
        "How the predicted risks of the risk cards spread, coloured by risk band; below, the "
        "mean risk per day. A change over time means the patients or the data changed.",
        chart + note + "<h3>Mean predicted risk per day</h3>" + trend,
        pid="risk",
    )


def missing_panel(data: DashboardData) -> str:
    rows = sorted(data.missing, key=lambda m: (-(m.rate or 0), m.label))
    shown = [
        (
            m.label + (" *" if m.required else ""),
            m.rate or 0.0,
            m.reference_rate,
            f"{pct(m.rate)}"
            + (f" (training {pct(m.reference_rate)})" if m.reference_rate is not None else ""),
        )
        for m in rows
    ]
    cards = rows[0].cards if rows else 0
    chart = charts.hbars(
        "missing",
        "Missing-input rate per feature",
        shown,
        marker_name="training data",
        bar_class="s-norisk-strong",
    )
    if not cards:
        chart = charts.empty("missing", "No cards in this selection")
    return panel(
        "Missing inputs",
        f"Share of the {cards:,} cards in which each input was missing; the black tick is the "
        "share in the training data. * marks inputs without which no risk is computed.",
        chart,
        pid="missing",
    )


def feedback_panel(data: DashboardData) -> str:
    fb = data.feedback
    days = data.filters.days
    chart = charts.stacked_bars(
        "feedback",
        "Clinician responses per day",
        [day_label(d) for d in days],
        [
            ("accepted", "s-accepted", [fb.by_day.get(d, (0, 0))[0] for d in days]),
            ("overridden", "s-overridden", [fb.by_day.get(d, (0, 0))[1] for d in days]),
        ],
        width=600,
        height=200,
        unit="responses",
    )
    reasons = charts.hbars(
        "reasons",
        "Override reasons",
        [(r, n, None, f"{n}") for r, n in fb.reasons],
        as_pct=False,
        bar_class="s-overridden",
    )
    bands = "".join(
        f"<tr><th scope='row'>{esc(b)}</th><td>{a}</td><td>{o}</td>"
        f"<td>{esc(pct(o / (a + o) if a + o else None))}</td></tr>"
        for b, (a, o) in sorted(fb.by_band.items())
    )
    table = (
        "<table class='grid compact'><thead><tr><th>Risk band</th><th>Accepted</th>"
        f"<th>Overridden</th><th>Override rate</th></tr></thead><tbody>{bands}</tbody></table>"
        if bands
        else ""
    )
    summary = (
        f"<p class='note'>{fb.total:,} responses: {pct(fb.acceptance_rate)} accepted, "
        f"{pct(fb.override_rate)} overridden. {fb.with_suggestion:,} accepted with a "
        "suggestion of the card (e.g. the risk recorded in the EHR).</p>"
    )
    return panel(
        "Clinician responses",
        "CDS Hooks feedback on the cards of this selection: accepted or overridden, and the "
        "reasons given for overriding.",
        summary
        + chart
        + "<h3>Override reasons</h3>"
        + (reasons if fb.reasons else "<p class='muted'>No override in this selection.</p>")
        + table,
        pid="feedback",
    )

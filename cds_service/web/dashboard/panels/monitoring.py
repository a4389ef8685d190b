"""Panels on how the model holds up, from the monitor's figures: drift per input, performance
and calibration over time, subgroups, and the alerts. Alert levels shown in legends are the
monitor's own (``cds_service.monitoring.run.Thresholds``); drift has its own module."""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Sequence

from cds_service.web.dashboard import charts, grids
from cds_service.web.dashboard.layout import figures_table, latest_figure, panel
from cds_service.web.dashboard.queries import (
    AlertItem,
    DashboardData,
    Figure,
    WindowKey,
)
from cds_service.web.html import esc, num, pct

__all__ = [
    "alerts_panel",
    "calibration_panel",
    "performance_panel",
    "subgroup_panel",
]


def _series(
    keys: Sequence[WindowKey], figures: Sequence[Figure], metric: str
) -> list[float | None]:
    by = {x.window: x.value for x in figures if x.metric == metric and not x.subgroup}
    return [by.get(k) for k in keys]


def performance_panel(data: DashboardData) -> str:
    keys = data.windows.keys
    labels = [k.label for k in keys]

    def series(metric: str) -> list[float | None]:
        return _series(keys, data.performance, metric)

    auroc, outcomes = series("auroc"), series("outcomes")
    intercept = series("calibration_intercept")
    gate = data.gate
    refs = []
    if isinstance(gate.get("min_auroc"), int | float):
        refs.append((float(gate["min_auroc"]), f"validation gate {gate['min_auroc']}"))
    low = min([0.5, *(v for v in auroc if v is not None), *(r[0] for r in refs)])
    chart = charts.line_chart(
        "auroc",
        "AUROC per monitoring window",
        labels,
        [("AUROC", "s-risk", auroc)],
        y_range=(math.floor(low * 10) / 10, 1.0),
        references=refs,
        height=220,
    )
    limit = gate.get("max_abs_calibration_intercept")
    cal_refs = []
    if isinstance(limit, int | float):
        cal_refs = [(float(limit), f"+{limit} gate"), (-float(limit), f"−{limit} gate")]
    span = max([0.3, *(abs(v) for v in intercept if v is not None), *(abs(r[0]) for r in cal_refs)])
    span = math.ceil(span * 1.15 * 10) / 10
    cal_chart = charts.line_chart(
        "calibration-intercept",
        "Calibration intercept per monitoring window",
        labels,
        [("calibration intercept", "s-shadow", intercept)],
        y_range=(-span, span),
        references=cal_refs,
        height=200,
    )
    table = figures_table(
        ("window", "outcomes", "AUROC", "AUPRC", "Brier", "cal. intercept", "cal. slope", "ECE"),
        [
            (
                k.label,
                num(outcomes[j], 0),
                num(auroc[j]),
                num(series("auprc")[j]),
                num(series("brier")[j]),
                num(intercept[j]),
                num(series("calibration_slope")[j]),
                num(series("ece")[j]),
            )
            for j, k in enumerate(keys)
            if outcomes[j]
        ],
        "Figures per window (AUPRC, Brier, calibration slope, ECE)",
    )
    return panel(
        "Performance over time",
        "AUROC of the predictions whose outcome is known, per monitoring window, against the "
        "model's validation gate; below it, calibration-in-the-large (0 is perfect; negative: "
        "the model predicts too high).",
        chart + "<h3>Calibration intercept</h3>" + cal_chart + table,
        pid="auroc",
    )


def calibration_panel(data: DashboardData) -> str:
    chart = grids.calibration_plot(
        "calibration",
        "Calibration: observed rate against predicted risk",
        [(b.predicted, b.observed, b.n) for b in data.calibration],
    )
    latest = {
        m: latest_figure(data.performance, m)
        for m in ("calibration_intercept", "calibration_slope")
    }
    bits = [
        f"{m.replace('_', ' ')} {num(x.value)} ({x.window.label})"
        for m, x in latest.items()
        if x is not None
    ]
    note = f"<p class='note'>Latest window: {esc('; '.join(bits))}.</p>" if bits else ""
    n = sum(b.n for b in data.calibration)
    return panel(
        "Calibration",
        f"Cards with a known outcome ({n:,}), grouped by predicted risk: points on the diagonal "
        "mean the risks can be taken at face value; below it, the model over-estimates.",
        chart + note,
        pid="calibration",
    )


def subgroup_panel(data: DashboardData) -> str:
    if not data.subgroups:
        return panel(
            "Subgroups",
            "Figures per sex and age band, from monitoring.",
            "<p class='muted'>No subgroup figures for this selection yet.</p>",
            pid="subgroups",
        )
    overall_n = sum(x.n for x in data.performance if x.metric == "auroc" and x.value is not None)
    overall = (
        sum(x.value * x.n for x in data.performance if x.metric == "auroc" and x.value is not None)
        / overall_n
        if overall_n
        else None
    )
    gap = data.gate.get("max_subgroup_auroc_gap")
    head = (
        "<tr><th>Subgroup</th><th>Cards</th><th>Warning or critical</th><th>Outcomes</th>"
        "<th>Prevalence</th><th>AUROC</th><th>Brier</th></tr>"
    )
    body = []
    small = f"<{data.small_cell_min}"
    for row in data.subgroups:
        fig = row.figures
        hidden = set(row.suppressed)

        def cell(metric: str, text: str) -> str:
            return esc(small if metric in hidden else text)  # noqa: B023 (used in this loop)

        volume = fig.get("volume", (None, 0))[0]
        outcomes = fig.get("outcomes", (None, 0))[0]
        auroc = fig.get("auroc", (None, 0))[0]
        flag = ""
        if (
            auroc is not None
            and overall is not None
            and isinstance(gap, int | float)
            and overall - auroc > gap
        ):
            flag = " class='flag' title='more than the gate allows below the overall AUROC'"
        body.append(
            f"<tr><th scope='row'>{esc(row.subgroup)}</th>"
            f"<td>{cell('volume', num(volume, 0))}</td>"
            f"<td>{cell('alert_rate', pct(fig.get('alert_rate', (None, 0))[0]))}</td>"
            f"<td>{cell('outcomes', num(outcomes, 0))}</td>"
            f"<td>{cell('prevalence', pct(fig.get('prevalence', (None, 0))[0]))}</td>"
            f"<td{flag}>{cell('auroc', num(auroc))}</td>"
            f"<td>{cell('brier', num(fig.get('brier', (None, 0))[0]))}</td></tr>"
        )
    overall_text = f" Overall AUROC {num(overall)}." if overall is not None else ""
    return panel(
        "Subgroups",
        "Per sex and age band over the selected windows (counts summed, rates weighted by their "
        f"number of cards).{overall_text} Red: AUROC further below the overall figure than the "
        "validation gate allows.",
        f"<table class='grid' data-table='subgroups'><thead>{head}</thead>"
        f"<tbody>{''.join(body)}</tbody></table>",
        pid="subgroups",
    )


def _g(value: float | None) -> str:
    return "–" if value is None else f"{value:.4g}"


SEVERITY_ORDER = {"critical": 0, "warning": 1, "info": 2}


def alerts_panel(data: DashboardData) -> str:
    if not data.alerts:
        content = "<p class='muted'>No monitoring alert for this selection.</p>"
    else:
        groups: dict[tuple[str, str, str, str], list[AlertItem]] = defaultdict(list)
        for a in data.alerts:
            groups[(a.metric, a.feature, a.subgroup, a.model_version)].append(a)

        def rank(key: tuple[str, str, str, str]) -> tuple[int, float]:
            items = groups[key]
            worst = min(SEVERITY_ORDER.get(a.severity, 3) for a in items)
            return worst, -max(a.window.end for a in items).timestamp()

        shadows = {v.version for v in data.shadow.versions}
        rows = []
        for key in sorted(groups, key=rank):
            metric, feature, subgroup, version = key
            items = sorted(groups[key], key=lambda a: a.window.start, reverse=True)
            latest = items[0]
            severity = min((a.severity for a in items), key=lambda s: SEVERITY_ORDER.get(s, 3))
            what = (
                metric
                + (f" · {feature}" if feature else "")
                + (f" · {subgroup}" if subgroup else "")
            )
            windows = ", ".join(
                k.label for k in sorted({a.window for a in items}, key=lambda k: (k.start, k.end))
            )
            if version in shadows:
                version += " (shadow)"
            rows.append(
                f"<tr><td><span class='badge {esc(severity)}'>{esc(severity)}</span></td>"
                f"<td><strong>{esc(what)}</strong></td><td>{esc(version)}</td>"
                f"<td>{len(items)}</td><td>{esc(windows)}</td>"
                f"<td>{esc(_g(latest.value))} (threshold {esc(_g(latest.threshold))})</td>"
                "</tr>"
            )
        messages = "".join(
            f"<li><span class='badge {esc(a.severity)}'>{esc(a.severity)}</span> "
            f"<span class='muted'>{a.created_at:%Y-%m-%d %H:%M}</span> {esc(a.message)}</li>"
            for a in data.alerts
        )
        content = (
            "<table class='grid' data-table='alerts'><thead><tr><th>Severity</th><th>What</th>"
            "<th>Version</th><th>Alerts</th><th>Windows</th><th>Latest value</th></tr></thead>"
            f"<tbody>{''.join(rows)}</tbody></table>"
            f"<details class='figures'><summary>All {len(data.alerts)} alert messages</summary>"
            f"<ul class='alerts' data-list='alerts'>{messages}</ul></details>"
        )
    return panel(
        "Alerts",
        "Threshold breaches found by the monitor in windows overlapping this range, grouped by "
        "figure; the worst first (docs/monitoring.md explains each one).",
        content,
        wide=True,
        pid="alerts",
    )

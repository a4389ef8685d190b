"""HTML of the dashboard and of its sign-in messages (server-rendered; no script at all).

Everything shown is an aggregate figure or a record about a model (deployments, alerts); no
patient identifier or pseudonym is ever selected, let alone rendered. All text from the database
is escaped.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Sequence
from datetime import date

from cds_service.web.dashboard import charts
from cds_service.web.dashboard.auth import DashboardUser
from cds_service.web.dashboard.charts import Cell, esc, num, pct
from cds_service.web.dashboard.queries import (
    ROLES,
    AlertItem,
    DashboardData,
    Figure,
    Options,
    WindowKey,
    details_of,
)

CSS_URL = "/dashboard/static/dashboard.css"
KS_SIGNIFICANT = 0.001
PSI_LEVELS = (0.1, 0.2, 0.25)


def _head(title: str) -> str:
    return (
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>"
        "<meta name='viewport' content='width=device-width, initial-scale=1'>"
        f"<title>{esc(title)}</title><link rel='stylesheet' href='{CSS_URL}'></head>"
    )


def _user_bar(user: DashboardUser | None) -> str:
    if user is None:
        return ""
    how = " (development user, no sign-in)" if user.via == "development" else ""
    out = f"<span class='user'>{esc(user.name)}{esc(how)}</span>"
    if user.via == "oidc":
        out += (
            "<form method='post' action='/dashboard/logout' class='inline'>"
            "<button type='submit' class='link'>Sign out</button></form>"
        )
    return out


def layout(title: str, body: str, user: DashboardUser | None = None) -> str:
    return (
        _head(title) + "<body><header class='top'><div class='wrap top-inner'>"
        "<a class='brand' href='/dashboard'>CDS risk models <span>· quality dashboard</span></a>"
        f"<div class='who'>{_user_bar(user)}</div></div></header>"
        f"<main class='wrap'>{body}</main>"
        "<footer class='wrap foot'>All times are UTC. Every figure is an aggregate over cards; "
        "no patient identifier is shown. The same figures are in the SQL views "
        "(docs/quality-views.md).</footer></body></html>"
    )


def message_page(title: str, message: str, *, actions: Sequence[tuple[str, str]] = ()) -> str:
    links = "".join(
        f"<a class='button' href='{esc(href)}'>{esc(text)}</a>" for text, href in actions
    )
    body = (
        f"<section class='panel message'><h1>{esc(title)}</h1><p>{esc(message)}</p>"
        f"<p class='actions'>{links}</p></section>"
    )
    return layout(title, body)


def not_configured_page(problem: str) -> str:
    body = (
        "<section class='panel message'><h1>Dashboard sign-in is not configured</h1>"
        f"<p>{esc(problem)}</p>"
        "<p>The dashboard needs OpenID Connect sign-in against the hospital's identity provider. "
        "Set these environment variables and restart the service:</p><ul>"
        "<li><code>CDS_OIDC_ISSUER</code>: the provider's issuer URL (its "
        "<code>/.well-known/openid-configuration</code> is read)</li>"
        "<li><code>CDS_OIDC_CLIENT_ID</code> and <code>CDS_OIDC_CLIENT_SECRET</code>: this "
        "service's client registration, with redirect URI "
        "<code>{public base URL}/dashboard/callback</code></li>"
        "<li><code>CDS_DASHBOARD_ROLE_CLAIM</code> and <code>CDS_DASHBOARD_ROLE_VALUE</code>: "
        "the claim and value that mark the quality team (default <code>groups</code> containing "
        "<code>quality-team</code>)</li></ul>"
        "<p>In development only, <code>CDS_DASHBOARD_DEV_USER=&lt;name&gt;</code> opens the "
        "dashboard without sign-in. See docs/dashboard.md.</p></section>"
    )
    return layout("Dashboard not configured", body)


# --- the dashboard ----------------------------------------------------------------------------


def _day_label(day: date) -> str:
    return f"{day:%d %b}"


def _length_label(seconds: int) -> str:
    days, rest = divmod(seconds, 86400)
    if not rest:
        return f"{days} day" + ("s" if days != 1 else "")
    hours = seconds / 3600
    return f"{hours:g} hours"


def _select(name: str, label: str, choices: Sequence[tuple[str, str]], current: str) -> str:
    opts = "".join(
        f"<option value='{esc(v)}'{' selected' if v == current else ''}>{esc(t)}</option>"
        for v, t in choices
    )
    return f"<label>{esc(label)}<select name='{esc(name)}'>{opts}</select></label>"


def filter_form(data: DashboardData, opts: Options) -> str:
    f = data.filters
    services = [(sid, f"{title} ({sid})") for sid, title in opts.services]
    if f.service_id not in {s for s, _ in services}:
        services.append((f.service_id, f.service_id))
    versions = [("", "all versions"), *((v, v) for v in opts.versions)]
    if f.model_version and f.model_version not in opts.versions:
        versions.append((f.model_version, f.model_version))
    windows = [("", "automatic")] + [
        (str(s), _length_label(s)) for s in data.windows.lengths
    ]  # fmt: skip
    chosen_window = str(f.window_seconds) if f.window_seconds in data.windows.lengths else ""
    return (
        "<form class='filters' method='get' action='/dashboard'>"
        + _select("service", "Service", services, f.service_id)
        + _select("environment", "Environment", [(e, e) for e in opts.environments], f.environment)
        + _select("version", "Model version", versions, f.model_version or "")
        + _select("role", "Role", [(r, r) for r in ROLES], f.role)
        + f"<label>From<input type='date' name='from' value='{f.start.isoformat()}'></label>"
        + f"<label>To<input type='date' name='to' value='{f.end.isoformat()}'></label>"
        + _select("window", "Monitoring window", windows, chosen_window)
        + "<button type='submit'>Apply</button></form>"
    )


def _tile(label: str, value: str, note: str = "", cls: str = "") -> str:
    return (
        f"<div class='tile {cls}'><div class='tile-label'>{esc(label)}</div>"
        f"<div class='tile-value'>{esc(value)}</div><div class='tile-note'>{esc(note)}</div></div>"
    )


def _latest(figures: Sequence[Figure], metric: str) -> Figure | None:
    found = [x for x in figures if x.metric == metric and not x.subgroup and x.value is not None]
    return max(found, key=lambda x: x.window.start) if found else None


def tiles(data: DashboardData) -> str:
    cards = data.total_cards
    risk = sum(d.risk_cards for d in data.volume)
    alerting = sum(d.alerting_cards for d in data.volume)
    no_risk = sum(d.no_risk_cards for d in data.volume)
    fb = data.feedback
    n_out, pos = data.outcomes
    auroc = _latest(data.performance, "auroc")
    critical = sum(1 for a in data.alerts if a.severity == "critical")
    items = [
        _tile("Cards", f"{cards:,}", f"{len(data.volume)} days, {data.filters.role}"),
        _tile(
            "Warning or critical",
            pct(alerting / risk if risk else None),
            f"{alerting:,} of {risk:,} risk cards",
        ),
        _tile(
            "No risk computed",
            pct(no_risk / cards if cards else None),
            f"{no_risk:,} cards with required data missing",
        ),
        _tile(
            "Mean latency",
            "–" if data.latency_ms is None else f"{data.latency_ms:.0f} ms",
            "in the service",
        ),
        _tile(
            "Clinician feedback",
            f"{fb.total:,}",
            f"{pct(fb.acceptance_rate, 0)} accepted, {pct(fb.override_rate, 0)} overridden",
        ),
        _tile("Known outcomes", f"{n_out:,}", f"{pct(pos / n_out if n_out else None)} positive"),
        _tile(
            "AUROC, latest window",
            num(auroc.value) if auroc else "–",
            f"{auroc.window.label}, n={auroc.n}" if auroc else "needs outcomes",
        ),
        _tile(
            "Alerts",
            f"{len(data.alerts)}",
            f"{critical} critical" if data.alerts else "none in this range",
            "tile-alert" if data.alerts else "",
        ),
    ]
    return "<section class='tiles'>" + "".join(items) + "</section>"


def panel(
    title: str,
    explain: str,
    content: str,
    *,
    wide: bool = False,
    pid: str = "",
) -> str:
    cls = "panel wide" if wide else "panel"
    ident = f" id='{esc(pid)}'" if pid else ""
    return (
        f"<section class='{cls}'{ident}><h2>{esc(title)}</h2>"
        f"<p class='explain'>{esc(explain)}</p>{content}</section>"
    )


def _figures_table(headers: Sequence[str], rows: Sequence[Sequence[str]], summary: str) -> str:
    """The figures behind a chart, folded away (for screen readers and for copying)."""
    if not rows:
        return ""
    head = "".join(f"<th>{esc(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{esc(c)}</td>" for c in r) + "</tr>" for r in rows)
    return (
        f"<details class='figures'><summary>{esc(summary)}</summary>"
        f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table></details>"
    )


def volume_panel(data: DashboardData) -> str:
    days = data.volume
    labels = [_day_label(d.day) for d in days]
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
    table = _figures_table(
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
        [_day_label(d.day) for d in days],
        [("mean predicted risk", "s-risk", [d.mean_risk for d in days])],
        y_range=(0.0, max([0.5, *(d.mean_risk or 0 for d in days)])),
        height=170,
        as_pct=True,
        dots=False,
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


def _psi_level(value: float) -> int:
    return sum(1 for t in PSI_LEVELS if value > t)


def drift_panel(data: DashboardData) -> str:
    keys = data.windows.keys
    col = {k: j for j, k in enumerate(keys)}
    features = list(data.feature_labels)
    seen = {x.feature for x in data.drift if x.feature}
    features += sorted(seen - set(features))
    rows = [data.feature_labels.get(name, name) for name in features] + ["predicted risk"]
    row = {name: i for i, name in enumerate(features)}
    pred_row = len(rows) - 1
    by_cell: dict[tuple[int, int], dict[str, Figure]] = defaultdict(dict)
    for x in data.drift:
        j = col.get(x.window)
        if x.metric == "prediction_psi":
            i: int | None = pred_row
        elif x.metric == "reference_too_small" and not x.feature:
            skipped = details_of(x).get("skipped")
            i = pred_row if isinstance(skipped, dict) and "prediction_psi" in skipped else None
        else:
            i = row.get(x.feature)
        if i is None or j is None:
            continue
        by_cell[(i, j)][x.metric] = x
    alerted = {(a.feature, a.window) for a in data.alerts if a.metric in ("psi", "ks_pvalue")} | {
        ("", a.window) for a in data.alerts if a.metric == "prediction_psi"
    }
    cells: dict[tuple[int, int], Cell] = {}
    for (i, j), figs in by_cell.items():
        name = "" if i == pred_row else features[i]
        psi = figs.get("prediction_psi" if i == pred_row else "psi")
        ks_p, ks_d = figs.get("ks_pvalue"), figs.get("ks_statistic")
        title = f"{rows[i]}, {keys[j].label}: "
        if psi is not None and psi.value is not None:
            significant = (
                ks_p is not None and ks_p.value is not None and ks_p.value < KS_SIGNIFICANT
            )
            title += f"PSI {psi.value:.3f} (n={psi.n})"
            if ks_d is not None and ks_p is not None:
                title += f"; KS statistic {num(ks_d.value)}, p = {num(ks_p.value, 4)}"
            cells[(i, j)] = Cell(
                psi.value,
                f"{psi.value:.2f}" + (" •" if significant else ""),
                title,
                _psi_level(psi.value),
                (name, keys[j]) in alerted,
            )
        elif "reference_too_small" in figs:
            skipped = details_of(figs["reference_too_small"]).get("skipped")
            reason = (
                "; ".join(str(v) for v in skipped.values()) if isinstance(skipped, dict) else ""
            )
            cells[(i, j)] = Cell(None, "n/a", title + "not computed: " + reason, -1)
    chart = charts.heatmap(
        "drift",
        "Population stability index per input and window",
        rows,
        [k.label for k in keys],
        cells,
        legend=[
            ("PSI < 0.1", "heat-0"),
            ("0.1–0.2", "heat-1"),
            ("0.2–0.25 warning", "heat-2"),
            ("> 0.25 critical", "heat-3"),
            ("not computed", "heat-na"),
        ],
    )
    w = data.windows
    scope = (
        f"Model version {w.version}, windows of {w.length and _length_label(w.length)}, "
        f"{data.filters.role} predictions."
        if w.version
        else "No monitoring run has covered this selection yet (cds-service monitor)."
    )
    return panel(
        "Drift per input",
        "Population stability index (PSI) of each input against the training data, per "
        "monitoring window; • marks a Kolmogorov–Smirnov test with p < 0.001; an outlined cell "
        "raised an alert. Hover a cell for the figures. " + scope,
        chart,
        wide=True,
        pid="drift",
    )


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
    table = _figures_table(
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
    chart = charts.calibration_plot(
        "calibration",
        "Calibration: observed rate against predicted risk",
        [(b.predicted, b.observed, b.n) for b in data.calibration],
    )
    latest = {
        m: _latest(data.performance, m) for m in ("calibration_intercept", "calibration_slope")
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
    for row in data.subgroups:
        fig = row.figures
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
            f"<td>{esc(num(volume, 0))}</td>"
            f"<td>{esc(pct(fig.get('alert_rate', (None, 0))[0]))}</td>"
            f"<td>{esc(num(outcomes, 0))}</td>"
            f"<td>{esc(pct(fig.get('prevalence', (None, 0))[0]))}</td>"
            f"<td{flag}>{esc(num(auroc))}</td>"
            f"<td>{esc(num(fig.get('brier', (None, 0))[0]))}</td></tr>"
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


def feedback_panel(data: DashboardData) -> str:
    fb = data.feedback
    days = data.filters.days
    chart = charts.stacked_bars(
        "feedback",
        "Clinician responses per day",
        [_day_label(d) for d in days],
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
        f"{pct(fb.override_rate)} overridden.</p>"
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


def shadow_panel(data: DashboardData) -> str:
    sh = data.shadow
    if not sh.versions:
        return panel(
            "Shadow versus live",
            "Shadow versions score every call but are never shown.",
            "<p class='muted'>No shadow predictions in this selection.</p>",
            wide=True,
            pid="shadow",
        )
    rows = "".join(
        f"<tr><th scope='row'>{esc(v.version)}</th><td>{v.pairs:,}</td>"
        f"<td>{esc(pct(v.agreement))}</td><td>{esc(num(v.mean_abs_diff))}</td></tr>"
        for v in sh.versions
    )
    table = (
        "<table class='grid compact' data-table='shadow'><thead><tr><th>Shadow version</th>"
        "<th>Paired calls</th><th>Same risk band</th><th>Mean |risk difference|</th></tr>"
        f"</thead><tbody>{rows}</tbody></table>"
    )
    order = [name for name, _b, _i in data.histogram.bands] + ["(none)"]

    def ordered(names: set[str]) -> list[str]:
        return sorted(names, key=lambda n: (order.index(n) if n in order else len(order), n))

    live_bands = ordered({lb for lb, _sb in sh.bands})
    shadow_bands = ordered({sb for _lb, sb in sh.bands})
    cross = (
        f"<h3>Risk bands, live against shadow {esc(sh.sample_version)}</h3>"
        "<table class='grid compact cross'><thead><tr><th>live ↓ shadow →</th>"
        + "".join(f"<th>{esc(b)}</th>" for b in shadow_bands)
        + "</tr></thead><tbody>"
        + "".join(
            f"<tr><th scope='row'>{esc(lb)}</th>"
            + "".join(
                f"<td class='{'same' if lb == sb else 'differs'}'>{sh.bands.get((lb, sb), 0)}</td>"
                for sb in shadow_bands
            )
            + "</tr>"
            for lb in live_bands
        )
        + "</tbody></table>"
    )
    thresholds = [b for _n, b, _i in data.histogram.bands if 0 < b < 1]
    chart = charts.scatter(
        "shadow",
        f"Live risk against shadow {sh.sample_version} risk for the same calls",
        sh.sample,
        x_name="live risk",
        y_name=f"shadow {sh.sample_version} risk",
        thresholds=thresholds,
    )
    return panel(
        "Shadow versus live",
        "Each call scored by a shadow version is paired with the live card of the same call. "
        f"Scatter and table: version {sh.sample_version} (latest {len(sh.sample)} pairs); points "
        "off the diagonal are disagreements, dashed lines are band limits.",
        "<div class='side'><div>" + table + cross + "</div>" + chart + "</div>",
        wide=True,
        pid="shadow",
    )


def deployments_panel(data: DashboardData) -> str:
    if not data.deployments:
        content = "<p class='muted'>No deployment record for this model in this environment.</p>"
    else:
        rows = []
        for d in data.deployments:
            override = (
                f"<span class='badge warning'>override</span> {esc(d.override_reason or '')}"
                if d.override
                else "–"
            )
            rows.append(
                f"<tr><td>{d.created_at:%Y-%m-%d %H:%M}</td><td>{esc(d.action)}</td>"
                f"<td>{esc(d.model_version)}</td><td>{esc(d.role)}</td>"
                f"<td>{esc(d.decided_by)}</td><td>{esc(d.reason)}</td>"
                f"<td>{esc(d.gate or '–')}</td><td>{override}</td>"
                f"<td><code title='{esc(d.artifact_sha256)}'>{esc(d.artifact_sha256[:12])}</code>"
                f"</td><td><code title='{esc(d.record_hash)}'>{esc(d.record_hash[:12])}</code></td>"
                "</tr>"
            )
        content = (
            "<table class='grid' data-table='deployments'><thead><tr><th>When (UTC)</th>"
            "<th>Action</th><th>Version</th><th>Role</th><th>Who</th><th>Why</th>"
            "<th>Validation evidence</th><th>Override</th><th>Artifact sha256</th>"
            f"<th>Record hash</th></tr></thead><tbody>{''.join(rows)}</tbody></table>"
        )
    return panel(
        "Deployment history",
        f"Every promotion, rollback and retirement of {data.model_name or 'this model'} in "
        f"{data.filters.environment}, newest first, from the hash-chained deployment records "
        "(cds-service audit verify checks the chain).",
        content,
        wide=True,
        pid="deployments",
    )


def dashboard_page(
    data: DashboardData, opts: Options, user: DashboardUser | None, notices: Sequence[str]
) -> str:
    f = data.filters
    notes = "".join(f"<p class='notice'>{esc(n)}</p>" for n in notices)
    title = next((t for s, t in opts.services if s == f.service_id), f.service_id)
    heading = (
        f"<div class='heading'><h1>{esc(title)}</h1><p class='muted'>{esc(f.service_id)} · "
        f"{esc(data.model_name or '?')} {esc(f.model_version or 'all versions')} · "
        f"{esc(f.environment)} · {f.start:%d %b %Y} – {f.end:%d %b %Y}</p></div>"
    )
    body = (
        heading
        + filter_form(data, opts)
        + notes
        + tiles(data)
        + "<div class='grid-panels'>"
        + alerts_panel(data)
        + volume_panel(data)
        + risk_panel(data)
        + missing_panel(data)
        + drift_panel(data)
        + calibration_panel(data)
        + performance_panel(data)
        + subgroup_panel(data)
        + feedback_panel(data)
        + shadow_panel(data)
        + deployments_panel(data)
        + "</div>"
    )
    return layout(f"Dashboard · {title}", body, user)

"""The dashboard's pages (server-rendered; no script at all): the dashboard itself, composed of
its panels, and the sign-in message pages.

Everything shown is an aggregate figure or a record about a model (deployments, alerts); no
patient identifier or pseudonym is ever selected, let alone rendered. All text from the database
is escaped.
"""

from __future__ import annotations

from collections.abc import Sequence

from cds_service.web.dashboard.auth import DashboardUser
from cds_service.web.dashboard.layout import (
    latest_figure,
    layout,
    length_label,
    message_page,
    not_configured_page,
)
from cds_service.web.dashboard.panels import (
    alerts_panel,
    burden_panel,
    calibration_panel,
    deployments_panel,
    drift_panel,
    feedback_panel,
    missing_panel,
    performance_panel,
    risk_panel,
    shadow_panel,
    subgroup_panel,
    volume_panel,
)
from cds_service.web.dashboard.queries import ROLES, DashboardData, Options
from cds_service.web.html import esc, num, pct

__all__ = ["dashboard_page", "filter_form", "message_page", "not_configured_page", "tiles"]


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
        (str(s), length_label(s)) for s in data.windows.lengths
    ]  # fmt: skip
    chosen_window = str(f.window_seconds) if f.window_seconds in data.windows.lengths else ""
    return (
        "<form class='filters' method='get' action='/dashboard'>"
        + _select("service", "Service", services, f.service_id)
        + _select("environment", "Environment", [(e, e) for e in opts.environments], f.environment)
        + (
            _select("model", "Model", [(m, m) for m in opts.models], data.model_name or "")
            if len(opts.models) > 1
            else ""
        )
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


def tiles(data: DashboardData) -> str:
    cards = data.total_cards
    risk = sum(d.risk_cards for d in data.volume)
    alerting = sum(d.alerting_cards for d in data.volume)
    no_risk = sum(d.no_risk_cards for d in data.volume)
    fb = data.feedback
    n_out, pos = data.outcomes
    auroc = latest_figure(data.performance, "auroc")
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
        + burden_panel(data)
        + subgroup_panel(data)
        + feedback_panel(data)
        + shadow_panel(data)
        + deployments_panel(data)
        + "</div>"
    )
    return layout(f"Dashboard · {title}", body, user)

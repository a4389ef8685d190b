"""The dashboard's page frame and the pieces every panel uses: the header with the signed-in
user, the sign-in message pages, a panel, and the folded table of figures behind a chart.

Everything shown is an aggregate figure or a record about a model; all text is escaped.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date

from cds_service.web.dashboard.auth import DashboardUser
from cds_service.web.dashboard.queries import Figure
from cds_service.web.html import document, esc, table

__all__ = [
    "day_label",
    "figures_table",
    "latest_figure",
    "layout",
    "length_label",
    "message_page",
    "not_configured_page",
    "panel",
]

CSS_URL = "/dashboard/static/dashboard.css"


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
    return document(
        title,
        "<header class='top'><div class='wrap top-inner'>"
        "<a class='brand' href='/dashboard'>CDS risk models <span>· quality dashboard</span></a>"
        f"<div class='who'>{_user_bar(user)}</div></div></header>"
        f"<main class='wrap'>{body}</main>"
        "<footer class='wrap foot'>All times are UTC. Every figure is an aggregate over cards; "
        "no patient identifier is shown. The same figures are in the SQL views "
        "(docs/quality-views.md).</footer>",
        head=f"<link rel='stylesheet' href='{CSS_URL}'>",
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


def day_label(day: date) -> str:
    return f"{day:%d %b}"


def length_label(seconds: int) -> str:
    days, rest = divmod(seconds, 86400)
    if not rest:
        return f"{days} day" + ("s" if days != 1 else "")
    hours = seconds / 3600
    return f"{hours:g} hours"


def latest_figure(figures: Sequence[Figure], metric: str) -> Figure | None:
    found = [x for x in figures if x.metric == metric and not x.subgroup and x.value is not None]
    return max(found, key=lambda x: x.window.start) if found else None


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


def figures_table(headers: Sequence[str], rows: Sequence[Sequence[str]], summary: str) -> str:
    """The figures behind a chart, folded away (for screen readers and for copying)."""
    if not rows:
        return ""
    return (
        f"<details class='figures'><summary>{esc(summary)}</summary>"
        f"{table(headers, rows)}</details>"
    )

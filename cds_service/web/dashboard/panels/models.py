"""Panels on the model versions themselves: shadow versions against live, and the deployment
history from the hash-chained records."""

from __future__ import annotations

from cds_service.web.dashboard import grids
from cds_service.web.dashboard.layout import panel
from cds_service.web.dashboard.queries import DashboardData
from cds_service.web.html import esc, num, pct

__all__ = ["deployments_panel", "shadow_panel"]


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
    chart = grids.scatter(
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

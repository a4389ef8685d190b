"""The PMS report as one self-contained HTML page (inline CSS, no scripts, no external
resources), so the PDF Chromium prints from it needs no network and the archived HTML reads the
same in ten years. Jinja2 escapes every cell: reasons and comments are free text."""

from __future__ import annotations

from datetime import UTC, datetime

from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape

from cds_service.reports.pms_data import PmsData

__all__ = ["render_html"]

_ENV = Environment(
    loader=PackageLoader("cds_service.reports", "templates"),
    autoescape=select_autoescape(["html", "j2"]),
    undefined=StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)


def render_html(data: PmsData, generated: datetime | None = None) -> str:
    moment = (generated or datetime.now(UTC)).astimezone(UTC)
    template = _ENV.get_template("pms.html.j2")
    return template.render(d=data, i=data.plan.indicators, generated=f"{moment:%Y-%m-%d %H:%M}")

"""HTML pieces shared by the dashboard and the SMART app: escaping, number formats, the page
frame and tables.

Every function here escapes what it is given, so text from the database, a FHIR server or a
request can be passed as it is. Only the ``body``/``head`` of ``document`` and the cells of
``table(..., raw=True)`` are markup, and must have been built with these helpers.
"""

from __future__ import annotations

from collections.abc import Sequence
from html import escape

__all__ = ["document", "esc", "num", "pct", "table"]


def esc(value: object) -> str:
    """Text for HTML content or a quoted attribute value (quotes escaped too)."""
    return escape(str(value), quote=True)


def pct(value: float | None, digits: int = 1) -> str:
    return "–" if value is None else f"{100 * value:.{digits}f}%"


def num(value: float | None, digits: int = 3) -> str:
    if value is None:
        return "–"
    if value != 0 and abs(value) < 10 ** (-digits):
        return f"{value:.1e}"
    return f"{value:.{digits}f}"


def document(
    title: str, body: str, *, head: str = "", body_class: str = "", lang: str = "en"
) -> str:
    """A whole page: ``head`` (a stylesheet link or a ``<style>``) and ``body`` are markup."""
    cls = f" class='{esc(body_class)}'" if body_class else ""
    return (
        f"<!doctype html><html lang='{esc(lang)}'><head><meta charset='utf-8'>"
        "<meta name='viewport' content='width=device-width, initial-scale=1'>"
        f"<title>{esc(title)}</title>{head}</head><body{cls}>{body}</body></html>"
    )


def table(
    headers: Sequence[str],
    rows: Sequence[Sequence[object]],
    *,
    cls: str = "",
    name: str = "",
    row_headers: bool = False,
    raw: bool = False,
) -> str:
    """A table; ``row_headers`` makes each row's first cell a ``<th scope='row'>``. Cells are
    escaped unless ``raw`` (then they are markup built with these helpers)."""
    klass = f" class='{esc(cls)}'" if cls else ""
    data = f" data-table='{esc(name)}'" if name else ""
    head = "".join(f"<th>{esc(h)}</th>" for h in headers)

    def cell(i: int, value: object) -> str:
        text = str(value) if raw else esc(value)
        return f"<th scope='row'>{text}</th>" if row_headers and i == 0 else f"<td>{text}</td>"

    body = "".join(
        "<tr>" + "".join(cell(i, v) for i, v in enumerate(row)) + "</tr>" for row in rows
    )
    return f"<table{klass}{data}><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"

"""A CDS Hooks card as an EHR shows it, for browser tests and the documentation's screenshots: an
indicator stripe, the summary, the detail (GitHub-flavoured Markdown, sanitised), the suggestions
as buttons, the links and the source. Test scaffolding only: it stands in for the EHR."""

from __future__ import annotations

from typing import Any

from cds_service.web.html import esc
from cds_service.web.markdown import to_html

_OVERRIDE = {"en": "Override reasons", "nl": "Redenen om af te wijken"}
_INDICATOR = {
    "en": {"info": "info", "warning": "warning", "critical": "critical"},
    "nl": {"info": "informatie", "warning": "waarschuwing", "critical": "kritiek"},
}
_COLOURS = {"info": "#2f6fb3", "warning": "#d08a00", "critical": "#c0392b"}
_STYLE = """
body { font: 14px/1.45 system-ui, sans-serif; background: #eef1f4; margin: 0; padding: 24px; }
.card { background: #fff; max-width: 820px; border-radius: 6px; box-shadow: 0 1px 3px #0003;
        border-left: 8px solid var(--ind); padding: 14px 20px; }
.summary { font-size: 17px; font-weight: 600; margin: 0 0 6px; }
.indicator { text-transform: uppercase; font-size: 11px; color: var(--ind); letter-spacing: .06em; }
table { border-collapse: collapse; margin: 6px 0; }
th, td { border: 1px solid #d5dbe1; padding: 3px 8px; text-align: left; vertical-align: top; }
th { background: #f4f6f8; }
.actions { margin-top: 10px; display: flex; flex-wrap: wrap; gap: 8px; }
button, .link { font: inherit; padding: 5px 12px; border-radius: 4px; border: 1px solid #2f6fb3; }
button { background: #2f6fb3; color: #fff; }
.link { color: #2f6fb3; text-decoration: none; background: #fff; }
.source { color: #667; font-size: 12px; margin-top: 10px; }
.override { font-size: 12px; color: #445; margin-top: 8px; }
"""


def card_page(card: dict[str, Any], title: str, lang: str) -> str:
    colour = _COLOURS[card["indicator"]]
    suggestions = "".join(
        f"<button type='button' data-uuid='{esc(s.get('uuid', ''))}'>{esc(s['label'])}</button>"
        for s in card.get("suggestions", [])
    )
    links = "".join(
        f"<a class='link' href='{esc(link['url'])}'>{esc(link['label'])}</a>"
        for link in card.get("links", [])
    )
    reasons = " · ".join(esc(r["display"]) for r in card.get("overrideReasons", []))
    source = card["source"]
    return (
        f"<!doctype html><html lang='{esc(lang)}'><head><meta charset='utf-8'>"
        f"<title>{esc(title)}</title><style>{_STYLE}</style></head><body>"
        f"<article class='card' style='--ind:{colour}' data-indicator='{esc(card['indicator'])}'>"
        f"<div class='indicator'>{esc(_INDICATOR[lang][card['indicator']])}</div>"
        f"<p class='summary'>{esc(card['summary'])}</p>"
        f"<div class='detail'>{to_html(card.get('detail', ''))}</div>"
        f"<div class='actions'>{suggestions}{links}</div>"
        + (f"<div class='override'>{_OVERRIDE[lang]}: {reasons}</div>" if reasons else "")
        + f"<div class='source'>{esc(source['label'])}</div></article></body></html>"
    )

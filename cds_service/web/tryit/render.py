"""A CDS Hooks response drawn as an EHR draws it, from the wire format alone (CDS Hooks 2.0
"Card Attributes"): indicator, summary, source, detail (GitHub-flavoured markdown, sanitized),
suggestions with their actions, links (absolute, or a SMART app to launch) and override reasons.

Generic on purpose: whatever cards the service returns are shown, so the page shows what an EHR
would, not what this project meant to send. Everything from the response is escaped.
"""

from __future__ import annotations

import json
from typing import Any

from cds_service.web.html import esc
from cds_service.web.markdown import to_html

__all__ = ["cards_html"]

INDICATORS = {"info": "Info", "warning": "Warning", "critical": "Critical"}


def _list(value: Any) -> list[dict[str, Any]]:
    return [v for v in value if isinstance(v, dict)] if isinstance(value, list) else []


def _text(value: Any) -> str:
    return value if isinstance(value, str) else ""


def _source(source: Any) -> str:
    if not isinstance(source, dict):
        return ""
    label = esc(_text(source.get("label")))
    url = _text(source.get("url"))
    icon = _text(source.get("icon"))
    img = f"<img class='source-icon' src='{esc(icon)}' alt=''>" if icon else ""
    name = f"<a href='{esc(url)}' target='_blank' rel='noopener'>{label}</a>" if url else label
    return f"<p class='source'>{img}Source: {name}</p>"


def _actions(actions: list[dict[str, Any]]) -> str:
    if not actions:
        return ""
    items = "".join(
        f"<li><code>{esc(_text(a.get('type')))}</code> {esc(_text(a.get('description')))}</li>"
        for a in actions
    )
    return f"<ul class='actions'>{items}</ul>"


def _suggestions(card: dict[str, Any]) -> str:
    suggestions = _list(card.get("suggestions"))
    if not suggestions:
        return ""
    buttons = []
    for s in suggestions:
        recommended = " <span class='badge'>recommended</span>" if s.get("isRecommended") else ""
        uuid = esc(_text(s.get("uuid")))
        buttons.append(
            f"<li><button type='button' class='suggestion' data-suggestion='{uuid}'>"
            f"{esc(_text(s.get('label')))}</button>{recommended}"
            f"{_actions(_list(s.get('actions')))}</li>"
        )
    behaviour = _text(card.get("selectionBehavior"))
    note = f"<p class='hint'>Select {esc(behaviour)}.</p>" if behaviour else ""
    return f"<div class='suggestions'><h4>Suggestions</h4>{note}<ul>{''.join(buttons)}</ul></div>"


def _links(card: dict[str, Any]) -> str:
    links = _list(card.get("links"))
    if not links:
        return ""
    items = []
    for link in links:
        label, url = esc(_text(link.get("label"))), _text(link.get("url"))
        if link.get("type") == "smart":
            context = esc(_text(link.get("appContext")))
            items.append(
                f"<li><button type='button' class='smart-link' data-url='{esc(url)}' "
                f"data-app-context='{context}'>{label}</button> <span class='hint'>SMART app"
                "</span></li>"
            )
        else:
            items.append(
                f"<li><a class='link' href='{esc(url)}' target='_blank' rel='noopener'>"
                f"{label}</a></li>"
            )
    return f"<ul class='links'>{''.join(items)}</ul>"


def _override(card: dict[str, Any]) -> str:
    reasons = _list(card.get("overrideReasons"))
    options = "".join(
        f"<option value='{esc(json.dumps(r, sort_keys=True))}'>"
        f"{esc(_text(r.get('display')) or _text(r.get('code')))}</option>"
        for r in reasons
    )
    select = (
        f"<select class='override-reason' aria-label='Reason'><option value=''>Reason…</option>"
        f"{options}</select>"
        if reasons
        else ""
    )
    return (
        f"<div class='override'>{select}<button type='button' class='dismiss'>Dismiss</button>"
        "<span class='feedback-result' role='status'></span></div>"
    )


def card_html(card: dict[str, Any]) -> str:
    indicator = _text(card.get("indicator"))
    shown = INDICATORS.get(indicator, indicator or "?")
    detail = _text(card.get("detail"))
    return (
        f"<article class='cds-card indicator-{esc(indicator)}' "
        f"data-card='{esc(_text(card.get('uuid')))}'>"
        f"<header><span class='indicator'>{esc(shown)}</span>"
        f"<h3 class='summary'>{esc(_text(card.get('summary')))}</h3></header>"
        f"{_source(card.get('source'))}"
        f"{f'<div class=detail>{to_html(detail)}</div>' if detail else ''}"
        f"{_suggestions(card)}{_links(card)}{_override(card)}</article>"
    )


def cards_html(status: int, body: Any) -> str:
    """The cards of a response, or what the EHR would show instead of them."""
    if status != 200 or not isinstance(body, dict):
        reason = ""
        if isinstance(body, dict):
            issues = _list(body.get("issue"))
            reason = _text(issues[0].get("diagnostics")) if issues else ""
        return (
            f"<p class='refused'>The service answered HTTP {status}"
            f"{': ' + esc(reason) if reason else ''}. An EHR shows no card.</p>"
        )
    cards = _list(body.get("cards"))
    out = "".join(card_html(c) for c in cards)
    if not cards:
        out = "<p class='no-cards'>No cards: the EHR shows nothing.</p>"
    actions = _list(body.get("systemActions"))
    if actions:
        out += f"<div class='system-actions'><h4>System actions</h4>{_actions(actions)}</div>"
    return out

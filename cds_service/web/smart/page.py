"""HTML of the SMART app: one server-rendered page, no script, every value escaped; the card detail
parts (factors, missing inputs) are Markdown rendered and sanitized by ``cds_service.web.markdown``.

No patient identifier is shown: the clinician opened the app from the patient's chart.
"""

from __future__ import annotations

import base64
import hashlib
from datetime import datetime
from typing import Any

from cds_service.cds_hooks.cards import factor_lines, missing_lines
from cds_service.serving.hook_defs import HookDefinition
from cds_service.web.html import document as html_document
from cds_service.web.html import esc, pct
from cds_service.web.markdown import to_html
from cds_service.web.smart.charts import render_svg
from cds_service.web.smart.view import AppView
from cds_service.web.smart.words import Words
from cds_service.web.svg import Svg

CSS = """
:root{--ink:#1d2733;--muted:#566473;--line:#d5dde6;--bg:#f5f7fa;--info:#1f6f43;
--warning:#9a5b00;--critical:#b3261e;--accent:#1f5fa8}
*{box-sizing:border-box}
body{margin:0;font:16px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:var(--ink);
background:var(--bg)}
header{background:#22313f;color:#fff;padding:.7rem 1.5rem;display:flex;gap:1rem;
align-items:baseline;flex-wrap:wrap}
header h1{font-size:1.15rem;margin:0;font-weight:600}
header p{margin:0;color:#c9d3dd;font-size:.9rem}
main{max-width:72rem;margin:0 auto;padding:1rem 1.5rem 2rem}
section{background:#fff;border:1px solid var(--line);border-radius:8px;padding:1rem 1.25rem;
margin:0 0 1rem}
h2{font-size:1.05rem;margin:0 0 .6rem}
.muted{color:var(--muted);font-size:.9rem}
.risk{display:grid;grid-template-columns:minmax(14rem,auto) 1fr;gap:1.5rem;align-items:center}
.big{font-size:3rem;font-weight:700;line-height:1}
.band{display:inline-block;border-radius:999px;padding:.1rem .7rem;color:#fff;font-weight:600;
font-size:.95rem;margin-left:.4rem;vertical-align:middle}
.ind-info .big{color:var(--info)}.ind-info .band{background:var(--info)}
.ind-warning .big{color:var(--warning)}.ind-warning .band{background:var(--warning)}
.ind-critical .big{color:var(--critical)}.ind-critical .band{background:var(--critical)}
.card-risk{margin:.6rem 0 0;font-size:.95rem}
.notice{border-left:4px solid var(--warning);background:#fff7e8;padding:.5rem .8rem;margin:.6rem 0}
.ok{border-left-color:var(--info);background:#eef8f1}
table{border-collapse:collapse;width:100%;font-size:.95rem}
th,td{text-align:left;border-bottom:1px solid var(--line);padding:.35rem .5rem}
th{color:var(--muted);font-weight:600}
.charts{display:grid;grid-template-columns:repeat(auto-fill,minmax(min(100%,460px),1fr));gap:.8rem}
figure{margin:0;border:1px solid var(--line);border-radius:6px;padding:.4rem .5rem}
figcaption{font-weight:600;font-size:.95rem;margin:0 0 .2rem}
svg.trend,svg.scale{max-width:100%;height:auto}
@media (max-width:760px){.risk,.feedback{grid-template-columns:1fr;gap:.6rem}
main{padding:.6rem}section{padding:.8rem}th,td{padding:.3rem}}
.feedback{display:grid;grid-template-columns:1fr 2fr;gap:1.5rem}
fieldset{border:0;padding:0;margin:0}
legend{font-weight:600;margin-bottom:.3rem}
label{display:block;margin:.2rem 0}
textarea{width:100%;min-height:3.2rem;font:inherit;padding:.3rem}
button{font:inherit;font-weight:600;border-radius:6px;padding:.45rem 1.1rem;cursor:pointer;
border:1px solid transparent;margin-top:.5rem}
.accept{background:var(--info);color:#fff}
.dismiss{background:#fff;color:var(--critical);border-color:var(--critical)}
footer{color:var(--muted);font-size:.85rem;text-align:center;padding:0 1rem 1.5rem}
a{color:var(--accent)}
"""
CSS_HASH = base64.b64encode(hashlib.sha256(CSS.encode()).digest()).decode()
CONTENT_SECURITY_POLICY = (
    f"default-src 'none'; style-src 'sha256-{CSS_HASH}'; img-src 'self' data:; "
    "form-action 'self'; base-uri 'none'"
)
SECURITY_HEADERS = {
    "Cache-Control": "no-store",
    "Pragma": "no-cache",
    "Referrer-Policy": "same-origin",
    "X-Content-Type-Options": "nosniff",
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
}


def document(title: str, body: str, words: Words, subtitle: str = "") -> str:
    sub = f"<p>{esc(subtitle)}</p>" if subtitle else ""
    return html_document(
        title,
        f"<header><h1>{esc(title)}</h1>{sub}</header><main>{body}</main>"
        f"<footer>{esc(words('footer'))}</footer>",
        head=f"<meta name='referrer' content='same-origin'><style>{CSS}</style>",
        lang=words.language,
    )


def error_page(title: str, message: str, words: Words) -> str:
    body = (
        f"<section><h2>{esc(title)}</h2><p>{esc(message)}</p>"
        f"<p class='muted'>{esc(words('error_nothing_stored'))}</p></section>"
    )
    return document(words("error_page_title"), body, words)


def _risk_scale(
    hook_def: HookDefinition, now: float | None, card: float | None, words: Words
) -> str:
    """The bands on a 0-100% bar, with the current risk (filled marker) and the card's (ring)."""
    width, left, right = 560, 10, 10
    plot = width - left - right
    svg = Svg(width, 62, words("scale_label"), class_="scale", width=width, height=62)
    colours = {"info": "#cfe9d9", "warning": "#f6deb0", "critical": "#f3c4c0"}
    start = 0.0
    for band in hook_def.bands:
        end = min(band.below, 1.0)
        x0, x1 = left + plot * start, left + plot * end
        fill = colours.get(band.indicator, "#e3e7ec")
        svg.element("rect", x=x0, y=22, width=x1 - x0, height=14, fill=fill)
        svg.text(
            (x0 + x1) / 2, 50, band.label(words.language), anchor="middle", size=11, fill="#3d4a57"
        )
        if end < 1.0:
            svg.text(x1, 16, f"{end * 100:.0f}%", anchor="middle", size=10, fill="#566473")
        start = end
    if card is not None:
        cx = left + plot * min(max(card, 0.0), 1.0)
        svg.element(
            "circle",
            words("scale_card"),
            cx=cx,
            cy=29,
            r=7,
            fill="none",
            stroke="#22313f",
            stroke_width=2,
        )
    if now is not None:
        nx = left + plot * min(max(now, 0.0), 1.0)
        svg.element("circle", words("scale_now"), cx=nx, cy=29, r=5, fill="#22313f")
    return svg.render()


def _risk_section(view: AppView) -> str:
    hook_def, w = view.hook_def, view.words
    texts = hook_def.card.localized(w.language)
    card = view.card
    card_risk = card.risk if card is not None and card.same_patient else None
    parts = []
    if view.prediction is not None and view.band is not None:
        parts.append(
            f"<div class='risk ind-{esc(view.band.indicator)}' id='risk-now'>"
            f"<div><div class='big' data-risk='{view.prediction.risk:.4f}'>"
            f"{pct(view.prediction.risk, 0)}<span class='band'>"
            f"{esc(view.band.label(w.language))}</span></div></div><div><p><strong>"
            f"{esc(texts.risk_sentence.format(moment=w('moment_now')))}</strong>, "
            f"{esc(w('computed_now', time=w.time(view.index_time)))}</p>"
            f"{_risk_scale(hook_def, view.prediction.risk, card_risk, w)}</div></div>"
        )
    else:
        spec = view.model.spec
        labels = ", ".join(
            spec.feature(n).label_in(w.language) for n in view.extraction.missing_required(spec)
        )
        parts.append(
            f"<div id='risk-now'><p class='notice'><strong>{esc(w('no_risk'))}</strong>: "
            f"{esc(w('no_risk_why', labels=labels))}</p></div>"
        )
    if view.own_card:
        parts.append(f"<p class='card-risk muted' id='menu-launch'>{esc(w('menu_launch'))}</p>")
    elif view.card_problem:
        parts.append(f"<p class='notice'>{esc(w.message(view.card_problem))}</p>")
    elif card is not None:
        band = next((b for b in hook_def.bands if b.name == card.band), None)
        band_text = band.label(w.language) if band is not None else card.band or ""
        shown = (
            f"<strong>{pct(card.risk, 0)}</strong> ({esc(band_text)})"
            if card.risk is not None
            else esc(w("card_no_risk"))
        )
        same_version = card.model_version == view.model.version
        version_note = "" if same_version else esc(w("version_note", version=view.model.version))
        parts.append(
            f"<p class='card-risk' id='card-risk'>"
            f"{esc(w('card_shown', time=w.time(card.requested_at)))}: {shown}, "
            f"{esc(w('card_model', name=card.model_name, version=card.model_version))}"
            f"{version_note}.</p>"
        )
    if view.truncated:
        parts.append(f"<p class='notice'>{esc(w('truncated'))}</p>")
    return (
        f"<section aria-labelledby='h-risk'><h2 id='h-risk'>{esc(w('risk_heading'))}</h2>"
        + "".join(parts)
        + "</section>"
    )


def _factors_section(view: AppView) -> str:
    if view.prediction is None:
        return ""
    spec, w = view.model.spec, view.words
    lines = factor_lines(
        spec, view.extraction, view.prediction, len(spec.features), w.language, w.zone
    )
    markdown = "\n".join([w("factor_columns"), "|---|---|---|", *lines])
    return (
        "<section id='factors' aria-labelledby='h-factors'>"
        f"<h2 id='h-factors'>{esc(w('factors_heading'))}</h2>"
        f"<p class='muted'>{esc(w('factors_note'))}</p>"
        f"{to_html(markdown)}</section>"
    )


def _trends_section(view: AppView) -> str:
    if not view.charts:
        return ""
    w = view.words
    figures = "".join(
        f"<figure><figcaption>{esc(c.title)}</figcaption>{render_svg(c)}</figure>"
        for c in view.charts
    )
    return (
        "<section id='trends' aria-labelledby='h-trends'>"
        f"<h2 id='h-trends'>{esc(w('trends_heading'))}</h2>"
        f"<p class='muted'>{esc(w('trends_note'))}</p>"
        f"<div class='charts'>{figures}</div></section>"
    )


def _missing_section(view: AppView) -> str:
    w = view.words
    lines = missing_lines(view.model.spec, view.extraction, None, w.language, w.zone)
    body = to_html("\n".join(lines)) if lines else f"<p>{esc(w('missing_none'))}</p>"
    return (
        "<section id='missing' aria-labelledby='h-missing'>"
        f"<h2 id='h-missing'>{esc(w('missing_heading'))}</h2>"
        f"<p class='muted'>{esc(w('missing_note'))}</p>"
        f"{body}</section>"
    )


def _model_section(view: AppView, base_url: str, environment: str) -> str:
    model, w = view.model, view.words
    url = f"{base_url}/models/{model.name}/{model.version}"
    env = "" if environment == "production" else esc(w("environment", env=environment))
    title = view.hook_def.discovery_text(w.language)[0]
    return (
        "<section id='model' aria-labelledby='h-model'>"
        f"<h2 id='h-model'>{esc(w('model_heading'))}</h2>"
        f"<p><a href='{esc(url)}' target='_blank' rel='noopener'>{esc(model.name)} "
        f"{esc(model.version)}</a> ({esc(w('model_card'))}){env}<br><span class='muted'>"
        f"{esc(w('artifact'))} <code>{esc(model.artifact_sha256[:12])}</code> · "
        f"{esc(w('service', title=title))}</span></p></section>"
    )


def _feedback_section(view: AppView, handle: str, csrf: str, given: dict[str, Any] | None) -> str:
    if not view.feedback_allowed:
        return ""
    w = view.words
    forms = _feedback_forms(view, handle, csrf)
    if given:
        what = w("accepted") if given.get("outcome") == "accepted" else w("dismissed")
        reason = _reason_display(view, given)
        shown = f"{what}: {reason}" if reason else what
        when = _when_given(given.get("at"), w)
        return (
            "<section id='feedback' aria-labelledby='h-feedback'>"
            f"<h2 id='h-feedback'>{esc(w('response_heading'))}</h2>"
            f"<p class='notice ok' id='feedback-done'>"
            f"{esc(w('recorded', response=shown, time=when))}</p>"
            f"<details id='feedback-change'><summary>{esc(w('change_response'))}</summary>"
            f"<p class='muted'>{esc(w('change_note'))}</p>{forms}</details></section>"
        )
    heading = w("response_heading") if view.own_card else w("response_heading_card")
    return (
        "<section id='feedback' aria-labelledby='h-feedback'>"
        f"<h2 id='h-feedback'>{esc(heading)}</h2>{forms}</section>"
    )


def _when_given(at: object, words: Words) -> str:
    """ISO 8601 in the session and from the audit; a session written before the display zone
    was a setting holds the old text, shown as it is."""
    try:
        return words.time(datetime.fromisoformat(str(at)))
    except ValueError:
        return str(at or "")


def _reason_display(view: AppView, given: dict[str, Any]) -> str:
    """The reason in the page's language (by its code), else as it was stored."""
    reasons = view.hook_def.card.localized(view.words.language).override_reasons
    by_code = {r.code: r.display for r in reasons}
    return str(by_code.get(str(given.get("code")), given.get("reason") or ""))


def _feedback_forms(view: AppView, handle: str, csrf: str) -> str:
    """Accept (only where a risk was shown) and dismiss with a reason."""
    w = view.words
    hidden = (
        f"<input type='hidden' name='s' value='{esc(handle)}'>"
        f"<input type='hidden' name='csrf' value='{esc(csrf)}'>"
    )
    reasons = "".join(
        f"<label><input type='radio' name='reason' value='{esc(r.code)}' required> "
        f"{esc(r.display)}</label>"
        for r in view.hook_def.card.localized(w.language).override_reasons
    )
    comment = esc(w("comment"))
    accept = (
        f"<form method='post' action='/smart/feedback'>{hidden}"
        "<input type='hidden' name='outcome' value='accepted'>"
        f"<fieldset><legend>{esc(w('accept'))}</legend><p class='muted'>"
        f"{esc(w('accept_note'))}</p><label for='c-accept'>{comment}</label>"
        "<textarea id='c-accept' name='comment' maxlength='2000'></textarea></fieldset>"
        f"<button class='accept' type='submit'>{esc(w('accept'))}</button></form>"
        if view.accept_allowed
        else f"<p class='muted' id='no-accept'>{esc(w('no_accept'))}</p>"
    )
    return (
        f"<div class='feedback'>{accept}"
        f"<form method='post' action='/smart/feedback'>{hidden}"
        "<input type='hidden' name='outcome' value='overridden'>"
        f"<fieldset><legend>{esc(w('dismiss_legend'))}</legend>{reasons}"
        f"<label for='c-dismiss'>{comment}</label>"
        "<textarea id='c-dismiss' name='comment' maxlength='2000'></textarea></fieldset>"
        f"<button class='dismiss' type='submit'>{esc(w('dismiss'))}</button></form></div>"
    )


def app_page(
    view: AppView,
    *,
    handle: str,
    csrf: str,
    given: dict[str, Any] | None,
    base_url: str,
    environment: str,
    banner_requested: bool = False,
) -> str:
    w = view.words
    banner = (
        f"<p class='notice' id='no-banner'>{esc(w('no_banner'))}</p>" if banner_requested else ""
    )
    body = "".join(
        [
            banner,
            _risk_section(view),
            _factors_section(view),
            _trends_section(view),
            _missing_section(view),
            _model_section(view, base_url, environment),
            _feedback_section(view, handle, csrf, given),
        ]
    )
    return document(view.hook_def.discovery_text(w.language)[0], body, w, w("subtitle"))

"""The try-it page's HTML: the EHR stand-in (service, patient, send), the cards area and the raw
request and response beside it. The behaviour is in ``static/tryit/tryit.js``."""

from __future__ import annotations

import json
from collections.abc import Sequence

from cds_service.web.html import document, esc

__all__ = ["page_html"]


def page_html(
    services: Sequence[tuple[str, str, str, list[str]]], patients: Sequence[tuple[str, str]]
) -> str:
    """``services``: (id, title, hook, keys of the example patients for its model)."""
    service_options = "".join(
        f"<option value='{esc(sid)}' data-patients='{esc(json.dumps(keys))}'>"
        f"{esc(title)} ({esc(sid)}, {esc(hook)})</option>"
        for sid, title, hook, keys in services
    )
    patient_options = "".join(
        f"<option value='{esc(key)}'>{esc(label)}</option>" for key, label in patients
    )
    body = (
        "<header class='ehr-bar'><strong>CDS risk service: try it</strong>"
        "<span>A local stand-in for the EHR, development only. Synthetic patients only.</span>"
        "</header><main class='layout'><section class='ehr' aria-label='EHR'>"
        "<form id='call-form'>"
        f"<label>Service <select id='service' name='service'>{service_options}</select></label>"
        f"<label>Patient <select id='patient' name='patient'>{patient_options}</select></label>"
        "<button type='submit' id='send'>Send signed call</button></form>"
        "<p id='status' role='status'></p>"
        "<div id='cards' class='cards' aria-live='polite'></div></section>"
        "<section class='raw' aria-label='Raw messages'>"
        "<h2>Request</h2><pre id='raw-request'>(nothing sent yet)</pre>"
        "<h2>Response</h2><pre id='raw-response'>(nothing received yet)</pre></section></main>"
        "<script src='tryit/static/tryit.js'></script>"
    )
    head = "<link rel='stylesheet' href='tryit/static/tryit.css'>"
    return document("Try it: CDS risk service", body, head=head)

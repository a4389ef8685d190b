"""``POST /smart/feedback``: the clinician accepts or dismisses (with a reason) the card the app
was opened from; stored like CDS Hooks feedback in ``card_feedback`` with ``channel='smart'``,
CSRF-protected by a per-session token and an ``Origin`` check.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any
from urllib.parse import parse_qs, urlsplit

import anyio
from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response

from cds_service.deps import State
from cds_service.serving.hook_defs import HookDefinition, OverrideReason
from cds_service.state import ServiceState
from cds_service.text_checks import has_control_characters
from cds_service.web.deps import UtcNow
from cds_service.web.errors import SignInError
from cds_service.web.smart.flow import same
from cds_service.web.smart.launch_audit import own_card
from cds_service.web.smart.session import (
    app_url,
    card_problem,
    error_response,
    launch_card,
    launch_patient,
    ready_session,
    redirect,
    service_of,
    session_store,
    words_of,
)
from cds_service.web.smart.view import CardRecord

log = logging.getLogger("cds_service.web.smart")
router = APIRouter()

MAX_FORM_BYTES = 16 * 1024
MAX_COMMENT = 2000
# outcome, override reason (or None), comment
_Answer = tuple[str, OverrideReason | None, str]


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}".lower()


async def _form(request: Request) -> dict[str, str]:
    if request.headers.get("content-type", "").split(";")[0].strip() != (
        "application/x-www-form-urlencoded"
    ):
        raise SignInError(415, "The response must be sent from the app's page.", title="Not a form")
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_FORM_BYTES:
            raise SignInError(413, "The response is too long.", title="Too long")
    try:
        parsed = parse_qs(body.decode("utf-8"), keep_blank_values=True, max_num_fields=20)
    except (UnicodeDecodeError, ValueError):
        raise SignInError(400, "The response could not be read.", title="Not a form") from None
    return {k: v[0] for k, v in parsed.items() if v}


def _response(form: dict[str, str], hook_def: HookDefinition) -> _Answer:
    """The clinician's answer from the form: outcome, override reason (or None), comment."""
    outcome = form.get("outcome")
    if outcome not in ("accepted", "overridden"):
        raise SignInError(400, "Choose Accept or Dismiss.", title="Response not recorded")
    reason = None
    if outcome == "overridden" and hook_def.card.override_reasons:
        code = form.get("reason")
        reason = next((r for r in hook_def.card.override_reasons if r.code == code), None)
        if reason is None:
            raise SignInError(400, "Choose a reason to dismiss.", title="Response not recorded")
    comment = (form.get("comment") or "").strip()
    if has_control_characters(comment, allow_line_breaks=True):
        raise SignInError(400, "The comment has control characters.", title="Response not recorded")
    return outcome, reason, comment


def _risk_shown(data: dict[str, Any], card: CardRecord | None) -> bool:
    """Whether the response's card showed a risk: the app's own row (a launch without a card)
    as the session noted it, else the card from the audit views; a card not there yet (spooled)
    is given the benefit of the doubt."""
    if own_card(data):
        return (data.get("own_shown") or {}).get("risk") is not None
    return card is None or card.risk is not None


def _feedback_row(
    card_uuid: str, service_id: str, answer: _Answer, now: datetime, user: str | None
) -> dict[str, Any]:
    outcome, reason, comment = answer
    return {
        "card_uuid": card_uuid,
        "service_id": service_id,
        "outcome": outcome,
        "override_reason_system": reason.system[:256] if reason else None,
        "override_reason_code": reason.code[:64] if reason else None,
        "override_reason_display": reason.display[:256] if reason else None,
        "user_comment": comment[:MAX_COMMENT] or None,
        "accepted_suggestions": "[]",
        "outcome_timestamp": now,
        "received_at": now,
        "channel": "smart",
        "user_pseudonym": user,
    }


async def _record_feedback(
    st: ServiceState, request: Request, now: datetime
) -> tuple[str, str, str]:
    """Check the form against the session and store the response; its handle, service, outcome."""
    origin = request.headers.get("origin")
    if origin is not None and origin.lower() != _origin(st.settings.public_base_url):
        raise SignInError(403, "The response did not come from the app's page.", title="Refused")
    form = await _form(request)
    handle = form.get("s")
    session_id, data = await ready_session(st, request, handle, now)
    assert handle is not None
    if not same(form.get("csrf"), str(data.get("csrf"))):
        raise SignInError(
            403, "The page was out of date: reload it and try again.", title="Refused"
        )
    card = await launch_card(st, data, launch_patient(session_id, handle, data)[0])
    service_id = service_of(st, data, card)
    problem = card_problem(data, card, service_id)
    if problem is not None:
        raise SignInError(409, problem, title="Response not recorded")
    answer = _response(form, st.registry.services[service_id])
    if answer[0] == "accepted" and not _risk_shown(data, card):
        raise SignInError(
            409,
            "No risk was shown, so there is nothing to accept; dismiss it with a reason.",
            title="Response not recorded",
        )
    user = data.get("user") if isinstance(data.get("user"), str) else None
    row = _feedback_row(str(data["card"]), service_id, answer, now, user)
    await st.writer.write_within_budget("card_feedback", [row])
    outcome, reason, _comment = answer
    data["feedback"] = {
        "outcome": outcome,
        "code": reason.code if reason else None,
        "reason": reason.display if reason else None,
        "at": now.isoformat(),  # the page shows it in the display time zone
    }
    await anyio.to_thread.run_sync(session_store(st).update, session_id, data)
    return handle, service_id, outcome


@router.post("/smart/feedback", response_class=HTMLResponse)
async def smart_feedback(request: Request, st: State, now: UtcNow) -> Response:
    try:
        handle, service_id, outcome = await _record_feedback(st, request, now)
    except SignInError as exc:
        return error_response(exc, words_of(st))
    log.info("smart feedback stored", extra={"service_id": service_id, "outcome": outcome})
    return redirect(app_url(st.settings, handle), 303)

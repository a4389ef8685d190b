"""CDS Hooks feedback (``POST /cds-services/{id}/feedback``): the typed request, and its rows.

Clients may send the same feedback more than once; the unique key (card, outcome, timestamp)
makes storing it idempotent. Every value that reaches the audit spool is checked here first: a
row PostgreSQL refuses (a NUL character, an instant outside its range) would fail on every replay.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, Literal

import orjson
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
)

from cds_service.cds_hooks.schemas import inline_schema, validation_message
from cds_service.cds_hooks.suggestions import suggestion_uuid
from cds_service.errors import ServiceError
from cds_service.serving.hook_language import SUGGESTIONS
from cds_service.text_checks import has_control_characters

MAX_ITEMS = 100
MAX_COMMENT = 2000


def _printable(value: str) -> str:
    if has_control_characters(value):
        raise ValueError("must not contain control characters")
    return value


def _no_nul(value: str) -> str:
    """Free text may keep line breaks and tabs, never NUL (PostgreSQL text cannot hold it)."""
    if "\x00" in value:
        raise ValueError("must not contain NUL characters")
    return value


def _instant(value: Any) -> datetime:
    """An ISO 8601 string with an offset that has a UTC instant (no epoch numbers)."""
    if not isinstance(value, str):
        raise ValueError("must be an ISO 8601 instant")
    try:
        when = datetime.fromisoformat(value)
    except ValueError:
        raise ValueError("must be an ISO 8601 instant") from None
    if when.tzinfo is None:
        raise ValueError("must carry a UTC offset")
    try:
        return when.astimezone(UTC)
    except OverflowError:  # 0001-01-01T00:00:00+14:00 has no UTC instant
        raise ValueError("is out of range") from None


Printable = Annotated[str, Field(min_length=1), AfterValidator(_printable)]
FreeText = Annotated[str, AfterValidator(_no_nul)]
Instant = Annotated[datetime, BeforeValidator(_instant)]


class FeedbackCoding(BaseModel):
    model_config = ConfigDict(extra="allow")

    code: FreeText
    system: FreeText | None = None
    display: FreeText | None = None


class FeedbackOverrideReason(BaseModel):
    model_config = ConfigDict(extra="allow")

    reason: FeedbackCoding | None = None
    userComment: FreeText | None = None


class AcceptedSuggestion(BaseModel):
    model_config = ConfigDict(extra="allow")

    id: str


class FeedbackItem(BaseModel):
    """One card's outcome as the clinician left it."""

    model_config = ConfigDict(extra="allow")

    card: Printable
    outcome: Literal["accepted", "overridden"]
    acceptedSuggestions: list[AcceptedSuggestion] | None = None
    overrideReason: FeedbackOverrideReason | None = None
    outcomeTimestamp: Instant


class FeedbackRequest(BaseModel):
    model_config = ConfigDict(extra="allow")

    feedback: list[FeedbackItem] = Field(min_length=1)


def feedback_body_schema() -> dict[str, Any]:
    """OpenAPI description of the feedback request."""
    return inline_schema(FeedbackRequest)


def _clip(value: str | None, limit: int) -> str | None:
    return value[:limit] if value else None


def _check_suggestions(item: FeedbackItem, where: str) -> None:
    """An accepted suggestion is one this card offered (its uuid derives from the card's), and
    only an accepted card has accepted suggestions."""
    if not item.acceptedSuggestions:
        return
    if item.outcome != "accepted":
        raise ServiceError(400, f"{where}.acceptedSuggestions needs outcome 'accepted'")
    offered = {suggestion_uuid(item.card, kind) for kind in SUGGESTIONS}
    for j, suggestion in enumerate(item.acceptedSuggestions):
        if suggestion.id not in offered:
            raise ServiceError(
                400, f"{where}.acceptedSuggestions[{j}].id is not a suggestion of this card"
            )


def _row(item: FeedbackItem, where: str, service_id: str, received_at: datetime) -> dict[str, Any]:
    suggestions = [s.model_dump() for s in item.acceptedSuggestions or []]
    try:
        accepted = orjson.dumps(suggestions).decode()
    except orjson.JSONEncodeError:  # nested beyond orjson's 255 levels
        raise ServiceError(400, f"{where}.acceptedSuggestions is nested too deeply") from None
    _check_suggestions(item, where)
    reason = item.overrideReason
    coding = reason.reason if reason else None
    return {
        "card_uuid": item.card[:36],
        "service_id": service_id,
        "outcome": item.outcome,
        "override_reason_system": _clip(coding.system, 256) if coding else None,
        "override_reason_code": _clip(coding.code, 64) if coding else None,
        "override_reason_display": _clip(coding.display, 256) if coding else None,
        "user_comment": _clip(reason.userComment, MAX_COMMENT) if reason else None,
        "accepted_suggestions": accepted,
        "outcome_timestamp": item.outcomeTimestamp,
        "received_at": received_at,
        "channel": "cds-hooks",
    }


def parse_feedback(body: Any, service_id: str, received_at: datetime) -> list[dict[str, Any]]:
    """Rows for ``card_feedback``; 400 naming the first problem, 413 past ``MAX_ITEMS``."""
    if not isinstance(body, dict) or not isinstance(body.get("feedback"), list):
        raise ServiceError(400, "body must be an object with a 'feedback' array")
    if len(body["feedback"]) > MAX_ITEMS:
        raise ServiceError(413, f"at most {MAX_ITEMS} feedback entries per call")
    try:
        request = FeedbackRequest.model_validate(body)
    except ValidationError as exc:
        raise ServiceError(400, validation_message(exc)) from None
    return [
        _row(item, f"feedback[{i}]", service_id, received_at)
        for i, item in enumerate(request.feedback)
    ]

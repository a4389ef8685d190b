"""CDS Hooks feedback (``POST /cds-services/{id}/feedback``) -> audit rows.

Clients may send the same feedback more than once; the unique key (card, outcome, timestamp)
makes storing it idempotent.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

import orjson

from cds_service.errors import ServiceError

MAX_ITEMS = 100
MAX_COMMENT = 2000


_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def _str(item: dict[str, Any], key: str, where: str, *, required: bool = True) -> str | None:
    value = item.get(key)
    if value is None and not required:
        return None
    if not isinstance(value, str) or not value:
        raise ServiceError(400, f"{where}.{key} must be a non-empty string")
    if _CONTROL.search(value):
        raise ServiceError(400, f"{where}.{key} must not contain control characters")
    return value


def _no_nul(value: Any, where: str) -> None:
    """PostgreSQL text cannot hold NUL: such a row would fail on every replay of the spool."""
    if isinstance(value, str) and "\x00" in value:
        raise ServiceError(400, f"{where} must not contain NUL characters")


def parse_feedback(body: Any, service_id: str, received_at: datetime) -> list[dict[str, Any]]:
    if not isinstance(body, dict) or not isinstance(body.get("feedback"), list):
        raise ServiceError(400, "body must be an object with a 'feedback' array")
    items = body["feedback"]
    if not items:
        raise ServiceError(400, "feedback must not be empty")
    if len(items) > MAX_ITEMS:
        raise ServiceError(413, f"at most {MAX_ITEMS} feedback entries per call")
    rows = []
    for i, item in enumerate(items):
        where = f"feedback[{i}]"
        if not isinstance(item, dict):
            raise ServiceError(400, f"{where} must be an object")
        card = _str(item, "card", where)
        outcome = _str(item, "outcome", where)
        if outcome not in ("accepted", "overridden"):
            raise ServiceError(400, f"{where}.outcome must be 'accepted' or 'overridden'")
        stamp = _str(item, "outcomeTimestamp", where)
        try:
            when = datetime.fromisoformat(str(stamp))
        except ValueError:
            raise ServiceError(
                400, f"{where}.outcomeTimestamp must be an ISO 8601 instant"
            ) from None
        if when.tzinfo is None:
            raise ServiceError(400, f"{where}.outcomeTimestamp must carry a UTC offset")
        try:
            when = when.astimezone(UTC)
        except OverflowError:  # 0001-01-01T00:00:00+14:00 has no UTC instant
            raise ServiceError(400, f"{where}.outcomeTimestamp is out of range") from None
        accepted = item.get("acceptedSuggestions")
        if outcome == "accepted" and accepted is not None and not isinstance(accepted, list):
            raise ServiceError(400, f"{where}.acceptedSuggestions must be an array")
        reason = item.get("overrideReason")
        coding: dict[str, Any] = {}
        comment = None
        if reason is not None:
            if not isinstance(reason, dict):
                raise ServiceError(400, f"{where}.overrideReason must be an object")
            raw = reason.get("reason")
            if raw is not None:
                if not isinstance(raw, dict) or not isinstance(raw.get("code"), str):
                    raise ServiceError(400, f"{where}.overrideReason.reason must be a Coding")
                for part in ("system", "code", "display"):
                    _no_nul(raw.get(part), f"{where}.overrideReason.reason.{part}")
                coding = raw
            text = reason.get("userComment")
            if text is not None and not isinstance(text, str):
                raise ServiceError(400, f"{where}.overrideReason.userComment must be a string")
            _no_nul(text, f"{where}.overrideReason.userComment")
            comment = text[:MAX_COMMENT] if text else None
        try:
            suggestions = orjson.dumps(accepted or []).decode()
        except orjson.JSONEncodeError:  # nested beyond orjson's 255 levels
            raise ServiceError(400, f"{where}.acceptedSuggestions is nested too deeply") from None
        rows.append(
            {
                "card_uuid": str(card)[:36],
                "service_id": service_id,
                "outcome": outcome,
                "override_reason_system": str(coding["system"])[:256]
                if coding.get("system")
                else None,
                "override_reason_code": str(coding["code"])[:64] if coding.get("code") else None,
                "override_reason_display": (
                    str(coding["display"])[:256] if coding.get("display") else None
                ),
                "user_comment": comment,
                "accepted_suggestions": suggestions,
                "outcome_timestamp": when,
                "received_at": received_at,
                "channel": "cds-hooks",
            }
        )
    return rows

"""Feedback bodies -> ``card_feedback`` rows; 400 and 413 that name the entry, never its value."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from cds_service.cds_hooks.feedback import MAX_COMMENT, parse_feedback
from cds_service.cds_hooks.suggestions import suggestion_uuid
from cds_service.errors import ServiceError

RECEIVED = datetime(2026, 3, 14, 9, 30, tzinfo=UTC)
CARD = "5b3a0c1e-61a4-4e3b-9a77-0b8f1f0c2a11"
OTHER_CARD = "0b8f1f0c-61a4-4e3b-9a77-5b3a0c1e2a11"
RECORD_RISK = suggestion_uuid(CARD, "risk-assessment")  # the uuid the card's suggestion had


def item(**changes: Any) -> dict[str, Any]:
    out: dict[str, Any] = {
        "card": CARD,
        "outcome": "accepted",
        "outcomeTimestamp": "2026-03-14T10:31:00+01:00",
    }
    out.update(changes)
    return out


def refused(body: Any, status: int = 400) -> str:
    with pytest.raises(ServiceError) as info:
        parse_feedback(body, "svc", RECEIVED)
    assert info.value.status == status
    return info.value.message


def test_an_accepted_card_becomes_one_row_in_utc() -> None:
    (row,) = parse_feedback(
        {"feedback": [item(acceptedSuggestions=[{"id": RECORD_RISK}])]}, "svc", RECEIVED
    )
    assert row == {
        "card_uuid": CARD,
        "service_id": "svc",
        "outcome": "accepted",
        "override_reason_system": None,
        "override_reason_code": None,
        "override_reason_display": None,
        "user_comment": None,
        "accepted_suggestions": f'[{{"id":"{RECORD_RISK}"}}]',
        "outcome_timestamp": datetime(2026, 3, 14, 9, 31, tzinfo=UTC),
        "received_at": RECEIVED,
        "channel": "cds-hooks",
    }


def test_an_override_keeps_its_coding_and_a_clipped_comment() -> None:
    reason = {"reason": {"system": "urn:s", "code": "known", "display": "Known"}}
    reason["userComment"] = "line one\nline two " + "x" * MAX_COMMENT  # type: ignore[assignment]
    (row,) = parse_feedback(
        {"feedback": [item(outcome="overridden", overrideReason=reason)]}, "svc", RECEIVED
    )
    assert (row["override_reason_system"], row["override_reason_code"]) == ("urn:s", "known")
    assert row["override_reason_display"] == "Known"
    assert row["user_comment"].startswith("line one\nline two")
    assert len(row["user_comment"]) == MAX_COMMENT


@pytest.mark.parametrize(
    ("entry", "where"),
    [
        (item(card=""), "feedback[0].card"),
        (item(card="c\x01"), "feedback[0].card"),
        (item(outcome="maybe"), "feedback[0].outcome"),
        (item(outcomeTimestamp="2026-03-14T09:31:00"), "feedback[0].outcomeTimestamp"),
        (item(outcomeTimestamp=1773480000), "feedback[0].outcomeTimestamp"),
        (item(outcomeTimestamp="0001-01-01T00:00:00+14:00"), "feedback[0].outcomeTimestamp"),
        (item(acceptedSuggestions="s1"), "feedback[0].acceptedSuggestions"),
        (item(acceptedSuggestions=[{"id": "s1"}]), "feedback[0].acceptedSuggestions[0].id"),
        (
            item(acceptedSuggestions=[{"id": suggestion_uuid(OTHER_CARD, "risk-assessment")}]),
            "feedback[0].acceptedSuggestions[0].id",
        ),
        (
            item(outcome="overridden", acceptedSuggestions=[{"id": RECORD_RISK}]),
            "feedback[0].acceptedSuggestions",
        ),
        (item(overrideReason={"reason": {"code": "x\x00"}}), "feedback[0].overrideReason"),
        (item(overrideReason={"userComment": "a\x00"}), "feedback[0].overrideReason"),
    ],
)
def test_bad_entries_are_400_naming_the_entry(entry: dict[str, Any], where: str) -> None:
    message = refused({"feedback": [item(), entry]}).replace("feedback[1]", "feedback[0]")
    assert message.startswith(where)
    assert "1773480000" not in message and "x\x00" not in message


def test_body_shape_and_size() -> None:
    assert refused({"nope": 1}) == "body must be an object with a 'feedback' array"
    assert refused([]) == "body must be an object with a 'feedback' array"
    assert refused({"feedback": []}).startswith("feedback: ")
    assert refused({"feedback": [item()] * 101}, 413) == "at most 100 feedback entries per call"


def test_suggestions_nested_beyond_what_json_can_store_are_refused() -> None:
    deep: dict[str, Any] = {"id": "s"}
    for _ in range(300):
        deep = {"id": "s", "nested": [deep]}
    message = refused({"feedback": [item(acceptedSuggestions=[deep])]})
    assert message == "feedback[0].acceptedSuggestions is nested too deeply"

"""Golden requests and responses: the service answers the same cards, and writes the same audit
rows, for the same requests, across refactorings.

Each case posts a fixed request (fixed clock, fixed hookInstance, fixed pseudonym key, auth off,
real SQLite) and compares the parsed response and the audit row's stable columns with a JSON file
under ``tests/data/golden/``. Only the random card uuid is replaced before comparing. To refresh
the files after an intended change: ``CDS_UPDATE_GOLDEN=1 pytest tests/cds_hooks/test_golden.py``
and review the diff.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from cds_service.cds_hooks.examples import (
    ed_case,
    ed_prefetch,
    hook_body,
    mi_prefetch,
    post_mi_case,
    searchset,
)
from cds_service.cds_hooks.suggestions import suggestion_uuid
from cds_service.serving.hook_language import SUGGESTIONS
from tests.utils.service import NOW, Service, running_service

GOLDEN = Path(__file__).resolve().parent.parent / "data" / "golden"
UPDATE = os.environ.get("CDS_UPDATE_GOLDEN") == "1"
CARD_UUID = "00000000-0000-4000-8000-000000000000"
# Columns that change from run to run (the uuid is compared through the card, latency is timing).
UNSTABLE_AUDIT_COLUMNS = {"card_uuid", "latency_ms"}


def _ed_body(hook: str, *, sick: bool = True) -> dict[str, Any]:
    case = ed_case(NOW, sick=sick)
    encounter = case["encounter_id"] if hook == "encounter-start" else None
    return hook_body(
        hook,
        case["patient"]["id"],
        ed_prefetch(case),
        encounter_id=encounter,
        hook_instance=f"golden-{hook}-{'sick' if sick else 'well'}",
    )


def _mi_body() -> dict[str, Any]:
    case = post_mi_case(NOW)
    return hook_body(
        "patient-view", case["patient"]["id"], mi_prefetch(case), hook_instance="golden-post-mi"
    )


def _arrival_body() -> dict[str, Any]:
    """Every prefetch key filled, but with no observations: triage vitals are not recorded yet,
    so the arrival model answers (hooks/ed-admission-risk.toml [[fallback]])."""
    case = ed_case(NOW)
    prefetch = ed_prefetch(case)
    prefetch["observations"] = searchset([])
    return hook_body(
        "encounter-start",
        case["patient"]["id"],
        prefetch,
        encounter_id=case["encounter_id"],
        hook_instance="golden-no-risk",
    )


def _no_risk_body() -> dict[str, Any]:
    """No observations and no birth date: neither model has its required inputs."""
    body = _arrival_body()
    del body["prefetch"]["patient"]["birthDate"]
    body["hookInstance"] = "golden-no-risk-at-all"
    return body


CASES: dict[str, tuple[str, Any]] = {
    "ed-admission-risk": ("ed-admission-risk", lambda: _ed_body("encounter-start")),
    "ed-admission-risk-well": (
        "ed-admission-risk",
        lambda: _ed_body("encounter-start", sick=False),
    ),
    "ed-admission-risk-patient-view": (
        "ed-admission-risk-patient-view",
        lambda: _ed_body("patient-view"),
    ),
    "post-mi-unplanned-visit-risk": ("post-mi-unplanned-visit-risk", _mi_body),
    "ed-admission-risk-at-arrival": ("ed-admission-risk", _arrival_body),
    "ed-admission-no-risk": ("ed-admission-risk", _no_risk_body),
}


@pytest.fixture(scope="module")
def svc(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    tmp = tmp_path_factory.mktemp("golden")
    yield from running_service("sqlite", tmp, pseudonym_key="golden-test-pseudonym-key-0001")


def _audit_row(svc: Service, card_uuid: str) -> dict[str, Any]:
    rows = svc.db.rows("SELECT * FROM card_audit WHERE card_uuid = :u", u=card_uuid)
    assert len(rows) == 1
    return {k: _stable(v) for k, v in sorted(rows[0].items()) if k not in UNSTABLE_AUDIT_COLUMNS}


def _stable(value: Any) -> Any:
    """JSON columns compared as data, times as text, floats to 9 digits (platform noise)."""
    if isinstance(value, str) and value[:1] in "[{":
        return _round(json.loads(value))
    if hasattr(value, "isoformat"):
        return value.isoformat()
    return _round(value)


def _round(value: Any) -> Any:
    if isinstance(value, float):
        return round(value, 9)
    if isinstance(value, dict):
        return {k: _round(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_round(v) for v in value]
    return value


def _fixed_uuids(text: str, card_uuids: list[str]) -> str:
    """The random card uuid, and the suggestion uuids derived from it, as fixed ones."""
    for card_uuid in card_uuids:
        for kind in SUGGESTIONS:
            text = text.replace(suggestion_uuid(card_uuid, kind), suggestion_uuid(CARD_UUID, kind))
        text = text.replace(card_uuid, CARD_UUID)
    return text


def _without_uuid(cards: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], list[str]]:
    uuids = [card["uuid"] for card in cards]
    return _round(json.loads(_fixed_uuids(json.dumps(cards), uuids))), uuids


def _compare(name: str, actual: dict[str, Any]) -> None:
    path = GOLDEN / f"{name}.json"
    if UPDATE:
        path.write_text(json.dumps(actual, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    expected = json.loads(path.read_text(encoding="utf-8"))
    assert actual == expected


@pytest.mark.parametrize("name", sorted(CASES))
def test_service_call_matches_golden(svc: Service, name: str) -> None:
    service_id, body = CASES[name]
    response = svc.call(service_id, body())
    assert response.status_code == 200, response.text
    cards, uuids = _without_uuid(response.json()["cards"])
    assert len(uuids) == 1
    _compare(name, {"cards": cards, "audit": _audit_row(svc, uuids[0])})


def test_feedback_matches_golden(svc: Service) -> None:
    card = svc.call("ed-admission-risk", _ed_body("encounter-start")).json()
    card_uuid = card["cards"][0]["uuid"]
    feedback = {
        "feedback": [
            {
                "card": card_uuid,
                "outcome": "overridden",
                "overrideReason": {
                    "reason": card["cards"][0]["overrideReasons"][0],
                    "userComment": "golden comment",
                },
                "outcomeTimestamp": "2026-03-14T10:31:00+01:00",
            },
            {
                "card": card_uuid,
                "outcome": "accepted",
                "acceptedSuggestions": [{"id": card["cards"][0]["suggestions"][0]["uuid"]}],
                "outcomeTimestamp": "2026-03-14T09:32:00Z",
            },
        ]
    }
    response = svc.client.post("/cds-services/ed-admission-risk/feedback", json=feedback)
    assert response.status_code == 200, response.text
    rows = svc.db.rows(
        "SELECT * FROM card_feedback WHERE card_uuid = :u ORDER BY outcome", u=card_uuid
    )
    stored = [
        {
            k: _stable(_fixed_uuids(v, [card_uuid]) if isinstance(v, str) else v)
            for k, v in sorted(row.items())
            if k not in {"id", "card_uuid"}
        }
        for row in rows
    ]
    assert all(row["card_uuid"] == card_uuid for row in rows)
    _compare("feedback", {"response": response.json(), "rows": stored})

"""What the physician sees, end to end: the card in the deployment's language and display time
zone (CDS_LANGUAGE, CDS_DISPLAY_TIMEZONE), and accepting its suggestion (record the risk in the
EHR) stored as feedback with the suggestion's uuid, on SQLite and PostgreSQL."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from pydantic import ValidationError

from cds_service.cds_hooks.examples import ed_case, ed_prefetch, hook_body
from cds_service.cds_hooks.suggestions import suggestion_uuid
from cds_service.config import Settings
from tests.utils.service import NOW, Service, running_service


@pytest.fixture(scope="module")
def dutch(backend: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    tmp = tmp_path_factory.mktemp(f"nl-{backend}")
    yield from running_service(backend, tmp, language="nl", display_timezone="Europe/Amsterdam")


@pytest.fixture(scope="module")
def english_utc(backend: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    tmp = tmp_path_factory.mktemp(f"en-{backend}")
    yield from running_service(backend, tmp, language="en", display_timezone="UTC")


def _encounter_start(hook_instance: str) -> dict[str, object]:
    case = ed_case(NOW)
    return hook_body(
        "encounter-start",
        case["patient"]["id"],
        ed_prefetch(case),
        encounter_id=case["encounter_id"],
        hook_instance=hook_instance,
    )


def test_a_dutch_deployment_answers_in_dutch_in_amsterdam_time(dutch: Service) -> None:
    (card,) = dutch.call("ed-admission-risk", _encounter_start("nl-1")).json()["cards"]
    # NOW is 09:30:15 UTC; the moment is 50 min after arrival, at 10:30 in Amsterdam (CET)
    assert card["summary"].startswith("Risico op opname ")
    assert "50 min na aankomst (2026-03-14 10:30 CET)" in card["summary"]
    assert "Belangrijkste bijdragende factoren" in card["detail"]
    assert "procentpunt" in card["detail"] and "percentage points" not in card["detail"]
    assert card["suggestions"][0]["label"] == "Leg dit risico vast in het dossier"
    row = dutch.card_row(card["uuid"])
    assert row["risk_band"] == "high" and row["summary"] == card["summary"]


def test_an_english_deployment_shows_times_in_its_display_zone(english_utc: Service) -> None:
    (card,) = english_utc.call("ed-admission-risk", _encounter_start("en-1")).json()["cards"]
    assert "50 min after arrival (2026-03-14 09:30 UTC)" in card["summary"]


def test_accepting_the_suggestion_is_stored_with_its_uuid(dutch: Service) -> None:
    (card,) = dutch.call("ed-admission-risk", _encounter_start("nl-2")).json()["cards"]
    (suggestion,) = card["suggestions"]
    assert suggestion["uuid"] == suggestion_uuid(card["uuid"], "risk-assessment")
    accepted = {
        "card": card["uuid"],
        "outcome": "accepted",
        "acceptedSuggestions": [{"id": suggestion["uuid"]}],
        "outcomeTimestamp": "2026-03-14T10:35:00+01:00",
    }
    response = dutch.client.post(
        "/cds-services/ed-admission-risk/feedback", json={"feedback": [accepted]}
    )
    assert response.status_code == 200, response.text
    rows = dutch.db.rows(
        "SELECT outcome, accepted_suggestions FROM v_feedback WHERE card_uuid = :u",
        u=card["uuid"],
    )
    assert [(r["outcome"], json.loads(r["accepted_suggestions"])) for r in rows] == [
        ("accepted", [{"id": suggestion["uuid"]}])
    ]
    forged = {**accepted, "acceptedSuggestions": [{"id": suggestion_uuid(card["uuid"], "x")}]}
    response = dutch.client.post(
        "/cds-services/ed-admission-risk/feedback", json={"feedback": [forged]}
    )
    assert response.status_code == 400
    assert "acceptedSuggestions[0].id is not a suggestion of this card" in response.text


def test_an_unknown_language_or_time_zone_is_refused_at_start() -> None:
    with pytest.raises(ValidationError, match="language"):
        Settings(language="de")  # type: ignore[arg-type]
    with pytest.raises(ValidationError, match="CDS_DISPLAY_TIMEZONE"):
        Settings(display_timezone="Mars/Olympus_Mons")

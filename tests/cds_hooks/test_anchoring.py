"""The moment of prediction of a service anchored on the encounter in context."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from cds_service.cds_hooks.anchoring import (
    Visit,
    elapsed_text,
    index_time,
    moment_text,
    visit_of,
)
from cds_service.cds_hooks.prefetch import ResolvedData
from cds_service.errors import ServiceError
from tests.cds_hooks.helpers import hook_definitions, spec

START = datetime(2026, 3, 14, 14, 2, tzinfo=UTC)
HOOK = hook_definitions()["ed-admission-risk"]
ONE_HOUR = spec("ed-admission")
ARRIVAL = spec("ed-admission-arrival")


@pytest.mark.parametrize(
    ("after", "model", "expected"),
    [
        (timedelta(0), ONE_HOUR, timedelta(0)),
        (timedelta(minutes=40), ONE_HOUR, timedelta(minutes=40)),
        (timedelta(hours=3), ONE_HOUR, timedelta(hours=1)),
        (timedelta(hours=3), ARRIVAL, timedelta(minutes=5)),
        (timedelta(minutes=-2), ARRIVAL, timedelta(0)),  # clocks a little apart
    ],
)
def test_the_moment_is_the_start_plus_the_trained_offset_never_after_the_call(
    after: timedelta, model: Any, expected: timedelta
) -> None:
    assert index_time(Visit(START), model, START + after) == START + expected


def test_without_an_anchor_the_moment_is_the_call() -> None:
    assert index_time(None, ONE_HOUR, START) == START


@pytest.mark.parametrize(
    ("delta", "text"),
    [
        (timedelta(seconds=59), "0 min"),
        (timedelta(minutes=40), "40 min"),
        (timedelta(hours=1), "1 h"),
        (timedelta(hours=1, minutes=20), "1 h 20 min"),
        (timedelta(days=2, hours=3, minutes=5), "2 d 3 h"),
        (timedelta(days=1), "1 d"),
        (timedelta(minutes=-3), "0 min"),
    ],
)
def test_elapsed_text(delta: timedelta, text: str) -> None:
    assert elapsed_text(delta) == text
    assert elapsed_text(delta, "nl") == text.replace(" h", " u")


def test_moment_text_fills_the_hook_template() -> None:
    """One time format, in the display time zone (default Europe/Amsterdam: UTC+1 in winter,
    UTC+2 in summer), in the card's language."""
    visit = Visit(START)
    at = START + timedelta(hours=1)
    assert moment_text(HOOK.card.moment, visit, at) == "1 h after arrival (2026-03-14 16:02 CET)"
    fallback = HOOK.fallbacks[0].card
    assert moment_text(fallback.moment, visit, at) == "at arrival (2026-03-14 15:02 CET)"
    nl = HOOK.card.localized("nl")
    assert moment_text(nl.moment, visit, at, "nl") == "1 u na aankomst (2026-03-14 16:02 CET)"
    summer = (START + timedelta(days=120), START + timedelta(days=120, minutes=80))
    assert moment_text(
        fallback.localized("nl").moment, Visit(summer[0]), summer[1], "nl", "Europe/Amsterdam"
    ) == ("bij aankomst (2026-07-12 16:02 CEST)")
    assert (
        moment_text(fallback.moment, visit, at, "en", "UTC") == "at arrival (2026-03-14 14:02 UTC)"
    )
    assert moment_text("", visit, at) == ""


def _data(visit: dict[str, Any] | None, status: str = "own") -> ResolvedData:
    return ResolvedData(visit=visit, visit_status=status)


def _encounter(**changes: Any) -> dict[str, Any]:
    res: dict[str, Any] = {"resourceType": "Encounter", "id": "e", "status": "in-progress"}
    res["period"] = {"start": START.isoformat()}
    res.update(changes)
    return res


def test_visit_of_reads_the_start() -> None:
    assert visit_of(HOOK, _data(_encounter()), START) == Visit(START)
    not_anchored = hook_definitions()["ed-admission-risk-patient-view"]
    assert visit_of(not_anchored, _data(None, "absent"), START) is None


@pytest.mark.parametrize(
    ("data", "status", "words"),
    [
        (_data(None, "other"), 400, "another patient"),
        (_data(None, "unknown"), 412, "cannot be attributed"),
        (_data(None, "absent"), 412, "found neither"),
        (_data(None, "modified"), 412, "modifier extension"),
        (_data(None, "timed-out"), 412, "did not answer in time"),
        (_data(_encounter(period={})), 412, "has no start"),
        (_data(_encounter(period={"start": "soon"})), 412, "has no start"),
        (_data(_encounter(status="cancelled")), 412, "cancelled"),
        (_data(_encounter(period={"start": "2026-03-14T15:00:00Z"})), 412, "starts after"),
    ],
)
def test_an_encounter_that_cannot_anchor_is_refused(
    data: ResolvedData, status: int, words: str
) -> None:
    with pytest.raises(ServiceError) as err:
        visit_of(HOOK, data, START)
    assert err.value.status == status and words in str(err.value)

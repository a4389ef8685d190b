"""Cards: built from the hook texts, the extraction and the prediction, checked against the spec."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest
from pydantic import ValidationError

from cds_service.cds_hooks.cards import CardModelInfo, CardWording, missing_input_card, risk_card
from cds_service.cds_hooks.examples import ed_case
from cds_service.cds_hooks.responses import Card, Coding, Link, Source, Suggestion
from cds_service.serving.model_runtime import Prediction
from fhir_mappers.extract import extract
from tests.cds_hooks.helpers import hook_definitions, spec

NOW = datetime(2026, 3, 14, 9, 30, tzinfo=UTC)
MODEL_URL = "https://cds.example.org/models/ed-admission/1.0.0"
LAUNCH = "https://cds.example.org/smart/launch"
HOOK = hook_definitions()["ed-admission-risk"]
INFO = CardModelInfo("ed-admission", "1.0.0", "ab" * 32, spec("ed-admission"))


def _extraction(sick: bool = True) -> Any:
    case = ed_case(NOW, sick=sick)
    return extract([case["patient"], *case["observations"], *case["encounters"]], NOW, INFO.spec)


def _prediction(risk: float) -> Prediction:
    return Prediction(risk=risk, margin=0.0, contributions={"lactate": 0.9, "heart_rate": -0.2})


def _risk_card(risk: float, **kw: Any) -> tuple[Card, str]:
    kw.setdefault("smart_launch_url", LAUNCH)
    return risk_card(
        HOOK,
        CardWording(HOOK.card, moment="50 min after arrival (09:30 UTC)"),
        INFO,
        _extraction(),
        _prediction(risk),
        card_uuid="c-1",
        model_card_url=MODEL_URL,
        environment="production",
        **kw,
    )


def test_risk_card_indicator_and_band_follow_the_hook_bands() -> None:
    for band in HOOK.bands:
        risk = min(band.below - 1e-6, 0.999)
        card, name = _risk_card(risk)
        assert (name, card.indicator) == (HOOK.band_for(risk).name, HOOK.band_for(risk).indicator)


def test_risk_card_shows_risk_factors_and_version_without_empty_fields() -> None:
    card, _band = _risk_card(0.62)
    wire = card.wire()
    assert "62%" in wire["summary"] and len(wire["summary"]) < 140
    # 0.9 calibrated log-odds at 62%: without it the estimate would be 39.9%, 22.1 points lower
    assert "| Lactate |" in wire["detail"]
    assert "raises it by 22.1 percentage points" in wire["detail"]
    assert "lowers it by 4.6 percentage points" in wire["detail"]  # heart rate, -0.2
    assert "ed-admission 1.0.0" in wire["detail"] and "environment" not in wire["detail"]
    assert wire["source"] == {
        "label": HOOK.card.source_label,
        "url": MODEL_URL,
        "topic": {
            "code": HOOK.card.topic_code,
            "system": HOOK.card.topic_system,
            **({"display": HOOK.card.topic_display} if HOOK.card.topic_display else {}),
        },
    }
    smart, model_card = wire["links"]
    assert smart["type"] == "smart" and smart["url"] == LAUNCH
    assert json.loads(smart["appContext"]) == {"card": "c-1", "service": HOOK.id}
    assert model_card == {"label": "Model card", "url": MODEL_URL, "type": "absolute"}
    assert [r["code"] for r in wire["overrideReasons"]] == [
        r.code for r in HOOK.card.override_reasons
    ]
    assert "null" not in json.dumps(wire) and '""' not in json.dumps(wire)


def test_without_a_launch_url_there_is_no_smart_link() -> None:
    card, _band = _risk_card(0.3, smart_launch_url="")
    assert [link.type for link in card.links or []] == ["absolute"]


def test_missing_input_card_names_what_is_missing_and_shows_no_number() -> None:
    extraction = extract([ed_case(NOW)["patient"]], NOW, INFO.spec)
    card = missing_input_card(
        HOOK,
        CardWording(HOOK.card),
        INFO,
        extraction,
        card_uuid="c-2",
        model_card_url=MODEL_URL,
        environment="acceptance",
    )
    assert card.indicator == "info" and card.summary == HOOK.card.missing_summary
    assert "No risk can be computed" in (card.detail or "")
    assert "%" not in card.summary
    assert "environment **acceptance**" in (card.detail or "")


def _card(**changes: Any) -> dict[str, Any]:
    out: dict[str, Any] = {"summary": "s", "indicator": "info", "source": {"label": "x"}}
    out.update(changes)
    return out


@pytest.mark.parametrize(
    "changes",
    [
        {"summary": "x" * 140},
        {"summary": ""},
        {"indicator": "hard-stop"},
        {"links": []},
        {"detail": ""},
        {"overrideReasons": [{"code": "c"}]},  # an override reason needs a display
        {"links": [{"label": "l", "url": "u", "type": "absolute", "appContext": "{}"}]},
        {"links": [{"label": "l", "url": "u", "type": "relative"}]},
        {"suggestions": [{"label": "order"}]},  # no selectionBehavior
        {"source": {"label": "x", "colour": "red"}},
    ],
)
def test_cards_that_break_the_spec_cannot_be_built(changes: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        Card.model_validate(_card(**changes))


def test_wire_leaves_unset_fields_out() -> None:
    card = Card(
        summary="s",
        indicator="warning",
        source=Source(label="x", topic=Coding(code="c")),
        suggestions=[Suggestion(label="order")],
        selectionBehavior="at-most-one",
        links=[Link(label="l", url="https://x", type="smart", appContext="{}")],
    )
    assert card.wire() == {
        "summary": "s",
        "indicator": "warning",
        "source": {"label": "x", "topic": {"code": "c"}},
        "suggestions": [{"label": "order"}],
        "selectionBehavior": "at-most-one",
        "links": [{"label": "l", "url": "https://x", "type": "smart", "appContext": "{}"}],
    }

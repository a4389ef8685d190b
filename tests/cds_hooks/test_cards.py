"""Cards: built from the hook texts, the extraction and the prediction, checked against the spec."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest
from pydantic import ValidationError

from cds_service.cds_hooks.cards import (
    CardModelInfo,
    CardWording,
    Subject,
    missing_input_card,
    risk_card,
)
from cds_service.cds_hooks.examples import ed_case
from cds_service.cds_hooks.responses import Card, Coding, Link, Source, Suggestion
from cds_service.cds_hooks.suggestions import suggestion_uuid
from cds_service.serving.hook_language import TRANSLATED
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
    kw.setdefault("card_uuid", "c-1")
    return risk_card(
        HOOK,
        CardWording(HOOK.card, moment="50 min after arrival (09:30 UTC)"),
        INFO,
        _extraction(),
        _prediction(risk),
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


# --- language, time and suggestions ----------------------------------------------------------

UUID = "5b3a0c1e-61a4-4e3b-9a77-0b8f1f0c2a11"


@pytest.mark.parametrize("service", sorted(hook_definitions()))
def test_every_bundled_service_speaks_dutch_and_english(service: str) -> None:
    hook = hook_definitions()[service]
    for texts in [hook.card, *(f.card for f in hook.fallbacks)]:
        nl = texts.localized("nl")
        assert (texts.language, nl.language) == ("en", "nl")
        for name in TRANSLATED:
            assert bool(getattr(nl, name)) == bool(getattr(texts, name)), name
            if getattr(texts, name):
                assert getattr(nl, name) != getattr(texts, name) or name == "topic_display"
        assert [r.code for r in nl.override_reasons] == [r.code for r in texts.override_reasons]
        assert all(
            a.display != b.display
            for a, b in zip(nl.override_reasons, texts.override_reasons, strict=True)
        )
    assert all(b.label("nl") != b.label("en") for b in hook.bands)


def test_a_dutch_card_is_dutch_throughout() -> None:
    card, band = risk_card(
        HOOK,
        CardWording(HOOK.card.localized("nl"), moment="50 min na aankomst (2026-03-14 10:30 CET)"),
        INFO,
        _extraction(),
        _prediction(0.62),
        card_uuid=UUID,
        model_card_url=MODEL_URL,
        environment="acceptance",
        smart_launch_url=LAUNCH,
        subject=Subject("syn-ed-1", "syn-ed-1-ed"),
    )
    wire = card.wire()
    assert band == "high"  # audited by its name, whatever the language
    moment = "50 min na aankomst (2026-03-14 10:30 CET)"
    assert wire["summary"] == f"Risico op opname 62% (hoog), {moment} – SEH-opnamemodel"
    detail = wire["detail"]
    for dutch in (
        "Kans op ziekenhuisopname",
        "(categorie: hoog)",
        "verhoogt het met 22,1 procentpunt",
        "Ontbrekende of verouderde gegevens",
        "omgeving **acceptance**",
        "| Lactaat |",
    ):
        assert dutch in detail, dutch
    for english in ("percentage points", "Missing", "band:", "raises", "environment", "judgement"):
        assert english not in detail, english
    assert [link["label"] for link in wire["links"]] == ["Risicodetails openen (app)", "Modelkaart"]
    assert wire["overrideReasons"][0]["display"] == "Risico al bekend en ernaar gehandeld"
    assert wire["suggestions"][0]["label"] == "Leg dit risico vast in het dossier"


def test_the_card_offers_to_record_the_risk_as_a_valid_risk_assessment() -> None:
    from fhir.resources.R4B.riskassessment import RiskAssessment

    card, _band = _risk_card(0.62, card_uuid=UUID, subject=Subject("syn-ed-1", "syn-ed-1-ed"))
    wire = card.wire()
    assert wire["selectionBehavior"] == "at-most-one"
    (suggestion,) = wire["suggestions"]
    assert suggestion["uuid"] == suggestion_uuid(UUID, "risk-assessment") != UUID
    (action,) = suggestion["actions"]
    assert action["type"] == "create" and "62%" in action["description"]
    resource = RiskAssessment.model_validate(action["resource"])
    assert resource.subject.reference == "Patient/syn-ed-1"
    assert resource.encounter.reference == "Encounter/syn-ed-1-ed"
    assert resource.status == "final" and float(resource.prediction[0].probabilityDecimal) == 0.62
    assert (resource.method.coding[0].code, resource.method.coding[0].version) == (
        "ed-admission",
        "1.0.0",
    )
    assert resource.identifier[0].value == f"urn:uuid:{UUID}"
    assert resource.occurrenceDateTime == _extraction().index_time
    basis = {b.reference for b in resource.basis}
    assert "Observation/syn-ed-1-lact" in basis and not any(r.startswith("Patient/") for r in basis)


def test_no_suggestion_where_the_hook_does_not_ask_or_without_a_patient() -> None:
    pv = hook_definitions()["ed-admission-risk-patient-view"]
    assert pv.card.suggestions == ()
    card, _band = risk_card(
        pv,
        CardWording(pv.card),
        INFO,
        _extraction(),
        _prediction(0.3),
        card_uuid=UUID,
        model_card_url=MODEL_URL,
        environment="production",
        subject=Subject("syn-ed-1"),
    )
    assert card.suggestions is None and card.selectionBehavior is None
    card, _band = _risk_card(0.3, card_uuid=UUID)
    assert card.suggestions is None


def test_without_a_factor_worth_a_tenth_of_a_point_the_card_says_so() -> None:
    flat = Prediction(risk=0.3, margin=0.0, contributions={"lactate": 1e-4, "heart_rate": 0.0})
    card, _band = risk_card(
        HOOK,
        CardWording(HOOK.card),
        INFO,
        _extraction(),
        flat,
        card_uuid=UUID,
        model_card_url=MODEL_URL,
        environment="production",
    )
    detail = card.detail or ""
    assert "| factor |" not in detail
    assert "No single recorded input moves this estimate by 0.1 percentage point" in detail

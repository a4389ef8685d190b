"""Hook definitions: encounter anchoring, [[fallback]] models and card text placeholders are
checked when the file is loaded, so a wrong one stops the service instead of a card."""

from __future__ import annotations

import tomllib
from typing import Any

import pytest

from cds_service.serving.hook_defs import HookDefinitionError, parse_hook_definition
from tests.cds_hooks.helpers import ROOT, hook_definitions, spec


def _doc() -> dict[str, Any]:
    return tomllib.loads((ROOT / "hooks" / "ed-admission-risk.toml").read_text(encoding="utf-8"))


def _parse(doc: dict[str, Any]) -> Any:
    return parse_hook_definition(doc, "x.toml", spec)


def test_the_bundled_encounter_start_service_anchors_and_falls_back() -> None:
    hook = hook_definitions()["ed-admission-risk"]
    assert hook.anchor == "encounter"
    assert hook.model_versions == (("ed-admission", "1.0.0"), ("ed-admission-arrival", "1.0.0"))
    (fallback,) = hook.fallbacks
    assert fallback.card.summary.startswith("Admission risk at arrival")
    assert fallback.card.topic_code == hook.card.topic_code  # what a fallback does not change
    assert hook_definitions()["ed-admission-risk-patient-view"].fallbacks == ()
    assert hook_definitions()["ed-admission-risk-patient-view"].anchor is None


def test_a_fallback_must_predict_the_same_outcome() -> None:
    doc = _doc()
    doc["fallback"][0]["model"] = "post-mi-unplanned-visit"
    doc["service"].pop("anchor")
    for key in ("moment", "note"):
        doc["card"].pop(key, None)
        doc["fallback"][0]["card"].pop(key, None)
    doc["card"]["summary"] = doc["card"]["risk_sentence"] = "r {risk_pct}"
    doc["fallback"][0]["card"]["risk_sentence"] = "r"
    with pytest.raises(HookDefinitionError, match="predicts another outcome"):
        _parse(doc)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda d: d["service"].update(anchor="visit"), "anchor must be one of"),
        (lambda d: d["service"].pop("anchor"), "windows relative to the encounter"),
        (lambda d: d["card"].update(moment="{elapsd} after arrival"), "uses ['elapsd']"),
        (lambda d: d["card"].update(summary="{risk} {band}"), "card summary uses ['risk']"),
        (lambda d: d["card"].update(moment="{time"), "card moment"),
        (lambda d: d["fallback"][0].update(version="1"), "keys are model, model_version"),
        (lambda d: d["fallback"][0]["card"].update(topic="x"), "keys are model, model_version"),
        (lambda d: d["fallback"][0]["card"].update(note=3), "card texts are strings"),
        (lambda d: d["fallback"][0]["card"].update(note="{missing}"), "uses ['missing']"),
        (lambda d: d.update(fallback={"model": "x"}), "[[fallback]] entries are tables"),
        (lambda d: d["card"]["nl"].pop("risk_sentence"), "card.nl: missing ['risk_sentence']"),
        (lambda d: d["card"]["nl"].update(summary="{risico}"), "uses ['risico']"),
        (lambda d: d["card"]["nl"].update(titel="x"), "card.nl: unknown keys ['titel']"),
        (
            lambda d: d["card"]["nl"]["override_reasons"].pop(),
            "override_reasons needs a display for each code",
        ),
        (lambda d: d["fallback"][0]["card"]["nl"].pop("note"), "card.nl: missing ['note']"),
        (lambda d: d["card"].update(suggestions=["order"]), "card suggestions are some of"),
        (lambda d: d["card"].pop("suggestion_label"), "need a suggestion_label"),
        (lambda d: d["bands"][0].update(display="laag"), "band display is a text per language"),
        (lambda d: d["service"]["nl"].pop("description"), "service.nl: a table with exactly"),
        (lambda d: d["service"]["nl"].update(title=" "), "service.nl: title and description"),
    ],
    ids=[
        "unknown anchor",
        "anchored windows without anchor",
        "moment typo",
        "summary typo",
        "unbalanced brace",
        "fallback key",
        "fallback card key",
        "fallback text type",
        "fallback placeholder",
        "fallback not a list",
        "translation incomplete",
        "translation placeholder",
        "translation key",
        "translation override reasons",
        "fallback translation incomplete",
        "unknown suggestion",
        "suggestion without label",
        "band display",
        "discovery translation incomplete",
        "discovery translation empty",
    ],
)
def test_bad_definitions_refuse_to_load(change: Any, message: str) -> None:
    doc = _doc()
    change(doc)
    with pytest.raises(HookDefinitionError) as err:
        _parse(doc)
    assert message in str(err.value)


def test_elapsed_needs_an_anchor() -> None:
    doc = tomllib.loads(
        (ROOT / "hooks" / "ed-admission-risk-patient-view.toml").read_text(encoding="utf-8")
    )
    doc["card"]["moment"] = "at {time}"
    doc["card"]["nl"]["moment"] = "om {time}"
    assert _parse(doc).card.moment == "at {time}"
    doc["card"]["moment"] = "{elapsed} after arrival"
    with pytest.raises(HookDefinitionError, match=r"allowed here: \['time'\]"):
        _parse(doc)


def test_anchoring_needs_one_encounter_index_offset() -> None:
    doc = tomllib.loads(
        (ROOT / "hooks" / "post-mi-unplanned-visit-risk.toml").read_text(encoding="utf-8")
    )
    doc["service"]["anchor"] = "encounter"
    with pytest.raises(HookDefinitionError, match="indexed on an Encounter with exactly one"):
        _parse(doc)


def test_a_service_without_a_translation_is_served_in_english() -> None:
    doc = _doc()
    doc["card"].pop("nl")
    doc["fallback"][0]["card"].pop("nl")
    doc["service"].pop("nl")
    hook = _parse(doc)
    assert hook.card.localized("nl") is hook.card
    assert hook.discovery_text("nl") == (hook.title, hook.description)
    assert hook.fallbacks[0].card.localized("nl").summary.startswith("Admission risk at arrival")


def test_discovery_texts_per_language() -> None:
    hook = _parse(_doc())
    assert hook.discovery_text("en") == (hook.title, hook.description)
    title, description = hook.discovery_text("nl")
    assert title == "Risico op opname binnen 24 uur (SEH)"
    assert description.startswith("Schat de kans dat de patiënt binnen 24 uur")

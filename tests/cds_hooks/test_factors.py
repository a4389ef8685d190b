"""Factors a physician trusts: every bundled model, with inputs missing one at a time and all at
once, never lists a missing input as a factor; effects are percentage points; values are written
by the feature spec's display rules."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from functools import cache
from typing import Any

import pytest

from cds_service.cds_hooks.cards import CardModelInfo, CardWording, risk_card
from cds_service.cds_hooks.examples import ed_case, post_mi_case
from cds_service.cds_hooks.factors import (
    MATERIAL_PP,
    effect_pp,
    factors,
    missing_effect_pp,
    value_text,
)
from cds_service.serving.model_runtime import LoadedModel, Prediction, load_model
from fhir_mappers.extract import Extraction, Provenance, extract
from tests.cds_hooks.helpers import ROOT, hook_definitions, spec

NOW = datetime(2026, 3, 14, 9, 30, tzinfo=UTC)
SERVICE_OF = {
    "ed-admission": "ed-admission-risk",
    "ed-admission-arrival": "ed-admission-risk",
    "post-mi-unplanned-visit": "post-mi-unplanned-visit-risk",
}


@cache
def model(name: str) -> LoadedModel:
    return load_model(ROOT / "models", name, "1.0.0")


def _full(name: str, sick: bool) -> Extraction:
    if name.startswith("ed-"):
        case = ed_case(NOW, sick=sick)
        resources = [case["patient"], *case["observations"], *case["encounters"]]
        arrival = NOW - timedelta(minutes=50)
        at = arrival + model(name).spec.index.offsets[0]
        return extract(resources, at, model(name).spec, anchor=arrival)
    case = post_mi_case(NOW)
    return extract(
        [case["patient"], *case["observations"], *case["conditions"]], NOW, model(name).spec
    )


def _without(extraction: Extraction, names: set[str]) -> Extraction:
    """The same extraction with ``names`` missing (as the mapper leaves an absent input)."""
    out = dataclasses.replace(
        extraction, values=dict(extraction.values), provenance=dict(extraction.provenance)
    )
    for n in names:
        out.values[n] = None
        out.provenance[n] = dataclasses.replace(
            out.provenance[n],
            value=None,
            time=None,
            sources=(),
            missing_reason="no value in window",
        )
    return out


def _cases() -> Iterator[tuple[str, bool, frozenset[str]]]:
    for name in SERVICE_OF:
        optional = [f.name for f in spec(name).features if not f.required]
        for sick in (True, False):
            yield name, sick, frozenset()
            for n in optional:
                yield name, sick, frozenset({n})
            yield name, sick, frozenset(optional)


CASES = list(_cases())


def _scored(name: str, sick: bool, gone: frozenset[str]) -> tuple[Extraction, Prediction]:
    extraction = _without(_full(name, sick), set(gone))
    assert not extraction.missing_required(model(name).spec)
    return extraction, model(name).explain(extraction.vector(model(name).feature_names))


@pytest.mark.parametrize(
    ("name", "sick", "gone"),
    CASES,
    ids=[f"{n}-{s}-{'+'.join(sorted(g)) or 'all-present'}" for n, s, g in CASES],
)
def test_no_missing_input_is_a_factor(name: str, sick: bool, gone: frozenset[str]) -> None:
    extraction, prediction = _scored(name, sick, gone)
    missing = {n for n, p in extraction.provenance.items() if p.value is None}
    assert gone <= missing
    m = model(name)
    listed = factors(m.spec, extraction, prediction, len(m.feature_names))
    assert not {f.name for f in listed} & missing
    hook = hook_definitions()[SERVICE_OF[name]]
    for lang in ("en", "nl"):
        texts = hook.card.localized(lang)
        card, _band = risk_card(
            hook,
            CardWording(texts),
            CardModelInfo(m.name, m.version, m.artifact_sha256, m.spec),
            extraction,
            prediction,
            card_uuid="5b3a0c1e-61a4-4e3b-9a77-0b8f1f0c2a11",
            model_card_url="https://cds.example.org/models/x",
            environment="production",
            top_factors=len(m.feature_names),
        )
        rows = [line for line in (card.detail or "").splitlines() if line.startswith("| ")][1:]
        shown = {row.split(" | ")[0][2:] for row in rows}
        assert not shown & {m.spec.feature(n).label_in(lang) for n in missing}
        assert len(rows) == len(listed)
        combined = missing_effect_pp(extraction, prediction)
        said = "missing inputs" in (card.detail or "") or "ontbrekende gegevens" in (
            card.detail or ""
        )
        assert said == (abs(combined) >= MATERIAL_PP)


def test_the_models_do_give_missing_inputs_an_effect_so_the_rule_matters() -> None:
    """LightGBM routes a missing value down a branch: its TreeSHAP contribution is not zero."""
    effects = []
    for name, sick, gone in CASES:
        if gone:
            _extraction, prediction = _scored(name, sick, gone)
            effects += [abs(effect_pp(prediction.risk, prediction.contributions[n])) for n in gone]
    assert max(effects) >= 1.0


def test_effects_are_percentage_points_of_this_estimate() -> None:
    extraction, prediction = _scored("ed-admission", True, frozenset())
    listed = factors(spec("ed-admission"), extraction, prediction, 99)
    assert [abs(f.effect_pp) for f in listed] == sorted(
        (abs(f.effect_pp) for f in listed), reverse=True
    )
    assert effect_pp(0.5, 0.0) == 0.0
    assert effect_pp(0.62, 0.9) == pytest.approx(62 - 39.88, abs=0.01)
    assert effect_pp(0.99, 5.0) < 99  # never more than the estimate itself


def _prov(value: float | None, time: str | None = "2026-03-14T08:40:00+00:00") -> Provenance:
    return Provenance(value=value, unit=None, time=time)


@pytest.mark.parametrize(
    ("model_name", "feature", "value", "lang", "text"),
    [
        ("ed-admission", "sex_male", 1.0, "en", "male"),
        ("ed-admission", "sex_male", 0.0, "nl", "vrouw"),
        (
            "ed-admission",
            "triage_urgency",
            3.0,
            "en",
            "emergency (3 on the HL7 ActPriority scale 1–4)",
        ),
        (
            "ed-admission",
            "triage_urgency",
            2.0,
            "nl",
            "urgent (2 op de HL7 ActPriority-schaal 1–4)",
        ),
        ("ed-admission", "prior_admissions_365d", 2.0, "en", "2"),
        ("ed-admission", "age", 84.0, "nl", "84 jaar"),
        ("ed-admission", "temperature", 39.44, "nl", "39,4 °C, 2026-03-14 09:40 CET"),
        ("ed-admission", "spo2", 89.0, "en", "89%, 2026-03-14 09:40 CET"),
        ("ed-admission", "arrival_ambulance", 1.0, "nl", "ja"),
        ("post-mi-unplanned-visit", "days_since_mi", 30.4, "en", "30 days"),
        ("post-mi-unplanned-visit", "days_since_mi", 1.2, "nl", "1 dag"),
        ("post-mi-unplanned-visit", "weight_change_7d", 2.04, "en", "+2.0 kg"),
        ("post-mi-unplanned-visit", "systolic_bp_change_7d", -12.3, "nl", "-12 mmHg"),
        ("post-mi-unplanned-visit", "measurements_7d", 6.0, "en", "6"),
    ],
)
def test_values_as_a_clinician_writes_them(
    model_name: str, feature: str, value: float, lang: str, text: str
) -> None:
    assert value_text(spec(model_name).feature(feature), _prov(value), lang) == text


def test_display_rules_do_not_change_the_spec_hash_the_manifest_checks() -> None:
    """A wording fix or a translation needs no retraining: ``show`` is left out of the hash."""
    import tomllib

    from fhir_mappers.spec import spec_from_dict

    doc: dict[str, Any] = tomllib.loads((ROOT / "models/ed-admission/features.toml").read_text())
    before = spec_from_dict(doc).sha256
    doc["features"][1]["show"]["label"]["nl"] = "Geslacht (anders)"
    assert spec_from_dict(doc).sha256 == before
    doc["features"][1]["description"] += " "
    assert spec_from_dict(doc).sha256 != before

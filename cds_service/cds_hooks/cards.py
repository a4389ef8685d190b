"""Risk card construction: pure, from hook texts + extraction + prediction.

Follows the CDS Hooks 2.0 card rules to the letter: summary under 140 characters, indicator from
the risk band, detail in Markdown, optional fields omitted rather than null or empty, override
reasons with a display, suggestions (when the hook asks) with a uuid and a selection behaviour.
When required inputs are missing, the card says so and shows no number. Wording is the hook's
(per language) and ``card_phrases.toml``'s; factors and values come from ``factors.py``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from cds_service.cds_hooks.factors import MATERIAL_PP, factors, missing_effect_pp
from cds_service.cds_hooks.language import (
    DEFAULT_ZONE,
    missing_reason_text,
    number_text,
    phrase,
)
from cds_service.cds_hooks.responses import (
    SUMMARY_LIMIT,
    Card,
    Coding,
    Link,
    OverrideReason,
    Source,
    Suggestion,
)
from cds_service.cds_hooks.suggestions import RiskRecord, suggestions
from cds_service.serving.hook_defs import CardTexts, HookDefinition
from cds_service.serving.model_runtime import Prediction
from fhir_mappers.extract import Extraction
from fhir_mappers.spec import ModelSpec


@dataclass(frozen=True, slots=True)
class CardModelInfo:
    name: str
    version: str
    artifact_sha256: str
    spec: ModelSpec


@dataclass(frozen=True, slots=True)
class CardWording:
    """The texts of the model that answers (the hook's ``[card]``, or its fallback's, in the
    deployment's language), with the moment of prediction and the fallback's note filled in,
    and the language and display time zone of the fixed phrases and times."""

    texts: CardTexts
    moment: str = ""
    note: str = ""
    zone: str = DEFAULT_ZONE

    @property
    def language(self) -> str:
        return self.texts.language

    def summary(self, **fields: str) -> str:
        return _truncate(self.texts.summary.format(moment=self.moment, **fields))

    @property
    def missing_summary(self) -> str:
        return _truncate(self.texts.missing_summary.format(moment=self.moment))

    @property
    def risk_sentence(self) -> str:
        return self.texts.risk_sentence.format(moment=self.moment)


@dataclass(frozen=True, slots=True)
class Subject:
    """Whom and when the card is about, for the suggestions that record it in the EHR."""

    patient_id: str
    encounter_id: str | None = None


def _truncate(text: str) -> str:
    return text if len(text) <= SUMMARY_LIMIT else text[: SUMMARY_LIMIT - 1] + "…"


def _pp(value: float, language: str) -> str:
    shown = number_text(round(abs(value), 1), language, 1)
    return shown if shown not in ("0.0", "0,0") else ("<0,1" if language == "nl" else "<0.1")


def factor_lines(
    spec: ModelSpec,
    extraction: Extraction,
    prediction: Prediction,
    top: int,
    language: str = "en",
    zone: str = DEFAULT_ZONE,
) -> list[str]:
    """Table rows of the recorded inputs that moved the estimate most (never a missing one)."""
    lines = []
    for f in factors(spec, extraction, prediction, top, language, zone):
        key = "raises" if f.effect_pp > 0 else "lowers"
        effect = phrase(language, key, pp=_pp(f.effect_pp, language))
        lines.append(f"| {f.label} | {f.value} | {effect} |")
    return lines


def missing_lines(
    spec: ModelSpec,
    extraction: Extraction,
    unreadable: list[str] | None = None,
    language: str = "en",
    zone: str = DEFAULT_ZONE,
) -> list[str]:
    """Missing inputs, then resources received but unreadable (``unreadable``, ready lines)."""
    out = []
    for feat in spec.features:
        prov = extraction.provenance[feat.name]
        if prov.value is None:
            req = f" ({phrase(language, 'required')})" if feat.required else ""
            why = missing_reason_text(prov.missing_reason, language, zone)
            out.append(f"- {feat.label_in(language)}{req}: {why}")
    return out + list(unreadable or ())


def missing_effect_line(extraction: Extraction, prediction: Prediction, language: str) -> str:
    """One sentence on what the missing inputs together do, when it is material."""
    pp = missing_effect_pp(extraction, prediction)
    if abs(pp) < MATERIAL_PP:
        return ""
    key = "missing_effect_raises" if pp > 0 else "missing_effect_lowers"
    return phrase(language, key, pp=number_text(round(abs(pp)), language))


def _source(texts: CardTexts, model_card_url: str) -> Source:
    topic = Coding(
        system=texts.topic_system, code=texts.topic_code, display=texts.topic_display or None
    )
    return Source(label=texts.source_label, url=model_card_url, topic=topic)


def _footer(model: CardModelInfo, environment: str, language: str) -> str:
    env = "" if environment == "production" else phrase(language, "environment", env=environment)
    sha = model.artifact_sha256[:12]
    return phrase(language, "footer", name=model.name, version=model.version, sha=sha, env=env)


def _common(
    hook_def: HookDefinition,
    texts: CardTexts,
    card_uuid: str,
    model_card_url: str,
    smart_launch_url: str = "",
) -> dict[str, Any]:
    """The parts every card of this service has: uuid, source, override reasons, links."""
    reasons = [
        OverrideReason(system=r.system, code=r.code, display=r.display)
        for r in texts.override_reasons
    ]
    language = texts.language
    links = [Link(label=phrase(language, "model_card_link"), url=model_card_url, type="absolute")]
    if smart_launch_url:
        app_context = json.dumps({"card": card_uuid, "service": hook_def.id}, separators=(",", ":"))
        smart = Link(
            label=phrase(language, "app_link"),
            url=smart_launch_url,
            type="smart",
            appContext=app_context,
        )
        links.insert(0, smart)
    return {
        "uuid": card_uuid,
        "source": _source(texts, model_card_url),
        "overrideReasons": reasons or None,
        "links": links,
    }


def risk_card(
    hook_def: HookDefinition,
    wording: CardWording,
    model: CardModelInfo,
    extraction: Extraction,
    prediction: Prediction,
    *,
    card_uuid: str,
    model_card_url: str,
    environment: str,
    top_factors: int = 5,
    smart_launch_url: str = "",
    unreadable: list[str] | None = None,
    subject: Subject | None = None,
) -> tuple[Card, str]:
    """The card and its band name (as audited: the same in every language)."""
    lang, zone = wording.language, wording.zone
    band = hook_def.band_for(prediction.risk)
    pct = f"{100 * prediction.risk:.0f}%"
    summary = wording.summary(risk_pct=pct, band=band.label(lang))
    rows = factor_lines(model.spec, extraction, prediction, top_factors, lang, zone)
    detail = [
        phrase(lang, "risk_line", sentence=wording.risk_sentence, pct=pct, band=band.label(lang)),
        "",
        *([wording.note, ""] if wording.note else []),
    ]
    if rows:
        detail += [
            phrase(lang, "factors_heading"),
            "",
            phrase(lang, "factor_columns"),
            "|---|---|---|",
        ]
        detail += [*rows, "", phrase(lang, "effect_method")]
    else:
        detail += [phrase(lang, "no_factor", threshold=number_text(0.1, lang))]
    missing = missing_lines(model.spec, extraction, unreadable, lang, zone)
    combined = missing_effect_line(extraction, prediction, lang)
    if missing:
        detail += ["", phrase(lang, "missing_heading"), "", *missing]
    if combined:
        detail += ["", combined]
    detail += ["", _footer(model, environment, lang)]
    offered = _suggestions(wording, model, extraction, prediction.risk, card_uuid, subject, pct)
    card = Card(
        summary=summary,
        indicator=band.indicator,  # type: ignore[arg-type]  # checked when hooks are loaded
        detail="\n".join(detail),
        suggestions=offered or None,
        selectionBehavior="at-most-one" if offered else None,
        **_common(hook_def, wording.texts, card_uuid, model_card_url, smart_launch_url),
    )
    return card, band.name


def _suggestions(
    wording: CardWording,
    model: CardModelInfo,
    extraction: Extraction,
    risk: float,
    card_uuid: str,
    subject: Subject | None,
    pct: str,
) -> list[Suggestion]:
    texts = wording.texts
    if not texts.suggestions or subject is None:
        return []
    record = RiskRecord(
        patient_id=subject.patient_id,
        at=extraction.index_time,
        outcome=wording.risk_sentence,
        risk=risk,
        model_name=model.name,
        model_version=model.version,
        model_title=model.spec.title,
        card_uuid=card_uuid,
        encounter_id=subject.encounter_id,
    )
    description = phrase(wording.language, "suggestion_description", pct=pct)
    return suggestions(texts.suggestions, texts.suggestion_label, description, record, extraction)


def missing_input_card(
    hook_def: HookDefinition,
    wording: CardWording,
    model: CardModelInfo,
    extraction: Extraction,
    *,
    card_uuid: str,
    model_card_url: str,
    environment: str,
    smart_launch_url: str = "",
    unreadable: list[str] | None = None,
) -> Card:
    lang = wording.language
    required = extraction.missing_required(model.spec)
    labels = ", ".join(model.spec.feature(n).label_in(lang) for n in required)
    detail = [
        phrase(lang, "no_risk", labels=labels),
        phrase(lang, "never_defaults"),
        "",
        *missing_lines(model.spec, extraction, unreadable, lang, wording.zone),
        "",
        _footer(model, environment, lang),
    ]
    return Card(
        summary=wording.missing_summary,
        indicator="info",
        detail="\n".join(detail),
        **_common(hook_def, wording.texts, card_uuid, model_card_url, smart_launch_url),
    )

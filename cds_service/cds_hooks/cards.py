"""Risk card construction: pure, from hook texts + extraction + prediction.

Follows the CDS Hooks 2.0 card rules to the letter: summary under 140 characters, indicator from
the risk band, detail in Markdown, optional fields omitted rather than null or empty, override
reasons with a display. When required inputs are missing, the card says so and shows no number.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from cds_service.cds_hooks.responses import (
    SUMMARY_LIMIT,
    Card,
    Coding,
    Link,
    OverrideReason,
    Source,
)
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
    """The texts of the model that answers (the hook's ``[card]``, or its fallback's), with the
    moment of prediction and the fallback's note already filled in."""

    texts: CardTexts
    moment: str = ""
    note: str = ""

    def summary(self, **fields: str) -> str:
        return _truncate(self.texts.summary.format(moment=self.moment, **fields))

    @property
    def missing_summary(self) -> str:
        return _truncate(self.texts.missing_summary.format(moment=self.moment))

    @property
    def risk_sentence(self) -> str:
        return self.texts.risk_sentence.format(moment=self.moment)


def _num(value: float) -> str:
    if value == int(value) and abs(value) < 1e6:
        return str(int(value))
    return f"{value:.3g}" if abs(value) < 1000 else f"{value:.0f}"


def _unit(unit: str | None) -> str:
    if not unit or unit in ("{count}", "1"):
        return ""
    pretty = {
        "/min": "/min",
        "mm[Hg]": "mmHg",
        "Cel": "°C",
        "a": "years",
        "d": "days",
        "10*9/L": "×10⁹/L",
        "{score}": "points",
    }
    return " " + pretty.get(unit, unit)


def _when(iso: str | None) -> str:
    if not iso:
        return ""
    return iso.replace("T", " ")[:16] + " UTC"


def _truncate(text: str) -> str:
    return text if len(text) <= SUMMARY_LIMIT else text[: SUMMARY_LIMIT - 1] + "…"


def factor_lines(
    spec: ModelSpec, extraction: Extraction, prediction: Prediction, top: int
) -> list[str]:
    ranked = sorted(prediction.contributions.items(), key=lambda kv: (-abs(kv[1]), kv[0]))
    lines = []
    for name, contribution in ranked[:top]:
        if contribution == 0.0:
            continue
        feat = spec.feature(name)
        prov = extraction.provenance[name]
        direction = "raises" if contribution > 0 else "lowers"
        shown = "missing" if prov.value is None else _num(prov.value) + _unit(prov.unit)
        when = f", {_when(prov.time)}" if prov.time and feat.source != "patient" else ""
        lines.append(f"| {feat.label} | {shown}{when} | {direction} risk ({contribution:+.2f}) |")
    return lines


def missing_lines(
    spec: ModelSpec, extraction: Extraction, unreadable: list[str] | None = None
) -> list[str]:
    """Missing inputs, then resources received but unreadable (``unreadable``, ready lines)."""
    out = []
    for feat in spec.features:
        prov = extraction.provenance[feat.name]
        if prov.value is None:
            req = " (required)" if feat.required else ""
            out.append(f"- {feat.label}{req}: {prov.missing_reason or 'missing'}")
    return out + list(unreadable or ())


def _source(texts: CardTexts, model_card_url: str) -> Source:
    topic = Coding(
        system=texts.topic_system, code=texts.topic_code, display=texts.topic_display or None
    )
    return Source(label=texts.source_label, url=model_card_url, topic=topic)


def _footer(model: CardModelInfo, environment: str) -> str:
    env = "" if environment == "production" else f" · environment **{environment}**"
    return (
        f"Model **{model.name} {model.version}** (artifact sha256 `{model.artifact_sha256[:12]}`)"
        f"{env}. Decision support only: it does not replace clinical judgement."
    )


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
        for r in hook_def.card.override_reasons
    ]
    links = [Link(label="Model card", url=model_card_url, type="absolute")]
    if smart_launch_url:
        app_context = json.dumps({"card": card_uuid, "service": hook_def.id}, separators=(",", ":"))
        smart = Link(
            label="Open risk details (app)",
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
) -> tuple[Card, str]:
    """The card and its band name."""
    band = hook_def.band_for(prediction.risk)
    pct = f"{100 * prediction.risk:.0f}%"
    summary = wording.summary(risk_pct=pct, band=band.name)
    detail = [
        f"**{wording.risk_sentence}: {pct}** (band: {band.name}).",
        "",
        *([wording.note, ""] if wording.note else []),
        "Main contributing factors:",
        "",
        "| factor | value | effect (log-odds) |",
        "|---|---|---|",
        *factor_lines(model.spec, extraction, prediction, top_factors),
    ]
    missing = missing_lines(model.spec, extraction, unreadable)
    if missing:
        detail += ["", "Missing or stale inputs (the model treats them as unknown):", "", *missing]
    detail += ["", _footer(model, environment)]
    card = Card(
        summary=summary,
        indicator=band.indicator,  # type: ignore[arg-type]  # checked when hooks are loaded
        detail="\n".join(detail),
        **_common(hook_def, wording.texts, card_uuid, model_card_url, smart_launch_url),
    )
    return card, band.name


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
    required = extraction.missing_required(model.spec)
    labels = ", ".join(model.spec.feature(n).label for n in required)
    detail = [
        f"**No risk can be computed**: required inputs are missing or stale ({labels}).",
        "The model is never run on defaults in their place.",
        "",
        *missing_lines(model.spec, extraction, unreadable),
        "",
        _footer(model, environment),
    ]
    return Card(
        summary=wording.missing_summary,
        indicator="info",
        detail="\n".join(detail),
        **_common(hook_def, wording.texts, card_uuid, model_card_url, smart_launch_url),
    )

"""Declarative CDS service definitions (``hooks/*.toml``).

A hook definition ties a CDS Hooks service id to a hook, a model, prefetch templates, risk bands
and card texts. Adding a model to the EHR needs a file here and no Python. Templates are checked
against the prefetch tokens CDS Hooks 2.0 allows: a typo fails at start-up, not at the bedside.
"""

from __future__ import annotations

import dataclasses
import re
import string
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cds_service.serving.hook_language import (
    OTHER_LANGUAGES,
    discovery_translations,
    fallback_translations,
    parse_suggestions,
    translations,
)
from cds_service.serving.hook_language import HookDefinitionError as HookDefinitionError
from fhir_mappers.spec import ModelSpec

# Hook context fields per hook (CDS Hooks library: patient-view 1.1, encounter-start 1.0).
HOOK_CONTEXT: dict[str, dict[str, bool]] = {
    "patient-view": {"userId": True, "patientId": True, "encounterId": False},
    "encounter-start": {"userId": True, "patientId": True, "encounterId": True},
}
USER_TOKENS = {
    "userPractitionerId": "Practitioner",
    "userPractitionerRoleId": "PractitionerRole",
    "userPatientId": "Patient",
    "userRelatedPersonId": "RelatedPerson",
}
INDICATORS = ("info", "warning", "critical")
ON_FHIR_TIMEOUT = ("412", "card")
ANCHORS = ("encounter",)
# The placeholders each card text may use (filled by cds_hooks/cards.py); checked at load time.
TEXT_FIELDS: dict[str, frozenset[str]] = {
    "summary": frozenset({"risk_pct", "band", "moment"}),
    "missing_summary": frozenset({"moment"}),
    "risk_sentence": frozenset({"moment"}),
    "source_label": frozenset(),
    "moment": frozenset({"time", "arrival", "elapsed"}),
    "note": frozenset({"pending"}),
    "suggestion_label": frozenset(),
}
_ANCHOR_ONLY = frozenset({"arrival", "elapsed"})
_TOKEN = re.compile(r"\{\{\s*([^{}]*?)\s*\}\}")


@dataclass(frozen=True, slots=True)
class Band:
    name: str  # as audited and monitored, whatever the language of the card
    below: float
    indicator: str
    display: dict[str, str] = field(default_factory=dict, compare=False)

    def label(self, language: str) -> str:
        return self.display.get(language) or self.name


@dataclass(frozen=True, slots=True)
class OverrideReason:
    code: str
    display: str
    system: str


@dataclass(frozen=True, slots=True)
class CardTexts:
    summary: str
    missing_summary: str
    risk_sentence: str
    source_label: str
    topic_system: str
    topic_code: str
    topic_display: str
    on_missing_required: str
    override_reasons: tuple[OverrideReason, ...]
    moment: str = ""  # when the prediction is for, e.g. "{elapsed} after arrival ({time})"
    note: str = ""  # a fallback model's line on the models passed over ({pending} inputs)
    suggestions: tuple[str, ...] = ()  # e.g. "risk-assessment": record the risk in the EHR
    suggestion_label: str = ""
    language: str = "en"
    translations: dict[str, CardTexts] = field(default_factory=dict, compare=False, repr=False)

    def localized(self, language: str) -> CardTexts:
        """These texts in ``language`` ([card.<language>]), else in English."""
        return self.translations.get(language, self)


@dataclass(frozen=True, slots=True)
class Fallback:
    """A model that answers when the models before it lack a required input, with its texts."""

    model: str
    model_version: str
    card: CardTexts


@dataclass(frozen=True, slots=True)
class HookDefinition:
    id: str
    hook: str
    title: str
    description: str
    usage_requirements: str
    model: str
    model_version: str
    prefetch: dict[str, str]
    required_prefetch: tuple[str, ...]
    bands: tuple[Band, ...]
    card: CardTexts
    source_file: str = field(default="")
    fhir_budget_seconds: float | None = None  # None: the service's CDS_FHIR_BUDGET_SECONDS
    on_fhir_timeout: str = "412"  # "412", or "card": the card without what did not arrive
    anchor: str | None = None  # "encounter": the moment hangs on context.encounterId's start
    fallbacks: tuple[Fallback, ...] = ()
    discovery: dict[str, tuple[str, str]] = field(default_factory=dict, compare=False)

    @property
    def model_versions(self) -> tuple[tuple[str, str], ...]:
        """Every model the service may answer with, in the order they are tried."""
        fallbacks = [(f.model, f.model_version) for f in self.fallbacks]
        return ((self.model, self.model_version), *fallbacks)

    def discovery_text(self, language: str) -> tuple[str, str]:  # [service.<language>]
        return self.discovery.get(language, (self.title, self.description))

    def band_for(self, risk: float) -> Band:
        for band in self.bands:
            if risk < band.below:
                return band
        return self.bands[-1]


def template_tokens(template: str) -> list[str]:
    return _TOKEN.findall(template)


def check_template(template: str, hook: str, where: str) -> None:
    allowed = {f"context.{name}" for name in HOOK_CONTEXT[hook]} | set(USER_TOKENS)
    for token in template_tokens(template):
        if token not in allowed:
            raise HookDefinitionError(
                f"{where}: prefetch token {{{{{token}}}}} is not allowed for {hook}; "
                f"allowed: {sorted(allowed)}"
            )


# FHIR's `code` search matches Observation.code only, not component codes: ask for the panel
# too when a feature reads a component (vital-signs profile: blood pressure 85354-9).
PANELS_OF_COMPONENTS = {
    "http://loinc.org|8480-6": "http://loinc.org|85354-9",
    "http://loinc.org|8462-4": "http://loinc.org|85354-9",
}


def _expand(template: str, specs: list[ModelSpec]) -> str:
    """Load-time macros so templates need not repeat the codes the feature specs already list
    (every model of the service: a fallback reads from the same prefetch)."""
    features = [f for spec in specs for f in spec.features]
    obs_codes = sorted({c for f in features if f.source == "observation" for c in f.codes})
    obs_codes = sorted(
        set(obs_codes) | {PANELS_OF_COMPONENTS[c] for c in obs_codes if c in PANELS_OF_COMPONENTS}
    )
    cond_codes = sorted({c for f in features if f.source == "condition" for c in f.codes})
    return template.replace("$observation_codes", ",".join(obs_codes)).replace(
        "$condition_codes", ",".join(cond_codes)
    )


def _require(raw: dict[str, Any], key: str, where: str) -> str:
    value = raw.get(key)
    if not isinstance(value, str) or not value.strip():
        raise HookDefinitionError(f"{where}: '{key}' is required")
    return value


def _fhir_budget(service: dict[str, Any], where: str) -> tuple[float | None, str]:
    budget = service.get("fhir_budget_seconds")
    if budget is not None and (
        isinstance(budget, bool) or not isinstance(budget, int | float) or not 0 < budget <= 60
    ):
        raise HookDefinitionError(f"{where}: fhir_budget_seconds must be a number in (0, 60]")
    on_timeout = service.get("on_fhir_timeout", "412")
    if on_timeout not in ON_FHIR_TIMEOUT:
        raise HookDefinitionError(f"{where}: on_fhir_timeout must be one of {ON_FHIR_TIMEOUT}")
    return (None if budget is None else float(budget)), on_timeout


def prefetch_resource_type(template: str) -> str | None:
    """The resource type a prefetch template reads (``Observation?...`` -> Observation)."""
    match = re.match(r"([A-Z][A-Za-z]+)(?:[/?]|$)", template)
    return match.group(1) if match else None


def parse_hook_definition(doc: dict[str, Any], where: str, spec_for: Any) -> HookDefinition:
    service = doc.get("service")
    if not isinstance(service, dict):
        raise HookDefinitionError(f"{where}: [service] table is required")
    hook = _require(service, "hook", where)
    if hook not in HOOK_CONTEXT:
        raise HookDefinitionError(f"{where}: hook must be one of {sorted(HOOK_CONTEXT)}")
    service_id = _require(service, "id", where)
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*", service_id):
        raise HookDefinitionError(f"{where}: id may contain letters, digits, '.', '_' and '-'")
    model = _require(service, "model", where)
    spec: ModelSpec = spec_for(model)
    anchor = _anchor(service, hook, where)
    fallbacks_raw = doc.get("fallback", [])
    if not isinstance(fallbacks_raw, list) or not all(isinstance(f, dict) for f in fallbacks_raw):
        raise HookDefinitionError(f"{where}: [[fallback]] entries are tables")
    specs = [spec] + [spec_for(_require(f, "model", f"{where} fallback")) for f in fallbacks_raw]
    _check_models(specs, anchor, where)
    prefetch_raw = doc.get("prefetch", {})
    if not isinstance(prefetch_raw, dict) or not all(
        isinstance(v, str) for v in prefetch_raw.values()
    ):
        raise HookDefinitionError(f"{where}: [prefetch] maps keys to template strings")
    prefetch = {k: _expand(v, specs) for k, v in prefetch_raw.items()}
    for key, template in prefetch.items():
        check_template(template, hook, f"{where} prefetch.{key}")
    required = tuple(service.get("required_prefetch", list(prefetch)))
    unknown = set(required) - set(prefetch)
    if unknown:
        raise HookDefinitionError(f"{where}: required_prefetch names unknown keys {unknown}")
    bands_raw = doc.get("bands")
    if not isinstance(bands_raw, list) or not bands_raw:
        raise HookDefinitionError(f"{where}: at least one [[bands]] entry is required")
    bands = []
    for b in bands_raw:
        indicator = b.get("indicator")
        if indicator not in INDICATORS:
            raise HookDefinitionError(f"{where}: band indicator must be one of {INDICATORS}")
        display = b.get("display", {})
        if not isinstance(display, dict) or not all(isinstance(v, str) for v in display.values()):
            raise HookDefinitionError(f"{where}: band display is a text per language")
        bands.append(
            Band(str(b["name"]), float(b.get("below", float("inf"))), indicator, dict(display))
        )
    if [b.below for b in bands] != sorted(b.below for b in bands):
        raise HookDefinitionError(f"{where}: bands must be in increasing order of 'below'")
    card = doc.get("card")
    if not isinstance(card, dict):
        raise HookDefinitionError(f"{where}: [card] table is required")
    topic = card.get("topic", {})
    reasons = tuple(
        OverrideReason(
            code=_require(r, "code", f"{where} override reason"),
            display=_require(r, "display", f"{where} override reason"),
            system=str(r.get("system", "https://fhir.cds-risk.example/CodeSystem/override-reason")),
        )
        for r in card.get("override_reasons", [])
    )
    budget, on_timeout = _fhir_budget(service, where)
    on_missing = card.get("on_missing_required", "card")
    if on_missing not in ("card", "none"):
        raise HookDefinitionError(f"{where}: on_missing_required must be 'card' or 'none'")
    texts = CardTexts(
        summary=_require(card, "summary", where),
        missing_summary=_require(card, "missing_summary", where),
        risk_sentence=_require(card, "risk_sentence", where),
        source_label=_require(card, "source_label", where),
        topic_system=_require(topic, "system", f"{where} card.topic"),
        topic_code=_require(topic, "code", f"{where} card.topic"),
        topic_display=str(topic.get("display", "")),
        on_missing_required=on_missing,
        override_reasons=reasons,
        moment=str(card.get("moment", "")),
        note=str(card.get("note", "")),
        suggestions=parse_suggestions(card, where),
        suggestion_label=str(card.get("suggestion_label", "")),
    )
    _check_texts(texts, anchor, where)
    texts = _with_translations(texts, card, anchor, where)
    fallbacks = tuple(_fallback(f, texts, anchor, f"{where} fallback") for f in fallbacks_raw)
    return HookDefinition(
        id=service_id,
        hook=hook,
        title=_require(service, "title", where),
        description=_require(service, "description", where),
        usage_requirements=str(service.get("usage_requirements", "")),
        model=model,
        model_version=_require(service, "model_version", where),
        prefetch=prefetch,
        required_prefetch=required,
        bands=tuple(bands),
        card=texts,
        source_file=where,
        fhir_budget_seconds=budget,
        on_fhir_timeout=on_timeout,
        anchor=anchor,
        fallbacks=fallbacks,
        discovery=discovery_translations(service, where),
    )


def _anchor(service: dict[str, Any], hook: str, where: str) -> str | None:
    anchor = service.get("anchor")
    if anchor is None:
        return None
    if anchor not in ANCHORS:
        raise HookDefinitionError(f"{where}: anchor must be one of {ANCHORS}")
    if "encounterId" not in HOOK_CONTEXT[hook]:
        raise HookDefinitionError(f"{where}: {hook} has no context.encounterId to anchor on")
    return str(anchor)


def _check_models(specs: list[ModelSpec], anchor: str | None, where: str) -> None:
    """The models of one service predict the same outcome (they share the bands), and their
    moment of prediction can be placed the way the service says."""
    for spec in specs:
        if (spec.label.name, spec.label.codes, spec.label.window) != (
            specs[0].label.name,
            specs[0].label.codes,
            specs[0].label.window,
        ):
            raise HookDefinitionError(
                f"{where}: model {spec.name} predicts another outcome than {specs[0].name}"
            )
        anchored = [f.name for f in spec.features if f.relative_to == "anchor"]
        if anchored and anchor != "encounter":
            raise HookDefinitionError(
                f"{where}: model {spec.name} has windows relative to the encounter "
                f'({", ".join(anchored)}); the service needs anchor = "encounter"'
            )
        if anchor == "encounter" and (
            spec.index.resource != "Encounter" or len(spec.index.offsets) != 1
        ):
            raise HookDefinitionError(
                f'{where}: anchor = "encounter" needs model {spec.name} indexed on an '
                "Encounter with exactly one offset"
            )


def _with_translations(
    texts: CardTexts, card: dict[str, Any], anchor: str | None, where: str
) -> CardTexts:
    other = translations(texts, card, lambda t, w: _check_texts(t, anchor, w), where)
    return dataclasses.replace(texts, translations=other)


def _check_texts(texts: CardTexts, anchor: str | None, where: str) -> None:
    """Placeholders are the ones the card builder fills; a typo fails at start-up."""
    for name, allowed in TEXT_FIELDS.items():
        text = getattr(texts, name)
        try:
            used = {f for _, f, _, _ in string.Formatter().parse(text) if f is not None}
        except ValueError as exc:
            raise HookDefinitionError(f"{where}: card {name}: {exc}") from None
        if anchor is None:
            allowed = allowed - _ANCHOR_ONLY
        unknown = used - allowed
        if unknown:
            raise HookDefinitionError(
                f"{where}: card {name} uses {sorted(unknown)}; allowed here: {sorted(allowed)}"
            )


_FALLBACK_TEXTS = ("summary", "missing_summary", "risk_sentence", "source_label", "moment", "note")


def _fallback(raw: dict[str, Any], texts: CardTexts, anchor: str | None, where: str) -> Fallback:
    """A [[fallback]] entry: model, version and the card texts it changes (the rest shared)."""
    unknown = set(raw) - {"model", "model_version", "card"}
    card = raw.get("card", {})
    allowed = set(_FALLBACK_TEXTS) | set(OTHER_LANGUAGES)
    if unknown or not isinstance(card, dict) or set(card) - allowed:
        raise HookDefinitionError(
            f"{where}: keys are model, model_version and card ({', '.join(_FALLBACK_TEXTS)})"
        )
    english = {k: v for k, v in card.items() if k not in OTHER_LANGUAGES}
    if not all(isinstance(v, str) for v in english.values()):
        raise HookDefinitionError(f"{where}: card texts are strings")
    own = dataclasses.replace(texts, **english, translations={})
    _check_texts(own, anchor, where)
    other = fallback_translations(texts, card, lambda t, w: _check_texts(t, anchor, w), where)
    own = dataclasses.replace(own, translations=other)
    return Fallback(_require(raw, "model", where), _require(raw, "model_version", where), own)


def load_hook_definitions(directory: Path, spec_for: Any) -> list[HookDefinition]:
    defs: list[HookDefinition] = []
    for path in sorted(directory.glob("*.toml")):
        try:
            doc = tomllib.loads(path.read_text(encoding="utf-8"))
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise HookDefinitionError(f"{path}: {exc}") from exc
        defs.append(parse_hook_definition(doc, str(path.name), spec_for))
    ids = [d.id for d in defs]
    dupes = sorted({i for i in ids if ids.count(i) > 1})
    if dupes:
        raise HookDefinitionError(f"duplicate service ids in {directory}: {dupes}")
    return defs

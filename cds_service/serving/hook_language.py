"""A hook definition's card texts in other languages (``[card.nl]``, ``[fallback.card.nl]``), and
what its card offers to do (``suggestions``).

``[card]`` is the English wording; a table per other language gives the same texts in that
language, and the deployment picks one (``CDS_LANGUAGE``). A translation must cover every text
the English card uses, and the same override-reason codes, so a Dutch card never falls back to
English halfway through a sentence; a language without a table is served in English.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

from fhir_mappers.spec_fields import LANGUAGES

__all__ = [
    "OTHER_LANGUAGES",
    "SUGGESTIONS",
    "TRANSLATED",
    "HookDefinitionError",
    "discovery_translations",
    "fallback_translations",
    "parse_suggestions",
    "translations",
]

OTHER_LANGUAGES = tuple(lang for lang in LANGUAGES if lang != "en")
# Texts a translation gives; the rest (topic codes, rules) are the same in every language.
TRANSLATED = (
    "summary",
    "missing_summary",
    "risk_sentence",
    "source_label",
    "moment",
    "note",
    "topic_display",
    "suggestion_label",
)


SUGGESTIONS = ("risk-assessment",)  # what a card may offer to do: cds_hooks/suggestions.py


class HookDefinitionError(ValueError):
    """A hook definition the service refuses to load; the message names the file."""


def discovery_translations(service: dict[str, Any], where: str) -> dict[str, tuple[str, str]]:
    """``[service.<language>]``: the title and description discovery lists in that language
    (CDS_LANGUAGE), both or neither, so an EHR's service picker never mixes languages."""
    out = {}
    for lang in OTHER_LANGUAGES:
        raw = service.get(lang)
        if raw is None:
            continue
        here = f"{where} service.{lang}"
        if not isinstance(raw, dict) or set(raw) != {"title", "description"}:
            raise HookDefinitionError(f"{here}: a table with exactly title and description")
        if not all(isinstance(v, str) and v.strip() for v in raw.values()):
            raise HookDefinitionError(f"{here}: title and description are non-empty strings")
        out[lang] = (raw["title"], raw["description"])
    return out


def parse_suggestions(card: dict[str, Any], where: str) -> tuple[str, ...]:
    raw = card.get("suggestions", [])
    if not isinstance(raw, list) or not set(raw) <= set(SUGGESTIONS):
        raise HookDefinitionError(f"{where}: card suggestions are some of {SUGGESTIONS}")
    if raw and not str(card.get("suggestion_label", "")).strip():
        raise HookDefinitionError(f"{where}: card suggestions need a suggestion_label")
    return tuple(raw)


def _texts(raw: Any, where: str) -> dict[str, str]:
    if not isinstance(raw, dict):
        raise HookDefinitionError(f"{where}: a table of card texts")
    unknown = set(raw) - set(TRANSLATED) - {"override_reasons"}
    if unknown:
        raise HookDefinitionError(f"{where}: unknown keys {sorted(unknown)}")
    texts = {k: v for k, v in raw.items() if k != "override_reasons"}
    if not all(isinstance(v, str) and v.strip() for v in texts.values()):
        raise HookDefinitionError(f"{where}: card texts are non-empty strings")
    return texts


def translations(
    english: Any, card: dict[str, Any], check: Callable[[Any, str], None], where: str
) -> dict[str, Any]:
    """``CardTexts`` per other language given in ``card``, each checked like the English one."""
    out = {}
    for lang in OTHER_LANGUAGES:
        if lang not in card:
            continue
        here = f"{where} card.{lang}"
        texts = _texts(card[lang], here)
        needed = {k for k in TRANSLATED if getattr(english, k)}
        if needed - set(texts):
            raise HookDefinitionError(f"{here}: missing {sorted(needed - set(texts))}")
        reasons = _reasons(english.override_reasons, card[lang].get("override_reasons"), here)
        own = dataclasses.replace(english, **texts, override_reasons=reasons, language=lang)
        check(own, here)
        out[lang] = own
    return out


def _reasons(english: tuple[Any, ...], raw: Any, where: str) -> tuple[Any, ...]:
    if not english and raw is None:
        return ()
    by_code = {}
    if isinstance(raw, list):
        by_code = {r.get("code"): r.get("display") for r in raw if isinstance(r, dict)}
    if set(by_code) != {r.code for r in english} or not all(
        isinstance(d, str) and d.strip() for d in by_code.values()
    ):
        raise HookDefinitionError(f"{where}: override_reasons needs a display for each code")
    return tuple(dataclasses.replace(r, display=by_code[r.code]) for r in english)


def fallback_translations(
    base: Any, card: dict[str, Any], check: Callable[[Any, str], None], where: str
) -> dict[str, Any]:
    """A fallback changes some of the service's texts; each translation changes the same ones."""
    changed = {k for k in card if k not in LANGUAGES}
    out = {}
    for lang, translated in base.translations.items():
        here = f"{where} card.{lang}"
        texts = _texts(card.get(lang, {}), here)
        if changed - set(texts):
            raise HookDefinitionError(f"{here}: missing {sorted(changed - set(texts))}")
        merged = dataclasses.replace(translated, **texts)
        check(merged, here)
        out[lang] = merged
    return out

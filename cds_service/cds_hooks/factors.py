"""What moved this patient's estimate, in words a physician trusts.

Only inputs that were recorded are factors: a missing input is never listed as one (a physician
cannot act on "missing raises risk"), and what the missing inputs do together is one sentence,
only when it is material. Effects are percentage points of risk: the TreeSHAP contribution of a
factor (calibrated log-odds) converted around this estimate, i.e. how much lower or higher the
estimate would be with that factor at its training average. Values are written the way the
feature spec's display rules (``[features.show]``) say: words for codes, a named scale, rounding,
and the time of the measurement only where it has one.
"""

from __future__ import annotations

import contextlib
import math
from dataclasses import dataclass
from datetime import datetime

from cds_service.cds_hooks.language import (
    DEFAULT_ZONE,
    format_time,
    number_text,
    phrase,
    unit_text,
)
from cds_service.serving.model_runtime import Prediction
from fhir_mappers.extract import Extraction, Provenance
from fhir_mappers.spec import FeatureSpec, ModelSpec

__all__ = ["MATERIAL_PP", "Factor", "effect_pp", "factors", "missing_effect_pp", "value_text"]

MATERIAL_PP = 1.0  # the combined effect of missing inputs is stated from 1 percentage point
_SHOWN_PP = 0.05  # a factor that rounds to 0.0 points is not a factor
_TIMELESS = ("count", "days_since")  # a count or a duration has no one moment to show
_SIGNED = ("change", "slope_per_day")  # a change reads +1.2 kg, not 1.2 kg


@dataclass(frozen=True, slots=True)
class Factor:
    name: str
    label: str
    value: str
    effect_pp: float  # percentage points of risk; positive raises it


def _logit(p: float) -> float:
    p = min(max(p, 1e-12), 1 - 1e-12)
    return math.log(p / (1 - p))


def effect_pp(risk: float, log_odds: float) -> float:
    """Percentage points the estimate owes to ``log_odds`` of calibrated contribution."""
    without = 1.0 / (1.0 + math.exp(-(_logit(risk) - log_odds)))
    return 100.0 * (risk - without)


def value_text(
    feat: FeatureSpec, prov: Provenance, language: str = "en", zone: str = DEFAULT_ZONE
) -> str:
    """'male', 'urgent (2 on HL7 ActPriority, 1 routine – 4 immediate)', '37.8 °C, 2026-12-04
    15:02 CET', '3', '23 days'."""
    value = prov.value
    if value is None:
        return ""
    rule = feat.show
    if value in rule.words:
        words = rule.words[value]
        shown = words.get(language) or next(iter(words.values()))
        if rule.scale:
            scale = rule.scale.get(language) or next(iter(rule.scale.values()))
            shown = phrase(
                language, "scale", word=shown, value=number_text(value, language), scale=scale
            )
    else:
        unit = rule.unit or ("d" if feat.aggregation == "days_since" else feat.unit)
        shown_value = value if rule.decimals is None else round(value, rule.decimals)
        shown = number_text(value, language, rule.decimals) + unit_text(unit, language, shown_value)
        if feat.aggregation in _SIGNED and value > 0:
            shown = "+" + shown
    timed = rule.time if rule.time is not None else feat.aggregation not in _TIMELESS
    if timed and prov.time and feat.source != "patient":
        with contextlib.suppress(ValueError):
            shown += ", " + format_time(datetime.fromisoformat(prov.time), zone)
    return shown


def factors(
    spec: ModelSpec,
    extraction: Extraction,
    prediction: Prediction,
    top: int,
    language: str = "en",
    zone: str = DEFAULT_ZONE,
) -> list[Factor]:
    """The ``top`` recorded inputs with the largest effect, largest first."""
    out = []
    for name, contribution in prediction.contributions.items():
        prov = extraction.provenance[name]
        if prov.value is None:
            continue
        pp = effect_pp(prediction.risk, contribution)
        if abs(pp) < _SHOWN_PP:
            continue
        feat = spec.feature(name)
        out.append(
            Factor(name, feat.label_in(language), value_text(feat, prov, language, zone), pp)
        )
    out.sort(key=lambda f: (-abs(f.effect_pp), f.name))
    return out[:top]


def missing_effect_pp(extraction: Extraction, prediction: Prediction) -> float:
    """What the missing inputs together add to the estimate, in percentage points."""
    missing = sum(
        c for n, c in prediction.contributions.items() if extraction.provenance[n].value is None
    )
    return effect_pp(prediction.risk, missing) if missing else 0.0

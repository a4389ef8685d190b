"""The extract and score stages, and the choice among a service's models.

A service names one model, or an ordered list (the hook file's ``[[fallback]]``): the first whose
required inputs are all present answers. ``encounter-start`` tries the one-hour ED model, which
needs triage vitals, and falls back to the arrival model while they are not recorded yet. Each
model is extracted at its own moment of prediction (``anchoring.index_time``), as it was trained.
No model is ever run on defaults in place of a missing required input.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from datetime import datetime

from cds_service.cds_hooks.anchoring import Visit, index_time
from cds_service.cds_hooks.fhir_client import NO_ANSWER_IN_TIME
from cds_service.cds_hooks.prefetch import ResolvedData
from cds_service.observability.stage_timer import StageTimer
from cds_service.serving.hook_defs import CardTexts, HookDefinition, prefetch_resource_type
from cds_service.serving.model_runtime import LoadedModel, Prediction
from cds_service.serving.registry import Registry
from fhir_mappers.extract import Extraction, extract
from fhir_mappers.spec import FeatureSpec, ModelSpec


@dataclass(frozen=True, slots=True)
class Scored:
    """The extract and score stages' result: no risk when a required input is missing."""

    model: LoadedModel
    extraction: Extraction
    risk: float | None = None
    prediction: Prediction | None = None


@dataclass(frozen=True, slots=True)
class Choice:
    """The model that answers, the card texts that go with it, the moment it predicts for, and
    the required inputs the models tried before it lacked (for the card's note)."""

    scored: Scored
    texts: CardTexts
    visit: Visit | None
    pending: tuple[FeatureSpec, ...] = ()

    @property
    def at(self) -> datetime:
        return self.scored.extraction.index_time

    def pending_in(self, language: str) -> list[str]:
        """The pending inputs' labels in ``language``, each once."""
        labels = [f.label_in(language) for f in self.pending]
        return [label for i, label in enumerate(labels) if label not in labels[:i]]


_SOURCE_OF_TYPE = {
    "Patient": "patient",
    "Observation": "observation",
    "Encounter": "encounter",
    "Condition": "condition",
}


def extract_features(
    model: LoadedModel,
    data: ResolvedData,
    at: datetime,
    hook_def: HookDefinition,
    visit: Visit | None = None,
) -> Extraction:
    """Features of the resources kept; what resolution left out joins the mapper's warnings, so
    the audit row (live and shadow) says how many resources were not used and why."""
    anchor = visit.start if visit is not None else None
    extraction = extract(data.resources, at, model.spec, anchor=anchor)
    extraction.warnings.update(data.counts())
    types = {prefetch_resource_type(hook_def.prefetch[k]) for k in data.timed_out}
    unanswered = {_SOURCE_OF_TYPE[t] for t in types if t in _SOURCE_OF_TYPE}
    if unanswered:
        _unanswered_missing(extraction, model.spec, unanswered)
    return extraction


def _unanswered_missing(extraction: Extraction, spec: ModelSpec, sources: set[str]) -> None:
    """Features read from data the FHIR server did not deliver in time are missing, whatever the
    rest gave (a count of 0 or an older value would be a guess), with that reason."""
    for feat in spec.features:
        if feat.source in sources:
            extraction.values[feat.name] = None
            prov = extraction.provenance[feat.name]
            extraction.provenance[feat.name] = dataclasses.replace(
                prov, value=None, time=None, sources=(), missing_reason=NO_ANSWER_IN_TIME
            )


def score(model: LoadedModel, extraction: Extraction, timer: StageTimer) -> Scored:
    """Never run on defaults: a missing required input means no risk at all."""
    if extraction.missing_required(model.spec):
        return Scored(model, extraction)
    vector = extraction.vector(model.feature_names)
    risk = model.risk(vector)
    timer.mark("predict")
    return Scored(model, extraction, risk, model.explain(vector))


def choose(
    registry: Registry,
    hook_def: HookDefinition,
    data: ResolvedData,
    now: datetime,
    visit: Visit | None,
    timer: StageTimer,
) -> Choice:
    """The first model of the service with every required input; when none has them, the
    first model's no-risk card (it names what the full estimate needs)."""
    entries = [(hook_def.model, hook_def.model_version, hook_def.card)] + [
        (f.model, f.model_version, f.card) for f in hook_def.fallbacks
    ]
    first: Choice | None = None
    pending: list[FeatureSpec] = []
    for name, version, texts in entries:
        model = registry.live(name, version)
        at = index_time(visit, model.spec, now)
        extraction = extract_features(model, data, at, hook_def, visit)
        missing = extraction.missing_required(model.spec)
        if not missing:
            timer.mark("map")
            return Choice(score(model, extraction, timer), texts, visit, tuple(pending))
        first = first or Choice(Scored(model, extraction), texts, visit)
        pending += [model.spec.feature(n) for n in missing]
    timer.mark("map")
    assert first is not None
    return first

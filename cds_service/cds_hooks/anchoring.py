"""The moment a prediction is for, when the service is anchored on the encounter in context.

Training predicts at the ED encounter's start plus the spec's ``[index]`` offset (one hour for the
triage model, five minutes for the arrival model). A service declared ``anchor = "encounter"``
places the call the same way: the moment is that encounter's ``period.start`` plus the offset,
never later than the call (nothing after it exists yet) and never earlier than the start; windows
declared ``relative_to = "anchor"`` hang on the start. Called later than start + offset, the model
still sees only what it was trained to see: the data up to start + offset.

An encounter that cannot anchor the moment is refused with a message that names no identifier:
another patient's (400: the context contradicts itself), not found, unattributable, without a
start, or starting after the call (412: the data the service needs cannot be had).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from cds_service.cds_hooks.language import DEFAULT_ZONE, format_time
from cds_service.cds_hooks.language import elapsed_text as language_elapsed_text
from cds_service.cds_hooks.prefetch import ResolvedData
from cds_service.errors import ServiceError
from cds_service.serving.hook_defs import HookDefinition
from fhir_mappers.events import encounter_anchor
from fhir_mappers.facts import EXCLUDED_ENCOUNTER_STATUSES
from fhir_mappers.spec import ModelSpec

# An EHR creates the encounter and fires encounter-start at once; clocks differ by seconds.
CLOCK_SKEW = timedelta(minutes=5)

_REFUSALS = {
    "other": (400, "context.encounterId names an encounter of another patient"),
    "unknown": (412, "the encounter in context cannot be attributed to the patient in context"),
    "modified": (
        412,
        "the encounter in context carries a modifier extension the service does not understand",
    ),
    "absent": (
        412,
        "the encounter in context was found neither in the prefetch nor on the FHIR server",
    ),
    "timed-out": (
        412,
        "the encounter in context could not be read: FHIR server did not answer in time",
    ),
}


@dataclass(frozen=True, slots=True)
class Visit:
    """The encounter the call is about: its start anchors the moment of prediction."""

    start: datetime


def visit_of(hook_def: HookDefinition, data: ResolvedData, now: datetime) -> Visit | None:
    """None for a service that is not anchored; else the visit, or a refusal."""
    if hook_def.anchor != "encounter":
        return None
    if data.visit is None:
        status, message = _REFUSALS.get(data.visit_status, _REFUSALS["absent"])
        raise ServiceError(status, message)
    if data.visit.get("status") in EXCLUDED_ENCOUNTER_STATUSES:
        raise ServiceError(
            412, "the encounter in context is cancelled, entered in error, planned or unknown"
        )
    start = encounter_anchor(data.visit)
    if start is None:
        raise ServiceError(
            412,
            "the encounter in context has no start (period.start): the moment of "
            "prediction cannot be placed",
        )
    if start > now + CLOCK_SKEW:
        raise ServiceError(412, "the encounter in context starts after the time of the call")
    return Visit(start)


def index_time(visit: Visit | None, spec: ModelSpec, now: datetime) -> datetime:
    """The moment of prediction: ``now``, or anchored as the model was trained."""
    if visit is None:
        return now
    trained_at = visit.start + spec.index.offsets[0]
    return max(visit.start, min(now, trained_at))


def elapsed_text(delta: timedelta, language: str = "en") -> str:
    """'0 min', '40 min', '1 h', '1 h 20 min', '2 d 3 h': the time since arrival on a card."""
    return language_elapsed_text(delta, language)


def moment_text(
    template: str,
    visit: Visit | None,
    at: datetime,
    language: str = "en",
    zone: str = DEFAULT_ZONE,
) -> str:
    """The hook's ``moment`` text filled in: when the prediction is for, in the one time format
    (``language.format_time``) and the deployment's display time zone."""
    if not template:
        return ""
    fields = {"time": format_time(at, zone)}
    if visit is not None:
        fields |= {
            "arrival": format_time(visit.start, zone),
            "elapsed": elapsed_text(at - visit.start, language),
        }
    return template.format(**fields)

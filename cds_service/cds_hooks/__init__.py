"""The CDS Hooks 2.0 protocol: what comes in (request, prefetch, feedback), what goes out (cards).

Request path, in module order: ``routes`` (discovery, service call, feedback) -> ``pipeline``
(verify, resolve prefetch, extract, score, card, audit) with ``schemas`` (typed request),
``prefetch`` + ``fhir_client`` (prefetch semantics and the FHIR fallback), ``cards`` +
``responses`` (typed, spec-checked cards) with ``factors`` (effects in percentage points, values
by the feature spec's display rules), ``language`` (phrases per language, the one time format)
and ``suggestions`` (the RiskAssessment a card offers to record), ``shadow`` (shadow versions
after the response) and ``feedback``. ``routes``, ``pipeline`` and ``shadow`` are imported by
the app factory and are not re-exported here, so that this package stays importable from
``cds_service.state``.
``examples`` holds synthetic requests for the CLI and the tests.
"""

from cds_service.cds_hooks.cards import CardModelInfo, missing_input_card, risk_card
from cds_service.cds_hooks.extensions import SIMULATED_TIME_EXTENSION
from cds_service.cds_hooks.feedback import FeedbackItem, FeedbackRequest, parse_feedback
from cds_service.cds_hooks.fhir_client import FetchResult, FhirClient, FhirFetchError
from cds_service.cds_hooks.prefetch import PreconditionFailed, ResolvedData, TooLarge, resolve
from cds_service.cds_hooks.responses import (
    Action,
    Card,
    CardsResponse,
    Coding,
    Link,
    OverrideReason,
    Source,
    Suggestion,
)
from cds_service.cds_hooks.schemas import (
    EncounterStartContext,
    FhirAuthorization,
    HookRequest,
    PatientViewContext,
    RequestError,
    parse_request,
)

__all__ = [
    "SIMULATED_TIME_EXTENSION",
    "Action",
    "Card",
    "CardModelInfo",
    "CardsResponse",
    "Coding",
    "EncounterStartContext",
    "FeedbackItem",
    "FeedbackRequest",
    "FetchResult",
    "FhirAuthorization",
    "FhirClient",
    "FhirFetchError",
    "HookRequest",
    "Link",
    "OverrideReason",
    "PatientViewContext",
    "PreconditionFailed",
    "RequestError",
    "ResolvedData",
    "Source",
    "Suggestion",
    "TooLarge",
    "missing_input_card",
    "parse_feedback",
    "parse_request",
    "resolve",
    "risk_card",
]

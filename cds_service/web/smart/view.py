"""What the SMART app shows: the patient's data read now from the FHIR server with the launch's
access token, mapped by ``fhir_mappers`` with the live model's feature spec, scored by the live
model, and the card the app was opened from (looked up in the audit views)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote, urlencode

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from cds_service.cds_hooks.fhir_client import FhirClient, FhirFetchError
from cds_service.serving.hook_defs import Band, HookDefinition
from cds_service.serving.model_runtime import LoadedModel, Prediction
from cds_service.web.errors import SignInError
from cds_service.web.smart.charts import Chart, trend_charts
from cds_service.web.smart.words import Words
from fhir_mappers.extract import Extraction, aggregate
from fhir_mappers.facts import normalize
from fhir_mappers.resources import dedupe, flatten, patient_id_of
from fhir_mappers.spec import ModelSpec

PAGE_SIZE = 200


@dataclass(frozen=True, slots=True)
class CardRecord:
    card_uuid: str
    service_id: str
    model_name: str
    model_version: str
    card_kind: str
    risk: float | None
    band: str | None
    requested_at: datetime
    same_patient: bool


def find_card(engine: Engine, card_uuid: str, patient_pseudonym: str) -> CardRecord | None:
    query = sa.text(
        "SELECT card_uuid, service_id, model_name, model_version, card_kind, risk, risk_band, "
        "requested_at, patient_pseudonym FROM v_cards WHERE card_uuid = :card"
    )
    with engine.connect() as conn:
        row = conn.execute(query, {"card": card_uuid}).first()
    if row is None:
        return None
    requested = row.requested_at
    if isinstance(requested, str):  # SQLite through a view may hand back text
        requested = datetime.fromisoformat(requested)
    if requested.tzinfo is None:  # stored in UTC; shown in the display zone
        requested = requested.replace(tzinfo=UTC)
    return CardRecord(
        card_uuid=row.card_uuid,
        service_id=row.service_id,
        model_name=row.model_name,
        model_version=row.model_version,
        card_kind=row.card_kind,
        risk=row.risk,
        band=row.risk_band,
        requested_at=requested,
        same_patient=row.patient_pseudonym == patient_pseudonym,
    )


def current_answer(engine: Engine, card_uuid: str, user: str) -> dict[str, Any] | None:
    """The user's answer that counts on the card (``is_current`` in v_feedback), as the page
    shows a response: given in an earlier launch from the same card, it is still theirs."""
    query = sa.text(
        "SELECT outcome, override_reason_code, override_reason_display, outcome_timestamp "
        "FROM v_feedback "
        "WHERE card_uuid = :card AND user_pseudonym = :user AND is_current"
    )
    with engine.connect() as conn:
        row = conn.execute(query, {"card": card_uuid, "user": user}).first()
    if row is None:
        return None
    at = row.outcome_timestamp
    if isinstance(at, str):  # SQLite through a view may hand back text
        at = datetime.fromisoformat(at)
    if at.tzinfo is None:  # stored in UTC
        at = at.replace(tzinfo=UTC)
    return {
        "outcome": row.outcome,
        "code": row.override_reason_code,
        "reason": row.override_reason_display,
        "at": at.isoformat(),  # the page shows it in the display time zone
    }


def _iso(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def patient_queries(spec: ModelSpec, patient: str, now: datetime) -> list[str]:
    """Searches for exactly the resource types and periods the feature spec reads."""
    pid = quote(patient, safe="")
    queries = []
    sources = {f.source for f in spec.features}
    if "patient" in sources:
        queries.append(f"Patient/{pid}")
    for source, resource in (("observation", "Observation"), ("encounter", "Encounter")):
        starts = [f.window.start for f in spec.features if f.source == source and f.window]
        if starts:
            since = now + min(starts) - timedelta(days=1)
            params = {"patient": patient, "date": f"ge{_iso(since)}", "_count": str(PAGE_SIZE)}
            queries.append(f"{resource}?{urlencode(params)}")
    if "condition" in sources:
        queries.append(f"Condition?{urlencode({'patient': patient, '_count': str(PAGE_SIZE)})}")
    return queries


async def fetch_patient_data(
    client: FhirClient, iss: str, token: str, patient: str, spec: ModelSpec, now: datetime
) -> tuple[list[dict[str, Any]], bool]:
    """(the patient's resources, whether a search was cut at the service's limits)."""
    queries = patient_queries(spec, patient, now)
    results = await asyncio.gather(
        *(client.fetch(iss, q, token) for q in queries), return_exceptions=True
    )
    resources: list[dict[str, Any]] = []
    truncated = False
    for query, result in zip(queries, results, strict=True):
        if isinstance(result, FhirFetchError):
            if "HTTP 401" in result.reason:
                raise SignInError(
                    401,
                    "The EHR no longer accepts this app's access. Open the app again from the "
                    "card.",
                    title="Access has ended",
                )
            if "HTTP 403" in result.reason:
                raise SignInError(
                    403,
                    "The EHR did not let this app read the patient's data (granted scopes); "
                    "ask the EHR's administrators to grant the scopes in the app's "
                    "registration.",
                    title="Access not granted",
                )
            raise SignInError(
                502,
                f"The FHIR server could not be read: {result.reason}.",
                title="Patient data unavailable",
            )
        if isinstance(result, BaseException):
            raise result
        if result.not_found and query.startswith("Patient/"):
            raise SignInError(
                404, "The FHIR server has no such patient.", title="Patient not found"
            )
        truncated = truncated or result.truncated
        resources.extend(r for r in result.resources if patient_id_of(r) == patient)
    return resources, truncated


@dataclass(slots=True)
class AppView:
    hook_def: HookDefinition
    model: LoadedModel
    index_time: datetime
    extraction: Extraction
    prediction: Prediction | None
    band: Band | None
    charts: list[Chart]
    card: CardRecord | None
    card_problem: str | None
    truncated: bool
    own_card: bool = False  # launched without a card: the page's risk is its own audited row
    words: Words = field(default_factory=Words)  # CDS_LANGUAGE, CDS_DISPLAY_TIMEZONE
    notes: list[str] = field(default_factory=list)

    @property
    def feedback_allowed(self) -> bool:
        return self.card_problem is None

    @property
    def accept_allowed(self) -> bool:
        """Nothing to accept where no risk was shown: the card's (when the app was opened from
        one and it is known), else the one computed now."""
        if self.card is not None and not self.own_card:
            return self.card.risk is not None
        return self.prediction is not None


def score(
    hook_def: HookDefinition,
    model: LoadedModel,
    resources: list[dict[str, Any]],
    now: datetime,
    words: Words | None = None,
) -> tuple[Extraction, Prediction | None, Band | None, list[Chart]]:
    """The same mapping and model as the CDS Hooks call (``fhir_mappers.extract`` in two steps,
    so the normalized facts are at hand for the trend charts)."""
    spec = model.spec
    unique, _ = dedupe(flatten(resources).resources)
    facts = normalize(unique, spec)
    extraction = aggregate(facts, now, spec)
    charts = trend_charts(spec, facts, extraction.index_time, words or Words())
    if extraction.missing_required(spec):
        return extraction, None, None, charts
    prediction = model.explain(extraction.vector(model.feature_names))
    return extraction, prediction, hook_def.band_for(prediction.risk), charts

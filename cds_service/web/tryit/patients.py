"""The synthetic example patients of the try-it page, one entry each: who they are, which models
their data is for, and the request an EHR would send for them (times relative to the call).

The resources come from :mod:`cds_service.cds_hooks.examples`, the same synthetic cases as
``cds-service example`` and ``demo-call``: no real patient is ever involved.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from cds_service.cds_hooks.examples import (
    ed_case,
    ed_prefetch,
    hook_body,
    mi_prefetch,
    post_mi_case,
)

__all__ = ["EXAMPLE_PATIENTS", "ExamplePatient", "patients_for"]

ED_MODELS = ("ed-admission", "ed-admission-arrival")
POST_MI_MODELS = ("post-mi-unplanned-visit",)


@dataclass(frozen=True, slots=True)
class ExamplePatient:
    key: str
    label: str
    models: tuple[str, ...]
    case: Callable[[datetime], dict[str, Any]]
    prefetch: Callable[[dict[str, Any]], dict[str, Any]]

    def request(self, hook: str, now: datetime) -> dict[str, Any]:
        """The CDS Hooks request for this patient on ``hook`` (with prefetch)."""
        case = self.case(now)
        encounter = case.get("encounter_id") if hook == "encounter-start" else None
        return hook_body(hook, case["patient"]["id"], self.prefetch(case), encounter_id=encounter)

    def resources(self, now: datetime) -> list[dict[str, Any]]:
        """Every resource of the case (for the local FHIR server of the SMART launch)."""
        case = self.case(now)
        out = [case["patient"]]
        for key in ("observations", "encounters", "conditions"):
            out += case.get(key, [])
        return out

    def patient_id(self, now: datetime) -> str:
        return str(self.case(now)["patient"]["id"])

    def encounter_id(self, now: datetime) -> str | None:
        value = self.case(now).get("encounter_id")
        return str(value) if value else None


EXAMPLE_PATIENTS: tuple[ExamplePatient, ...] = (
    ExamplePatient(
        "ed-sick",
        "ED arrival 50 min ago, septic-looking vitals and labs, born 1941 (synthetic)",
        ED_MODELS,
        lambda now: ed_case(now, pid="syn-ed-1", sick=True),
        ed_prefetch,
    ),
    ExamplePatient(
        "ed-well",
        "ED arrival 50 min ago, normal vitals and labs, born 1990 (synthetic)",
        ED_MODELS,
        lambda now: ed_case(now, pid="syn-ed-2", sick=False),
        ed_prefetch,
    ),
    ExamplePatient(
        "post-mi",
        "30 days after a myocardial infarction, 14 days of home measurements (synthetic)",
        POST_MI_MODELS,
        lambda now: post_mi_case(now, pid="syn-mi-1"),
        mi_prefetch,
    ),
)


def patients_for(model: str) -> list[ExamplePatient]:
    return [p for p in EXAMPLE_PATIENTS if model in p.models]

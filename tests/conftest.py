"""Shared fixtures: the two real feature specs, a small-spec builder and FHIR R4 resource builders.

Everything here is hand-made synthetic data; nothing is computed at import time (no clock reads).
"""

from __future__ import annotations

import copy
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from fhir_mappers import ModelSpec, load_spec, spec_from_dict
from tests.utils.service import BACKENDS, Database, new_database

REPO_ROOT = Path(__file__).resolve().parent.parent
MODELS_DIR = REPO_ROOT / "models"

LOINC = "http://loinc.org"
SNOMED = "http://snomed.info/sct"
UCUM = "http://unitsofmeasure.org"
ACT_CODE = "http://terminology.hl7.org/CodeSystem/v3-ActCode"
ACT_PRIORITY = "http://terminology.hl7.org/CodeSystem/v3-ActPriority"
DATA_ABSENT = "http://terminology.hl7.org/CodeSystem/data-absent-reason"
CONDITION_VER = "http://terminology.hl7.org/CodeSystem/condition-ver-status"
ARRIVAL = "https://fhir.cds-risk.example/CodeSystem/arrival-mode"
SYMPTOMS = "https://fhir.cds-risk.example/CodeSystem/home-symptoms"

# index / label used by specs built in tests when the test does not care about them
DEFAULT_INDEX = {"resource": "Encounter", "codes": [f"{ACT_CODE}|EMER"], "offsets": ["PT1H"]}
DEFAULT_LABEL = {
    "name": "admitted",
    "resource": "Encounter",
    "codes": [f"{ACT_CODE}|IMP"],
    "window": ["PT0S", "PT24H"],
}


@pytest.fixture(scope="session")
def ed_spec() -> ModelSpec:
    return load_spec(MODELS_DIR / "ed-admission" / "features.toml")


@pytest.fixture(scope="session")
def mi_spec() -> ModelSpec:
    return load_spec(MODELS_DIR / "post-mi-unplanned-visit" / "features.toml")


def _spec_doc(*features: dict[str, Any], **top: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "model": {"name": "test-model"},
        "index": copy.deepcopy(DEFAULT_INDEX),
        "label": copy.deepcopy(DEFAULT_LABEL),
        "features": [copy.deepcopy(f) for f in features],
    }
    doc.update(copy.deepcopy(top))
    return doc


@pytest.fixture(scope="session")
def spec_doc() -> Callable[..., dict[str, Any]]:
    """A spec document (as parsed TOML) with the given features and a default [index]/[label]."""
    return _spec_doc


@pytest.fixture(scope="session")
def make_spec() -> Callable[..., ModelSpec]:
    def build(*features: dict[str, Any], **top: Any) -> ModelSpec:
        return spec_from_dict(_spec_doc(*features, **top), "test spec")

    return build


def obs_feature(name: str = "f", **overrides: Any) -> dict[str, Any]:
    """A numeric observation feature (heart rate, last value in the 6 h before the index)."""
    raw: dict[str, Any] = {
        "name": name,
        "description": f"test feature {name}",
        "source": "observation",
        "codes": [f"{LOINC}|8867-4"],
        "unit": "/min",
        "window": ["-PT6H", "PT0S"],
        "aggregation": "last",
    }
    raw.update(overrides)
    return raw


# --- FHIR R4 resource builders --------------------------------------------------------------


def concept(*codings: tuple[str, str], text: str | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {"coding": [{"system": s, "code": c} for s, c in codings]}
    if text is not None:
        out["text"] = text
    return out


def quantity(value: Any, code: str | None = None, *, system: str | None = UCUM, **extra: Any):
    q: dict[str, Any] = {"value": value}
    if code is not None:
        q["code"] = code
        if system is not None:
            q["system"] = system
    q.update(extra)
    return q


def observation(
    rid: str,
    code: str | tuple[str, str] | list[tuple[str, str]] | dict[str, Any],
    value: float | None = None,
    unit: str | None = None,
    *,
    at: str | None = "2024-03-10T10:00:00Z",
    status: str = "final",
    patient: str = "p1",
    **extra: Any,
) -> dict[str, Any]:
    """An Observation; ``code`` is a LOINC code, a (system, code) pair, a list of pairs or a
    ready CodeableConcept; ``value`` + ``unit`` make a UCUM valueQuantity."""
    if isinstance(code, str):
        code_cc = concept((LOINC, code))
    elif isinstance(code, tuple):
        code_cc = concept(code)
    elif isinstance(code, list):
        code_cc = concept(*code)
    else:
        code_cc = code
    res: dict[str, Any] = {
        "resourceType": "Observation",
        "id": rid,
        "status": status,
        "category": [
            concept(("http://terminology.hl7.org/CodeSystem/observation-category", "vital-signs"))
        ],
        "code": code_cc,
        "subject": {"reference": f"Patient/{patient}"},
    }
    if at is not None:
        res["effectiveDateTime"] = at
    if value is not None:
        res["valueQuantity"] = quantity(value, unit)
        if unit is not None:
            res["valueQuantity"]["unit"] = unit
    res.update(extra)
    return res


def bp_panel(
    rid: str,
    systolic: float | None,
    diastolic: float | None,
    *,
    at: str = "2024-03-10T10:00:00Z",
    status: str = "final",
    patient: str = "p1",
    unit: str = "mm[Hg]",
) -> dict[str, Any]:
    """FHIR vital-signs blood pressure panel: 85354-9 with components 8480-6 and 8462-4."""

    def component(code: str, value: float | None) -> dict[str, Any]:
        comp: dict[str, Any] = {"code": concept((LOINC, code))}
        if value is None:
            comp["dataAbsentReason"] = concept((DATA_ABSENT, "unknown"))
        else:
            comp["valueQuantity"] = {"value": value, "unit": "mmHg", "system": UCUM, "code": unit}
        return comp

    return {
        "resourceType": "Observation",
        "id": rid,
        "status": status,
        "code": concept((LOINC, "85354-9"), text="Blood pressure panel"),
        "subject": {"reference": f"Patient/{patient}"},
        "effectiveDateTime": at,
        "component": [component("8480-6", systolic), component("8462-4", diastolic)],
    }


def patient(
    pid: str = "p1", birth_date: Any = "1960-05-15", gender: Any = "male"
) -> dict[str, Any]:
    res: dict[str, Any] = {"resourceType": "Patient", "id": pid}
    if birth_date is not None:
        res["birthDate"] = birth_date
    if gender is not None:
        res["gender"] = gender
    return res


def encounter(
    eid: str,
    klass: str,
    start: str | None,
    *,
    end: str | None = None,
    status: str = "finished",
    priority: str | None = None,
    patient: str = "p1",
) -> dict[str, Any]:
    res: dict[str, Any] = {
        "resourceType": "Encounter",
        "id": eid,
        "status": status,
        "class": {"system": ACT_CODE, "code": klass},
        "subject": {"reference": f"Patient/{patient}"},
    }
    period: dict[str, str] = {}
    if start is not None:
        period["start"] = start
    if end is not None:
        period["end"] = end
    if period:
        res["period"] = period
    if priority is not None:
        res["priority"] = concept((ACT_PRIORITY, priority))
    return res


def condition(
    cid: str,
    code: tuple[str, str] = (SNOMED, "22298006"),
    onset: str | None = "2024-01-01T08:00:00Z",
    *,
    verification: str | None = "confirmed",
    patient: str = "p1",
    **extra: Any,
) -> dict[str, Any]:
    res: dict[str, Any] = {
        "resourceType": "Condition",
        "id": cid,
        "code": concept(code),
        "subject": {"reference": f"Patient/{patient}"},
    }
    if onset is not None:
        res["onsetDateTime"] = onset
    if verification is not None:
        res["verificationStatus"] = concept((CONDITION_VER, verification))
    res.update(extra)
    return res


def bundle(*resources: Any, next_url: str | None = None, **extra: Any) -> dict[str, Any]:
    out: dict[str, Any] = {
        "resourceType": "Bundle",
        "type": "searchset",
        "entry": [{"resource": r, "search": {"mode": "match"}} for r in resources],
    }
    if next_url is not None:
        out["link"] = [{"relation": "self", "url": "https://fhir.example/x"}]
        out["link"].append({"relation": "next", "url": next_url})
    out.update(extra)
    return out


def operation_outcome(code: str = "too-costly") -> dict[str, Any]:
    return {
        "resourceType": "OperationOutcome",
        "issue": [{"severity": "warning", "code": code, "diagnostics": "synthetic"}],
    }


FHIR = SimpleNamespace(
    LOINC=LOINC,
    SNOMED=SNOMED,
    UCUM=UCUM,
    ACT_CODE=ACT_CODE,
    ACT_PRIORITY=ACT_PRIORITY,
    DATA_ABSENT=DATA_ABSENT,
    CONDITION_VER=CONDITION_VER,
    ARRIVAL=ARRIVAL,
    SYMPTOMS=SYMPTOMS,
    concept=concept,
    quantity=quantity,
    observation=observation,
    bp_panel=bp_panel,
    patient=patient,
    encounter=encounter,
    condition=condition,
    bundle=bundle,
    operation_outcome=operation_outcome,
    obs_feature=obs_feature,
)


@pytest.fixture(scope="session")
def fhir() -> SimpleNamespace:
    """Builders for FHIR R4 JSON as EHRs send it, plus the code systems used in the specs."""
    return FHIR


PHI_SWEEP_TEST = "test_end_to_end_suite_logs_no_patient_data"


@pytest.fixture(params=BACKENDS)
def db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Database]:
    """A migrated database per backend (SQLite; PostgreSQL with CDS_TEST_POSTGRES_URL), for the
    tests that read and write the audit, monitoring and trail tables directly."""
    from cds_service.db.engine import upgrade

    d = new_database(str(request.param), tmp_path)
    upgrade(d.engine)
    try:
        yield d
    finally:
        d.close()


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The PHI sweep reads what every other test logged, so it runs last."""
    items.sort(key=lambda item: item.name == PHI_SWEEP_TEST)


@pytest.fixture(scope="session", autouse=True)
def debug_log_capture(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Log everything at DEBUG and record spans, through the production logging configuration,
    into one file for the whole run (CDS_TEST_LOG_FILE, else a session temporary file): the PHI
    sweep then searches what the whole suite produced, without running the suite twice."""
    path = os.environ.get("CDS_TEST_LOG_FILE")
    if not path:
        path = str(tmp_path_factory.mktemp("phi-sweep") / "debug.log")
        os.environ["CDS_TEST_LOG_FILE"] = path
    import logging

    from opentelemetry.sdk.trace.export import SpanExportResult

    from cds_service.observability.logs import configure_logging
    from cds_service.observability.traces import configure_tracing

    stream = open(path, "a", encoding="utf-8")  # noqa: SIM115 (closed at session end)

    class FileExporter:
        def export(self, spans: Any) -> SpanExportResult:
            for span in spans:
                stream.write(span.to_json(indent=None) + "\n")
            return SpanExportResult.SUCCESS

        def shutdown(self) -> None:
            pass

        def force_flush(self, timeout_millis: int = 0) -> bool:
            return True

    handler = configure_logging("DEBUG", stream)
    configure_tracing(FileExporter())  # type: ignore[arg-type]
    yield
    from opentelemetry import trace

    provider = trace.get_tracer_provider()
    if hasattr(provider, "force_flush"):
        provider.force_flush()
    logging.getLogger().removeHandler(handler)
    stream.close()

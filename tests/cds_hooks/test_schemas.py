"""The typed CDS Hooks request: what passes, and the 400 messages for what does not."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from cds_service.cds_hooks.schemas import (
    REQUEST_MODELS,
    RequestError,
    parse_request,
    request_body_schema,
)
from cds_service.serving.hook_defs import HOOK_CONTEXT

PATIENT = "syn-pat-77"
GOOD: dict[str, Any] = {
    "hook": "encounter-start",
    "hookInstance": "d1577c69-dfbe-44ad-ba6d-3e05e953b2ea",
    "context": {"userId": "Practitioner/doc-1", "patientId": PATIENT, "encounterId": "enc-1"},
    "prefetch": {"patient": None},
}


def changed(**changes: Any) -> dict[str, Any]:
    body = copy.deepcopy(GOOD)
    body.update(changes)
    return body


def context(**changes: Any) -> dict[str, Any]:
    body = copy.deepcopy(GOOD)
    body["context"].update(changes)
    return body


def error(body: Any, hook: str = "encounter-start") -> str:
    with pytest.raises(RequestError) as info:
        parse_request(body, hook)
    message = str(info.value)
    assert PATIENT not in message
    return message


def test_a_good_request_is_typed_per_hook() -> None:
    call = parse_request(GOOD, "encounter-start")
    assert call.context.patientId == PATIENT and call.context.encounterId == "enc-1"
    assert call.prefetch == {"patient": None}


def test_patient_view_needs_no_encounter_and_null_means_absent() -> None:
    body = changed(hook="patient-view", context={"userId": "Patient/p", "patientId": PATIENT})
    body["context"]["encounterId"] = None
    assert parse_request(body, "patient-view").context.encounterId is None


def test_the_context_models_declare_the_hook_context_table() -> None:
    for hook, fields in HOOK_CONTEXT.items():
        model = REQUEST_MODELS[hook].model_fields["context"].annotation
        declared = {name: f.is_required() for name, f in model.model_fields.items()}  # type: ignore[union-attr]
        assert declared == fields


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ([1, 2], "request body must be a JSON object"),
        (changed(hook="order-sign"), "hook: this service serves 'encounter-start'"),
        (context(encounterId=None), "context.encounterId is required for encounter-start"),
        (context(patientId=17), "context.patientId must be a string"),
        (context(patientId="../Patient/x"), "context.patientId must be a FHIR id"),
        (
            context(userId="Patient/p"),
            "context.userId must be a reference to one of ['Practitioner', 'PractitionerRole']",
        ),
        (changed(hookInstance="a\nb"), "hookInstance: must not contain control characters"),
        (changed(fhirServer="ftp://x"), "fhirServer: fhirServer must be an http(s) base URL"),
        (changed(fhirServer="https://u:p@fhir.example"), "fhirServer: fhirServer must be"),
        (changed(context="nope"), "context: "),
    ],
)
def test_errors_name_the_field_never_the_value(body: Any, message: str) -> None:
    assert error(body).startswith(message)


def test_a_token_needs_a_server() -> None:
    token = {
        "access_token": "x",
        "token_type": "Bearer",
        "expires_in": 60,
        "scope": "s",
        "subject": "c",
    }
    assert "fhirServer is required when fhirAuthorization is sent" in error(
        changed(fhirAuthorization=token)
    )
    assert "token_type must be Bearer" in error(
        changed(fhirServer="https://fhir.example", fhirAuthorization=dict(token, token_type="MAC"))
    )


def test_missing_envelope_fields_are_named() -> None:
    for field in ("hook", "hookInstance", "context"):
        body = copy.deepcopy(GOOD)
        del body[field]
        assert error(body).startswith(f"{field}: ")


def test_openapi_body_offers_each_hooks_request() -> None:
    schema = request_body_schema()
    hooks = [option["properties"]["context"] for option in schema["anyOf"]]
    assert len(hooks) == len(REQUEST_MODELS)
    assert "$ref" not in str(schema)

"""The CDS Hooks 2.0 service request, validated before anything else looks at it.

Errors name the field that is wrong and never echo its value: request bodies carry patient data.
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import urlsplit

import httpx
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from cds_service.serving.hook_defs import HOOK_CONTEXT

_REFERENCE = re.compile(
    r"^(Practitioner|PractitionerRole|Patient|RelatedPerson)/[A-Za-z0-9\-.]{1,64}$"
)
_FHIR_ID = re.compile(r"^[A-Za-z0-9\-.]{1,64}$")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
USER_TYPES = {
    "patient-view": {"Practitioner", "PractitionerRole", "Patient", "RelatedPerson"},
    "encounter-start": {"Practitioner", "PractitionerRole"},
}


def _usable_base_url(value: str) -> bool:
    """An http(s) base URL that the standard library and httpx both parse (host, port in range,
    no control characters), so that the fallback can never fail on the URL itself; without
    user info, query or fragment, so that what the trusted-callers allow-list compares is what
    the fallback fetches from."""
    if not re.match(r"^https?://[^\s/]+", value) or _CONTROL.search(value):
        return False
    try:
        parts = urlsplit(value)
        parts.port  # noqa: B018 (raises ValueError when out of range)
        httpx.URL(value)
    except (ValueError, httpx.InvalidURL):
        return False
    if parts.query or parts.fragment or "@" in parts.netloc:
        return False
    return bool(parts.hostname)


class RequestError(ValueError):
    """A malformed or incomplete request: HTTP 400 with this message."""


class FhirAuthorization(BaseModel):
    model_config = ConfigDict(extra="allow")

    access_token: str = Field(min_length=1)
    token_type: str
    expires_in: int
    scope: str
    subject: str
    patient: str | None = None

    @field_validator("token_type")
    @classmethod
    def _bearer(cls, value: str) -> str:
        if value.lower() != "bearer":
            raise ValueError("token_type must be Bearer")
        return value


class HookRequest(BaseModel):
    model_config = ConfigDict(extra="allow")

    hook: str = Field(min_length=1)
    hookInstance: str = Field(min_length=1, max_length=128)
    fhirServer: str | None = None
    fhirAuthorization: FhirAuthorization | None = None
    context: dict[str, Any]
    prefetch: dict[str, Any] | None = None
    extension: dict[str, Any] | None = None

    @field_validator("hookInstance")
    @classmethod
    def _printable(cls, value: str) -> str:
        # stored in the audit table: PostgreSQL text cannot hold NUL, logs must not split lines
        if _CONTROL.search(value):
            raise ValueError("must not contain control characters")
        return value

    @field_validator("fhirServer")
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        if value is not None and not _usable_base_url(value):
            raise ValueError("fhirServer must be an http(s) base URL")
        return value

    @model_validator(mode="after")
    def _server_with_token(self) -> HookRequest:
        if self.fhirAuthorization is not None and self.fhirServer is None:
            raise ValueError("fhirServer is required when fhirAuthorization is sent")
        return self


def _first_error(exc: ValidationError) -> str:
    err = exc.errors(include_input=False, include_url=False)[0]
    location = ".".join(str(p) for p in err["loc"]) or "body"
    message = str(err["msg"]).removeprefix("Value error, ")
    return f"{location}: {message}"


def parse_request(body: Any, served_hook: str) -> HookRequest:
    if not isinstance(body, dict):
        raise RequestError("request body must be a JSON object")
    try:
        request = HookRequest.model_validate(body)
    except ValidationError as exc:
        raise RequestError(_first_error(exc)) from None
    if request.hook != served_hook:
        raise RequestError(f"hook: this service serves '{served_hook}', not the hook sent")
    fields = HOOK_CONTEXT[served_hook]
    for name, required in fields.items():
        value = request.context.get(name)
        if value is None:
            if required:
                raise RequestError(f"context.{name} is required for {served_hook}")
            continue
        if not isinstance(value, str):
            raise RequestError(f"context.{name} must be a string")
        if name == "userId":
            match = _REFERENCE.fullmatch(value)
            if match is None or match.group(1) not in USER_TYPES[served_hook]:
                allowed = sorted(USER_TYPES[served_hook])
                raise RequestError(f"context.userId must be a reference to one of {allowed}")
        elif not _FHIR_ID.fullmatch(value):
            raise RequestError(f"context.{name} must be a FHIR id")
    if request.extension is not None and not isinstance(request.extension, dict):
        raise RequestError("extension must be a JSON object")
    return request


def _inline(schema: Any, defs: dict[str, Any]) -> Any:
    if isinstance(schema, dict):
        ref = schema.get("$ref")
        if isinstance(ref, str) and ref.startswith("#/$defs/"):
            return _inline(defs[ref.rsplit("/", 1)[1]], defs)
        return {k: _inline(v, defs) for k, v in schema.items() if k != "$defs"}
    if isinstance(schema, list):
        return [_inline(v, defs) for v in schema]
    return schema


def request_body_schema() -> dict[str, Any]:
    """OpenAPI description of the service request (so fuzzers and integrators can read it)."""
    raw = HookRequest.model_json_schema()
    return dict(_inline(raw, raw.get("$defs", {})))


FEEDBACK_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["feedback"],
    "properties": {
        "feedback": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["card", "outcome", "outcomeTimestamp"],
                "properties": {
                    "card": {"type": "string"},
                    "outcome": {"type": "string", "enum": ["accepted", "overridden"]},
                    "acceptedSuggestions": {
                        "type": "array",
                        "items": {"type": "object", "properties": {"id": {"type": "string"}}},
                    },
                    "overrideReason": {
                        "type": "object",
                        "properties": {
                            "reason": {
                                "type": "object",
                                "properties": {
                                    "system": {"type": "string"},
                                    "code": {"type": "string"},
                                    "display": {"type": "string"},
                                },
                            },
                            "userComment": {"type": "string"},
                        },
                    },
                    "outcomeTimestamp": {"type": "string", "format": "date-time"},
                },
            },
        }
    },
}


def feedback_body_schema() -> dict[str, Any]:
    return FEEDBACK_SCHEMA

"""The CDS Hooks 2.0 service request, validated before anything else looks at it.

One request model per hook, whose ``context`` holds exactly the fields that hook defines (CDS
Hooks library: patient-view 1.1, encounter-start 1.0). Errors name the field that is wrong and
never echo its value: request bodies carry patient data.
"""

from __future__ import annotations

import re
from typing import Any, ClassVar
from urllib.parse import urlsplit

import httpx
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_core import ErrorDetails

from cds_service.text_checks import has_control_characters

_REFERENCE = re.compile(
    r"^(Practitioner|PractitionerRole|Patient|RelatedPerson)/[A-Za-z0-9\-.]{1,64}$"
)
_FHIR_ID = re.compile(r"^[A-Za-z0-9\-.]{1,64}$")
USER_TYPES = {
    "patient-view": {"Practitioner", "PractitionerRole", "Patient", "RelatedPerson"},
    "encounter-start": {"Practitioner", "PractitionerRole"},
}


def _usable_base_url(value: str) -> bool:
    """An http(s) base URL that the standard library and httpx both parse (host, port in range,
    no control characters), so that the fallback can never fail on the URL itself; without
    user info, query or fragment, so that what the trusted-callers allow-list compares is what
    the fallback fetches from."""
    if not re.match(r"^https?://[^\s/]+", value) or has_control_characters(value):
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


def _fhir_id(value: str) -> str:
    if not _FHIR_ID.fullmatch(value):
        raise ValueError("must be a FHIR id")
    return value


def _user_reference(value: str, hook: str) -> str:
    match = _REFERENCE.fullmatch(value)
    if match is None or match.group(1) not in USER_TYPES[hook]:
        raise ValueError(f"must be a reference to one of {sorted(USER_TYPES[hook])}")
    return value


class PatientViewContext(BaseModel):
    """patient-view 1.1: who looks at which patient (in which encounter, if any)."""

    model_config = ConfigDict(extra="allow")
    HOOK: ClassVar[str] = "patient-view"

    userId: str
    patientId: str
    encounterId: str | None = None

    @model_validator(mode="before")
    @classmethod
    def _null_is_absent(cls, data: Any) -> Any:
        """A null context field is an absent one (required ones then fail as missing)."""
        if isinstance(data, dict):
            return {k: v for k, v in data.items() if v is not None}
        return data

    @field_validator("userId")
    @classmethod
    def _user(cls, value: str) -> str:
        return _user_reference(value, cls.HOOK)

    @field_validator("patientId", "encounterId")
    @classmethod
    def _ids(cls, value: str | None) -> str | None:
        return None if value is None else _fhir_id(value)


class EncounterStartContext(PatientViewContext):
    """encounter-start 1.0: a clinician starts an encounter; the encounter is required."""

    HOOK: ClassVar[str] = "encounter-start"

    encounterId: str


class HookRequest(BaseModel):
    """The request envelope common to every hook (CDS Hooks 2.0 "HTTP Request")."""

    model_config = ConfigDict(extra="allow")

    hook: str = Field(min_length=1)
    hookInstance: str = Field(min_length=1, max_length=128)
    fhirServer: str | None = None
    fhirAuthorization: FhirAuthorization | None = None
    context: PatientViewContext
    prefetch: dict[str, Any] | None = None
    extension: dict[str, Any] | None = None

    @field_validator("hookInstance")
    @classmethod
    def _printable(cls, value: str) -> str:
        # stored in the audit table: PostgreSQL text cannot hold NUL, logs must not split lines
        if has_control_characters(value):
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


class PatientViewRequest(HookRequest):
    context: PatientViewContext


class EncounterStartRequest(HookRequest):
    context: EncounterStartContext


REQUEST_MODELS: dict[str, type[HookRequest]] = {
    "patient-view": PatientViewRequest,
    "encounter-start": EncounterStartRequest,
}


def _location(loc: tuple[int | str, ...]) -> str:
    """``feedback[0].card`` rather than ``feedback.0.card``."""
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else f".{part}" if out else str(part)
    return out or "body"


def _message(err: ErrorDetails) -> str:
    return str(err["msg"]).removeprefix("Value error, ")


def validation_message(exc: ValidationError) -> str:
    """The first problem, named by its place in the body; never the value sent."""
    err = exc.errors(include_input=False, include_url=False)[0]
    return f"{_location(err['loc'])}: {_message(err)}"


def _context_message(err: ErrorDetails, hook: str) -> str | None:
    """Context errors in the words the service has always used (``context.X must be ...``)."""
    loc = err["loc"]
    if len(loc) != 2 or loc[0] != "context":
        return None
    name = loc[1]
    if err["type"] == "missing":
        return f"context.{name} is required for {hook}"
    if err["type"] == "string_type":
        return f"context.{name} must be a string"
    return f"context.{name} {_message(err)}"


def parse_request(body: Any, served_hook: str) -> HookRequest:
    if not isinstance(body, dict):
        raise RequestError("request body must be a JSON object")
    try:
        request = REQUEST_MODELS[served_hook].model_validate(body)
    except ValidationError as exc:
        first = exc.errors(include_input=False, include_url=False)[0]
        message = _context_message(first, served_hook) or validation_message(exc)
        raise RequestError(message) from None
    if request.hook != served_hook:
        raise RequestError(f"hook: this service serves '{served_hook}', not the hook sent")
    return request


def inline_schema(model: type[BaseModel]) -> dict[str, Any]:
    """A model's JSON schema with its ``$defs`` inlined, as an OpenAPI request body."""
    raw = model.model_json_schema()
    return dict(_inline(raw, raw.get("$defs", {})))


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
    """OpenAPI description of the service request (so fuzzers and integrators can read it):
    any of the hooks' requests."""
    return {"anyOf": [inline_schema(model) for model in REQUEST_MODELS.values()]}

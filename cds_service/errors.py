"""HTTP errors as FHIR OperationOutcomes that name the problem and carry no patient data."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

import orjson
from fastapi.exception_handlers import (
    http_exception_handler,
    request_validation_exception_handler,
)
from fastapi.exceptions import RequestValidationError
from fhir.resources.R4B.operationoutcome import OperationOutcome, OperationOutcomeIssue
from starlette.applications import Starlette
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import Request
from starlette.responses import Response

log = logging.getLogger("cds_service")

ISSUE_CODES = {
    400: "invalid",
    401: "login",
    403: "forbidden",
    404: "not-found",
    405: "not-supported",
    412: "processing",
    413: "too-costly",
    415: "not-supported",
    500: "exception",
    503: "transient",
}


class ServiceError(Exception):
    """An answer other than 200, with a message safe to show the caller (no patient data);
    ``log_detail`` goes to the service's log only (what an integrator needs to fix the call)."""

    def __init__(self, status: int, message: str, *, log_detail: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.log_detail = log_detail


def outcome(status: int, message: str) -> dict[str, Any]:
    """The OperationOutcome body, built and validated as a FHIR R4 resource (fhir.resources)."""
    resource = OperationOutcome(
        issue=[
            OperationOutcomeIssue(
                severity="error",
                code=ISSUE_CODES.get(status, "processing"),
                diagnostics=message,
            )
        ]
    )
    body: dict[str, Any] = resource.model_dump(mode="json", exclude_none=True)
    return body


def json_response(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(
        orjson.dumps(body), status_code=status, media_type="application/json", headers=headers
    )


def error_response(status: int, message: str) -> Response:
    return json_response(outcome(status, message), status)


# RFC 6750 section 3.1: the OAuth error code of a refused bearer token, in the challenge and
# in the log line of the refusal.
INVALID_TOKEN = "invalid_token"  # noqa: S105 (an error code, not a secret)


def route_of(request: Request) -> str:
    """The route template (``/cds-services/{service_id}``): never the path as sent (it may name
    anything) nor a query string."""
    route = request.scope.get("route")
    path = getattr(route, "path_format", None) or "(no matching route)"
    return f"{request.method} {str(path)[:200]}"


async def _service_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ServiceError)
    response = error_response(exc.status, exc.message)
    code = None
    if exc.status == 401:
        code = INVALID_TOKEN
        response.headers["WWW-Authenticate"] = f'Bearer error="{code}"'
    # Every refusal names its reason in the log (the message carries no patient data).
    reason = exc.message + (f" ({code})" if code else "")
    if exc.log_detail:
        reason += f"; {exc.log_detail}"
    service = request.path_params.get("service_id")
    extra: dict[str, Any] = {"status": exc.status}
    if isinstance(service, str):
        extra["service_id"] = service[:128]
    log.info("refused %d %s: %s", exc.status, route_of(request), reason, extra=extra)
    return response


async def _http_error(request: Request, exc: Exception) -> Response:
    """Starlette's own refusals (no such route, method not allowed): logged like the others,
    answered as FastAPI answers them."""
    assert isinstance(exc, StarletteHTTPException)
    log.info(
        "refused %d %s: %s",
        exc.status_code,
        route_of(request),
        str(exc.detail)[:200],
        extra={"status": exc.status_code},
    )
    return await http_exception_handler(request, exc)


async def _invalid_parameters(request: Request, exc: Exception) -> Response:
    """A parameter that failed FastAPI's validation: the log names where, never the value."""
    assert isinstance(exc, RequestValidationError)
    where = sorted({".".join(str(p) for p in e.get("loc", ())) for e in exc.errors()})[:5]
    log.info(
        "refused 422 %s: invalid %s", route_of(request), ", ".join(where), extra={"status": 422}
    )
    return await request_validation_exception_handler(request, exc)


async def _unexpected(_request: Request, exc: Exception) -> Response:
    """A 500 names no detail: the exception text may hold request data."""
    log.error("unhandled error: %s", type(exc).__name__)
    return error_response(500, "Internal Server Error")


HANDLERS: dict[type[Exception], Callable[[Request, Exception], Awaitable[Response]]] = {
    ServiceError: _service_error,
    StarletteHTTPException: _http_error,
    RequestValidationError: _invalid_parameters,
    Exception: _unexpected,
}


def install_error_handlers(app: Starlette) -> None:
    """Every error leaves as an OperationOutcome, chosen by the exception's class."""
    for exc_class, handler in HANDLERS.items():
        app.add_exception_handler(exc_class, handler)

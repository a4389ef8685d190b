"""HTTP errors as FHIR OperationOutcomes that name the problem and carry no patient data."""

from __future__ import annotations

from typing import Any

import orjson
from starlette.responses import Response

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
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def outcome(status: int, message: str) -> dict[str, Any]:
    return {
        "resourceType": "OperationOutcome",
        "issue": [
            {
                "severity": "error",
                "code": ISSUE_CODES.get(status, "processing"),
                "diagnostics": message,
            }
        ],
    }


def json_response(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(
        orjson.dumps(body), status_code=status, media_type="application/json", headers=headers
    )


def error_response(status: int, message: str) -> Response:
    return json_response(outcome(status, message), status)

"""The PHI scrubber: one test per pinned pattern, plus the JSON log format."""

from __future__ import annotations

import io
import json
import logging

import pytest

from cds_service.observability.logs import REDACTED, SCRUB_PATTERNS, configure_logging, scrub

CASES = {
    "bearer_token": ("auth header Bearer abc.DEF-123_x=", "abc.DEF-123_x"),
    # "missing bearer token" stays readable: a token is at least 8 characters
    "jwt": ("token eyJhbGciOiJFUzM4NCJ9.eyJpc3MiOiJ4In0.c2lnbmF0dXJl seen", "eyJpc3MiOiJ4In0"),
    "access_token_field": ('{"access_token": "s3cr3t-tok", "x": 1}', "s3cr3t-tok"),
    "fhir_patient_reference": ("fetched Patient/syn-ed-1 ok", "syn-ed-1"),
    "patient_search_parameter": ("GET /Observation?patient=syn-42&code=x", "syn-42"),
    "patient_id_field": ("context patientId=syn-77 done", "syn-77"),
    "name_field": ('{"family": "Zzyzxsynthetic", "given": ["Testa"]}', "Zzyzxsynthetic"),
    "birth_date_field": ('{"birthDate": "1941-04-01"}', "1941-04-01"),
    "identifier_field": ('"identifier": [{"value": "SYN-MRN-4711"}]', "SYN-MRN-4711"),
    "bsn": ("bsn 123456782 found", "123456782"),
    "email": ("mail testa@example.org now", "testa@example.org"),
}


def test_every_pattern_has_a_case() -> None:
    assert set(CASES) == set(SCRUB_PATTERNS)


@pytest.mark.parametrize("name", sorted(CASES))
def test_pattern_redacts(name: str) -> None:
    text, secret = CASES[name]
    assert SCRUB_PATTERNS[name].search(text), name
    cleaned = scrub(text)
    assert secret not in cleaned and REDACTED in cleaned


def test_harmless_text_is_untouched() -> None:
    text = "card returned service=ed-admission-risk latency_ms=4.2 model=ed-admission 1.0.0"
    assert scrub(text) == text


def test_json_logs_are_scrubbed_including_args_and_exceptions() -> None:
    stream = io.StringIO()
    handler = configure_logging("DEBUG", stream)
    try:
        log = logging.getLogger("cds_service.test")
        log.info("loaded %s for %s", "Patient/syn-ed-1", "Bearer tok.en-12345")
        try:
            raise ValueError("bad birthDate: 1941-04-01 of Patient/syn-ed-1")
        except ValueError:
            log.exception("failed")
        logging.getLogger("httpx").info("HTTP Request: GET https://f/Observation?patient=syn-1")
    finally:
        logging.getLogger().removeHandler(handler)
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert lines[0]["msg"] == f"loaded {REDACTED} for {REDACTED}"
    text = stream.getvalue()
    assert "syn-ed-1" not in text and "1941-04-01" not in text and "tok.en-12345" not in text
    assert "syn-1" not in text  # httpx is held at WARNING
    assert any(entry.get("error", "").startswith("ValueError") for entry in lines)


def test_uvicorn_access_log_is_off_and_its_error_log_is_kept() -> None:
    """The access log line holds the query string (OAuth code, SMART launch, mrn=...)."""
    stream = io.StringIO()
    handler = configure_logging("DEBUG", stream)
    try:
        logging.getLogger("uvicorn.access").info(
            '%s - "%s %s HTTP/%s" %d',
            "127.0.0.1:5000",
            "GET",
            "/smart/callback?code=canary-code&state=canary-state&mrn=canary-mrn",
            "1.1",
            200,
        )
        logging.getLogger("uvicorn.error").error("worker failed to boot")
    finally:
        logging.getLogger().removeHandler(handler)
    text = stream.getvalue()
    assert "canary" not in text
    assert "worker failed to boot" in text

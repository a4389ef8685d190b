"""Structured JSON logs without patient data (human-readable lines in development).

First line of defence: the code logs no identifiers, names, birth dates, raw resources or tokens.
Second line: every record passes a scrubber with a pinned, tested pattern list before it is written,
and chatty libraries that log URLs (httpx logs full request URLs, including ``patient=`` search
parameters) are held at WARNING.
"""

from __future__ import annotations

import json
import logging
import re
import sys
from datetime import UTC, datetime
from typing import IO, Any

REDACTED = "[redacted]"

# name -> pattern; each has a test in tests/test_logging_scrubber.py.
SCRUB_PATTERNS: dict[str, re.Pattern[str]] = {
    "bearer_token": re.compile(r"(?i)\bbearer\s+[A-Za-z0-9\-._~+/]{8,}=*"),
    "jwt": re.compile(r"\beyJ[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]*"),
    "access_token_field": re.compile(r"(?i)[\"']?access_token[\"']?\s*[:=]\s*[\"']?[^\s\"',}]+"),
    "fhir_patient_reference": re.compile(
        r"\b(Patient|Encounter|RelatedPerson|Person)/[A-Za-z0-9\-.]{1,64}"
    ),
    "patient_search_parameter": re.compile(
        r"(?i)\b(patient|subject|encounter|identifier|name|family|given|birthdate)=[^&\s\"']+"
    ),
    "patient_id_field": re.compile(
        r"(?i)[\"']?(patientId|encounterId|userId)[\"']?\s*[:=]\s*[\"']?[^\s\"',}]+"
    ),
    "name_field": re.compile(
        r"(?i)[\"'](family|given|name|text)[\"']\s*:\s*(\[[^\]]*\]|[\"'][^\"']*[\"'])"
    ),
    "birth_date_field": re.compile(r"(?i)[\"']?birth_?date[\"']?\s*[:=]\s*[\"']?[0-9-]{4,10}"),
    "identifier_field": re.compile(r"(?i)[\"']identifier[\"']\s*:\s*\[[^\]]*\]"),
    "bsn": re.compile(r"(?<![\d.])\d{9}(?![\d.])"),
    "email": re.compile(r"\b[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}\b"),
}

QUIET_LOGGERS = ("httpx", "httpcore", "urllib3", "hpack", "markdown_it")


def scrub(text: str) -> str:
    for pattern in SCRUB_PATTERNS.values():
        text = pattern.sub(REDACTED, text)
    return text


class ScrubFilter(logging.Filter):
    """Rewrites the record's message (args merged) through :func:`scrub`."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except (TypeError, ValueError):
            message = str(record.msg)
        record.msg = scrub(message)
        record.args = None
        if record.exc_info and record.exc_info[1] is not None:
            exc = record.exc_info[1]
            record.exc_info = None
            record.exc_text = f"{type(exc).__name__}: {scrub(str(exc))}"
        return True


EXTRA_FIELDS = (
    "service_id",
    "hook",
    "model",
    "model_version",
    "status",
    "card_kind",
    "latency_ms",
    "hook_instance",
)


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(),
            "level": record.levelname,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for key in EXTRA_FIELDS:
            if hasattr(record, key):
                entry[key] = getattr(record, key)
        if record.exc_text:
            entry["error"] = record.exc_text
        return json.dumps(entry, ensure_ascii=False)


class ConsoleFormatter(logging.Formatter):
    """One line a person reads in a terminal: time, level, message, then the same fields the
    JSON line carries as ``key=value`` (development; log collectors get JSON)."""

    def format(self, record: logging.LogRecord) -> str:
        when = datetime.fromtimestamp(record.created, UTC).strftime("%H:%M:%S")
        fields = " ".join(
            f"{key}={getattr(record, key)}" for key in EXTRA_FIELDS if hasattr(record, key)
        )
        line = f"{when} {record.levelname:<7} {record.getMessage()}"
        line = line.replace("\n", " ").replace("\r", " ")  # one record, one line
        if fields:
            line += f"  [{fields}]"
        if record.exc_text:
            line += f"  error={record.exc_text}"
        return line


FORMATTERS: dict[str, type[logging.Formatter]] = {
    "json": JsonFormatter,
    "console": ConsoleFormatter,
}


def configure_logging(
    level: str = "INFO", stream: IO[str] | None = None, fmt: str = "json"
) -> logging.Handler:
    """Install one handler (``fmt``: json or console) with the scrubber on the root logger
    (idempotent per stream)."""
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(FORMATTERS[fmt]())
    handler.addFilter(ScrubFilter())
    root = logging.getLogger()
    for existing in list(root.handlers):
        if getattr(existing, "_cds_handler", False):
            root.removeHandler(existing)
    handler._cds_handler = True  # type: ignore[attr-defined]
    root.addHandler(handler)
    root.setLevel(level.upper())
    for name in QUIET_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)
    for name in ("uvicorn", "uvicorn.error"):
        logger = logging.getLogger(name)
        logger.handlers = []
        logger.propagate = True
    # The access log writes every path with its query string (OAuth code and state, SMART
    # launch, identifiers in search parameters): off, as docs/security.md says.
    access = logging.getLogger("uvicorn.access")
    access.handlers = []
    access.propagate = False
    access.disabled = True
    return handler

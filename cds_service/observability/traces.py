"""OpenTelemetry traces: one span per CDS call with stage timings, and no patient data.

Spans carry the service, hook, model version, environment, card kind, band and stage durations;
never patient or encounter ids, tokens or resource contents. Exporting failures are the SDK's to
log; they never fail a request.
"""

from __future__ import annotations

import os
from urllib.parse import parse_qsl

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import Span, SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter, SpanExporter

tracer = trace.get_tracer("cds_service")
_configured = False
_URL_ATTRIBUTES = ("url.full", "http.url", "http.target")


class QueryStripper(SpanProcessor):
    """FastAPI's own server spans carry the request's query string (`url.query`), with values
    such as an OAuth `code`, a SMART `launch` or a `patient=`: keep the parameter names only,
    and cut the query off any full URL attribute. Runs at span start, before any export."""

    def on_start(self, span: Span, parent_context: otel_context.Context | None = None) -> None:
        attributes = span.attributes or {}
        query = attributes.get("url.query")
        if isinstance(query, str) and query:
            names = sorted({k for k, _ in parse_qsl(query, keep_blank_values=True)})
            span.set_attribute("url.query", "&".join(names))
        for key in _URL_ATTRIBUTES:
            value = attributes.get(key)
            if isinstance(value, str) and "?" in value:
                span.set_attribute(key, value.split("?", 1)[0])


def configure_tracing(exporter: SpanExporter | None = None, environment: str = "") -> None:
    """Install a tracer provider: the given exporter, or the console one when
    ``CDS_OTEL_CONSOLE=1``; with neither, spans are not recorded (no-op provider)."""
    global _configured
    if _configured and exporter is None:
        return
    if exporter is None and os.environ.get("CDS_OTEL_CONSOLE") != "1":
        return
    provider = TracerProvider(
        resource=Resource.create(
            {"service.name": "cds-risk-service", "deployment.environment": environment}
        )
    )
    provider.add_span_processor(QueryStripper())
    provider.add_span_processor(BatchSpanProcessor(exporter or ConsoleSpanExporter()))
    trace.set_tracer_provider(provider)
    _configured = True

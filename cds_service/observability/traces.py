"""OpenTelemetry traces: one span per CDS call with stage timings, and no patient data.

Spans carry the service, hook, model version, environment, card kind, band and stage durations;
never patient or encounter ids, tokens or resource contents. Exporting failures are the SDK's to
log; they never fail a request.
"""

from __future__ import annotations

import os

from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter, SpanExporter

tracer = trace.get_tracer("cds_service")
_configured = False


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
    provider.add_span_processor(BatchSpanProcessor(exporter or ConsoleSpanExporter()))
    trace.set_tracer_provider(provider)
    _configured = True

"""ASGI factory for uvicorn (``cds_service.asgi:app`` with ``factory=True``)."""

from __future__ import annotations

from fastapi import FastAPI

from cds_service.app import create_app


def app() -> FastAPI:
    """Each worker process configures its own logging and tracing, then builds the app."""
    import os

    from cds_service.logging_setup import configure_logging
    from cds_service.settings import Settings
    from cds_service.telemetry import configure_tracing

    configure_logging(os.environ.get("CDS_LOG_LEVEL", "INFO"))
    settings = Settings()
    configure_tracing(environment=settings.environment.value)
    return create_app(settings)

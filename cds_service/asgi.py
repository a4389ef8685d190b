"""ASGI factory for uvicorn (``cds_service.asgi:app`` with ``factory=True``)."""

from __future__ import annotations

from fastapi import FastAPI

from cds_service.main import create_app


def app() -> FastAPI:
    """Each worker process configures its own logging and tracing, then builds the app."""
    import os

    from cds_service.config import Settings
    from cds_service.observability.logs import configure_logging
    from cds_service.observability.traces import configure_tracing

    settings = Settings()
    configure_logging(os.environ.get("CDS_LOG_LEVEL", "INFO"), fmt=settings.effective_log_format)
    configure_tracing(environment=settings.environment.value)
    return create_app(settings)

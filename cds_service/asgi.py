"""ASGI factory for uvicorn (``cds_service.asgi:app`` with ``factory=True``)."""

from __future__ import annotations

from fastapi import FastAPI

from cds_service.app import create_app


def app() -> FastAPI:
    return create_app()

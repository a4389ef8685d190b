"""FastAPI dependencies: what a route may ask for, as ``Annotated`` aliases.

Routes stay a few lines long and tests override one dependency (``app.dependency_overrides``)
instead of starting a whole service.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import Depends, Request

from cds_service.audit.writer import AuditWriter
from cds_service.config import Settings
from cds_service.serving.registry import Registry
from cds_service.state import ServiceState


def get_state(request: Request) -> ServiceState:
    return request.app.state.cds  # type: ignore[no-any-return]


State = Annotated[ServiceState, Depends(get_state)]


def get_settings(state: State) -> Settings:
    return state.settings


def get_registry(state: State) -> Registry:
    return state.registry


def get_writer(state: State) -> AuditWriter:
    return state.writer


def get_now(state: State) -> datetime:
    return state.clock()


SettingsDep = Annotated[Settings, Depends(get_settings)]
RegistryDep = Annotated[Registry, Depends(get_registry)]
WriterDep = Annotated[AuditWriter, Depends(get_writer)]
Now = Annotated[datetime, Depends(get_now)]

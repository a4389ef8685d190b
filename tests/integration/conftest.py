"""Fixtures for the end-to-end tests: one running service per module and database backend."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.utils.service import BACKENDS, Service, running_service


@pytest.fixture(scope="module", params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture(scope="module")
def service(backend: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    yield from running_service(backend, tmp_path_factory.mktemp(f"svc-{backend}"))


@pytest.fixture()
def svc(service: Service) -> Iterator[Service]:
    """The module's service with a clean FHIR mock for this test."""
    service.fhir.clear()
    service.fhir.reset()
    yield service

"""A freshly migrated database per backend, for tests comparing the schema with its declarations."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from cds_service.db.engine import upgrade
from tests.utils.service import BACKENDS, Database, new_database


@pytest.fixture(params=BACKENDS)
def migrated(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Database]:
    db = new_database(request.param, tmp_path)
    try:
        upgrade(db.engine)
        yield db
    finally:
        db.close()

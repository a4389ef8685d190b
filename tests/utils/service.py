"""Factories for end-to-end service tests: a real server on loopback, real SQLite/PostgreSQL
databases, and a respx-mocked FHIR server at the HTTP layer."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
import respx
import sqlalchemy as sa

from cds_service.config import Settings
from cds_service.db.engine import make_engine, normalize_url
from cds_service.main import create_app
from tests.utils.server import ServerThread

# A fixed "now" at a non-UTC-looking time; cases are built relative to it.
NOW = datetime(2026, 3, 14, 9, 30, 15, tzinfo=UTC)
FHIR_BASE = "https://fhir.example.org/r4"
PUBLIC_BASE = "https://cds.example.org"


def postgres_base_url() -> str | None:
    return os.environ.get("CDS_TEST_POSTGRES_URL") or None


BACKENDS = ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]


class Database:
    def __init__(self, url: str, cleanup: Any = None) -> None:
        self.url = url
        self.engine = make_engine(url)
        self._cleanup = cleanup

    def rows(self, sql: str, **params: Any) -> list[dict[str, Any]]:
        with self.engine.connect() as conn:
            return [dict(r._mapping) for r in conn.execute(sa.text(sql), params)]

    def close(self) -> None:
        self.engine.dispose()
        if self._cleanup:
            self._cleanup()


def new_database(kind: str, tmp: Path) -> Database:
    if kind == "sqlite":
        return Database(f"sqlite:///{tmp / 'audit.sqlite3'}")
    base = postgres_base_url()
    if base is None:
        pytest.skip("PostgreSQL tests skipped: set CDS_TEST_POSTGRES_URL to run them")
    schema = f"t_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(normalize_url(base))
    try:
        with admin.begin() as conn:
            conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    except sa.exc.OperationalError as exc:
        pytest.fail(f"CDS_TEST_POSTGRES_URL is set but PostgreSQL is unreachable: {exc}")
    sep = "&" if "?" in base else "?"
    url = f"{base}{sep}options=-csearch_path%3D{schema}"

    def drop() -> None:
        with admin.begin() as conn:
            conn.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()

    return Database(url, drop)


def make_settings(db_url: str, tmp: Path, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "database_url": db_url,
        "spool_dir": tmp / "spool",
        "public_base_url": PUBLIC_BASE,
        "environment": "development",
        "spool_replay_seconds": 0.2,
        # Tests read a card's row right after the call: on a loaded test machine a healthy write
        # must not fall past the 200 ms production budget into the spool. Fault tests set 200.
        "audit_budget_ms": 3000,
        "fhir_retries": 2,
        "auth_disabled": True,
    }
    values.update(overrides)
    return Settings(**values)


class Service:
    """A running service plus the handles a test needs to play the EHR."""

    def __init__(
        self, server: ServerThread, db: Database, fhir: respx.MockRouter, settings: Settings
    ) -> None:
        self.server = server
        self.db = db
        self.fhir = fhir
        self.settings = settings
        self.client = httpx.Client(base_url=server.url, timeout=10)

    def call(self, service_id: str, body: Any, **kw: Any) -> httpx.Response:
        return self.client.post(f"/cds-services/{service_id}", json=body, **kw)

    def card_row(self, card_uuid: str) -> dict[str, Any]:
        rows = self.db.rows("SELECT * FROM v_cards WHERE card_uuid = :u", u=card_uuid)
        assert len(rows) == 1, f"expected one audit row for the card, found {len(rows)}"
        return rows[0]


def running_service(backend: str, tmp: Path, **overrides: Any) -> Iterator[Service]:
    """A real server on a fresh database with a respx-mocked FHIR server (for fixtures)."""
    db = new_database(backend, tmp)
    router = respx.MockRouter(assert_all_called=False, assert_all_mocked=True)
    settings = make_settings(db.url, tmp, **overrides)
    app = create_app(
        settings, clock=lambda: NOW, transport=httpx.MockTransport(router.async_handler)
    )
    try:
        with ServerThread(app) as server:
            svc = Service(server, db, router, settings)
            yield svc
            svc.client.close()
    finally:
        db.close()

"""The tables declared in cds_service/db/tables.py are exactly what the migrations build.

Both are written by hand; this test is what keeps them from drifting apart (they once did: two
indexes existed only in the migrations). It runs on SQLite and, with CDS_TEST_POSTGRES_URL set,
on PostgreSQL.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlmodel import SQLModel

import cds_service.db.tables  # noqa: F401  (registers the tables on SQLModel.metadata)
from tests.utils.service import Database


def _literal(default: str | None) -> str | None:
    """SQLite reflects a default as ``('')`` where it was declared ``''``: compare the literal."""
    if default is None:
        return None
    text = default.strip()
    while text.startswith("(") and text.endswith(")"):
        text = text[1:-1].strip()
    return text.strip("'")


def _server_default_differs(
    context: MigrationContext,
    _inspected_column: Any,
    _metadata_column: Any,
    inspected_default: str | None,
    _metadata_default: Any,
    rendered_metadata_default: str | None,
) -> bool | None:
    """None hands PostgreSQL to Alembic's own comparison (it asks the server)."""
    if context.dialect.name != "sqlite":
        return None
    return _literal(inspected_default) != _literal(rendered_metadata_default)


def _differences(db: Database) -> list[Any]:
    with db.engine.connect() as conn:
        context = MigrationContext.configure(
            conn, opts={"compare_type": True, "compare_server_default": _server_default_differs}
        )
        return list(compare_metadata(context, SQLModel.metadata))


def test_metadata_matches_migrated_schema(migrated: Database) -> None:
    assert _differences(migrated) == []


def _kinds(differences: list[Any]) -> list[str]:
    return [d[0] if isinstance(d, tuple) else d[0][0] for d in differences]


def test_the_check_sees_a_missing_index(migrated: Database) -> None:
    """Guards the guard: an index dropped from the database shows up as a difference."""
    with migrated.engine.begin() as conn:
        conn.execute(sa.text("DROP INDEX ix_deployments_model_env"))
    assert _kinds(_differences(migrated)) == ["add_index"]


def test_the_check_sees_a_changed_default(migrated: Database) -> None:
    column = SQLModel.metadata.tables["alerts"].c.feature
    saved = column.server_default
    column.server_default = sa.DefaultClause("x")
    try:
        assert _kinds(_differences(migrated)) == ["modify_default"]
    finally:
        column.server_default = saved

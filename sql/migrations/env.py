"""Alembic environment: the connection comes from cds_service.db.engine, never a config file."""

from __future__ import annotations

from alembic import context
from sqlmodel import SQLModel

import cds_service.db.tables  # noqa: F401  (registers the tables)

target_metadata = SQLModel.metadata
connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError("run migrations through `cds-service db upgrade` or the service start-up")
context.configure(connection=connection, target_metadata=target_metadata, render_as_batch=True)
with context.begin_transaction():
    context.run_migrations()

"""The audit database schema: ``db upgrade``."""

from __future__ import annotations

from typing import Annotated

import typer

db_app = typer.Typer(help="Database schema (Alembic migrations).", no_args_is_help=True)


@db_app.command("upgrade")
def db_upgrade(revision: Annotated[str, typer.Argument()] = "head") -> None:
    """Migrate the audit database at CDS_DATABASE_URL to REVISION."""
    from cds_service.config import Settings
    from cds_service.db.engine import make_engine, upgrade

    upgrade(make_engine(Settings().database_url), revision)
    typer.echo(f"database at {revision}")

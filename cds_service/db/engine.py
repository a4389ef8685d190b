"""Engine creation and schema migrations (Alembic) for SQLite and PostgreSQL."""

from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from cds_service.db.locks import AdvisoryLock, transaction_lock
from cds_service.paths import PROJECT_ROOT

MIGRATIONS = PROJECT_ROOT / "sql" / "migrations"

# PostgreSQL: fail fast on an unreachable server, notice a dead peer (TCP keepalives, and
# tcp_user_timeout for unacknowledged data), and bound statements and idle transactions. The
# request path does not rely on these (it has its own per-call budget); they free connections and
# worker threads left behind by a fault. Migrations and monitoring set their own statement limit
# if they ever need longer.
POOL_TIMEOUT_SECONDS = 2.0
STATEMENT_TIMEOUT_MS = 30_000
IDLE_IN_TRANSACTION_MS = 60_000
POSTGRES_CONNECT_ARGS = {
    "connect_timeout": 3,
    "keepalives": 1,
    "keepalives_idle": 10,
    "keepalives_interval": 3,
    "keepalives_count": 3,
    "tcp_user_timeout": 10_000,
}


def normalize_url(url: str) -> str:
    """Use the psycopg 3 driver for plain postgresql:// URLs."""
    if url.startswith("postgresql://") or url.startswith("postgres://"):
        return "postgresql+psycopg://" + url.split("://", 1)[1]
    return url


def make_engine(url: str) -> Engine:
    url = normalize_url(url)
    if url.startswith("sqlite"):
        path = url.split("///", 1)[1] if "///" in url else ""
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        engine = sa.create_engine(url, connect_args={"timeout": 2.0, "check_same_thread": False})

        @sa.event.listens_for(engine, "connect")
        def _pragmas(dbapi_conn, _record):  # type: ignore[no-untyped-def]
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute("PRAGMA busy_timeout=2000")
            cur.close()

        return engine
    engine = sa.create_engine(
        url,
        pool_pre_ping=True,
        pool_size=5,
        max_overflow=5,
        pool_timeout=POOL_TIMEOUT_SECONDS,
        connect_args=POSTGRES_CONNECT_ARGS,
    )

    @sa.event.listens_for(engine, "connect")
    def _session(dbapi_conn, _record):  # type: ignore[no-untyped-def]
        # UTC sessions: day boundaries in the views must not depend on the server's zone.
        # Timeouts: a statement or an abandoned transaction never holds a connection for long.
        cur = dbapi_conn.cursor()
        cur.execute("SET TIME ZONE 'UTC'")
        cur.execute(f"SET statement_timeout = {STATEMENT_TIMEOUT_MS}")
        cur.execute(f"SET idle_in_transaction_session_timeout = {IDLE_IN_TRANSACTION_MS}")
        cur.close()
        dbapi_conn.commit()

    return engine


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Bring the schema to ``revision``; on PostgreSQL one replica migrates at a time. Alembic
    is imported here: a production worker (migrations are the deployment's own step) never
    loads it."""
    from alembic import command
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    with engine.begin() as conn:
        transaction_lock(conn, AdvisoryLock.MIGRATIONS)
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, revision)

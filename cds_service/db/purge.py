"""The purge job: archive a period of an audit table to Parquet, delete it, and record what went.

One transaction per run holds the deployment trail's lock: the rows are written to Parquet, then
deleted (the delete must remove exactly the rows archived, or nothing is deleted), then one
hash-chained record per table says which table, which period, how many rows and the sha256 of the
archive file. The records are part of the chain that ``cds-service audit verify`` walks, so a purge
nobody recorded, or an edited count, shows as a gap: the trail is never purged itself.

On SQLite the transaction holds the database's write lock for its length (card writes wait or go
to the spool and are replayed); on PostgreSQL only other purges and deployments wait.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine
from sqlmodel import SQLModel

from cds_service.db import tables as _tables  # noqa: F401  (declares the tables)
from cds_service.db.archive import archive_rows, file_sha256
from cds_service.db.deployments import (
    PURGE_ACTION,
    RETENTION_RECORD,
    all_records,
    append_locked,
    lock_trail,
)
from cds_service.db.retention import RETAINED, RetainedTable

__all__ = ["PurgeMismatch", "PurgedTable", "purge", "verify_archives"]


class PurgeMismatch(RuntimeError):
    """The delete would remove other rows than those archived; nothing was deleted."""


@dataclass(frozen=True, slots=True)
class PurgedTable:
    table: str
    before: datetime
    rows: int
    oldest: datetime | None = None
    newest: datetime | None = None
    file: Path | None = None
    sha256: str | None = None
    record_hash: str | None = None


def _table(name: str) -> sa.Table:
    return SQLModel.metadata.tables[name]


def _selections(spec: RetainedTable, before: datetime) -> list[tuple[str, str, Any]]:
    """(table, time column, WHERE) in delete order: a card's feedback and outcomes first."""
    main = _table(spec.name)
    in_period = main.c[spec.time_column] < before
    out: list[tuple[str, str, Any]] = []
    for dep in spec.dependents:
        t = _table(dep.name)
        period_cards = sa.select(main.c.card_uuid).where(in_period)
        card_exists = sa.exists().where(main.c.card_uuid == t.c.card_uuid)
        where = sa.or_(
            t.c.card_uuid.in_(period_cards),
            sa.and_(~card_exists, t.c[dep.time_column] < before),
        )
        out.append((dep.name, dep.time_column, where))
    out.append((spec.name, spec.time_column, in_period))
    return out


def _count(conn: Connection, table: str, where: Any) -> int:
    return int(
        conn.execute(sa.select(sa.func.count()).select_from(_table(table)).where(where)).scalar()
        or 0
    )


def _stamp(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")


def _iso(moment: datetime | None) -> str | None:
    return moment.astimezone(UTC).isoformat() if moment else None


def purge(
    engine: Engine,
    before_by_table: dict[str, datetime],
    *,
    archive_dir: Path,
    by: str,
    reason: str,
    environment: str,
    now: datetime,
    dry_run: bool = False,
) -> list[PurgedTable]:
    """Purge each table's rows older than its cutoff (dependents with their cards)."""
    done: list[PurgedTable] = []
    written: list[Path] = []
    try:
        with engine.begin() as conn:
            if not dry_run:
                lock_trail(conn)
                if conn.dialect.name == "postgresql":
                    conn.execute(sa.text("SET LOCAL statement_timeout = 0"))
                    conn.execute(sa.text("SET LOCAL idle_in_transaction_session_timeout = 0"))
            for name, before in before_by_table.items():
                for table, time_column, where in _selections(RETAINED[name], before):
                    n = _count(conn, table, where)
                    if dry_run or n == 0:
                        done.append(PurgedTable(table, before, n))
                        continue
                    path = archive_dir / f"{table}-before-{_stamp(before)}-at-{_stamp(now)}.parquet"
                    archived = archive_rows(conn, _table(table), where, time_column, path)
                    written.append(path)
                    deleted = conn.execute(sa.delete(_table(table)).where(where)).rowcount
                    if deleted != archived.rows:
                        raise PurgeMismatch(
                            f"{table}: {archived.rows} rows archived but {deleted} would be "
                            "deleted (rows arrived during the purge); nothing purged, run again"
                        )
                    evidence = {
                        "table": table,
                        "before": _iso(before),
                        "oldest": _iso(archived.oldest),
                        "newest": _iso(archived.newest),
                        "rows": archived.rows,
                        "file": path.name,
                        "sha256": archived.sha256,
                        "format": "parquet",
                    }
                    record = append_locked(
                        conn,
                        {
                            "model_name": RETENTION_RECORD,
                            "model_version": table,
                            "artifact_sha256": archived.sha256,
                            "environment": environment,
                            "role": "retention",
                            "action": PURGE_ACTION,
                            "decided_by": by,
                            "reason": reason,
                            "evidence": json.dumps(evidence, sort_keys=True),
                            "created_at": now,
                        },
                    )
                    done.append(
                        PurgedTable(
                            table,
                            before,
                            archived.rows,
                            archived.oldest,
                            archived.newest,
                            path,
                            archived.sha256,
                            record["record_hash"],
                        )
                    )
    except BaseException:
        for path in written:
            path.unlink(missing_ok=True)
        raise
    return done


def verify_archives(engine: Engine, folder: Path) -> list[str]:
    """Problems with the archive files the purge records name: missing, another sha256, or
    another row count than the record says was purged. Empty: every archive matches."""
    problems = []
    for row in all_records(engine):
        if row["action"] != PURGE_ACTION:
            continue
        evidence = json.loads(row["evidence"])
        path = folder / evidence["file"]
        if not path.is_file():
            problems.append(f"record {row['id']}: archive {evidence['file']} not found")
        elif file_sha256(path) != evidence["sha256"]:
            problems.append(f"record {row['id']}: archive {evidence['file']} has another sha256")
        elif pq.ParquetFile(path).metadata.num_rows != evidence["rows"]:
            problems.append(f"record {row['id']}: archive {evidence['file']} has another row count")
    return problems

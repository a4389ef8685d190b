"""Rows of an audit table to a Parquet file, for the hospital's archive before a purge.

The Parquet schema comes from the declared table (``db/tables.py``), not from the values, so a
column that is empty in one batch has the same type as in the next, and timestamps are UTC on
SQLite (which returns them without an offset) and PostgreSQL alike. Rows stream in batches:
archiving a year of cards needs the memory of one batch.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import sqlalchemy as sa
from sqlalchemy.engine import Connection

__all__ = ["ArchiveFile", "archive_rows", "file_sha256", "parquet_schema"]

BATCH_ROWS = 5000


@dataclass(frozen=True, slots=True)
class ArchiveFile:
    path: Path
    rows: int
    sha256: str
    oldest: datetime | None
    newest: datetime | None


def _arrow_type(column: sa.Column[Any]) -> pa.DataType:
    kind = column.type
    if isinstance(kind, sa.Boolean):
        return pa.bool_()
    if isinstance(kind, sa.Integer):
        return pa.int64()
    if isinstance(kind, sa.Float):
        return pa.float64()
    if isinstance(kind, sa.DateTime):
        return pa.timestamp("us", tz="UTC")
    return pa.string()


def parquet_schema(table: sa.Table) -> pa.Schema:
    return pa.schema([pa.field(c.name, _arrow_type(c), nullable=True) for c in table.columns])


def _utc(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    return value


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def archive_rows(
    conn: Connection,
    table: sa.Table,
    where: sa.ColumnElement[bool],
    time_column: str,
    path: Path,
) -> ArchiveFile:
    """Write the rows of ``table`` matching ``where`` to ``path`` (refusing to overwrite)."""
    schema = parquet_schema(table)
    names = [c.name for c in table.columns]
    times = {c.name for c in table.columns if isinstance(c.type, sa.DateTime)}
    rows = 0
    oldest: datetime | None = None
    newest: datetime | None = None
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("xb") as sink, pq.ParquetWriter(sink, schema) as writer:
        result = conn.execute(
            sa.select(table).where(where).order_by(*table.primary_key.columns),
            execution_options={"yield_per": BATCH_ROWS},
        )
        for batch in result.partitions():
            columns: dict[str, list[Any]] = {
                name: [_utc(v) for v in values] if name in times else list(values)
                for name, values in zip(names, zip(*batch, strict=True), strict=True)
            }
            moments = [m for m in columns[time_column] if m is not None]
            if moments:
                oldest = min([*moments, oldest] if oldest else moments)
                newest = max([*moments, newest] if newest else moments)
            writer.write_table(pa.Table.from_pydict(columns, schema=schema))
            rows += len(batch)
    return ArchiveFile(path, rows, file_sha256(path), oldest, newest)

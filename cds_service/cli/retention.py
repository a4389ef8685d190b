"""Retention: ``audit purge`` archives a period of the audit tables to Parquet, deletes it and
records the purge in the hash-chained trail (cds_service/db/purge.py)."""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path
from typing import Annotated

import typer

from cds_service.cli.common import engine, fail
from cds_service.cli.exit_codes import ExitCode


def parse_moment(text: str, option: str) -> datetime:
    """A date (midnight UTC) or an ISO 8601 time with a UTC offset."""
    try:
        if len(text) == 10:
            return datetime.combine(date.fromisoformat(text), datetime.min.time(), UTC)
        moment = datetime.fromisoformat(text)
    except ValueError as exc:
        raise fail(
            f"{option} is not an ISO 8601 date or time: {text!r}", ExitCode.BAD_INPUT
        ) from exc
    if moment.tzinfo is None:
        raise fail(f"{option} needs a UTC offset (or give a date)", ExitCode.BAD_INPUT)
    return moment


def purge(
    by: Annotated[str, typer.Option("--by", help="Who purges (recorded in the audit trail).")],
    reason: Annotated[str, typer.Option("--reason", help="Why (recorded in the audit trail).")],
    before: Annotated[
        str | None,
        typer.Option(help="Purge rows older than this date/time (default: per retention policy)."),
    ] = None,
    table: Annotated[
        list[str] | None,
        typer.Option("--table", help="Table to purge (repeatable; default: those with a policy)."),
    ] = None,
    archive: Annotated[
        Path | None,
        typer.Option(help="Folder for the Parquet archive (default CDS_ARCHIVE_DIR)."),
    ] = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Count what would be purged; change nothing.")
    ] = False,
) -> None:
    """Archive a period of the audit tables to Parquet, delete it, and record the purge (table,
    period, rows, archive sha256) in the hash-chained trail that `audit verify` checks."""
    from cds_service.config import Settings
    from cds_service.db.purge import PurgeMismatch
    from cds_service.db.purge import purge as do_purge
    from cds_service.db.retention import RetentionError, cutoffs, policy
    from cds_service.monitoring.suppression import suppressed

    try:
        settings = Settings()
    except ValueError as exc:  # e.g. CDS_RETENTION_DAYS that is not a JSON object of days
        raise fail(f"settings refused: {exc}", ExitCode.BAD_INPUT) from exc
    now = datetime.now(UTC)
    moment = parse_moment(before, "--before") if before else None
    try:
        chosen = cutoffs(policy(settings.retention_days), now, moment, table or None)
    except RetentionError as exc:
        raise fail(str(exc), ExitCode.BAD_INPUT) from exc
    eng = engine()
    try:
        purged = do_purge(
            eng,
            chosen,
            archive_dir=archive or settings.archive_dir,
            by=by,
            reason=reason,
            environment=settings.environment.value,
            now=now,
            dry_run=dry_run,
        )
    except PurgeMismatch as exc:
        raise fail(str(exc), ExitCode.BAD_INPUT) from exc
    finally:
        eng.dispose()
    verb = "would purge" if dry_run else "purged"
    for item in purged:
        rows = suppressed(item.rows, settings.small_cell_min)
        line = f"{item.table}: {verb} {rows} rows before {item.before.isoformat()}"
        if item.file is not None:
            line += f" -> {item.file} (sha256 {item.sha256}, record {item.record_hash})"
        typer.echo(line)

"""Deployment records: which model version serves in which environment, as live or shadow.

Records are append-only and tamper-evident: each stores the sha256 of the previous record, and its
own hash covers every field. `cds-service audit verify` recomputes the chain; an edited, deleted
or reordered record breaks it. The running service derives the current state from the records, so
a promotion takes effect on every replica without a restart.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from cds_service.db.locks import AdvisoryLock, transaction_lock
from cds_service.db.tables import Deployment
from fhir_mappers.site_terminology import EMPTY_TERMINOLOGY_SHA256

TABLE: sa.Table = Deployment.__table__  # type: ignore[attr-defined]
GENESIS = "0" * 64
ROLES = ("live", "shadow")
ENVIRONMENTS = ("development", "acceptance", "production")
# Records about the site terminology (local codes) rather than a model version: model_name is
# this reserved name (never a model folder) and artifact_sha256 the terminology hash.
TERMINOLOGY_RECORD = "site-terminology"
TERMINOLOGY_ACTION = "terminology"
# Records of an audit purge (cds_service/db/purge.py): model_name is this reserved name,
# model_version the purged table, artifact_sha256 the sha256 of the Parquet archive of the rows.
RETENTION_RECORD = "audit-retention"
PURGE_ACTION = "purge"
# Actions that record something other than a model version's deployment.
NON_DEPLOYMENT_ACTIONS = (TERMINOLOGY_ACTION, PURGE_ACTION)
HASHED_FIELDS = (
    "model_name",
    "model_version",
    "artifact_sha256",
    "environment",
    "role",
    "action",
    "decided_by",
    "reason",
    "override",
    "override_reason",
    "evidence",
    "created_at",
    "prev_hash",
)


def _canonical_time(value: Any) -> str:
    if isinstance(value, datetime):
        moment = value if value.tzinfo else value.replace(tzinfo=UTC)
        return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    return str(value)


def record_hash(record: dict[str, Any]) -> str:
    payload = {k: record.get(k) for k in HASHED_FIELDS}
    payload["created_at"] = _canonical_time(payload["created_at"])
    payload["override"] = bool(payload["override"])
    text = json.dumps(payload, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


def append_record(engine: Engine, record: dict[str, Any]) -> dict[str, Any]:
    """Append one record, chained to the last one, in a single transaction."""
    with engine.begin() as conn:
        _lock(conn)
        return _append_locked(conn, record)


def append_terminology_change(
    engine: Engine, environment: str, sha256: str, record: dict[str, Any]
) -> dict[str, Any] | None:
    """Append ``record`` when ``environment``'s latest recorded site terminology (none recorded:
    no site terminology) differs from ``sha256``. Checked under the deployments lock, so
    workers starting together record one change once."""
    with engine.begin() as conn:
        _lock(conn)
        latest = conn.execute(
            sa.select(TABLE.c.artifact_sha256)
            .where(
                TABLE.c.model_name == TERMINOLOGY_RECORD,
                TABLE.c.action == TERMINOLOGY_ACTION,
                TABLE.c.environment == environment,
            )
            .order_by(TABLE.c.id.desc())
            .limit(1)
        ).scalar()
        if (latest or EMPTY_TERMINOLOGY_SHA256) == sha256:
            return None
        return _append_locked(conn, record)


def lock_trail(conn: Connection) -> None:
    """Hold the trail's lock for the rest of ``conn``'s transaction (then use append_locked)."""
    _lock(conn)


def append_locked(conn: Connection, record: dict[str, Any]) -> dict[str, Any]:
    """Append within a transaction that holds :func:`lock_trail`, so the record commits (or
    rolls back) together with the caller's other statements."""
    return _append_locked(conn, record)


def _lock(conn: Connection) -> None:
    transaction_lock(conn, AdvisoryLock.DEPLOYMENTS)
    if conn.dialect.name == "sqlite":
        conn.execute(sa.text("UPDATE deployments SET id = id WHERE 0"))  # take the write lock


def _append_locked(conn: Connection, record: dict[str, Any]) -> dict[str, Any]:
    """The next record, chained to the last one (the caller holds the lock)."""
    last = conn.execute(
        sa.select(TABLE.c.record_hash).order_by(TABLE.c.id.desc()).limit(1)
    ).scalar()
    row = dict(record)
    row.setdefault("created_at", datetime.now(UTC))
    row.setdefault("override", False)
    row.setdefault("override_reason", None)
    row["created_at"] = row["created_at"].astimezone(UTC)
    row["prev_hash"] = last or GENESIS
    row["record_hash"] = record_hash(row)
    conn.execute(TABLE.insert().values(**row))
    return row


def all_records(engine: Engine) -> list[dict[str, Any]]:
    with engine.connect() as conn:
        return [dict(r._mapping) for r in conn.execute(sa.select(TABLE).order_by(TABLE.c.id))]


def verify_chain(engine: Engine) -> list[str]:
    """Problems found, by record id; an empty list means the chain is intact."""
    problems = []
    previous = GENESIS
    for row in all_records(engine):
        if row["prev_hash"] != previous:
            problems.append(f"record {row['id']}: previous-hash link broken")
        if record_hash(row) != row["record_hash"]:
            problems.append(f"record {row['id']}: content does not match its hash")
        previous = row["record_hash"]
    return problems


@dataclass(slots=True)
class ModelState:
    live: str | None = None
    shadows: list[str] = field(default_factory=list)
    live_history: list[str] = field(default_factory=list)


def current_state(records: list[dict[str, Any]], environment: str) -> dict[str, ModelState]:
    """Replay the records of one environment: model name -> live version and shadow versions."""
    state: dict[str, ModelState] = {}
    for row in records:
        if row["environment"] != environment or row["action"] in NON_DEPLOYMENT_ACTIONS:
            continue
        s = state.setdefault(row["model_name"], ModelState())
        version, action, role = row["model_version"], row["action"], row["role"]
        if action in ("promote", "rollback") and role == "live":
            if s.live is not None and s.live != version:
                s.live_history.append(s.live)
            s.live = version
            if version in s.shadows:
                s.shadows.remove(version)
        elif action == "promote" and role == "shadow":
            if version not in s.shadows and version != s.live:
                s.shadows.append(version)
        elif action == "retire":
            if version in s.shadows:
                s.shadows.remove(version)
            if s.live == version:
                s.live = s.live_history.pop() if s.live_history else None
    return state


def predictions_in_environment(engine: Engine, model: str, version: str, environment: str) -> int:
    with engine.connect() as conn:
        return int(
            conn.execute(
                sa.text(
                    "SELECT count(*) FROM card_audit WHERE model_name = :m AND model_version = :v "
                    "AND environment = :e AND card_kind = 'risk'"
                ),
                {"m": model, "v": version, "e": environment},
            ).scalar()
            or 0
        )

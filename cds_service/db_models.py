"""Audit tables. Patient and encounter ids appear only as keyed HMAC pseudonyms.

JSON columns are stored as text so that the quality team's views give the same results on
SQLite and PostgreSQL.
"""

from __future__ import annotations

from datetime import UTC, datetime

import sqlalchemy as sa
from sqlmodel import Field, SQLModel


def utcnow() -> datetime:
    return datetime.now(UTC)


class CardAudit(SQLModel, table=True):
    __tablename__ = "card_audit"

    card_uuid: str = Field(primary_key=True, max_length=36)
    hook_instance: str = Field(max_length=128, index=True)
    service_id: str = Field(max_length=128, index=True)
    hook: str = Field(max_length=64)
    model_name: str = Field(max_length=128)
    model_version: str = Field(max_length=64)
    artifact_sha256: str = Field(max_length=64)
    environment: str = Field(max_length=16)
    role: str = Field(max_length=16, default="live")
    shown: bool = True
    card_kind: str = Field(max_length=16)
    patient_pseudonym: str = Field(max_length=64, index=True)
    encounter_pseudonym: str | None = Field(default=None, max_length=64)
    requested_at: datetime = Field(sa_type=sa.DateTime(timezone=True), index=True)
    risk: float | None = None
    risk_band: str | None = Field(default=None, max_length=32)
    indicator: str | None = Field(default=None, max_length=16)
    latency_ms: float
    features: str = Field(sa_type=sa.Text)
    missing_features: str = Field(sa_type=sa.Text)
    inputs: str = Field(sa_type=sa.Text)
    mapper_warnings: str = Field(sa_type=sa.Text)
    summary: str = Field(sa_type=sa.Text)
    caller_iss: str | None = Field(default=None, max_length=256)


class CardFeedback(SQLModel, table=True):
    __tablename__ = "card_feedback"
    __table_args__ = (
        sa.UniqueConstraint("card_uuid", "outcome", "outcome_timestamp", name="uq_feedback_once"),
    )

    id: int | None = Field(default=None, primary_key=True)
    card_uuid: str = Field(max_length=36, index=True)
    service_id: str = Field(max_length=128)
    outcome: str = Field(max_length=16)
    override_reason_system: str | None = Field(default=None, max_length=256)
    override_reason_code: str | None = Field(default=None, max_length=64)
    override_reason_display: str | None = Field(default=None, max_length=256)
    user_comment: str | None = Field(default=None, sa_type=sa.Text)
    accepted_suggestions: str = Field(default="[]", sa_type=sa.Text)
    outcome_timestamp: datetime = Field(sa_type=sa.DateTime(timezone=True))
    received_at: datetime = Field(sa_type=sa.DateTime(timezone=True))
    channel: str = Field(max_length=16, default="cds-hooks")


class SeenJti(SQLModel, table=True):
    """Hash of (issuer, jti) for every accepted token until it expires."""

    __tablename__ = "seen_jti"

    jti_hash: str = Field(primary_key=True, max_length=64)
    expires_at: datetime = Field(sa_type=sa.DateTime(timezone=True), index=True)

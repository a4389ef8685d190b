"""Audit tables. Patient and encounter ids appear only as keyed HMAC pseudonyms.

JSON columns are stored as text so that the quality team's views give the same results on
SQLite and PostgreSQL.
"""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from fhir_mappers.site_terminology import EMPTY_TERMINOLOGY_SHA256

# Columns the migrations give a server default (rows written by SQL alone still get a value).
_EMPTY_DEFAULT = {"server_default": ""}


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
    # Site terminology (local codes) the inputs were read with; rows from before the column:
    # the hash of no site terminology, which is what they were read with.
    terminology_sha256: str = Field(
        default=EMPTY_TERMINOLOGY_SHA256,
        max_length=64,
        sa_column_kwargs={"server_default": EMPTY_TERMINOLOGY_SHA256},
    )


class CardFeedback(SQLModel, table=True):
    __tablename__ = "card_feedback"
    __table_args__ = (
        sa.UniqueConstraint("card_uuid", "outcome", "outcome_timestamp", name="uq_feedback_once"),
        sa.Index("ix_card_feedback_card_user", "card_uuid", "user_pseudonym"),
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
    # keyed pseudonym of who answered (the SMART app's fhirUser); NULL when unknown
    user_pseudonym: str | None = Field(default=None, max_length=64)


class SeenJti(SQLModel, table=True):
    """Hash of (issuer, jti) for every accepted token until it expires."""

    __tablename__ = "seen_jti"

    jti_hash: str = Field(primary_key=True, max_length=64)
    expires_at: datetime = Field(sa_type=sa.DateTime(timezone=True), index=True)


class Deployment(SQLModel, table=True):
    """Append-only: which model version serves in which environment, as live or shadow, and why.

    Each record carries the hash of the one before it; `cds-service audit verify` walks the chain.
    """

    __tablename__ = "deployments"
    __table_args__ = (sa.Index("ix_deployments_model_env", "model_name", "environment"),)

    id: int | None = Field(default=None, primary_key=True)
    model_name: str = Field(max_length=128)
    model_version: str = Field(max_length=64)
    artifact_sha256: str = Field(max_length=64)
    environment: str = Field(max_length=16)
    role: str = Field(max_length=16)
    action: str = Field(max_length=16)
    decided_by: str = Field(max_length=128)
    reason: str = Field(sa_type=sa.Text)
    override: bool = False
    override_reason: str | None = Field(default=None, sa_type=sa.Text)
    evidence: str = Field(sa_type=sa.Text)
    created_at: datetime = Field(sa_type=sa.DateTime(timezone=True))
    prev_hash: str = Field(max_length=64)
    record_hash: str = Field(max_length=64, unique=True)


class Outcome(SQLModel, table=True):
    __tablename__ = "outcomes"

    card_uuid: str = Field(primary_key=True, max_length=36)
    label_name: str = Field(primary_key=True, max_length=64)
    patient_pseudonym: str = Field(max_length=64, index=True)
    model_name: str = Field(max_length=128)
    label: int
    source: str = Field(max_length=32)
    derived_at: datetime = Field(sa_type=sa.DateTime(timezone=True))


class MonitoringRun(SQLModel, table=True):
    __tablename__ = "monitoring_runs"

    run_id: str = Field(primary_key=True, max_length=36)
    started_at: datetime = Field(sa_type=sa.DateTime(timezone=True))
    finished_at: datetime | None = Field(default=None, sa_type=sa.DateTime(timezone=True))
    window_start: datetime = Field(sa_type=sa.DateTime(timezone=True))
    window_end: datetime = Field(sa_type=sa.DateTime(timezone=True))
    parameters: str = Field(sa_type=sa.Text)


class _WindowFigure(SQLModel):
    """What a monitoring result and an alert share: the run, the model version and where it
    served, the window, and which figure of which input and subgroup."""

    id: int | None = Field(default=None, primary_key=True)
    run_id: str = Field(max_length=36, index=True)
    service_id: str = Field(max_length=128)
    model_name: str = Field(max_length=128)
    model_version: str = Field(max_length=64)
    environment: str = Field(max_length=16)
    window_start: datetime = Field(sa_type=sa.DateTime(timezone=True))
    window_end: datetime = Field(sa_type=sa.DateTime(timezone=True))
    metric: str = Field(max_length=64)
    feature: str = Field(default="", max_length=128, sa_column_kwargs=_EMPTY_DEFAULT)
    subgroup: str = Field(default="", max_length=64, sa_column_kwargs=_EMPTY_DEFAULT)
    value: float | None = None


class MonitoringResult(_WindowFigure, table=True):
    __tablename__ = "monitoring_results"
    __table_args__ = (
        sa.Index(
            "ix_monitoring_results_key",
            "service_id",
            "model_version",
            "environment",
            "metric",
            "window_start",
        ),
    )

    role: str = Field(max_length=16)
    n: int
    details: str = Field(default="{}", sa_type=sa.Text, sa_column_kwargs={"server_default": "{}"})


class Alert(_WindowFigure, table=True):
    __tablename__ = "alerts"

    created_at: datetime = Field(sa_type=sa.DateTime(timezone=True))
    threshold: float | None = None
    severity: str = Field(max_length=16)
    message: str = Field(sa_type=sa.Text)


class WebSession(SQLModel, table=True):
    """A browser session: the cookie holds a random id, the row holds its sha256 and the data
    (OAuth tokens included), so tokens never reach the browser and any replica can serve it."""

    __tablename__ = "web_sessions"

    session_hash: str = Field(primary_key=True, max_length=64)
    kind: str = Field(max_length=16)
    data: str = Field(sa_type=sa.Text)
    created_at: datetime = Field(sa_type=sa.DateTime(timezone=True))
    expires_at: datetime = Field(sa_type=sa.DateTime(timezone=True), index=True)

"""Card audit and feedback tables, and the quality team's views v_cards and v_feedback.

Revision ID: 0001
Revises:
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

V_CARDS = """
CREATE VIEW v_cards AS
SELECT card_uuid, hook_instance, service_id, hook, model_name, model_version, artifact_sha256,
       environment, role, shown, card_kind, patient_pseudonym, encounter_pseudonym, requested_at,
       risk, risk_band, indicator, latency_ms, features, missing_features, summary
FROM card_audit
"""

V_FEEDBACK = """
CREATE VIEW v_feedback AS
SELECT f.id AS feedback_id, f.card_uuid, f.service_id, f.outcome, f.override_reason_system,
       f.override_reason_code, f.override_reason_display, f.user_comment,
       f.accepted_suggestions, f.outcome_timestamp, f.received_at, f.channel,
       c.model_name, c.model_version, c.environment, c.role, c.risk, c.risk_band, c.indicator,
       c.patient_pseudonym, c.requested_at
FROM card_feedback f
LEFT JOIN card_audit c ON c.card_uuid = f.card_uuid
"""


def upgrade() -> None:
    op.create_table(
        "card_audit",
        sa.Column("card_uuid", sa.String(36), primary_key=True),
        sa.Column("hook_instance", sa.String(128), nullable=False, index=True),
        sa.Column("service_id", sa.String(128), nullable=False, index=True),
        sa.Column("hook", sa.String(64), nullable=False),
        sa.Column("model_name", sa.String(128), nullable=False),
        sa.Column("model_version", sa.String(64), nullable=False),
        sa.Column("artifact_sha256", sa.String(64), nullable=False),
        sa.Column("environment", sa.String(16), nullable=False),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("shown", sa.Boolean(), nullable=False),
        sa.Column("card_kind", sa.String(16), nullable=False),
        sa.Column("patient_pseudonym", sa.String(64), nullable=False, index=True),
        sa.Column("encounter_pseudonym", sa.String(64), nullable=True),
        sa.Column("requested_at", sa.DateTime(timezone=True), nullable=False, index=True),
        sa.Column("risk", sa.Float(), nullable=True),
        sa.Column("risk_band", sa.String(32), nullable=True),
        sa.Column("indicator", sa.String(16), nullable=True),
        sa.Column("latency_ms", sa.Float(), nullable=False),
        sa.Column("features", sa.Text(), nullable=False),
        sa.Column("missing_features", sa.Text(), nullable=False),
        sa.Column("inputs", sa.Text(), nullable=False),
        sa.Column("mapper_warnings", sa.Text(), nullable=False),
        sa.Column("summary", sa.Text(), nullable=False),
        sa.Column("caller_iss", sa.String(256), nullable=True),
    )
    op.create_table(
        "card_feedback",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("card_uuid", sa.String(36), nullable=False, index=True),
        sa.Column("service_id", sa.String(128), nullable=False),
        sa.Column("outcome", sa.String(16), nullable=False),
        sa.Column("override_reason_system", sa.String(256), nullable=True),
        sa.Column("override_reason_code", sa.String(64), nullable=True),
        sa.Column("override_reason_display", sa.String(256), nullable=True),
        sa.Column("user_comment", sa.Text(), nullable=True),
        sa.Column("accepted_suggestions", sa.Text(), nullable=False),
        sa.Column("outcome_timestamp", sa.DateTime(timezone=True), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("channel", sa.String(16), nullable=False),
        sa.UniqueConstraint("card_uuid", "outcome", "outcome_timestamp", name="uq_feedback_once"),
    )
    op.execute(V_CARDS)
    op.execute(V_FEEDBACK)


def downgrade() -> None:
    op.execute("DROP VIEW v_feedback")
    op.execute("DROP VIEW v_cards")
    op.drop_table("card_feedback")
    op.drop_table("card_audit")

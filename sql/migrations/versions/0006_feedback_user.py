"""One answer per card and user: card_feedback.user_pseudonym, and v_feedback's user_pseudonym
and is_current appended.

Every answer stays a row (the trail); the answer that counts is a user's latest on a card
(latest outcome_timestamp, then the later row), and v_feedback marks it with is_current. Answers
without a known user (CDS Hooks feedback, an EHR that sends no id token) are grouped per card.
Rows from before this revision have no user: the latest of them on a card is the current one.

Revision ID: 0006
Revises: 0005
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

_V_FEEDBACK_0001 = """
CREATE VIEW v_feedback AS
SELECT f.id AS feedback_id, f.card_uuid, f.service_id, f.outcome, f.override_reason_system,
       f.override_reason_code, f.override_reason_display, f.user_comment,
       f.accepted_suggestions, f.outcome_timestamp, f.received_at, f.channel,
       c.model_name, c.model_version, c.environment, c.role, c.risk, c.risk_band, c.indicator,
       c.patient_pseudonym, c.requested_at
FROM card_feedback f
LEFT JOIN card_audit c ON c.card_uuid = f.card_uuid
"""
_V_FEEDBACK = """
CREATE VIEW v_feedback AS
SELECT f.id AS feedback_id, f.card_uuid, f.service_id, f.outcome, f.override_reason_system,
       f.override_reason_code, f.override_reason_display, f.user_comment,
       f.accepted_suggestions, f.outcome_timestamp, f.received_at, f.channel,
       c.model_name, c.model_version, c.environment, c.role, c.risk, c.risk_band, c.indicator,
       c.patient_pseudonym, c.requested_at, f.user_pseudonym,
       NOT EXISTS (
           SELECT 1 FROM card_feedback later
           WHERE later.card_uuid = f.card_uuid
             AND COALESCE(later.user_pseudonym, '') = COALESCE(f.user_pseudonym, '')
             AND (later.outcome_timestamp > f.outcome_timestamp
                  OR (later.outcome_timestamp = f.outcome_timestamp AND later.id > f.id))
       ) AS is_current
FROM card_feedback f
LEFT JOIN card_audit c ON c.card_uuid = f.card_uuid
"""


def upgrade() -> None:
    op.add_column("card_feedback", sa.Column("user_pseudonym", sa.String(64), nullable=True))
    op.create_index("ix_card_feedback_card_user", "card_feedback", ["card_uuid", "user_pseudonym"])
    op.execute("DROP VIEW v_feedback")
    op.execute(_V_FEEDBACK)


def downgrade() -> None:
    op.execute("DROP VIEW v_feedback")
    op.drop_index("ix_card_feedback_card_user", table_name="card_feedback")
    # SQLite >= 3.35 drops a column in place; a batch copy would break the views on the table
    op.execute("ALTER TABLE card_feedback DROP COLUMN user_pseudonym")
    op.execute(_V_FEEDBACK_0001)

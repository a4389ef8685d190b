"""Site terminology on every card: card_audit.terminology_sha256, appended to v_cards.

Rows written before this revision were read without site terminology, so they get the hash of
none (sha256 of the empty string), the value the service writes when no site folder is set.

Revision ID: 0005
Revises: 0004
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

NO_SITE_TERMINOLOGY = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
_V_CARDS_0001 = """
CREATE VIEW v_cards AS
SELECT card_uuid, hook_instance, service_id, hook, model_name, model_version, artifact_sha256,
       environment, role, shown, card_kind, patient_pseudonym, encounter_pseudonym, requested_at,
       risk, risk_band, indicator, latency_ms, features, missing_features, summary
FROM card_audit
"""
_V_CARDS = """
CREATE VIEW v_cards AS
SELECT card_uuid, hook_instance, service_id, hook, model_name, model_version, artifact_sha256,
       environment, role, shown, card_kind, patient_pseudonym, encounter_pseudonym, requested_at,
       risk, risk_band, indicator, latency_ms, features, missing_features, summary,
       terminology_sha256
FROM card_audit
"""


def upgrade() -> None:
    op.add_column(
        "card_audit",
        sa.Column(
            "terminology_sha256",
            sa.String(64),
            nullable=False,
            server_default=NO_SITE_TERMINOLOGY,
        ),
    )
    op.execute("DROP VIEW v_cards")
    op.execute(_V_CARDS)


def downgrade() -> None:
    op.execute("DROP VIEW v_cards")
    # SQLite >= 3.35 drops a column in place; a batch copy would break the views on card_audit
    op.execute("ALTER TABLE card_audit DROP COLUMN terminology_sha256")
    op.execute(_V_CARDS_0001)

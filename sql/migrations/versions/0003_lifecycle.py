"""Model lifecycle and monitoring: deployments (hash-chained), outcomes, monitoring results,
alerts, and the quality team's views over them.

Revision ID: 0003
Revises: 0002
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def _day(column: str) -> str:
    """The UTC calendar day of a timestamp column, as 'YYYY-MM-DD' text on both databases."""
    if op.get_bind().dialect.name == "postgresql":
        return f"to_char({column} AT TIME ZONE 'UTC', 'YYYY-MM-DD')"
    return f"substr(CAST({column} AS TEXT), 1, 10)"


def upgrade() -> None:
    ts = sa.DateTime(timezone=True)
    op.create_table(
        "deployments",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("model_name", sa.String(128), nullable=False),
        sa.Column("model_version", sa.String(64), nullable=False),
        sa.Column("artifact_sha256", sa.String(64), nullable=False),
        sa.Column("environment", sa.String(16), nullable=False),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("action", sa.String(16), nullable=False),
        sa.Column("decided_by", sa.String(128), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("override", sa.Boolean(), nullable=False),
        sa.Column("override_reason", sa.Text(), nullable=True),
        sa.Column("evidence", sa.Text(), nullable=False),
        sa.Column("created_at", ts, nullable=False),
        sa.Column("prev_hash", sa.String(64), nullable=False),
        sa.Column("record_hash", sa.String(64), nullable=False, unique=True),
    )
    op.create_index("ix_deployments_model_env", "deployments", ["model_name", "environment"])
    op.create_table(
        "outcomes",
        sa.Column("card_uuid", sa.String(36), primary_key=True),
        sa.Column("label_name", sa.String(64), primary_key=True),
        sa.Column("patient_pseudonym", sa.String(64), nullable=False, index=True),
        sa.Column("model_name", sa.String(128), nullable=False),
        sa.Column("label", sa.Integer(), nullable=False),
        sa.Column("source", sa.String(32), nullable=False),
        sa.Column("derived_at", ts, nullable=False),
    )
    op.create_table(
        "monitoring_runs",
        sa.Column("run_id", sa.String(36), primary_key=True),
        sa.Column("started_at", ts, nullable=False),
        sa.Column("finished_at", ts, nullable=True),
        sa.Column("window_start", ts, nullable=False),
        sa.Column("window_end", ts, nullable=False),
        sa.Column("parameters", sa.Text(), nullable=False),
    )
    op.create_table(
        "monitoring_results",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("run_id", sa.String(36), nullable=False, index=True),
        sa.Column("service_id", sa.String(128), nullable=False),
        sa.Column("model_name", sa.String(128), nullable=False),
        sa.Column("model_version", sa.String(64), nullable=False),
        sa.Column("environment", sa.String(16), nullable=False),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("window_start", ts, nullable=False),
        sa.Column("window_end", ts, nullable=False),
        sa.Column("metric", sa.String(64), nullable=False),
        sa.Column("feature", sa.String(128), nullable=False, server_default=""),
        sa.Column("subgroup", sa.String(64), nullable=False, server_default=""),
        sa.Column("value", sa.Float(), nullable=True),
        sa.Column("n", sa.Integer(), nullable=False),
        sa.Column("details", sa.Text(), nullable=False, server_default="{}"),
    )
    op.create_index(
        "ix_monitoring_results_key",
        "monitoring_results",
        ["service_id", "model_version", "environment", "metric", "window_start"],
    )
    op.create_table(
        "alerts",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("run_id", sa.String(36), nullable=False, index=True),
        sa.Column("created_at", ts, nullable=False),
        sa.Column("service_id", sa.String(128), nullable=False),
        sa.Column("model_name", sa.String(128), nullable=False),
        sa.Column("model_version", sa.String(64), nullable=False),
        sa.Column("environment", sa.String(16), nullable=False),
        sa.Column("window_start", ts, nullable=False),
        sa.Column("window_end", ts, nullable=False),
        sa.Column("metric", sa.String(64), nullable=False),
        sa.Column("feature", sa.String(128), nullable=False, server_default=""),
        sa.Column("subgroup", sa.String(64), nullable=False, server_default=""),
        sa.Column("value", sa.Float(), nullable=True),
        sa.Column("threshold", sa.Float(), nullable=True),
        sa.Column("severity", sa.String(16), nullable=False),
        sa.Column("message", sa.Text(), nullable=False),
    )
    op.execute(
        """
CREATE VIEW v_deployments AS
SELECT id AS seq, model_name, model_version, artifact_sha256, environment, role, action,
       decided_by, reason, override, override_reason, evidence, created_at, prev_hash,
       record_hash
FROM deployments
"""
    )
    op.execute(
        """
CREATE VIEW v_outcomes AS
SELECT o.card_uuid, o.label_name, o.label, o.source, o.derived_at, o.patient_pseudonym,
       c.service_id, c.model_name, c.model_version, c.environment, c.role, c.risk, c.risk_band,
       c.requested_at
FROM outcomes o
JOIN card_audit c ON c.card_uuid = o.card_uuid
"""
    )
    op.execute(
        f"""
CREATE VIEW v_daily_volume AS
SELECT {_day("requested_at")} AS day, service_id, model_name, model_version, environment, role,
       count(*) AS cards,
       sum(CASE WHEN card_kind = 'risk' THEN 1 ELSE 0 END) AS risk_cards,
       sum(CASE WHEN card_kind = 'no-risk' THEN 1 ELSE 0 END) AS no_risk_cards,
       sum(CASE WHEN indicator IN ('warning', 'critical') THEN 1 ELSE 0 END) AS alerting_cards,
       avg(risk) AS mean_risk,
       avg(latency_ms) AS mean_latency_ms
FROM card_audit
GROUP BY {_day("requested_at")}, service_id, model_name, model_version, environment, role
"""
    )
    results = (
        "SELECT run_id, service_id, model_name, model_version, environment, role, window_start, "
        "window_end, metric, feature, subgroup, value, n, details FROM monitoring_results"
    )
    op.execute(
        f"CREATE VIEW v_drift AS {results} WHERE metric IN ('psi', 'ks_statistic', "
        "'ks_pvalue', 'missing_rate', 'missing_rate_reference', 'prediction_psi', "
        "'reference_too_small')"
    )
    op.execute(
        f"CREATE VIEW v_performance AS {results} WHERE subgroup = '' AND metric IN ("
        "'volume', 'auroc', 'auprc', 'brier', 'calibration_intercept', 'calibration_slope', "
        "'ece', 'outcomes', 'prevalence', 'alert_rate', 'acceptance_rate', 'override_rate', "
        "'shadow_agreement', 'shadow_mean_abs_diff', 'no_risk_rate')"
    )
    op.execute(f"CREATE VIEW v_calibration AS {results} WHERE metric IN ('calibration_bin')")
    op.execute(f"CREATE VIEW v_subgroups AS {results} WHERE subgroup <> ''")
    op.execute(
        """
CREATE VIEW v_alerts AS
SELECT id AS alert_id, run_id, created_at, service_id, model_name, model_version, environment,
       window_start, window_end, metric, feature, subgroup, value, threshold, severity, message
FROM alerts
"""
    )


def downgrade() -> None:
    for view in (
        "v_alerts",
        "v_subgroups",
        "v_calibration",
        "v_performance",
        "v_drift",
        "v_daily_volume",
        "v_outcomes",
        "v_deployments",
    ):
        op.execute(f"DROP VIEW {view}")
    for table in ("alerts", "monitoring_results", "monitoring_runs", "outcomes", "deployments"):
        op.drop_table(table)

"""The dashboard's panels, one module per group: what the clinicians saw (``cards``), how the
model holds up (``drift``, ``monitoring``), and the model versions (``models``). Each panel
takes the collected ``DashboardData`` and returns an escaped ``<section>``."""

from cds_service.web.dashboard.panels.burden import burden_panel
from cds_service.web.dashboard.panels.cards import (
    feedback_panel,
    missing_panel,
    risk_panel,
    volume_panel,
)
from cds_service.web.dashboard.panels.drift import drift_panel
from cds_service.web.dashboard.panels.models import deployments_panel, shadow_panel
from cds_service.web.dashboard.panels.monitoring import (
    alerts_panel,
    calibration_panel,
    performance_panel,
    subgroup_panel,
)

__all__ = [
    "alerts_panel",
    "burden_panel",
    "calibration_panel",
    "deployments_panel",
    "drift_panel",
    "feedback_panel",
    "missing_panel",
    "performance_panel",
    "risk_panel",
    "shadow_panel",
    "subgroup_panel",
    "volume_panel",
]

"""The drift panel's colour levels and legend are the monitor's alert thresholds."""

from __future__ import annotations

import pytest

from cds_service.monitoring import Thresholds
from cds_service.web.dashboard.panels import drift


def test_legend_reads_the_monitoring_thresholds() -> None:
    t = Thresholds()
    legend = dict(drift.psi_legend())
    assert legend[f"{t.psi_warning:g}–{t.psi_critical:g} warning"] == "heat-2"
    assert legend[f"> {t.psi_critical:g} critical"] == "heat-3"


def test_legend_follows_a_changed_configuration(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(drift, "THRESHOLDS", Thresholds(psi_warning=0.3, psi_critical=0.5))
    labels = [name for name, _cls in drift.psi_legend()]
    assert "0.3–0.5 warning" in labels and "> 0.5 critical" in labels

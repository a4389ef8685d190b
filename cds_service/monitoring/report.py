"""What a monitoring run found: the groups it saw, its alerts, and a one-screen summary."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import NamedTuple

__all__ = ["AlertRecord", "GroupKey", "MonitorReport"]


class GroupKey(NamedTuple):
    """One monitored series: figures are never mixed across these five."""

    service_id: str
    model_name: str
    model_version: str
    environment: str
    role: str


@dataclass(frozen=True, slots=True)
class AlertRecord:
    group: GroupKey
    window_start: datetime
    window_end: datetime
    metric: str
    feature: str
    subgroup: str
    value: float | None
    threshold: float | None
    severity: str
    message: str


@dataclass(slots=True)
class MonitorReport:
    run_id: str
    window_start: datetime
    window_end: datetime
    windows: int
    groups: list[GroupKey]
    rows_scanned: int = 0
    results_written: int = 0
    alerts: list[AlertRecord] = field(default_factory=list)
    repeated_alerts: int = 0
    elapsed_seconds: float = 0.0

    def summary(self) -> str:
        lines = [
            f"monitoring run {self.run_id}: {self.window_start:%Y-%m-%d %H:%M} to "
            f"{self.window_end:%Y-%m-%d %H:%M} UTC, {self.windows} window(s), "
            f"{len(self.groups)} group(s), {self.rows_scanned} card(s) read, "
            f"{self.results_written} result(s), {len(self.alerts)} new alert(s)"
            + (f" ({self.repeated_alerts} already raised)" if self.repeated_alerts else "")
            + f", {self.elapsed_seconds:.1f} s",
        ]
        lines += [f"  [{a.severity}] {a.message}" for a in self.alerts]
        return "\n".join(lines)

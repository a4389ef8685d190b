"""One group in one window: its result rows and alerts, in the shape the views read."""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from datetime import datetime
from typing import Any

from cds_service.monitoring.alerts import alert_message
from cds_service.monitoring.context import ModelContext
from cds_service.monitoring.report import AlertRecord, GroupKey

__all__ = ["WindowResults", "details_json", "rounded"]


def rounded(value: float | None) -> float | None:
    """Finite values to 10 significant digits (the last bits of a float sum may differ between
    SQLite and PostgreSQL); tiny p-values keep their exponent."""
    if value is None or not math.isfinite(value):
        return None
    return float(f"{float(value):.10g}")


def details_json(details: dict[str, Any]) -> str:
    return json.dumps(details, sort_keys=True, separators=(",", ":"))


class WindowResults:
    """Appends result rows to ``rows`` and hands alerts to ``raise_alert``."""

    def __init__(
        self,
        run_id: str,
        rows: list[dict[str, Any]],
        raise_alert: Callable[[AlertRecord], None],
        window: tuple[datetime, datetime],
        group: GroupKey,
        ctx: ModelContext,
    ) -> None:
        self.run_id, self.rows, self._raise = run_id, rows, raise_alert
        self.start, self.end = window
        self.group, self.ctx = group, ctx

    def row(
        self,
        metric: str,
        value: float | None,
        n: int,
        *,
        feature: str = "",
        subgroup: str = "",
        details: dict[str, Any] | None = None,
    ) -> None:
        self.rows.append(
            {
                "run_id": self.run_id,
                **self.group._asdict(),
                "window_start": self.start,
                "window_end": self.end,
                "metric": metric,
                "feature": feature,
                "subgroup": subgroup,
                "value": rounded(value),
                "n": int(n),
                "details": details_json(details or {}),
            }
        )

    def skipped(self, reasons: dict[str, str], n: int, feature: str = "", **extra: Any) -> None:
        """A `reference_too_small` row: which figures were not computed, and why."""
        self.row(
            "reference_too_small", None, n, feature=feature, details={"skipped": reasons, **extra}
        )

    def alert(
        self,
        metric: str,
        value: float,
        threshold: float,
        severity: str,
        comparison: str,
        n: int,
        *,
        feature: str = "",
        subgroup: str = "",
    ) -> None:
        what = metric + (f" of feature '{feature}'" if feature else "")
        what += f" in subgroup {subgroup}" if subgroup else ""
        message = alert_message(
            self.group, self.start, self.end, what, value, threshold, severity, comparison, n
        )
        self._raise(
            AlertRecord(
                self.group,
                self.start,
                self.end,
                metric,
                feature,
                subgroup,
                rounded(value),
                rounded(threshold),
                severity,
                message,
            )
        )

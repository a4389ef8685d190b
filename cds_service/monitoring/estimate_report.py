"""Estimated against realized performance, read back from monitoring_results: the table the
quality team checks the estimates with (and the evidence behind "the estimate was right"), with
the small-cell rule applied to every figure printed."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from cds_service.db.tables import MonitoringResult
from cds_service.monitoring.cbpe import BAND_Z
from cds_service.monitoring.estimated import ESTIMATED_METRICS
from cds_service.monitoring.suppression import SUPPRESSED, is_small, suppressed
from fhir_mappers.timeutil import as_utc

__all__ = ["EstimateRow", "estimate_rows", "render_estimates"]

RESULTS: sa.Table = MonitoringResult.__table__  # type: ignore[attr-defined]


@dataclass(frozen=True, slots=True)
class EstimateRow:
    model_name: str
    model_version: str
    window_start: datetime
    window_end: datetime
    figure: str
    estimate: float | None
    estimate_n: int
    realized: float | None = None
    standard_error: float | None = None
    realized_n: int = 0
    within_band: bool | None = None
    positives: int = 0

    def realized_is_small(self, minimum: int) -> bool:
        """The realized figure rests on a small cell: few outcomes, or few of either class."""
        counts = (self.realized_n, self.positives, self.realized_n - self.positives)
        return any(is_small(c, minimum) for c in counts)


def estimate_rows(engine: Engine, run_id: str, role: str = "live") -> list[EstimateRow]:
    """One row per group, window and estimated figure of a run, with the realized figure and
    its standard error where the run had outcomes."""
    r = RESULTS
    metrics = [*ESTIMATED_METRICS, "estimate_error"]
    query = (
        sa.select(
            r.c.model_name,
            r.c.model_version,
            r.c.window_start,
            r.c.window_end,
            r.c.metric,
            r.c.feature,
            r.c.value,
            r.c.n,
            r.c.details,
        )
        .where(r.c.run_id == run_id, r.c.role == role, r.c.subgroup == "", r.c.metric.in_(metrics))
        .order_by(r.c.model_name, r.c.model_version, r.c.window_start, r.c.metric, r.c.feature)
    )
    estimates: dict[tuple[Any, ...], EstimateRow] = {}
    errors: dict[tuple[Any, ...], tuple[int, dict[str, Any]]] = {}
    with engine.connect() as conn:
        for m, v, ws, we, metric, feature, value, n, details in conn.execute(query):
            if metric == "estimate_error":
                errors[(m, v, as_utc(ws), feature)] = (int(n), json.loads(details))
                continue
            figure = ESTIMATED_METRICS[metric]
            estimates[(m, v, as_utc(ws), figure)] = EstimateRow(
                m, v, as_utc(ws), as_utc(we), figure, value, int(n)
            )
    out = []
    for key, row in estimates.items():
        if key in errors:
            n, d = errors[key]
            row = EstimateRow(
                row.model_name,
                row.model_version,
                row.window_start,
                row.window_end,
                row.figure,
                row.estimate,
                row.estimate_n,
                d["realized"],
                d["standard_error"],
                n,
                bool(d["within_band"]),
                int(d.get("positives", 0)),
            )
        out.append(row)
    return out


def _figure(value: float | None, small: bool) -> str:
    if value is None:
        return "-"
    return SUPPRESSED if small else f"{value:.3f}"


def render_estimates(rows: list[EstimateRow], minimum: int) -> str:
    """The table as printed: an estimate from fewer than ``minimum`` cards is withheld, and a
    realized figure whose outcomes, positives or negatives are fewer than ``minimum``."""
    head = (
        f"{'model':<24} {'version':<8} {'window':<10} {'figure':<11} {'estimate':>10} {'n':>6} "
        f"{'realized':>10} {'±1.96se':>8} {'n':>6}  within"
    )
    lines = [head]
    for r in rows:
        small = r.realized_is_small(minimum)
        est_n, real_n = suppressed(r.estimate_n, minimum), suppressed(r.realized_n, minimum)
        band = "-" if r.standard_error is None or small else f"{BAND_Z * r.standard_error:.3f}"
        within = "-" if r.within_band is None or small else ("yes" if r.within_band else "NO")
        lines.append(
            f"{r.model_name:<24} {r.model_version:<8} {r.window_start:%Y-%m-%d} {r.figure:<11} "
            f"{_figure(r.estimate, is_small(r.estimate_n, minimum)):>10} {est_n:>6} "
            f"{_figure(r.realized, small):>10} {band:>8} {real_n:>6}  "
            f"{within}"
        )
    return "\n".join(lines)

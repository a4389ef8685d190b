"""Monitoring figures from v_drift, v_performance, v_calibration and v_subgroups: which windows
exist, the latest run's figure per window, and calibration and subgroups pooled over windows."""

from __future__ import annotations

import json
import math
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, NamedTuple

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from cds_service.db.tables import MonitoringResult, MonitoringRun
from cds_service.web.dashboard.queries.filters import Filters, model_filters, version_key
from fhir_mappers.timeutil import as_utc

LIMIT_WINDOWS = 5000
LIMIT_RESULTS = 50_000
# The results table itself (not a view): the list of windows and which run computed them.
MONITORING_RESULTS: sa.Table = MonitoringResult.__table__  # type: ignore[attr-defined]
MONITORING_RUNS: sa.Table = MonitoringRun.__table__  # type: ignore[attr-defined]


@dataclass(frozen=True, slots=True)
class WindowKey:
    start: datetime
    end: datetime

    @property
    def label(self) -> str:
        days = (self.end - self.start).total_seconds() / 86400
        if days <= 1 and self.start.hour == 0 and self.end.hour == 0:
            return f"{self.start:%d %b}"
        last = self.end - timedelta(seconds=1)
        return f"{self.start:%d %b}–{last:%d %b}"


@dataclass(slots=True)
class Windows:
    """The monitoring windows chosen for the selection: (version, window) -> latest run id."""

    lengths: list[int]  # available window lengths, seconds
    length: int | None  # chosen
    version: str | None  # the model version whose figures are shown
    versions: list[str]
    runs: dict[WindowKey, str] = field(default_factory=dict)

    @property
    def keys(self) -> list[WindowKey]:
        return sorted(self.runs, key=lambda k: k.start)


def _run_length(parameters: str | None, start: datetime, end: datetime) -> int:
    try:
        seconds = json.loads(parameters or "{}").get("window_seconds")
    except (ValueError, AttributeError):
        seconds = None
    if isinstance(seconds, int | float) and seconds > 0:
        return int(seconds)
    return int((end - start).total_seconds())


class _Entry(NamedTuple):
    version: str
    key: WindowKey
    run_id: str
    started: datetime
    length: int


def _window_rows(conn: Connection, f: Filters) -> list[_Entry]:
    """The selection's volume rows (one per window and run), newest window first."""
    r, m = MONITORING_RESULTS, MONITORING_RUNS
    conds = [
        r.c.service_id == f.service_id,
        r.c.environment == f.environment,
        r.c.role == f.role,
        r.c.metric == "volume",
        r.c.subgroup == "",
        r.c.window_end > f.start_at,
        r.c.window_start < f.end_at,
        *model_filters(r, f),
    ]
    rows = conn.execute(
        sa.select(
            r.c.model_version,
            r.c.window_start,
            r.c.window_end,
            r.c.run_id,
            m.c.started_at,
            m.c.parameters,
        )
        .select_from(r.join(m, m.c.run_id == r.c.run_id))
        .where(*conds)
        .order_by(r.c.window_start.desc())
        .limit(LIMIT_WINDOWS)
    ).all()
    out = []
    for version, ws, we, run_id, started, params in rows:
        ws, we = as_utc(ws), as_utc(we)
        out.append(
            _Entry(version, WindowKey(ws, we), run_id, as_utc(started), _run_length(params, ws, we))
        )
    return out


def _chosen_length(entries: list[_Entry], version: str | None, wanted: int | None) -> int:
    """``wanted`` if windows of that length exist, else the shortest length with at least two
    windows of ``version`` (a time series), else the shortest."""
    lengths = {e.length for e in entries}
    if wanted is not None and wanted in lengths:
        return wanted
    per_length: dict[int, set[WindowKey]] = defaultdict(set)
    for e in entries:
        if e.version == version:
            per_length[e.length].add(e.key)
    series = [n for n, keys in per_length.items() if len(keys) >= 2]
    return min(series or per_length or lengths)


def monitoring_windows(conn: Connection, f: Filters) -> Windows:
    entries = _window_rows(conn, f)
    versions = sorted({e.version for e in entries}, key=version_key)
    out = Windows(sorted({e.length for e in entries}), None, None, versions)
    if not entries:
        return out
    latest = max(entries, key=lambda e: e.key.end)  # first of the newest windows, as before
    out.version = f.model_version or latest.version
    out.length = _chosen_length(entries, out.version, f.window_seconds)
    best: dict[WindowKey, tuple[datetime, str]] = {}
    for e in entries:
        if e.version != out.version or e.length != out.length:
            continue
        if e.key not in best or e.started > best[e.key][0]:
            best[e.key] = (e.started, e.run_id)
    out.runs = {k: v[1] for k, v in best.items()}
    return out


@dataclass(frozen=True, slots=True)
class Figure:
    window: WindowKey
    metric: str
    feature: str
    subgroup: str
    value: float | None
    n: int
    details: str


def monitoring_figures(
    conn: Connection,
    f: Filters,
    w: Windows,
    view: sa.TableClause,
    metrics: Iterable[str],
    *,
    role: str | None = None,
) -> list[Figure]:
    """The figures of the chosen windows (latest run each) from one monitoring view."""
    if not w.runs or w.version is None:
        return []
    run_ids = sorted(set(w.runs.values()))
    rows = conn.execute(
        sa.select(
            view.c.window_start,
            view.c.window_end,
            view.c.run_id,
            view.c.metric,
            view.c.feature,
            view.c.subgroup,
            view.c.value,
            view.c.n,
            view.c.details,
        )
        .where(
            view.c.service_id == f.service_id,
            *([view.c.model_name == f.model_name] if f.model_name else []),
            view.c.environment == f.environment,
            view.c.role == (role or f.role),
            view.c.model_version == w.version,
            view.c.run_id.in_(run_ids),
            view.c.metric.in_(list(metrics)),
            view.c.window_end > f.start_at,
            view.c.window_start < f.end_at,
        )
        .limit(LIMIT_RESULTS)
    )
    out = []
    for ws, we, run_id, metric, feature, subgroup, value, n, details in rows:
        key = WindowKey(as_utc(ws), as_utc(we))
        if w.runs.get(key) != run_id:
            continue  # superseded by a later run, or a window of another length
        number = None if value is None or not math.isfinite(value) else float(value)
        out.append(Figure(key, metric, feature or "", subgroup or "", number, int(n), details))
    return out


def details_of(fig: Figure) -> dict[str, Any]:
    try:
        data = json.loads(fig.details or "{}")
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}


@dataclass(slots=True)
class CalibrationBin:
    lo: float
    hi: float
    n: int
    predicted: float
    observed: float


def pooled_calibration(figures: Iterable[Figure]) -> list[CalibrationBin]:
    """calibration_bin rows of several windows pooled per bin (weighted by their n)."""
    acc: dict[int, list[float]] = {}
    for fig in figures:
        if fig.metric != "calibration_bin" or fig.value is None:
            continue
        d = details_of(fig)
        try:
            b, lo, hi = int(d["bin"]), float(d["lo"]), float(d["hi"])
            predicted = float(d["predicted"])
        except (KeyError, TypeError, ValueError):
            continue
        a = acc.setdefault(b, [lo, hi, 0.0, 0.0, 0.0])
        a[2] += fig.n
        a[3] += fig.n * predicted
        a[4] += fig.n * fig.value
    return [
        CalibrationBin(a[0], a[1], int(a[2]), a[3] / a[2], a[4] / a[2])
        for _b, a in sorted(acc.items())
        if a[2] > 0
    ]


@dataclass(slots=True)
class SubgroupRow:
    subgroup: str
    figures: dict[str, tuple[float | None, int]]  # metric -> (n-weighted mean or sum, n)
    suppressed: list[str] = field(default_factory=list)  # metrics withheld (small cells)


SUBGROUP_SUMS = ("volume", "outcomes")


def pooled_subgroups(figures: Iterable[Figure]) -> list[SubgroupRow]:
    """Per subgroup and metric over the windows: sums for counts, n-weighted means otherwise."""
    acc: dict[str, dict[str, list[float]]] = defaultdict(dict)
    for fig in figures:
        if not fig.subgroup:
            continue
        a = acc[fig.subgroup].setdefault(fig.metric, [0.0, 0.0, 0.0])  # weighted sum, n, n_value
        a[1] += fig.n
        if fig.value is not None:
            a[0] += fig.value if fig.metric in SUBGROUP_SUMS else fig.value * fig.n
            a[2] += fig.n
    out = []
    for name in sorted(acc, key=_subgroup_key):
        figs: dict[str, tuple[float | None, int]] = {}
        for metric, (total, n, n_value) in acc[name].items():
            if metric in SUBGROUP_SUMS:
                figs[metric] = (total, int(n))
            else:
                figs[metric] = (total / n_value if n_value else None, int(n))
        out.append(SubgroupRow(name, figs))
    return out


def _subgroup_key(name: str) -> tuple[str, float, str]:
    kind, _, rest = name.partition("=")
    lo = rest.split("-", 1)[0]
    try:
        return kind, float(lo), rest
    except ValueError:
        return kind, 0.0, rest

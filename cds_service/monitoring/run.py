"""One monitoring run over the audit trail (issue 6, item 4).

``run_monitoring`` reads ``card_audit`` (with ``card_feedback`` and ``outcomes``) per
(service_id, model_name, model_version, environment, role) and per time window, and writes one
``monitoring_runs`` row, the figures to ``monitoring_results`` and threshold breaches to ``alerts``
(plus a log line each). Metric names are those the quality views select (v_drift, v_performance,
v_calibration, v_subgroups); docs/monitoring.md explains each one and each alert.

Bounded memory: windows are processed one at a time; counts are GROUP BY queries; the cards stream
from the database in chunks (server-side cursor on PostgreSQL) with only the needed columns, into
per-feature bin counts and a bounded sample (``KS_SAMPLE_SIZE`` values per feature, chosen by a
hash of the card id, so SQLite and PostgreSQL give the same sample whatever their row order).
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine
from threadpoolctl import threadpool_limits  # type: ignore[import-untyped]

from cds_service.db.tables import MonitoringResult, MonitoringRun
from cds_service.monitoring import figures
from cds_service.monitoring import queries as q
from cds_service.monitoring.accumulate import WindowAccumulator, split_by_group
from cds_service.monitoring.alerts import AlertBook
from cds_service.monitoring.context import ModelContext, load_context
from cds_service.monitoring.estimated import estimated_performance
from cds_service.monitoring.report import GroupKey, MonitorReport
from cds_service.monitoring.results import WindowResults, details_json
from cds_service.monitoring.thresholds import KS_SAMPLE_SIZE, Thresholds
from cds_service.monitoring.windows import (
    split_windows,
    utc_aware,
)
from cds_service.stats import PSI_EPSILON, SAMPLE_SEED

log = logging.getLogger("cds_service.monitoring.run")

RESULTS: sa.Table = MonitoringResult.__table__  # type: ignore[attr-defined]
RUNS: sa.Table = MonitoringRun.__table__  # type: ignore[attr-defined]
STREAM_CHUNK = 20_000

_Feedback = dict[GroupKey, list[tuple[str, str | None, str | None, int]]]


class _Run:
    def __init__(
        self,
        engine: Engine,
        models_dir: Path,
        thresholds: Thresholds,
        sample_size: int,
        now: datetime | None,
    ) -> None:
        self.engine = engine
        self.models_dir = models_dir
        self.t = thresholds
        self.sample_size = sample_size
        self.fixed_now = now
        self.run_id = str(uuid.uuid4())
        self.contexts: dict[tuple[str, str], ModelContext] = {}
        self.baselines: figures.Baselines = {}
        self.pending: list[dict[str, Any]] = []
        self.report: MonitorReport | None = None
        self.alerts: AlertBook | None = None

    def now(self) -> datetime:
        return self.fixed_now or datetime.now(UTC)

    def context(self, model_name: str, model_version: str) -> ModelContext:
        key = (model_name, model_version)
        if key not in self.contexts:
            self.contexts[key] = load_context(self.models_dir, model_name, model_version)
        return self.contexts[key]

    def labels(self) -> dict[str, str]:
        return {c.name: c.label for c in self.contexts.values() if c.label}

    def _stream(
        self, conn: Connection, start: datetime, end: datetime, present: list[GroupKey]
    ) -> dict[GroupKey, WindowAccumulator]:
        """The window's cards, streamed into one accumulator per group with cards."""
        assert self.report is not None
        accs = {
            g: WindowAccumulator(self.context(g.model_name, g.model_version), self.sample_size)
            for g in present
        }
        if not present:
            return accs
        stmt = q.card_rows(start, end, self.labels(), present).execution_options(
            stream_results=True, yield_per=STREAM_CHUNK
        )
        for part in conn.execute(stmt).partitions():
            self.report.rows_scanned += len(part)
            for index, batch in split_by_group(part):
                if index >= 0:  # else: a card committed after the counts were taken
                    accs[present[index]].add(batch)
        return accs

    def window(self, conn: Connection, start: datetime, end: datetime) -> None:
        """All figures of one window. Groups are those with cards in this window, plus those
        seen in earlier windows of the run (they get a volume of 0: a service that went quiet)."""
        assert self.report is not None and self.alerts is not None
        counts = {GroupKey(*r[:5]): r[5:] for r in conn.execute(q.card_counts(start, end))}
        groups = self.report.groups = sorted(set(self.report.groups) | set(counts))
        feedback: _Feedback = {}
        for r in conn.execute(q.feedback_counts(start, end)):
            feedback.setdefault(GroupKey(*r[:5]), []).append((r[5], r[6], r[7], int(r[8])))
        shadow = {GroupKey(*r[:5]): r[5:] for r in conn.execute(q.shadow_pairs(start, end))}
        accs = self._stream(conn, start, end, sorted(counts))
        for g in groups:
            w = WindowResults(
                self.run_id,
                self.pending,
                self.alerts.raise_alert,
                (start, end),
                g,
                self.context(g.model_name, g.model_version),
            )
            c = counts.get(g)
            if c is None:
                w.row("volume", 0, 0)
                continue
            self._group(w, c, accs[g])
            figures.feedback(w, feedback.get(g, []))
            if g in shadow:
                figures.shadow(w, shadow[g])

    def _group(self, w: WindowResults, count: Any, acc: WindowAccumulator) -> None:
        """Volume, rates and the figures that need the cards' features of one group."""
        volume, no_risk, risk_cards, alerting = (int(x) for x in count)
        details: dict[str, Any] = {"risk_cards": risk_cards, "no_risk_cards": no_risk}
        if acc.unparsable:
            details["unparsable_features_json"] = acc.unparsable
        w.row("volume", volume, volume, details=details)
        w.row("no_risk_rate", no_risk / volume, volume)
        if risk_cards:
            w.row("alert_rate", alerting / risk_cards, risk_cards, details={"alerting": alerting})
        if not w.ctx.found:
            w.skipped({"drift": "no manifest for this model version"}, volume)
        if acc.rows:
            figures.drift(w, self.t, acc)
        figures.subgroup_volume(w, acc)
        figures.prediction_drift(w, self.t, acc.risks(), self.baselines)
        figures.performance(w, self.t, acc)
        estimated_performance(w, self.t, acc)

    def flush(self) -> None:
        assert self.report is not None and self.alerts is not None
        if not self.pending and not self.alerts.pending:
            return
        with self.engine.begin() as conn:
            if self.pending:
                conn.execute(RESULTS.insert(), self.pending)
            if self.alerts.pending:
                conn.execute(q.ALERTS.insert(), self.alerts.take_rows(self.run_id, self.now()))
        self.report.results_written += len(self.pending)
        self.pending.clear()


@contextmanager
def _read_snapshot(engine: Engine) -> Iterator[Connection]:
    """One consistent snapshot for all queries of a window, so counts and stream agree."""
    with engine.connect() as conn:
        if conn.dialect.name == "postgresql":
            conn.execution_options(isolation_level="REPEATABLE READ")
            # The correlated outcome lookups inflate the planner's cost estimate past
            # jit_above_cost; compiling them takes longer (~0.5 s a query) than running them.
            conn.exec_driver_sql("SET LOCAL jit = off")
        else:
            conn.exec_driver_sql("BEGIN")  # SQLite in WAL mode: a read transaction is a snapshot
        try:
            yield conn
        finally:
            conn.rollback()


def _start(run: _Run, start: datetime, end: datetime, parameters: dict[str, Any]) -> None:
    """The monitoring_runs row, and the alerts earlier runs raised over the same range."""
    with run.engine.begin() as conn:
        conn.execute(
            RUNS.insert(),
            {
                "run_id": run.run_id,
                "started_at": run.now(),
                "window_start": start,
                "window_end": end,
                "parameters": details_json(parameters),
            },
        )
    assert run.alerts is not None
    with run.engine.connect() as conn:
        run.alerts.load_existing(conn, start, end)


def run_monitoring(
    engine: Engine,
    models_dir: Path,
    *,
    window_start: datetime,
    window_end: datetime,
    window: timedelta | None = None,
    now: datetime | None = None,
    thresholds: Thresholds | None = None,
    ks_sample_size: int = KS_SAMPLE_SIZE,
) -> MonitorReport:
    """Monitor every (service, model, version, environment, role) with cards in
    [window_start, window_end), over that whole range or over consecutive windows of ``window``
    (the last one may be shorter). Writes one monitoring_runs row, the monitoring_results and
    the alerts; returns what it did. Alerts already raised for the same group, window, metric,
    feature, subgroup and severity (by an earlier run) are not inserted again.
    """
    t0 = time.perf_counter()
    start, end = utc_aware(window_start, "window_start"), utc_aware(window_end, "window_end")
    if end <= start:
        raise ValueError("window_end must be after window_start")
    if now is not None:
        now = utc_aware(now, "now")
    t = thresholds or Thresholds()
    windows = split_windows(start, end, window)
    run = _Run(engine, models_dir, t, ks_sample_size, now)
    report = run.report = MonitorReport(run.run_id, start, end, len(windows), [])
    run.alerts = AlertBook(report)
    parameters = {
        "window_seconds": window.total_seconds() if window else None,
        "windows": len(windows),
        "thresholds": asdict(t),
        "ks_sample_size": ks_sample_size,
        "sample_seed": SAMPLE_SEED,
        "psi_epsilon": PSI_EPSILON,
        "models_dir": str(models_dir),
    }
    _start(run, start, end, parameters)
    # Many small fits (calibration slope per group, window and subgroup): BLAS threads only add
    # spin-waiting, so one thread (a 2x speed-up measured on a loaded 2-core host).
    with threadpool_limits(limits=1):
        for ws, we in windows:
            with _read_snapshot(engine) as conn:
                run.window(conn, ws, we)
            run.flush()
    with engine.begin() as conn:
        conn.execute(RUNS.update().where(RUNS.c.run_id == run.run_id).values(finished_at=run.now()))
    report.elapsed_seconds = round(time.perf_counter() - t0, 3)
    log.info(
        "monitoring run %s: %d window(s), %d group(s), %d card(s), %d result(s), "
        "%d new alert(s) in %.1f s",
        run.run_id,
        len(windows),
        len(report.groups),
        report.rows_scanned,
        report.results_written,
        len(report.alerts),
        report.elapsed_seconds,
    )
    return report

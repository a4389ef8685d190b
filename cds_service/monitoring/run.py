"""Monitoring of deployed models over the audit trail (issue 6, item 4).

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

import json
import logging
import math
import re
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import sqlalchemy as sa
from scipy.stats import ks_2samp
from sqlalchemy.engine import Connection, Engine
from threadpoolctl import threadpool_limits  # type: ignore[import-untyped]

from cds_service.db.tables import MonitoringResult, MonitoringRun
from cds_service.monitoring import queries as q
from cds_service.monitoring.accumulate import WindowAccumulator, split_by_group
from cds_service.monitoring.context import ModelContext, load_context
from cds_service.stats.distributions import (
    PSI_EPSILON,
    SAMPLE_SEED,
    ReferenceBins,
    calibration_bins,
    decile_bins,
    psi,
    subgroup_masks,
)
from cds_service.stats.metrics import binary_metrics
from fhir_mappers.timeutil import as_utc

log = logging.getLogger("cds_service.monitoring.run")

RESULTS: sa.Table = MonitoringResult.__table__  # type: ignore[attr-defined]
RUNS: sa.Table = MonitoringRun.__table__  # type: ignore[attr-defined]

KS_SAMPLE_SIZE = 5000
STREAM_CHUNK = 20_000
PERFORMANCE_METRICS = (
    "prevalence",
    "auroc",
    "auprc",
    "brier",
    "calibration_intercept",
    "calibration_slope",
    "ece",
)
_LOCK_KEY = 724302  # PostgreSQL advisory lock: one scheduled monitoring run at a time


@dataclass(frozen=True, slots=True)
class Thresholds:
    """When a figure becomes an alert, and how much data a figure needs. Override any field:
    ``Thresholds(psi_warning=0.1)``. ``None`` for min_auroc / max_abs_calibration_intercept
    means: the model's validation gate in its manifest."""

    psi_warning: float = 0.2
    psi_critical: float = 0.25
    # PSI of an unchanged distribution is about (bins - 1) / n by chance alone (0.18 at n = 50
    # with ten bins), so PSI alerts need this many values in the window.
    psi_min_n: int = 200
    ks_pvalue: float = 0.001
    # The KS p-value already accounts for the sample size, so a smaller window still gives a
    # controlled false-alarm rate; this catches a strong shift in a sparsely measured input
    # (a lab's unit change in lactate, measured in a quarter of ED visits) that PSI must skip.
    ks_min_n: int = 50
    missing_rate_excess: float = 0.2
    missing_min_n: int = 50
    prediction_psi_warning: float = 0.2
    prediction_psi_critical: float = 0.25
    min_outcomes: int = 50
    min_auroc: float | None = None
    max_abs_calibration_intercept: float | None = None
    # Fewer values than this in a window (or in the manifest's reference sample): no PSI / KS,
    # a `reference_too_small` row says so instead.
    min_values: int = 50
    min_reference_sample: int = 50


class GroupKey(NamedTuple):
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


def _utc(value: datetime, what: str) -> datetime:
    if value.tzinfo is None:
        raise ValueError(f"{what} must be timezone-aware")
    return value.astimezone(UTC)


def _windows(
    start: datetime, end: datetime, step: timedelta | None
) -> list[tuple[datetime, datetime]]:
    if step is None:
        return [(start, end)]
    if step <= timedelta(0):
        raise ValueError("window must be positive")
    out = []
    ws = start
    while ws < end:
        out.append((ws, min(ws + step, end)))
        ws += step
    return out


def _num(value: float | None) -> float | None:
    """Finite values to 10 significant digits (the last bits of a float sum may differ between
    SQLite and PostgreSQL); tiny p-values keep their exponent."""
    if value is None or not math.isfinite(value):
        return None
    return float(f"{float(value):.10g}")


def _json(details: dict[str, Any]) -> str:
    return json.dumps(details, sort_keys=True, separators=(",", ":"))


def parse_duration(text: str) -> timedelta:
    """'90m', '6h', '1d', '2w' (or a bare number of hours) as a timedelta; for the CLI."""
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([mhdw]?)\s*", text)
    if not m:
        raise ValueError(f"not a duration: {text!r} (use e.g. 30m, 6h, 1d, 2w)")
    amount, unit = float(m.group(1)), m.group(2) or "h"
    delta = {"m": timedelta(minutes=amount), "h": timedelta(hours=amount)}.get(unit)
    if delta is None:
        delta = timedelta(days=amount * (7 if unit == "w" else 1))
    if delta <= timedelta(0):
        raise ValueError("duration must be positive")
    return delta


class _Window:
    """Writes the results and alerts of one group in one window."""

    def __init__(
        self, run: _Run, start: datetime, end: datetime, group: GroupKey, ctx: ModelContext
    ) -> None:
        self.run, self.start, self.end, self.group, self.ctx = run, start, end, group, ctx

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
        self.run.pending.append(
            {
                "run_id": self.run.run_id,
                **self.group._asdict(),
                "window_start": self.start,
                "window_end": self.end,
                "metric": metric,
                "feature": feature,
                "subgroup": subgroup,
                "value": _num(value),
                "n": int(n),
                "details": _json(details or {}),
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
        g = self.group
        what = metric + (f" of feature '{feature}'" if feature else "")
        what += f" in subgroup {subgroup}" if subgroup else ""
        message = (
            f"{what} is {value:.4g}, {comparison} {threshold:.4g} ({severity} threshold, "
            f"n={n}); model {g.model_name} {g.model_version}, service {g.service_id}, "
            f"{g.environment}/{g.role}, window {self.start:%Y-%m-%d %H:%M} to "
            f"{self.end:%Y-%m-%d %H:%M} UTC"
        )
        self.run.raise_alert(
            AlertRecord(
                g,
                self.start,
                self.end,
                metric,
                feature,
                subgroup,
                _num(value),
                _num(threshold),
                severity,
                message,
            )
        )


class _Run:
    def __init__(
        self,
        engine: Engine,
        models_root: Path,
        thresholds: Thresholds,
        sample_size: int,
        now: datetime | None,
    ) -> None:
        self.engine = engine
        self.models_root = models_root
        self.t = thresholds
        self.sample_size = sample_size
        self.fixed_now = now
        self.run_id = str(uuid.uuid4())
        self.contexts: dict[tuple[str, str], ModelContext] = {}
        self.prediction_baseline: dict[GroupKey, tuple[ReferenceBins, dict[str, Any]]] = {}
        self.pending: list[dict[str, Any]] = []
        self.pending_alerts: list[AlertRecord] = []
        self.existing_alerts: set[tuple[Any, ...]] = set()
        self.report: MonitorReport | None = None

    def now(self) -> datetime:
        return self.fixed_now or datetime.now(UTC)

    def context(self, model_name: str, model_version: str) -> ModelContext:
        key = (model_name, model_version)
        if key not in self.contexts:
            self.contexts[key] = load_context(self.models_root, model_name, model_version)
        return self.contexts[key]

    def labels(self) -> dict[str, str]:
        return {c.name: c.label for c in self.contexts.values() if c.label}

    @staticmethod
    def _alert_key(a: AlertRecord) -> tuple[Any, ...]:
        g = a.group
        return (
            g.service_id,
            g.model_name,
            g.model_version,
            g.environment,
            a.window_start,
            a.window_end,
            a.metric,
            a.feature,
            a.subgroup,
            a.severity,
        )

    def raise_alert(self, alert: AlertRecord) -> None:
        assert self.report is not None
        key = self._alert_key(alert)
        if key in self.existing_alerts:
            self.report.repeated_alerts += 1
            log.info("monitoring alert still open (%s): %s", alert.severity, alert.message)
            return
        self.existing_alerts.add(key)
        self.pending_alerts.append(alert)
        self.report.alerts.append(alert)
        log.warning("monitoring alert (%s): %s", alert.severity, alert.message)

    # --- figures ----------------------------------------------------------------------------

    def drift(self, w: _Window, acc: WindowAccumulator) -> None:
        t, ctx = self.t, w.ctx
        for j, feature in enumerate(ctx.features):
            ref = ctx.reference.get(feature, {})
            missing = int(acc.missing[j])
            rate = missing / acc.rows
            w.row("missing_rate", rate, acc.rows, feature=feature, details={"missing": missing})
            ref_rate = ref.get("missing_rate")
            if ref_rate is not None:
                w.row(
                    "missing_rate_reference",
                    float(ref_rate),
                    int(ref.get("n") or 0),
                    feature=feature,
                )
                if acc.rows >= t.missing_min_n and rate - ref_rate > t.missing_rate_excess:
                    w.alert(
                        "missing_rate",
                        rate,
                        ref_rate + t.missing_rate_excess,
                        "warning",
                        "above",
                        acc.rows,
                        feature=feature,
                    )
            present = acc.rows - missing
            skipped: dict[str, str] = {}
            bins, counts = ctx.bins.get(feature), acc.bin_counts[j]
            if present < t.min_values:
                window_reason = f"the window has {present} value(s), fewer than {t.min_values}"
                skipped = {"psi": window_reason, "ks": window_reason}
            else:
                if bins is None or counts is None:
                    skipped["psi"] = ctx.bin_reasons.get(feature, "no reference bins")
                else:
                    value = psi(counts, bins.fractions)
                    w.row(
                        "psi",
                        value,
                        present,
                        feature=feature,
                        details={
                            "bins": bins.bins,
                            "window_fractions": [round(float(c) / present, 6) for c in counts],
                            "reference_fractions": [round(float(f), 6) for f in bins.fractions],
                            "epsilon": PSI_EPSILON,
                        },
                    )
                    self._psi_alert(w, "psi", value, present, feature, critical=t.psi_critical)
                sample = ctx.samples.get(feature, np.empty(0))
                if len(sample) < t.min_reference_sample:
                    skipped["ks"] = (
                        f"the reference sample has {len(sample)} value(s), fewer than "
                        f"{t.min_reference_sample}"
                    )
                else:
                    self._ks(w, feature, acc.samples[j].values, sample, present)
            if skipped:
                w.skipped(skipped, present, feature, reference_n=int(ref.get("n") or 0))

    def _psi_alert(
        self, w: _Window, metric: str, value: float, n: int, feature: str, *, critical: float
    ) -> None:
        t = self.t
        warning = t.psi_warning if metric == "psi" else t.prediction_psi_warning
        if n < t.psi_min_n or value <= warning:
            return
        if value > critical:
            w.alert(metric, value, critical, "critical", "above", n, feature=feature)
        else:
            w.alert(metric, value, warning, "warning", "above", n, feature=feature)

    def _ks(
        self, w: _Window, feature: str, window: np.ndarray, ref: np.ndarray, present: int
    ) -> None:
        res = ks_2samp(window, ref)
        details = {
            "sample_n": len(window),
            "reference_sample_n": len(ref),
            "sampled": len(window) < present,
            "sample_seed": SAMPLE_SEED,
        }
        w.row("ks_statistic", float(res.statistic), present, feature=feature, details=details)
        pvalue = float(res.pvalue)
        w.row("ks_pvalue", pvalue, present, feature=feature, details=details)
        if present >= self.t.ks_min_n and pvalue < self.t.ks_pvalue:
            w.alert(
                "ks_pvalue", pvalue, self.t.ks_pvalue, "warning", "below", present, feature=feature
            )

    def prediction_drift(self, w: _Window, risks: np.ndarray) -> None:
        """Risk distribution vs the manifest's ``prediction_reference`` when it has one, else vs
        the decile bins of the run's first window with at least psi_min_n predictions."""
        t, g = self.t, w.group
        n = len(risks)
        baseline = self.prediction_baseline.get(g)
        if baseline is None and w.ctx.prediction_reference is not None:
            baseline = (w.ctx.prediction_reference, {"reference": "manifest prediction_reference"})
            self.prediction_baseline[g] = baseline
        if baseline is None:
            need = max(t.min_values, t.psi_min_n)
            if n >= need:
                info = {"reference": "first window", "reference_window_start": w.start.isoformat()}
                self.prediction_baseline[g] = (decile_bins(risks), info)
            else:
                reason = f"no baseline yet (needs a window with {need} predictions); {n} here"
                w.skipped({"prediction_psi": reason}, n)
            return
        bins, info = baseline
        if n < t.min_values:
            w.skipped({"prediction_psi": f"{n} prediction(s), fewer than {t.min_values}"}, n)
            return
        counts = bins.counts(risks)
        value = psi(counts, bins.fractions)
        w.row(
            "prediction_psi",
            value,
            n,
            details={
                **info,
                "bins": bins.bins,
                "window_fractions": [round(float(c) / n, 6) for c in counts],
                "reference_fractions": [round(float(f), 6) for f in bins.fractions],
                "epsilon": PSI_EPSILON,
            },
        )
        self._psi_alert(w, "prediction_psi", value, n, "", critical=t.prediction_psi_critical)

    def performance(self, w: _Window, acc: WindowAccumulator) -> None:
        p, y, sex, age = acc.performance_inputs()
        if not len(p):
            return
        self._metrics(w, y, p, "")
        for b in calibration_bins(y, p):
            w.row(
                "calibration_bin", b["observed"], int(b["n"]), feature=f"bin={b['bin']}", details=b
            )
        ctx = w.ctx
        masks = subgroup_masks(
            sex if ctx.sex_index is not None else None,
            age if ctx.age_index is not None else None,
            ctx.age_bands,
        )
        for name, mask in masks.items():
            if mask.any():
                self._metrics(w, y[mask], p[mask], name)

    def _metrics(self, w: _Window, y: np.ndarray, p: np.ndarray, subgroup: str) -> None:
        m = binary_metrics(y, p)
        n = int(m["n"])
        w.row("outcomes", n, n, subgroup=subgroup, details={"positives": m["positives"]})
        reasons = {
            "auroc": "one outcome class only",
            "auprc": "one outcome class only",
            "calibration_intercept": "one outcome class only",
            "calibration_slope": "one outcome class only or fewer than 20 outcomes",
        }
        for metric in PERFORMANCE_METRICS:
            value = m[metric]
            details: dict[str, Any] = {}
            if value is None:
                details["reason"] = reasons.get(metric, "no outcomes")
            if metric == "prevalence":
                details["mean_predicted"] = m["mean_predicted"]
            w.row(metric, value, n, subgroup=subgroup, details=details)
        if subgroup or n < self.t.min_outcomes:
            return
        gate = w.ctx.gate
        min_auroc = self.t.min_auroc if self.t.min_auroc is not None else gate.get("min_auroc")
        if min_auroc is not None and m["auroc"] is not None and m["auroc"] < min_auroc:
            w.alert("auroc", m["auroc"], float(min_auroc), "critical", "below", n)
        max_int = self.t.max_abs_calibration_intercept
        if max_int is None:
            max_int = gate.get("max_abs_calibration_intercept")
        cal = m["calibration_intercept"]
        if max_int is not None and cal is not None and abs(cal) > max_int:
            w.alert("calibration_intercept", cal, float(max_int), "warning", "outside ±", n)

    def subgroup_volume(self, w: _Window, acc: WindowAccumulator) -> None:
        for name, (cards, risk_cards, alerting) in sorted(acc.subgroup_counts.items()):
            if cards:
                w.row("volume", cards, cards, subgroup=name)
            if risk_cards:
                w.row("alert_rate", alerting / risk_cards, risk_cards, subgroup=name)

    # --- one window ---------------------------------------------------------------------------

    def window(self, conn: Connection, start: datetime, end: datetime) -> None:
        """All figures of one window. Groups are those with cards in this window, plus those
        seen in earlier windows of the run (they get a volume of 0: a service that went quiet)."""
        assert self.report is not None
        counts = {GroupKey(*r[:5]): r[5:] for r in conn.execute(q.card_counts(start, end))}
        groups = self.report.groups = sorted(set(self.report.groups) | set(counts))
        feedback: dict[GroupKey, list[tuple[str, str | None, str | None, int]]] = {}
        for r in conn.execute(q.feedback_counts(start, end)):
            feedback.setdefault(GroupKey(*r[:5]), []).append((r[5], r[6], r[7], int(r[8])))
        shadow = {GroupKey(*r[:5]): r[5:] for r in conn.execute(q.shadow_pairs(start, end))}
        accs = {
            g: WindowAccumulator(self.context(g.model_name, g.model_version), self.sample_size)
            for g in counts
        }
        labels = self.labels()
        present = sorted(counts)
        if present:
            stmt = q.card_rows(start, end, labels, present).execution_options(
                stream_results=True, yield_per=STREAM_CHUNK
            )
            for part in conn.execute(stmt).partitions():
                self.report.rows_scanned += len(part)
                for index, batch in split_by_group(part):
                    if index >= 0:  # else: a card committed after the counts were taken
                        accs[present[index]].add(batch)

        for g in groups:
            w = _Window(self, start, end, g, self.context(g.model_name, g.model_version))
            c = counts.get(g)
            if c is None:
                w.row("volume", 0, 0)
                continue
            volume, no_risk, risk_cards, alerting = (int(x) for x in c)
            acc = accs[g]
            details: dict[str, Any] = {"risk_cards": risk_cards, "no_risk_cards": no_risk}
            if acc.unparsable:
                details["unparsable_features_json"] = acc.unparsable
            w.row("volume", volume, volume, details=details)
            w.row("no_risk_rate", no_risk / volume, volume)
            if risk_cards:
                w.row(
                    "alert_rate", alerting / risk_cards, risk_cards, details={"alerting": alerting}
                )
            if not w.ctx.found:
                w.skipped({"drift": "no manifest for this model version"}, volume)
            if acc.rows:
                self.drift(w, acc)
            self.subgroup_volume(w, acc)
            self.prediction_drift(w, acc.risks())
            self.performance(w, acc)
            self._feedback(w, feedback.get(g, []))
            if g in shadow:
                self._shadow(w, shadow[g])

    @staticmethod
    def _feedback(w: _Window, entries: list[tuple[str, str | None, str | None, int]]) -> None:
        total = sum(e[3] for e in entries)
        if not total:
            return
        accepted = sum(e[3] for e in entries if e[0] == "accepted")
        overridden = sum(e[3] for e in entries if e[0] == "overridden")
        reasons: dict[str, int] = {}
        for outcome, code, display, n in entries:
            if outcome == "overridden":
                reason = code or display or "(none given)"
                reasons[reason] = reasons.get(reason, 0) + n
        w.row("acceptance_rate", accepted / total, total, details={"accepted": accepted})
        w.row(
            "override_rate",
            overridden / total,
            total,
            details={"overridden": overridden, "reasons": reasons},
        )

    @staticmethod
    def _shadow(w: _Window, row: Any) -> None:
        pairs, agree, both, abs_diff = int(row[0]), int(row[1]), int(row[2]), row[3]
        if pairs:
            w.row("shadow_agreement", agree / pairs, pairs, details={"same_band": agree})
        if both and abs_diff is not None:
            w.row("shadow_mean_abs_diff", float(abs_diff) / both, both)

    # --- writing --------------------------------------------------------------------------------

    def flush(self) -> None:
        assert self.report is not None
        if not self.pending and not self.pending_alerts:
            return
        with self.engine.begin() as conn:
            if self.pending:
                conn.execute(RESULTS.insert(), self.pending)
            if self.pending_alerts:
                created = self.now()
                conn.execute(
                    q.ALERTS.insert(),
                    [
                        {
                            "run_id": self.run_id,
                            "created_at": created,
                            "service_id": a.group.service_id,
                            "model_name": a.group.model_name,
                            "model_version": a.group.model_version,
                            "environment": a.group.environment,
                            "window_start": a.window_start,
                            "window_end": a.window_end,
                            "metric": a.metric,
                            "feature": a.feature,
                            "subgroup": a.subgroup,
                            "value": a.value,
                            "threshold": a.threshold,
                            "severity": a.severity,
                            "message": a.message,
                        }
                        for a in self.pending_alerts
                    ],
                )
        self.report.results_written += len(self.pending)
        self.pending, self.pending_alerts = [], []


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


def run_monitoring(
    engine: Engine,
    models_root: Path,
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
    start, end = _utc(window_start, "window_start"), _utc(window_end, "window_end")
    if end <= start:
        raise ValueError("window_end must be after window_start")
    if now is not None:
        now = _utc(now, "now")
    t = thresholds or Thresholds()
    windows = _windows(start, end, window)
    run = _Run(engine, models_root, t, ks_sample_size, now)
    parameters = {
        "window_seconds": window.total_seconds() if window else None,
        "windows": len(windows),
        "thresholds": asdict(t),
        "ks_sample_size": ks_sample_size,
        "sample_seed": SAMPLE_SEED,
        "psi_epsilon": PSI_EPSILON,
        "models_root": str(models_root),
    }
    with engine.begin() as conn:
        conn.execute(
            RUNS.insert(),
            {
                "run_id": run.run_id,
                "started_at": run.now(),
                "window_start": start,
                "window_end": end,
                "parameters": _json(parameters),
            },
        )
    with engine.connect() as conn:
        for r in conn.execute(q.alerts_between(start, end)):
            run.existing_alerts.add((*r[:4], as_utc(r[4]), as_utc(r[5]), r[6], r[7], r[8], r[9]))
    report = MonitorReport(run.run_id, start, end, len(windows), [])
    run.report = report
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


def recent_windows(
    now: datetime, *, days: float, window_hours: float
) -> tuple[datetime, datetime, timedelta]:
    """[start, end) covering the last ``days`` of complete windows of ``window_hours``, aligned to
    multiples of the window since 1970-01-01 UTC (so 24 h windows are UTC calendar days and
    repeated runs recompute the same windows)."""
    step = timedelta(hours=window_hours)
    if step <= timedelta(0) or days <= 0:
        raise ValueError("days and window_hours must be positive")
    epoch = datetime(1970, 1, 1, tzinfo=UTC)
    end = epoch + step * ((_utc(now, "now") - epoch) // step)
    count = max(1, math.ceil(timedelta(days=days) / step))
    return end - step * count, end, step


def run_recent(
    engine: Engine,
    models_root: Path,
    *,
    days: float = 7.0,
    window_hours: float = 24.0,
    now: datetime | None = None,
    thresholds: Thresholds | None = None,
) -> MonitorReport | None:
    """The scheduled run (CLI ``cds-service monitor --days N --window-hours H`` and the
    in-service schedule): the complete windows of the last ``days``. On PostgreSQL only one
    replica runs at a time (advisory lock); the others return None at once."""
    start, end, step = recent_windows(
        now or datetime.now(UTC), days=days, window_hours=window_hours
    )
    with engine.connect() as lock_conn:
        if lock_conn.dialect.name == "postgresql":
            got = lock_conn.execute(sa.text("SELECT pg_try_advisory_lock(:k)"), {"k": _LOCK_KEY})
            if not got.scalar():
                lock_conn.rollback()
                log.info("monitoring: another replica is running the monitor; skipped")
                return None
            lock_conn.commit()
        try:
            return run_monitoring(
                engine,
                models_root,
                window_start=start,
                window_end=end,
                window=step,
                now=now,
                thresholds=thresholds,
            )
        finally:
            if lock_conn.dialect.name == "postgresql":
                lock_conn.execute(sa.text("SELECT pg_advisory_unlock(:k)"), {"k": _LOCK_KEY})
                lock_conn.commit()

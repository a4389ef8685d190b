"""The PMS report's content: sections of tables whose every cell has passed the small-cell rule,
and the list of indicators of the plan that the period exceeded. A figure whose ``n`` (cards,
outcomes or feedback behind it) is a small cell is withheld before it is formatted, so the HTML,
the PDF and the model card can only print what this module let through."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy.engine import Engine

from cds_service.monitoring.suppression import SUPPRESSED, suppressed
from cds_service.reports import pms_queries as q
from cds_service.reports.plan import PmsPlan
from cds_service.reports.pms_trail import alerts_section, deployments_section, feedback_section
from cds_service.reports.pms_types import Section, Table, figure

__all__ = ["PmsData", "collect"]

Row = dict[str, Any]


@dataclass(slots=True)
class PmsData:
    model: str
    start: datetime
    end: datetime
    minimum: int
    plan: PmsPlan
    sections: list[Section]
    exceedances: list[str]
    # Figures the model card reuses, only those shown: (subgroup or "", metric) -> (value, n).
    shown: dict[tuple[str, str], tuple[float, int]]


def _visible(row: Row, minimum: int) -> bool:
    return row["value"] is not None and figure(
        row["metric"], row["value"], row["n"], minimum
    ) not in (
        SUPPRESSED,
        "-",
    )


def _window(row: Row) -> str:
    return f"{row['window_start']:%Y-%m-%d} to {row['window_end']:%Y-%m-%d}"


def _series(row: Row) -> str:
    return f"{row['model_version']} {row['environment']}/{row['role']}"


def _pivot(rows: list[Row], metrics: tuple[str, ...], minimum: int, key: str = "") -> Table:
    """One line per window and series (and ``key``: subgroup or feature), a column per metric."""
    lines: dict[tuple[str, ...], dict[str, str]] = {}
    for r in rows:
        ident = (_window(r), _series(r), *((r[key] or "(all)",) if key else ()))
        n_label = "n" if r["metric"] in ("outcomes", "volume") else r["metric"]
        cells = lines.setdefault(ident, {})
        if r["metric"] in ("outcomes", "volume"):
            cells[n_label] = suppressed(int(r["n"]), minimum)
        else:
            cells[r["metric"]] = figure(r["metric"], r["value"], int(r["n"]), minimum)
    head = ["window", "version env/role", *([key] if key else []), *metrics]
    body = [[*ident, *(c.get(m, "-") for m in metrics)] for ident, c in lines.items()]
    return Table(head, body)


def _check(
    rows: list[Row], minimum: int, metric: str, bad: Any, limit: str, out: list[str]
) -> None:
    for r in rows:
        if r["metric"] == metric and _visible(r, minimum) and bad(r["value"]):
            where = f" ({r['feature']})" if r.get("feature") else ""
            out.append(
                f"{metric}{where} {r['value']:.3f} against the plan's {limit}: "
                f"{_series(r)}, {_window(r)}"
            )


def _exceedances(plan: PmsPlan, perf: list[Row], drift: list[Row], minimum: int) -> list[str]:
    i = plan.indicators
    out: list[str] = []
    lo, hi = i.calibration_intercept_range
    slo, shi = i.calibration_slope_range
    _check(perf, minimum, "auroc", lambda v: v < i.min_auroc, f"minimum {i.min_auroc}", out)
    _check(perf, minimum, "calibration_intercept", lambda v: not lo <= v <= hi, f"{lo}..{hi}", out)
    _check(perf, minimum, "calibration_slope", lambda v: not slo <= v <= shi, f"{slo}..{shi}", out)
    _check(
        perf, minimum, "alert_rate", lambda v: v > i.max_alert_rate, f"max {i.max_alert_rate}", out
    )
    over = f"max {i.max_override_rate}"
    _check(perf, minimum, "override_rate", lambda v: v > i.max_override_rate, over, out)
    for metric in ("psi", "prediction_psi"):
        _check(drift, minimum, metric, lambda v: v > i.max_psi, f"max {i.max_psi}", out)
    for r, excess in _missing_excess(drift, minimum):
        if excess > i.max_missing_rate_excess:
            out.append(
                f"missing_rate ({r['feature']}) {r['value']:.3f}, {excess:+.3f} over the training "
                f"reference, against the plan's max excess {i.max_missing_rate_excess}: "
                f"{_series(r)}, {_window(r)}"
            )
    return out


def _missing_excess(drift: list[Row], minimum: int) -> list[tuple[Row, float]]:
    """Each shown missing rate with its excess over the training reference's rate."""
    ref = {
        (_window(r), _series(r), r["feature"]): float(r["value"])
        for r in drift
        if r["metric"] == "missing_rate_reference" and r["value"] is not None
    }
    out = []
    for r in drift:
        key = (_window(r), _series(r), r["feature"])
        if r["metric"] == "missing_rate" and _visible(r, minimum) and key in ref:
            out.append((r, float(r["value"]) - ref[key]))
    return out


def _use(rows: list[Row], minimum: int) -> Section:
    body = [
        [
            r["model_version"],
            f"{r['environment']}/{r['role']}",
            r["card_kind"],
            suppressed(int(r["cards"]), minimum),
            suppressed(int(r["patients"]), minimum),
        ]
        for r in rows
    ]
    notes = [] if body else ["No cards in the period."]
    head = ["version", "env/role", "card kind", "cards", "patients"]
    return Section("use", "Use", notes, [Table(head, body)])


_PERF = ("n", "auroc", "auprc", "brier", "alert_rate", "override_rate")
_CAL = ("n", "calibration_intercept", "calibration_slope", "ece")


def _performance(perf: list[Row], est: list[Row], plan: PmsPlan, minimum: int) -> Section:
    notes = [
        f"Realized figures on the cards whose outcome is in (n = outcomes); plan minimum AUROC "
        f"{plan.indicators.min_auroc}. Figures from fewer than {minimum} cards show as "
        f"{SUPPRESSED} or <{minimum}."
    ]
    tables = [_pivot(perf, _PERF, minimum)]
    if est:
        metrics = tuple(sorted({r["metric"] for r in est}))
        tables.append(_pivot(est, metrics, minimum))
        notes.append("Estimated figures (label-free, from the logged probabilities) follow.")
    else:
        notes.append("Estimated performance: not yet estimated for this period.")
    if not perf:
        notes.insert(0, "No monitoring window of the period has outcomes yet.")
    return Section("performance", "Performance, realized and estimated", notes, tables)


def _calibration(perf: list[Row], plan: PmsPlan, minimum: int) -> Section:
    i = plan.indicators
    notes = [
        f"Calibration-in-the-large and slope on the cards with outcomes; plan ranges: intercept "
        f"{i.calibration_intercept_range[0]}..{i.calibration_intercept_range[1]}, slope "
        f"{i.calibration_slope_range[0]}..{i.calibration_slope_range[1]}."
    ]
    return Section("calibration", "Calibration", notes, [_pivot(perf, _CAL, minimum)])


def _drift(drift: list[Row], plan: PmsPlan, minimum: int) -> Section:
    i = plan.indicators
    notes = [
        f"Population stability index of each input and of the predicted risk against the "
        f"training reference, and each input's missing rate beside its rate in training; plan "
        f"maxima: PSI {i.max_psi}, missing rate {i.max_missing_rate_excess} over training."
    ]
    metrics = ("psi", "prediction_psi", "missing_rate", "missing_rate_reference")
    table = _pivot(drift, metrics, minimum, key="feature")
    if not drift:
        notes.append("No drift figures in the period.")
    return Section("drift", "Drift", notes, [table])


def _subgroups(rows: list[Row], minimum: int) -> Section:
    notes = [
        "Cards, alert rate and AUROC per subgroup (sex, age band). A subgroup with fewer than "
        f"{minimum} cards or outcomes shows no figure."
    ]
    table = _pivot(rows, ("n", "alert_rate", "auroc"), minimum, key="subgroup")
    return Section("subgroups", "Subgroups", notes, [table])


def _shown(rows: list[Row], minimum: int) -> dict[tuple[str, str], tuple[float, int]]:
    """The period's last shown figure per subgroup and metric (for the model card)."""
    out: dict[tuple[str, str], tuple[float, int]] = {}
    for r in rows:
        if _visible(r, minimum):
            out[(r["subgroup"], r["metric"])] = (float(r["value"]), int(r["n"]))
    return out


def collect(engine: Engine, plan: PmsPlan, start: datetime, end: datetime, minimum: int) -> PmsData:
    """Read the period of ``plan.model`` from the views and build the report's sections."""
    model = plan.model
    with engine.connect() as conn:
        use = q.use(conn, model, start, end)
        perf = q.performance(conn, model, start, end)
        est = q.estimated(conn, model, start, end)
        drift = q.drift(conn, model, start, end)
        subs = q.subgroups(conn, model, start, end)
        alerts = q.alerts(conn, model, start, end)
        outcomes = q.feedback_outcomes(conn, model, start, end)
        reasons = q.override_reasons(conn, model, start, end)
        trail = q.deployments(conn, model, end)
    changes = [d for d in trail if d["model_name"] == model]
    sections = [
        _use(use, minimum),
        _performance(perf, est, plan, minimum),
        _calibration(perf, plan, minimum),
        _drift(drift, plan, minimum),
        _subgroups(subs, minimum),
        alerts_section(alerts, changes),
        feedback_section(outcomes, reasons, minimum),
        deployments_section(trail, start, minimum),
    ]
    return PmsData(
        model,
        start,
        end,
        minimum,
        plan,
        sections,
        _exceedances(plan, perf, drift, minimum),
        _shown([*perf, *subs], minimum),
    )

"""The drift panel: a heat map of the population stability index (PSI) per input and monitoring
window, with the Kolmogorov-Smirnov test marked, from the monitor's figures.

Its colour levels and legend are the monitor's alert thresholds
(``cds_service.monitoring.run.Thresholds``), so the legend says what raises an alert.
"""

from __future__ import annotations

from collections import defaultdict

from cds_service.monitoring import Thresholds
from cds_service.web.dashboard import grids
from cds_service.web.dashboard.grids import Cell
from cds_service.web.dashboard.layout import length_label, panel
from cds_service.web.dashboard.queries import DashboardData, Figure, WindowKey, details_of
from cds_service.web.html import num

__all__ = ["drift_panel", "psi_legend"]

THRESHOLDS = Thresholds()
# PSI below 0.1 is conventionally "no real shift"; between it and the monitor's warning level a
# cell is tinted but raises no alert.
PSI_SLIGHT = 0.1
_Cells = dict[tuple[int, int], dict[str, Figure]]


def _psi_levels(prediction: bool) -> tuple[float, float, float]:
    t = THRESHOLDS
    if prediction:
        return PSI_SLIGHT, t.prediction_psi_warning, t.prediction_psi_critical
    return PSI_SLIGHT, t.psi_warning, t.psi_critical


def psi_legend() -> list[tuple[str, str]]:
    slight, warning, critical = _psi_levels(prediction=False)
    return [
        (f"PSI < {slight:g}", "heat-0"),
        (f"{slight:g}–{warning:g}", "heat-1"),
        (f"{warning:g}–{critical:g} warning", "heat-2"),
        (f"> {critical:g} critical", "heat-3"),
        ("not computed", "heat-na"),
    ]


def _row_of(x: Figure, rows: dict[str, int], pred_row: int) -> int | None:
    """The heat map row of a figure: its input's, or the predicted risk's."""
    if x.metric == "prediction_psi":
        return pred_row
    if x.metric == "reference_too_small" and not x.feature:
        skipped = details_of(x).get("skipped")
        return pred_row if isinstance(skipped, dict) and "prediction_psi" in skipped else None
    return rows.get(x.feature)


def _figures_by_cell(data: DashboardData, features: list[str], pred_row: int) -> _Cells:
    col = {k: j for j, k in enumerate(data.windows.keys)}
    rows = {name: i for i, name in enumerate(features)}
    by_cell: _Cells = defaultdict(dict)
    for x in data.drift:
        i, j = _row_of(x, rows, pred_row), col.get(x.window)
        if i is not None and j is not None:
            by_cell[(i, j)][x.metric] = x
    return by_cell


def _alerted(data: DashboardData) -> set[tuple[str, WindowKey]]:
    """(input, window) of every drift alert; the predicted risk's input is ``""``."""
    return {(a.feature, a.window) for a in data.alerts if a.metric in ("psi", "ks_pvalue")} | {
        ("", a.window) for a in data.alerts if a.metric == "prediction_psi"
    }


def _psi_cell(
    figs: dict[str, Figure], psi: Figure, title: str, prediction: bool, alert: bool
) -> Cell:
    assert psi.value is not None
    ks_p, ks_d = figs.get("ks_pvalue"), figs.get("ks_statistic")
    significant = ks_p is not None and ks_p.value is not None and ks_p.value < THRESHOLDS.ks_pvalue
    title += f"PSI {psi.value:.3f} (n={psi.n})"
    if ks_d is not None and ks_p is not None:
        title += f"; KS statistic {num(ks_d.value)}, p = {num(ks_p.value, 4)}"
    level = sum(1 for t in _psi_levels(prediction) if psi.value > t)
    text = f"{psi.value:.2f}" + (" •" if significant else "")
    return Cell(psi.value, text, title, level, alert)


def _cell(figs: dict[str, Figure], title: str, prediction: bool, alert: bool) -> Cell | None:
    """A PSI cell (outlined when it raised an alert), or why there is no PSI."""
    psi = figs.get("prediction_psi" if prediction else "psi")
    if psi is not None and psi.value is not None:
        return _psi_cell(figs, psi, title, prediction, alert)
    if "reference_too_small" in figs:
        skipped = details_of(figs["reference_too_small"]).get("skipped")
        reason = "; ".join(str(v) for v in skipped.values()) if isinstance(skipped, dict) else ""
        return Cell(None, "n/a", title + "not computed: " + reason, -1)
    return None


def _scope(data: DashboardData) -> str:
    w = data.windows
    if not w.version:
        return "No monitoring run has covered this selection yet (cds-service monitor)."
    return (
        f"Model version {w.version}, windows of {w.length and length_label(w.length)}, "
        f"{data.filters.role} predictions."
    )


def drift_panel(data: DashboardData) -> str:
    keys = data.windows.keys
    features = list(data.feature_labels)
    features += sorted({x.feature for x in data.drift if x.feature} - set(features))
    rows = [data.feature_labels.get(name, name) for name in features] + ["predicted risk"]
    pred_row = len(rows) - 1
    alerted = _alerted(data)
    cells: dict[tuple[int, int], Cell] = {}
    for (i, j), figs in _figures_by_cell(data, features, pred_row).items():
        prediction = i == pred_row
        alert = ("" if prediction else features[i], keys[j]) in alerted
        cell = _cell(figs, f"{rows[i]}, {keys[j].label}: ", prediction, alert)
        if cell is not None:
            cells[(i, j)] = cell
    chart = grids.heatmap(
        "drift",
        "Population stability index per input and window",
        rows,
        [k.label for k in keys],
        cells,
        legend=psi_legend(),
    )
    return panel(
        "Drift per input",
        "Population stability index (PSI) of each input against the training data, per "
        "monitoring window; • marks a Kolmogorov–Smirnov test with "
        f"p < {THRESHOLDS.ks_pvalue:g}; an outlined cell raised an alert. Hover a cell for the "
        "figures. " + _scope(data),
        chart,
        wide=True,
        pid="drift",
    )

"""Dashboard charts on a grid rather than along axes: the drift heat map, and the two plots on a
unit square (calibration: observed against predicted; shadow against live risk).

Same conventions as ``charts``: one ``<svg class="chart" data-chart="...">`` per chart, each
data mark a ``mark`` with ``data-value`` and a ``<title>``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from cds_service.web.dashboard.charts import chart_svg, empty
from cds_service.web.html import pct
from cds_service.web.svg import Svg

__all__ = ["Cell", "calibration_plot", "heatmap", "scatter"]


@dataclass(frozen=True, slots=True)
class Cell:
    value: float | None
    text: str
    title: str
    level: int  # 0..3 for colour, -1 for "not computed"
    alert: bool = False


def heatmap(
    kind: str,
    label: str,
    row_labels: Sequence[str],
    col_labels: Sequence[str],
    cells: dict[tuple[int, int], Cell],
    *,
    width: int = 1200,
    legend: Sequence[tuple[str, str]] = (),
) -> str:
    if not row_labels or not col_labels:
        return empty(kind, "No drift figures for this selection", width)
    row_h = 24
    label_w = min(210, 14 + 6.6 * max(len(r) for r in row_labels))
    height = 56 + row_h * len(row_labels)
    svg = chart_svg(kind, width, height, label)
    col_w = min(150.0, (width - label_w - 10) / len(col_labels))
    for j, col in enumerate(col_labels):
        svg.text(label_w + col_w * (j + 0.5), 40, col, "axis", "middle")
    for i, row in enumerate(row_labels):
        y = 48 + i * row_h
        svg.text(label_w - 8, y + 16, row, "axis", "end")
        for j in range(len(col_labels)):
            cell = cells.get((i, j))
            x = label_w + col_w * j
            if cell is None:
                svg.element(
                    "rect",
                    x=float(x + 1),
                    y=float(y + 1),
                    width=float(col_w - 2),
                    height=row_h - 2,
                    class_="heat-none",
                )
                continue
            cls = "heat-na" if cell.level < 0 else f"heat-{cell.level}"
            if cell.alert:
                cls += " heat-alert"
            svg.rect(x + 1, y + 1, col_w - 2, row_h - 2, cls, cell.title, cell.value)
            svg.text(x + col_w / 2, y + 16, cell.text, "cell-label", "middle", 11)
    svg.legend(legend, label_w, 16)
    return svg.render()


def _unit_grid(svg: Svg, left: float, top: float, scale: float) -> None:
    """Grid lines and percent labels of a 0..1 by 0..1 plot (calibration, shadow scatter)."""
    for t in (0, 0.25, 0.5, 0.75, 1.0):
        x, y = left + t * scale, top + (1 - t) * scale
        svg.line(left, y, left + scale, y, "grid")
        svg.line(x, top, x, top + scale, "grid")
        svg.text(left - 6, y + 4, pct(t, 0), "axis", "end")
        svg.text(x, top + scale + 16, pct(t, 0), "axis", "middle")


def calibration_plot(
    kind: str,
    label: str,
    bins: Sequence[tuple[float, float, int]],  # (predicted, observed, n)
    *,
    size: int = 320,
) -> str:
    if not bins:
        return empty(kind, "No outcomes yet: calibration needs known outcomes", 600)
    width = size + 240
    height = size + 56
    svg = chart_svg(kind, width, height, label)
    left, top = 52, 16
    scale = size - 10

    def xy(p: float, o: float) -> tuple[float, float]:
        return left + p * scale, top + (1 - o) * scale

    _unit_grid(svg, left, top, scale)
    svg.line(*xy(0, 0), *xy(1, 1), "diagonal")
    top_n = max(n for _p, _o, n in bins)
    points = [xy(p, o) for p, o, _n in bins]
    svg.polyline(points, "series s-risk")
    for (p, o, n), (x, y) in zip(bins, points, strict=True):
        r = 3 + 7 * math.sqrt(n / top_n)
        svg.circle(
            x, y, r, "dot s-risk", f"predicted {pct(p)}, observed {pct(o)} (n={n})", round(o, 6)
        )
    svg.text(left + scale / 2, top + scale + 34, "mean predicted risk", "axis", "middle")
    svg.vertical_text(14, top + scale / 2, "observed rate")
    lx = left + scale + 24
    svg.line(lx, 30, lx + 24, 30, "diagonal")
    svg.text(lx + 30, 34, "perfect calibration", "legend")
    svg.circle(lx + 12, 54, 6, "s-risk swatch", "legend", "")
    svg.text(lx + 30, 58, "risk bin (size: cards)", "legend")
    return svg.render()


def scatter(
    kind: str,
    label: str,
    points: Sequence[tuple[float, float]],
    *,
    x_name: str,
    y_name: str,
    thresholds: Sequence[float] = (),
    size: int = 300,
) -> str:
    if not points:
        return empty(kind, "No paired predictions in this selection", 600)
    width, height = size + 70, size + 50
    svg = chart_svg(kind, width, height, label)
    left, top = 48, 10
    scale = size - 10

    def xy(a: float, b: float) -> tuple[float, float]:
        return left + a * scale, top + (1 - b) * scale

    _unit_grid(svg, left, top, scale)
    for t in thresholds:
        x, y = xy(t, t)
        svg.line(x, top, x, top + scale, "threshold")
        svg.line(left, y, left + scale, y, "threshold")
    svg.line(*xy(0, 0), *xy(1, 1), "diagonal")
    for a, b in points:
        x, y = xy(a, b)
        svg.circle(x, y, 2.6, "dot s-shadow", f"{x_name} {pct(a)}, {y_name} {pct(b)}", round(b, 4))
    svg.text(left + scale / 2, top + scale + 34, x_name, "axis", "middle")
    svg.vertical_text(12, top + scale / 2, y_name)
    return svg.render()

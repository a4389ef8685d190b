"""Dashboard charts along axes (bars, histogram, lines) as inline SVG, drawn on the server (no
JavaScript, no CDN, nothing fetched); the grid charts are in ``grids``.

Each function returns one ``<svg class="chart" data-chart="...">`` element. Every data mark has
the class ``mark``, a ``data-value`` attribute and a ``<title>`` (the browser's tooltip), so the
figures are readable by people, screen readers and tests alike. Colours come from CSS classes in
``static/dashboard/dashboard.css``; sizes are in the viewBox's units (about CSS pixels).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from cds_service.web.html import num, pct
from cds_service.web.svg import Svg, coord, nice_ticks

__all__ = [
    "Plot",
    "chart_svg",
    "empty",
    "hbars",
    "histogram",
    "line_chart",
    "nice_ticks",
    "stacked_bars",
]


def _tick_label(value: float, as_pct: bool) -> str:
    if as_pct:
        return f"{100 * value:g}%"
    if value >= 1000:
        return f"{value / 1000:g}k"
    return f"{value:g}"


def chart_svg(kind: str, width: int, height: int, label: str) -> Svg:
    """A dashboard chart: colours from the stylesheet's classes, named by ``data-chart``."""
    return Svg(width, height, label, class_="chart", data_chart=kind)


def empty(kind: str, message: str, width: int = 600, height: int = 120) -> str:
    svg = chart_svg(kind, width, height, message)
    svg.element("rect", x=0, y=0, width=width, height=height, class_="empty-bg")
    svg.text(width / 2, height / 2 + 4, message, "muted", "middle", 13)
    return svg.render()


@dataclass(frozen=True, slots=True)
class Plot:
    """The plotting area inside the margins, and value -> position."""

    left: float
    top: float
    width: float
    height: float
    y_max: float
    y_min: float = 0.0

    def y(self, value: float) -> float:
        span = (self.y_max - self.y_min) or 1.0
        return self.top + self.height * (1 - (value - self.y_min) / span)

    @property
    def bottom(self) -> float:
        return self.top + self.height


def _y_axis(svg: Svg, plot: Plot, ticks: Sequence[float], as_pct: bool = False) -> None:
    for t in ticks:
        y = plot.y(t)
        svg.line(plot.left, y, plot.left + plot.width, y, "grid")
        svg.text(plot.left - 6, y + 4, _tick_label(t, as_pct), "axis", "end")


def _label_every(labels: Sequence[str], width: float) -> int:
    """Show every k-th x label so that labels do not overlap."""
    longest = max((len(x) for x in labels), default=1)
    fits = max(1, int(width // (7 * longest + 14)))
    return max(1, math.ceil(len(labels) / fits))


def _x_labels(svg: Svg, plot: Plot, labels: Sequence[str], step: float, every: int) -> None:
    for i, label in enumerate(labels):
        if i % every == 0 or (i == len(labels) - 1 and len(labels) < every * 2):
            svg.text(plot.left + step * (i + 0.5), plot.bottom + 16, label, "axis", "middle")


def stacked_bars(
    kind: str,
    label: str,
    x_labels: Sequence[str],
    series: Sequence[tuple[str, str, Sequence[int]]],
    *,
    width: int = 1200,
    height: int = 260,
    markers: Sequence[tuple[int, str]] = (),
    unit: str = "cards",
) -> str:
    """Bars per x (a day), stacked by series (name, css class, values)."""
    totals = [sum(s[2][i] for s in series) for i in range(len(x_labels))]
    if not x_labels or not any(totals):
        return empty(kind, f"No {unit} in this selection", width)
    svg = chart_svg(kind, width, height, label)
    ticks = nice_ticks(max(totals))
    plot = Plot(48, 30, width - 64, height - 62, ticks[-1])
    _y_axis(svg, plot, ticks)
    step = plot.width / len(x_labels)
    bar = max(2.0, step * 0.72)
    for i, x_label in enumerate(x_labels):
        base = 0
        x = plot.left + step * i + (step - bar) / 2
        for name, cls, values in series:
            v = values[i]
            if v:
                y0, y1 = plot.y(base), plot.y(base + v)
                svg.rect(x, y1, bar, y0 - y1, cls, f"{x_label}: {v} {name}", v)
                base += v
    for index, text in markers:
        if 0 <= index < len(x_labels):
            x = plot.left + step * index
            svg.line(x, plot.top - 4, x, plot.bottom, "marker")
            svg.text(x + 3, plot.top + 6, text, "marker-label")
    _x_labels(svg, plot, x_labels, step, _label_every(x_labels, plot.width))
    svg.legend([(name, cls) for name, cls, _ in series], plot.left, 16)
    return svg.render()


def histogram(
    kind: str,
    label: str,
    edges: Sequence[float],
    counts: Sequence[int],
    bands: Sequence[tuple[str, float, str]],
    *,
    width: int = 600,
    height: int = 260,
) -> str:
    """Risk histogram; bars coloured by the risk band their bin falls in, band limits dashed."""
    if not any(counts):
        return empty(kind, "No risk was computed in this selection", width)
    svg = chart_svg(kind, width, height, label)
    ticks = nice_ticks(max(counts))
    plot = Plot(44, 34, width - 60, height - 70, ticks[-1])
    _y_axis(svg, plot, ticks)
    step = plot.width / len(counts)

    def band_of(mid: float) -> tuple[str, str]:
        for name, below, indicator in bands:
            if mid < below:
                return name, indicator
        return (bands[-1][0], bands[-1][2]) if bands else ("", "info")

    for i, n in enumerate(counts):
        lo, hi = edges[i], edges[i + 1]
        name, indicator = band_of((lo + hi) / 2)
        y = plot.y(n)
        title = f"risk {pct(lo, 0)}–{pct(hi, 0)}: {n} cards" + (f" ({name})" if name else "")
        svg.rect(
            plot.left + step * i + 1, y, step - 2, plot.bottom - y, f"band-{indicator}", title, n
        )
    for name, below, _indicator in bands:
        if 0 < below < 1:
            x = plot.left + plot.width * below
            svg.line(x, plot.top - 6, x, plot.bottom, "threshold")
            svg.text(x + 3, plot.top - 8, f"{name} below {pct(below, 0)}", "marker-label")
    for t in (0, 0.25, 0.5, 0.75, 1.0):
        svg.text(plot.left + plot.width * t, plot.bottom + 16, pct(t, 0), "axis", "middle")
    svg.text(plot.left + plot.width / 2, plot.bottom + 32, "predicted risk", "axis", "middle")
    legend = []
    for name, _below, indicator in bands:
        if (name, f"band-{indicator}") not in legend:
            legend.append((name, f"band-{indicator}"))
    svg.legend(legend, plot.left, 14)
    return svg.render()


def hbars(
    kind: str,
    label: str,
    rows: Sequence[tuple[str, float, float | None, str]],
    *,
    width: int = 600,
    max_value: float | None = None,
    as_pct: bool = True,
    bar_class: str = "s-risk",
    marker_name: str = "reference",
) -> str:
    """Horizontal bars: (label, value, reference marker or None, annotation)."""
    if not rows:
        return empty(kind, "Nothing to show", width)
    row_h = 22
    height = 40 + row_h * len(rows)
    svg = chart_svg(kind, width, height, label)
    top = max(max_value or 0.0, *(r[1] for r in rows), *(r[2] or 0.0 for r in rows))
    ticks = nice_ticks(top if top > 0 else 1.0)
    longest = max(len(r[0]) for r in rows)
    max_chars = int((width * 0.42 - 12) / 6.6)
    label_w = min(12 + 6.6 * longest, width * 0.42)
    note_w = min(max(6.4 * len(r[3]) + 12 for r in rows), width * 0.3)
    left, right = label_w, width - note_w
    scale = (right - left) / ticks[-1]
    for t in ticks:
        x = left + t * scale
        svg.line(x, 24, x, height - 10, "grid")
        svg.text(x, 16, _tick_label(t, as_pct), "axis", "middle")
    for i, (name, value, ref, note) in enumerate(rows):
        y = 28 + i * row_h
        short = name if len(name) <= max_chars else name[: max_chars - 1] + "…"
        svg.text(left - 8, y + 12, short, "axis", "end")
        svg.rect(left, y + 2, value * scale, row_h - 8, bar_class, f"{name}: {note}", value)
        if ref is not None:
            x = left + ref * scale
            svg.element(
                "path",
                f"{name}: {marker_name} {pct(ref)}",
                d=f"M{coord(x)} {coord(y)} v{row_h - 4}",
                class_="ref-mark",
            )
        svg.text(left + value * scale + 6, y + 13, note, "value-label")
    return svg.render()


def _y_scale(
    values: Sequence[float],
    y_range: tuple[float, float] | None,
    references: Sequence[tuple[float, str]],
) -> tuple[float, float, list[float]]:
    """The y axis of a line chart: from zero with round ticks, or over ``y_range``."""
    lo, hi = y_range or (min(0.0, *values), max(values))
    hi = max([hi, *(r[0] for r in references)])
    if hi <= lo:
        hi = lo + 1
    if y_range is None or lo == 0:
        ticks = nice_ticks(hi)
        return 0.0, ticks[-1], ticks
    step = nice_ticks(hi - lo, 5)[1]
    first, last = math.ceil(lo / step - 1e-9), math.floor(hi / step + 1e-9)
    return lo, hi, [round(k * step, 6) for k in range(first, last + 1)]


def _line(
    svg: Svg,
    plot: Plot,
    step: float,
    x_labels: Sequence[str],
    series: tuple[str, str, Sequence[float | None]],
    as_pct: bool,
) -> None:
    name, cls, values = series
    points = [
        (i, plot.left + step * (i + 0.5), plot.y(v), v)
        for i, v in enumerate(values)
        if v is not None
    ]
    if len(points) > 1:
        svg.polyline([(x, y) for _i, x, y, _v in points], f"series {cls}")
    for i, x, y, v in points:
        shown = pct(v) if as_pct else num(v)
        svg.circle(x, y, 4, f"dot {cls}", f"{name}, {x_labels[i]}: {shown}", round(v, 6))


def line_chart(
    kind: str,
    label: str,
    x_labels: Sequence[str],
    series: Sequence[tuple[str, str, Sequence[float | None]]],
    *,
    width: int = 600,
    height: int = 240,
    y_range: tuple[float, float] | None = None,
    references: Sequence[tuple[float, str]] = (),
    as_pct: bool = False,
) -> str:
    """Lines per series (name, css class, value per x or None); every value a dot with its
    tooltip, horizontal ``references`` (a gate) dashed."""
    values = [v for _n, _c, vs in series for v in vs if v is not None]
    if not x_labels or not values:
        return empty(kind, "No figures yet for this selection", width)
    lo, hi, ticks = _y_scale(values, y_range, references)
    svg = chart_svg(kind, width, height, label)
    plot = Plot(48, 30, width - 64, height - 62, hi, lo)
    _y_axis(svg, plot, ticks, as_pct)
    step = plot.width / len(x_labels)
    for y_value, text in references:
        y = plot.y(y_value)
        svg.line(plot.left, y, plot.left + plot.width, y, "threshold")
        svg.text(plot.left + 4, y - 4, text, "marker-label")
    for one in series:
        _line(svg, plot, step, x_labels, one, as_pct)
    _x_labels(svg, plot, x_labels, step, _label_every(x_labels, plot.width))
    svg.legend([(n, f"{c} swatch") for n, c, _ in series], plot.left, 16)
    return svg.render()

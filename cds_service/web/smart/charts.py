"""Trend charts for the SMART app: inline SVG drawn on the server (no script, no CDN).

One chart per measured input (the observation features that share codes and a unit), over the
longest window any of the model's observation features looks back. The part of the time axis that
the model actually uses for that input is shaded; older points are drawn in grey.

Everything is derived from the feature spec and the normalized facts of ``fhir_mappers`` (values
already in the spec's canonical unit), so a new model gets its charts without new code.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from cds_service.web.smart.words import Words, measurement_name
from cds_service.web.svg import Svg, nice_step
from fhir_mappers.facts import PatientFacts
from fhir_mappers.spec import ModelSpec

# Names for common measurements are in app_phrases.toml ([[measurements]]); anything else is
# titled with its first feature's label. Inputs drawn together in one chart, as named series
# (phrase keys):
COMBINED = {
    "http://loinc.org|8480-6": ("blood_pressure", "systolic"),
    "http://loinc.org|8462-4": ("blood_pressure", "diastolic"),
}
PRETTY_UNITS = {
    "/min": "/min",
    "mm[Hg]": "mmHg",
    "Cel": "°C",
    "10*9/L": "×10⁹/L",
    "%": "%",
}
SERIES_COLOURS = ("#1f5fa8", "#b4441d", "#2f7d32", "#6a3d9a")
OLD_COLOUR = "#9aa3ad"

WIDTH, HEIGHT = 520, 190
LEFT, RIGHT, TOP, BOTTOM = 52, 14, 26, 34


def pretty_unit(unit: str | None, words: Words) -> str:
    if not unit or unit in ("1", "{count}"):
        return ""
    if unit == "{score}":
        return words("points")
    return PRETTY_UNITS.get(unit, unit)


@dataclass(slots=True)
class Series:
    name: str
    points: list[tuple[datetime, float]]


@dataclass(slots=True)
class Chart:
    key: str
    title: str
    unit: str
    start: datetime  # the left edge of the time axis
    end: datetime  # the index time
    used_from: datetime  # the model uses points after this moment
    series: list[Series] = field(default_factory=list)
    words: Words = field(default_factory=Words)  # the language and zone of its labels

    @property
    def point_count(self) -> int:
        return sum(len(s.points) for s in self.series)


def trend_charts(
    spec: ModelSpec, facts: PatientFacts, index_time: datetime, words: Words | None = None
) -> list[Chart]:
    """Charts for every observation input with a unit, in spec order."""
    words = words or Words()
    groups: dict[str, Chart] = {}
    seen_series: set[tuple[str, str]] = set()
    candidates = [
        (i, f)
        for i, f in enumerate(spec.features)
        if f.source == "observation" and f.unit and f.window is not None and not f.value_map
    ]
    if not candidates:
        return []
    span_start = index_time + min(f.window.start for _, f in candidates if f.window)
    for i, feat in candidates:
        assert feat.window is not None
        first_code = feat.codes[0] if feat.codes else feat.name
        combined = COMBINED.get(first_code)
        if combined is not None:
            key, series_name = combined[0], words(combined[1])
            title = words(combined[0])
        else:
            key = "|".join(sorted(feat.codes)) + "@" + (feat.unit or "")
            series_name = ""
            title = measurement_name(first_code, words.language) or feat.label_in(words.language)
        used_from = index_time + feat.window.start
        chart = groups.get(key)
        if chart is None:
            chart = Chart(
                key=key,
                title=title,
                unit=pretty_unit(feat.unit, words),
                start=span_start,
                end=index_time,
                used_from=used_from,
                words=words,
            )
            groups[key] = chart
        chart.used_from = min(chart.used_from, used_from)
        if (key, series_name) in seen_series:
            continue  # another feature over the same measurements (mean, slope, last, ...)
        seen_series.add((key, series_name))
        points = [(f.time, f.value) for f in facts.facts[i] if span_start < f.time <= index_time]
        chart.series.append(Series(series_name, sorted(points)))
    return list(groups.values())


def _fmt(value: float, step: float = 1.0) -> str:
    text = f"{step:.3f}".rstrip("0").rstrip(".")
    decimals = len(text.split(".")[1]) if "." in text else 0
    return f"{value:.{decimals}f}"


def _fmt_value(value: float) -> str:
    if value == int(value) or abs(value) >= 100:
        return f"{value:.0f}"
    return f"{value:.1f}" if abs(value) >= 10 else f"{value:.3g}"


def _time_ticks(start: datetime, end: datetime, zone: str) -> list[tuple[datetime, str]]:
    """Ticks at local midnights (day-month, no month names) or local hours."""
    start, end = start.astimezone(ZoneInfo(zone)), end.astimezone(ZoneInfo(zone))
    span = end - start
    if span >= timedelta(days=2):
        day = start.replace(hour=0, minute=0, second=0, microsecond=0) + timedelta(days=1)
        step = max(1, round(span.days / 7))
        ticks = []
        while day <= end:
            ticks.append((day, f"{day:%d-%m}"))
            day += timedelta(days=step)
        return ticks
    hours = max(1, round(span.total_seconds() / 3600 / 6))
    tick = start.replace(minute=0, second=0, microsecond=0) + timedelta(hours=1)
    ticks = []
    while tick <= end:
        if tick.hour % hours == 0:
            ticks.append((tick, f"{tick:%H:%M}"))
        tick += timedelta(hours=1)
    return ticks


_AXIS, _GRID, _INK, _MUTED = "#8a96a3", "#dde3ea", "#3d4a57", "#5b6b7c"
_PLOT_W, _PLOT_H = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM


@dataclass(frozen=True, slots=True)
class _Scale:
    """Time -> x and value -> y of one chart."""

    start: datetime
    seconds: float
    lo: float = 0.0
    hi: float = 1.0

    def x(self, moment: datetime) -> float:
        return LEFT + _PLOT_W * (moment - self.start).total_seconds() / self.seconds

    def y(self, value: float) -> float:
        return TOP + _PLOT_H * (1 - (value - self.lo) / (self.hi - self.lo))


def _value_range(values: list[float]) -> tuple[float, float, float]:
    """Round lower and upper ends of the y axis, and the step between its ticks."""
    lo, hi = min(values), max(values)
    if hi - lo < 1e-9:  # one value (or all equal): a band around it
        pad = max(abs(lo) * 0.05, 0.5)
        lo, hi = lo - pad, hi + pad
    step = nice_step(hi - lo)
    lo = math.floor(lo / step) * step
    hi = math.ceil(hi / step) * step
    if hi - lo < 2 * step:
        hi += step
    return lo, hi, step


def _used_span(svg: Svg, chart: Chart, scale: _Scale) -> None:
    used_x = max(LEFT, scale.x(chart.used_from))
    svg.element(
        "rect", x=used_x, y=TOP, width=LEFT + _PLOT_W - used_x, height=_PLOT_H, fill="#eef4fb"
    )
    if used_x > LEFT + 40:
        svg.text(used_x + 4, TOP + 12, chart.words("chart_used"), size=10, fill=_MUTED)


def _y_axis(svg: Svg, scale: _Scale, step: float) -> None:
    tick = scale.lo
    while tick <= scale.hi + step / 1000:
        ty = scale.y(tick)
        svg.line(LEFT, ty, LEFT + _PLOT_W, ty, stroke=_GRID, stroke_width=1)
        svg.text(LEFT - 6, ty + 4, _fmt(tick, step), anchor="end", size=11, fill=_INK)
        tick += step


def _series(svg: Svg, chart: Chart, scale: _Scale, unit: str) -> None:
    for n, series in enumerate(chart.series):
        colour = SERIES_COLOURS[n % len(SERIES_COLOURS)]
        coords = [(scale.x(t), scale.y(v), t, v) for t, v in series.points]
        if len(coords) > 1:
            svg.polyline(
                [(cx, cy) for cx, cy, _, _ in coords],
                fill="none",
                stroke=colour,
                stroke_width=2,
                stroke_linejoin="round",
            )
        name = f"{series.name} " if series.name else ""
        for cx, cy, t, v in coords:
            svg.element(
                "circle",
                f"{name}{_fmt_value(v)}{unit}, {chart.words.time(t)}",
                class_="point",
                cx=cx,
                cy=cy,
                r=4,
                fill=colour if t > chart.used_from else OLD_COLOUR,
                stroke="#ffffff",
                stroke_width=1,
            )


def _series_names(svg: Svg, chart: Chart) -> None:
    lx = LEFT + _PLOT_W
    for n, series in enumerate(reversed(chart.series)):
        colour = SERIES_COLOURS[(len(chart.series) - 1 - n) % len(SERIES_COLOURS)]
        svg.text(lx - 4, TOP - 8, f"● {series.name}", anchor="end", size=11, fill=colour)
        lx -= 8 + 7 * (len(series.name) + 2)


def _time_axis(svg: Svg, chart: Chart, scale: _Scale) -> None:
    bottom = TOP + _PLOT_H
    svg.line(LEFT, bottom, LEFT + _PLOT_W, bottom, stroke=_AXIS, stroke_width=1)
    for moment, text in _time_ticks(chart.start, chart.end, chart.words.zone):
        tx = scale.x(moment)
        svg.line(tx, bottom, tx, bottom + 4, stroke=_AXIS, stroke_width=1)
        svg.text(tx, bottom + 17, text, anchor="middle", size=11, fill=_INK)


def render_svg(chart: Chart) -> str:
    """The chart as an accessible inline SVG (presentation attributes only, no style)."""
    values = [v for s in chart.series for _, v in s.points]
    label = chart.words(
        "chart_label", title=chart.title, n=chart.point_count, span=_span_text(chart)
    )
    svg = Svg(
        WIDTH,
        HEIGHT,
        label,
        class_="trend",
        width=WIDTH,
        height=HEIGHT,
        data_points=chart.point_count,
    )
    scale = _Scale(chart.start, (chart.end - chart.start).total_seconds() or 1.0)
    _used_span(svg, chart, scale)
    if values:
        lo, hi, step = _value_range(values)
        scale = _Scale(scale.start, scale.seconds, lo, hi)
        _y_axis(svg, scale, step)
        unit = f" {chart.unit}" if chart.unit and chart.unit != "%" else chart.unit
        _series(svg, chart, scale, unit)
        if any(s.name for s in chart.series):
            _series_names(svg, chart)
    else:
        svg.text(
            LEFT + _PLOT_W / 2,
            TOP + _PLOT_H / 2,
            chart.words("chart_empty"),
            anchor="middle",
            size=13,
            fill=_MUTED,
        )
    _time_axis(svg, chart, scale)
    if chart.unit:
        svg.text(LEFT, TOP - 8, chart.unit, size=11, fill=_INK)
    return svg.render()


def _span_text(chart: Chart) -> str:
    span = chart.end - chart.start
    if span >= timedelta(days=2):
        return chart.words("chart_days", n=round(span.total_seconds() / 86400))
    return chart.words("chart_hours", n=round(span.total_seconds() / 3600))

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
from html import escape

from fhir_mappers.facts import PatientFacts
from fhir_mappers.spec import ModelSpec

# Names for common measurements; anything else is titled with its first feature's label.
MEASUREMENT_NAMES = {
    "http://loinc.org|8867-4": "Heart rate",
    "http://loinc.org|9279-1": "Respiratory rate",
    "http://loinc.org|29463-7": "Body weight",
    "http://loinc.org|3141-9": "Body weight",
    "http://loinc.org|59408-5": "Oxygen saturation (SpO2)",
    "http://loinc.org|2708-6": "Oxygen saturation (SpO2)",
    "http://loinc.org|8310-5": "Body temperature",
    "http://loinc.org|1988-5": "C-reactive protein",
    "http://loinc.org|2524-7": "Lactate",
    "http://loinc.org|6690-2": "Leukocytes",
    "http://loinc.org|2345-7": "Glucose",
    "http://loinc.org|2160-0": "Creatinine",
}
# Inputs drawn together in one chart, as named series.
COMBINED = {
    "http://loinc.org|8480-6": ("Blood pressure", "systolic"),
    "http://loinc.org|8462-4": ("Blood pressure", "diastolic"),
}
PRETTY_UNITS = {
    "/min": "/min",
    "mm[Hg]": "mmHg",
    "Cel": "°C",
    "10*9/L": "×10⁹/L",
    "{score}": "points",
    "%": "%",
}
SERIES_COLOURS = ("#1f5fa8", "#b4441d", "#2f7d32", "#6a3d9a")
OLD_COLOUR = "#9aa3ad"

WIDTH, HEIGHT = 520, 190
LEFT, RIGHT, TOP, BOTTOM = 52, 14, 26, 34


def pretty_unit(unit: str | None) -> str:
    if not unit or unit in ("1", "{count}"):
        return ""
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

    @property
    def point_count(self) -> int:
        return sum(len(s.points) for s in self.series)


def trend_charts(spec: ModelSpec, facts: PatientFacts, index_time: datetime) -> list[Chart]:
    """Charts for every observation input with a unit, in spec order."""
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
            key, series_name = combined[0], combined[1]
            title = combined[0]
        else:
            key = "|".join(sorted(feat.codes)) + "@" + (feat.unit or "")
            series_name = ""
            title = MEASUREMENT_NAMES.get(first_code, feat.label)
        used_from = index_time + feat.window.start
        chart = groups.get(key)
        if chart is None:
            chart = Chart(
                key=key,
                title=title,
                unit=pretty_unit(feat.unit),
                start=span_start,
                end=index_time,
                used_from=used_from,
            )
            groups[key] = chart
        chart.used_from = min(chart.used_from, used_from)
        if (key, series_name) in seen_series:
            continue  # another feature over the same measurements (mean, slope, last, ...)
        seen_series.add((key, series_name))
        points = [(f.time, f.value) for f in facts.facts[i] if span_start < f.time <= index_time]
        chart.series.append(Series(series_name, sorted(points)))
    return list(groups.values())


def _nice_step(span: float, target: int = 4) -> float:
    raw = span / max(target, 1)
    magnitude = 10 ** math.floor(math.log10(raw)) if raw > 0 else 1.0
    for mult in (1, 2, 5, 10):
        if raw <= mult * magnitude:
            return mult * magnitude
    return 10 * magnitude


def _fmt(value: float, step: float = 1.0) -> str:
    text = f"{step:.3f}".rstrip("0").rstrip(".")
    decimals = len(text.split(".")[1]) if "." in text else 0
    return f"{value:.{decimals}f}"


def _fmt_value(value: float) -> str:
    if value == int(value) or abs(value) >= 100:
        return f"{value:.0f}"
    return f"{value:.1f}" if abs(value) >= 10 else f"{value:.3g}"


def _time_ticks(start: datetime, end: datetime) -> list[tuple[datetime, str]]:
    span = end - start
    if span >= timedelta(days=2):
        day = start.replace(hour=0, minute=0, second=0, microsecond=0) + timedelta(days=1)
        step = max(1, round(span.days / 7))
        ticks = []
        while day <= end:
            ticks.append((day, f"{day:%d %b}"))
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


def render_svg(chart: Chart) -> str:
    """The chart as an accessible inline SVG (presentation attributes only, no style)."""
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    values = [v for s in chart.series for _, v in s.points]
    total = (chart.end - chart.start).total_seconds() or 1.0

    def x(moment: datetime) -> float:
        return LEFT + plot_w * (moment - chart.start).total_seconds() / total

    unit = f" {chart.unit}" if chart.unit and chart.unit != "%" else chart.unit
    label = f"{chart.title}: {chart.point_count} values over {_span_text(chart)}"
    out = [
        f'<svg class="trend" role="img" viewBox="0 0 {WIDTH} {HEIGHT}" '
        f'width="{WIDTH}" height="{HEIGHT}" data-points="{chart.point_count}" '
        f'aria-label="{escape(label)}" xmlns="http://www.w3.org/2000/svg">',
        f"<title>{escape(label)}</title>",
    ]
    used_x = max(LEFT, x(chart.used_from))
    out.append(
        f'<rect x="{used_x:.1f}" y="{TOP}" width="{LEFT + plot_w - used_x:.1f}" '
        f'height="{plot_h}" fill="#eef4fb"/>'
    )
    if used_x > LEFT + 40:
        out.append(
            f'<text x="{used_x + 4:.1f}" y="{TOP + 12}" font-size="10" fill="#5b6b7c">'
            "used by the model</text>"
        )
    if values:
        lo, hi = min(values), max(values)
        if hi - lo < 1e-9:  # one value (or all equal): a band around it
            pad = max(abs(lo) * 0.05, 0.5)
            lo, hi = lo - pad, hi + pad
        step = _nice_step(hi - lo)
        lo = math.floor(lo / step) * step
        hi = math.ceil(hi / step) * step
        if hi - lo < 2 * step:
            hi += step

        def y(value: float) -> float:
            return TOP + plot_h * (1 - (value - lo) / (hi - lo))

        tick = lo
        while tick <= hi + step / 1000:
            ty = y(tick)
            out.append(
                f'<line x1="{LEFT}" x2="{LEFT + plot_w}" y1="{ty:.1f}" y2="{ty:.1f}" '
                'stroke="#dde3ea" stroke-width="1"/>'
            )
            out.append(
                f'<text x="{LEFT - 6}" y="{ty + 4:.1f}" font-size="11" text-anchor="end" '
                f'fill="#3d4a57">{escape(_fmt(tick, step))}</text>'
            )
            tick += step
        for n, series in enumerate(chart.series):
            colour = SERIES_COLOURS[n % len(SERIES_COLOURS)]
            coords = [(x(t), y(v), t, v) for t, v in series.points]
            if len(coords) > 1:
                path = " ".join(f"{cx:.1f},{cy:.1f}" for cx, cy, _, _ in coords)
                out.append(
                    f'<polyline points="{path}" fill="none" stroke="{colour}" '
                    'stroke-width="2" stroke-linejoin="round"/>'
                )
            for cx, cy, t, v in coords:
                fill = colour if t > chart.used_from else OLD_COLOUR
                name = f"{series.name} " if series.name else ""
                tip = f"{name}{_fmt_value(v)}{unit} at {t:%Y-%m-%d %H:%M} UTC"
                out.append(
                    f'<circle class="point" cx="{cx:.1f}" cy="{cy:.1f}" r="4" fill="{fill}" '
                    f'stroke="#ffffff" stroke-width="1"><title>{escape(tip)}</title></circle>'
                )
        if any(s.name for s in chart.series):
            lx = LEFT + plot_w
            for n, series in enumerate(reversed(chart.series)):
                colour = SERIES_COLOURS[(len(chart.series) - 1 - n) % len(SERIES_COLOURS)]
                text_x = lx - 4
                out.append(
                    f'<text x="{text_x:.1f}" y="{TOP - 8}" font-size="11" text-anchor="end" '
                    f'fill="{colour}">● {escape(series.name)}</text>'
                )
                lx -= 8 + 7 * (len(series.name) + 2)
    else:
        out.append(
            f'<text x="{LEFT + plot_w / 2:.1f}" y="{TOP + plot_h / 2:.1f}" font-size="13" '
            'text-anchor="middle" fill="#5b6b7c">no values in this period</text>'
        )
    out.append(
        f'<line x1="{LEFT}" x2="{LEFT + plot_w}" y1="{TOP + plot_h}" y2="{TOP + plot_h}" '
        'stroke="#8a96a3" stroke-width="1"/>'
    )
    for moment, text in _time_ticks(chart.start, chart.end):
        tx = x(moment)
        out.append(
            f'<line x1="{tx:.1f}" x2="{tx:.1f}" y1="{TOP + plot_h}" y2="{TOP + plot_h + 4}" '
            'stroke="#8a96a3" stroke-width="1"/>'
        )
        out.append(
            f'<text x="{tx:.1f}" y="{TOP + plot_h + 17}" font-size="11" text-anchor="middle" '
            f'fill="#3d4a57">{escape(text)}</text>'
        )
    if chart.unit:
        out.append(
            f'<text x="{LEFT}" y="{TOP - 8}" font-size="11" fill="#3d4a57">'
            f"{escape(chart.unit)}</text>"
        )
    out.append("</svg>")
    return "".join(out)


def _span_text(chart: Chart) -> str:
    span = chart.end - chart.start
    if span >= timedelta(days=2):
        return f"{round(span.total_seconds() / 86400)} days"
    return f"{round(span.total_seconds() / 3600)} hours"

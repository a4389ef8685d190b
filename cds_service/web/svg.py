"""Inline SVG for the dashboard and the SMART app: one builder that escapes every attribute
value and every text, and the axis arithmetic both apps' charts share.

Charts are drawn on the server (no script, no CDN, nothing fetched). A data mark carries the
class ``mark``, a ``data-value`` attribute and a ``<title>`` (the browser's tooltip), so figures
are readable by people, screen readers and tests alike.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

from cds_service.web.html import esc

__all__ = ["FONT", "Svg", "coord", "nice_step", "nice_ticks"]

FONT = 12


def coord(x: float) -> str:
    """A coordinate to one decimal, without trailing zeros (``12.0`` -> ``12``)."""
    return f"{x:.1f}".rstrip("0").rstrip(".")


def _attributes(attributes: dict[str, object]) -> str:
    """``name="value"`` pairs, escaped; ``None`` leaves an attribute out, ``_`` becomes ``-``."""
    out = []
    for name, value in attributes.items():
        if value is None:
            continue
        shown = coord(value) if isinstance(value, float) else str(value)
        out.append(f' {name.rstrip("_").replace("_", "-")}="{esc(shown)}"')
    return "".join(out)


def nice_step(span: float, target: int = 4) -> float:
    """A round step (1, 2, 5 times a power of ten) that cuts ``span`` in about ``target``."""
    raw = span / max(target, 1)
    magnitude = 10 ** math.floor(math.log10(raw)) if raw > 0 else 1.0
    for mult in (1, 2, 5, 10):
        if raw <= mult * magnitude:
            return mult * magnitude
    return 10 * magnitude


def nice_ticks(top: float, count: int = 4) -> list[float]:
    """Round tick values from 0 to at least ``top``."""
    if top <= 0:
        return [0.0, 1.0]
    raw = top / count
    magnitude = 10 ** math.floor(math.log10(raw))
    step = next(m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= raw)
    ticks = [0.0]
    while ticks[-1] < top - 1e-12:
        ticks.append(round(ticks[-1] + step, 10))
    return ticks


class Svg:
    """One ``<svg role="img">`` element with an accessible label, built part by part."""

    def __init__(self, width: int, height: int, label: str, /, **root: object) -> None:
        self.width, self.height, self.label = width, height, label
        self.root = root
        self.parts: list[str] = []

    def add(self, markup: str) -> None:
        """Markup built here already (escaped); never text that came from data."""
        self.parts.append(markup)

    def element(self, tag: str, title: str | None = None, /, **attributes: object) -> None:
        inner = f"<title>{esc(title)}</title>" if title is not None else ""
        if inner:
            self.parts.append(f"<{tag}{_attributes(attributes)}>{inner}</{tag}>")
        else:
            self.parts.append(f"<{tag}{_attributes(attributes)}/>")

    def text(
        self,
        x: float,
        y: float,
        value: str,
        cls: str = "",
        anchor: str = "start",
        size: int = FONT,
        **attributes: object,
    ) -> None:
        attrs = {"x": float(x), "y": float(y), "font_size": size, "text_anchor": anchor}
        attrs |= {"class_": cls or None, **attributes}
        self.parts.append(f"<text{_attributes(attrs)}>{esc(value)}</text>")

    def vertical_text(self, x: float, y: float, value: str) -> None:
        self.text(x, y, value, "axis", "middle", transform=f"rotate(-90 {coord(x)} {coord(y)})")

    def line(
        self, x1: float, y1: float, x2: float, y2: float, cls: str = "", **attributes: object
    ) -> None:
        self.element(
            "line",
            x1=float(x1),
            y1=float(y1),
            x2=float(x2),
            y2=float(y2),
            class_=cls or None,
            **attributes,
        )

    def polyline(
        self, points: Iterable[tuple[float, float]], cls: str = "", **attributes: object
    ) -> None:
        path = " ".join(f"{coord(x)},{coord(y)}" for x, y in points)
        self.element("polyline", points=path, class_=cls or None, **attributes)

    def rect(
        self, x: float, y: float, w: float, h: float, cls: str, title: str, value: object
    ) -> None:
        """A data mark: a bar or a cell."""
        self.element(
            "rect",
            title,
            x=float(x),
            y=float(y),
            width=float(max(w, 0)),
            height=float(max(h, 0)),
            class_=f"mark {cls}",
            data_value=str(value),
        )

    def circle(self, x: float, y: float, r: float, cls: str, title: str, value: object) -> None:
        """A data mark: a point."""
        self.element(
            "circle",
            title,
            cx=float(x),
            cy=float(y),
            r=float(r),
            class_=f"mark {cls}",
            data_value=str(value),
        )

    def legend(self, items: Sequence[tuple[str, str]], x: float, y: float) -> None:
        for name, cls in items:
            self.element("rect", x=float(x), y=float(y - 9), width=10, height=10, class_=cls)
            self.text(x + 14, y, name, "legend")
            x += 30 + 7.2 * len(name)

    def render(self) -> str:
        root = {
            **self.root,
            "viewBox": f"0 0 {self.width} {self.height}",
            "role": "img",
            "aria_label": self.label,
            "xmlns": "http://www.w3.org/2000/svg",
        }
        return (
            f"<svg{_attributes(root)}><title>{esc(self.label)}</title>"
            + "".join(self.parts)
            + "</svg>"
        )

"""The shared SVG builder escapes every text and attribute value that came from data."""

from __future__ import annotations

from cds_service.web.html import esc
from cds_service.web.svg import Svg, coord, nice_step, nice_ticks

HOSTILE = '</text><script>alert(1)</script>" onload="x'


def test_every_text_title_label_and_attribute_is_escaped() -> None:
    svg = Svg(100, 50, HOSTILE, class_="chart", data_chart=HOSTILE)
    svg.text(1, 2, HOSTILE, cls="axis")
    svg.rect(0, 0, 10, 10, "bar", HOSTILE, HOSTILE)
    svg.circle(5, 5, 2, "dot", HOSTILE, 0.25)
    svg.element("path", HOSTILE, d="M0 0", class_=HOSTILE)
    svg.legend([(HOSTILE, "swatch")], 0, 10)
    out = svg.render()
    assert "<script>" not in out and 'onload="x' not in out
    # data-chart, aria-label, <title>, text, rect title and value, circle title, path title and
    # class, legend text
    assert out.count(esc(HOSTILE)) == 10
    assert out.startswith('<svg class="chart" data-chart=')
    assert 'role="img"' in out and f'aria-label="{esc(HOSTILE)}"' in out


def test_marks_carry_their_value_and_a_tooltip() -> None:
    svg = Svg(10, 10, "l")
    svg.circle(1.25, 2, 4, "dot", "a point", 0.123456)
    assert (
        '<circle cx="1.2" cy="2" r="4" class="mark dot" data-value="0.123456">'
        "<title>a point</title></circle>"
    ) in svg.render()


def test_attribute_names_and_none() -> None:
    svg = Svg(10, 10, "l")
    svg.line(0, 0, 1.0, 2.5, stroke_width=1, fill=None)
    assert '<line x1="0" y1="0" x2="1" y2="2.5" stroke-width="1"/>' in svg.render()


def test_coordinates_and_round_ticks() -> None:
    assert [coord(v) for v in (12.0, 12.34, -0.04)] == ["12", "12.3", "-0"]
    assert nice_ticks(0) == [0.0, 1.0]
    assert nice_ticks(37) == [0.0, 10.0, 20.0, 30.0, 40.0]
    assert nice_step(7.0) == 2.0 and nice_step(0.3) == 0.1

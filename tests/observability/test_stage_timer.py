"""One stage timer, two readers: the Server-Timing header and the span attributes agree."""

from __future__ import annotations

import re

from cds_service.observability.stage_timer import STAGES, StageTimer


def _header(timer: StageTimer) -> dict[str, float]:
    parts = [p.strip().split(";dur=") for p in timer.server_timing().split(",")]
    return {name: float(ms) for name, ms in parts}


def test_every_stage_is_reported_in_order_even_when_skipped() -> None:
    timer = StageTimer()
    timer.mark("parse")
    timer.mark("audit")
    header = _header(timer)
    assert list(header) == [*STAGES, "total"]
    assert header["predict"] == 0.0 and header["explain"] == 0.0
    assert re.fullmatch(r"(\w+;dur=\d+\.\d{3}, )+total;dur=\d+\.\d{3}", timer.server_timing())


def test_header_and_span_carry_the_same_figures() -> None:
    timer = StageTimer()
    for stage in STAGES:
        timer.mark(stage)
    header = _header(timer)
    span = timer.span_attributes()
    assert set(span) == {f"cds.stage_ms.{name}" for name in header}
    for name, ms in header.items():
        assert abs(span[f"cds.stage_ms.{name}"] - ms) < 0.001


def test_total_is_the_sum_of_the_stages_and_elapsed_stops_at_the_last_mark() -> None:
    timer = StageTimer()
    timer.mark("parse")
    timer.mark("fetch")
    header = _header(timer)
    assert abs(header["total"] - header["parse"] - header["fetch"]) < 0.01
    assert abs(timer.elapsed_ms() - header["total"]) < 0.01

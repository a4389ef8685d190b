"""One clock per CDS call whose stage durations feed both ``Server-Timing`` and the span.

The benchmark (``bench/service_latency.py``) reads the ``Server-Timing`` names, and traces carry
the same figures as ``cds.stage_ms.<name>``: one measurement, two readers, no disagreement.
"""

from __future__ import annotations

import time

# In call order; a stage a call skips (no prediction for a no-risk card) reports 0.
STAGES = ("parse", "fetch", "map", "predict", "explain", "card", "audit")


class StageTimer:
    def __init__(self) -> None:
        self._start = self._last = time.perf_counter()
        self._seconds: dict[str, float] = {}

    def mark(self, stage: str) -> None:
        """End ``stage`` now: it took the time since the previous mark (or the start)."""
        now = time.perf_counter()
        self._seconds[stage] = self._seconds.get(stage, 0.0) + now - self._last
        self._last = now

    def elapsed_ms(self) -> float:
        """Milliseconds from the start to the last mark."""
        return round(1000 * (self._last - self._start), 3)

    def _stages_ms(self) -> dict[str, float]:
        durations = {name: 1000 * self._seconds.get(name, 0.0) for name in STAGES}
        durations["total"] = 1000 * (self._last - self._start)
        return durations

    def server_timing(self) -> str:
        return ", ".join(f"{name};dur={ms:.3f}" for name, ms in self._stages_ms().items())

    def span_attributes(self) -> dict[str, float]:
        return {f"cds.stage_ms.{name}": round(ms, 3) for name, ms in self._stages_ms().items()}

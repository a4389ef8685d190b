"""Were the estimates right? On a simulated period: withhold the outcomes of the cards from
``withhold_from`` on (as if they were not in yet), run the monitor (estimates only there), put
the outcomes back, run it again (estimates beside realized figures, with their errors)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from cds_service.monitoring import MonitorReport, run_monitoring
from cds_service.monitoring.queries import CARDS, OUTCOMES

__all__ = ["EstimateCheck", "check_estimates"]


@dataclass(frozen=True, slots=True)
class EstimateCheck:
    before: MonitorReport  # outcomes withheld from withhold_from on
    after: MonitorReport  # all outcomes in
    withheld: int


def check_estimates(
    engine: Engine,
    models_dir: Path,
    *,
    start: datetime,
    end: datetime,
    window: timedelta,
    withhold_from: datetime,
) -> EstimateCheck:
    late = sa.select(CARDS.c.card_uuid).where(CARDS.c.requested_at >= withhold_from)
    with engine.begin() as conn:
        rows: list[dict[str, Any]] = [
            dict(r._mapping)
            for r in conn.execute(sa.select(OUTCOMES).where(OUTCOMES.c.card_uuid.in_(late)))
        ]
        conn.execute(OUTCOMES.delete().where(OUTCOMES.c.card_uuid.in_(late)))
    before = run_monitoring(engine, models_dir, window_start=start, window_end=end, window=window)
    if rows:
        with engine.begin() as conn:
            conn.execute(OUTCOMES.insert(), rows)
    after = run_monitoring(engine, models_dir, window_start=start, window_end=end, window=window)
    return EstimateCheck(before, after, len(rows))

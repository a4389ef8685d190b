"""Monitoring: ``monitor``."""

from __future__ import annotations

from typing import Annotated

import typer

from cds_service.cli.common import engine, fail
from cds_service.cli.exit_codes import ExitCode
from cds_service.paths import models_dir


def monitor(
    days: Annotated[int, typer.Option(help="Monitor the last N days.")] = 7,
    window_hours: Annotated[
        float | None, typer.Option(help="Split into windows of H hours (default: one window).")
    ] = None,
    until: Annotated[str | None, typer.Option(help="End (ISO 8601, default now).")] = None,
) -> None:
    """Compute volume, drift, performance, calibration, subgroups, feedback and shadow agreement
    into SQL; threshold breaches become alerts."""
    from datetime import UTC, datetime, timedelta

    from cds_service.monitoring import recent_windows, run_monitoring

    now = datetime.fromisoformat(until) if until else datetime.now(UTC)
    if now.tzinfo is None:
        raise fail("--until needs a UTC offset", ExitCode.BAD_INPUT)
    if window_hours:
        # Complete windows aligned to UTC multiples: reruns see the same windows (no re-alerts).
        start, end, step = recent_windows(now, days=days, window_hours=window_hours)
        report = run_monitoring(
            engine(), models_dir(), window_start=start, window_end=end, window=step
        )
    else:
        report = run_monitoring(
            engine(), models_dir(), window_start=now - timedelta(days=days), window_end=now
        )
    typer.echo(report.summary())

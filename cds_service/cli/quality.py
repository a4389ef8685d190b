"""Evidence for the quality team: ``thresholds`` (alert burden by threshold) and ``fairness``."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Annotated

import typer

from cds_service.cli.common import engine, fail
from cds_service.cli.exit_codes import ExitCode
from cds_service.cli.retention import parse_moment
from cds_service.paths import models_dir


def _grid(text: str | None) -> tuple[float, ...]:
    from cds_service.monitoring.alert_burden import DEFAULT_GRID

    if not text:
        return DEFAULT_GRID
    try:
        values = tuple(sorted({float(v) for v in text.split(",")}))
    except ValueError as exc:
        raise fail(f"--grid is not a list of numbers: {text!r}", ExitCode.BAD_INPUT) from exc
    if not all(0.0 < v < 1.0 for v in values):
        raise fail("--grid thresholds must lie between 0 and 1", ExitCode.BAD_INPUT)
    return values


def _labels(model: str) -> dict[str, str]:
    """Model version -> outcome label name, from the manifests under the models folder."""
    from cds_service.monitoring.context import load_context

    folder = models_dir() / model
    versions = [p.parent.name for p in folder.glob("*/manifest.json")]
    contexts = (load_context(models_dir(), model, v) for v in versions)
    return {c.version: c.label for c in contexts if c.label}


def _band_limits(model: str) -> list[float]:
    """The band limits (``below``) of the hook definitions that answer with ``model``."""
    from cds_service.cli.common import hook_definitions

    return sorted(
        {
            band.below
            for d in hook_definitions().values()
            if any(name == model for name, _version in d.model_versions)
            for band in d.bands
            if band.below != float("inf")
        }
    )


def thresholds(
    model: Annotated[str, typer.Option("--model", help="Model name (models/<name>).")],
    start: Annotated[str, typer.Option("--from", help="Start date/time (ISO 8601).")],
    end: Annotated[str, typer.Option("--to", help="End date/time, exclusive (ISO 8601).")],
    role: Annotated[
        str, typer.Option(help="live (cards shown) or shadow (a shadow run before go-live).")
    ] = "live",
    version: Annotated[str | None, typer.Option(help="Only this model version.")] = None,
    env: Annotated[str | None, typer.Option("--env", help="Only this environment.")] = None,
    grid: Annotated[
        str | None,
        typer.Option(
            help="Thresholds, e.g. 0.1,0.2,0.3 (default 0.05 to 0.95; band limits added)."
        ),
    ] = None,
    timezone: Annotated[
        str, typer.Option(help="IANA zone of the hospital's days and shifts.")
    ] = "UTC",
    shifts: Annotated[
        str, typer.Option(help="Shift start hours, local time.")
    ] = "day=7,evening=15,night=23",
) -> None:
    """Alert burden by threshold: alerts per day and per shift, sensitivity, PPV and NNA where
    outcomes are in (small cells suppressed)."""
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    from cds_service.config import Settings
    from cds_service.monitoring.alert_burden import alert_burden, parse_shifts
    from cds_service.monitoring.burden_report import render_burden

    t0: datetime = parse_moment(start, "--from")
    t1: datetime = parse_moment(end, "--to")
    if t1 <= t0:
        raise fail("--to must be after --from", ExitCode.BAD_INPUT)
    if role not in ("live", "shadow"):
        raise fail("--role is live or shadow", ExitCode.BAD_INPUT)
    try:
        ZoneInfo(timezone)
        shift_hours = parse_shifts(shifts)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise fail(f"--timezone/--shifts: {exc}", ExitCode.BAD_INPUT) from exc
    current = _band_limits(model)
    eng = engine()
    try:
        burden = alert_burden(
            eng,
            model,
            t0,
            t1,
            labels=_labels(model),
            grid=sorted({*_grid(grid), *current}),
            role=role,
            version=version,
            environment=env,
            timezone=timezone,
            shifts=shift_hours,
        )
    finally:
        eng.dispose()
    if not burden.risk_cards:
        raise fail(f"no {role} risk cards of {model} in the period", ExitCode.BAD_INPUT)
    typer.echo(render_burden(burden, Settings().small_cell_min, current))


def fairness(
    model: Annotated[str, typer.Option("--model", help="Model name (models/<name>).")],
    start: Annotated[str, typer.Option("--from", help="Start date/time (ISO 8601).")],
    end: Annotated[str, typer.Option("--to", help="End date/time, exclusive (ISO 8601).")],
    threshold: Annotated[
        float | None,
        typer.Option(help="Flag risk >= this (default: the card's warning/critical indicator)."),
    ] = None,
    reference: Annotated[
        list[str] | None,
        typer.Option(help="Reference group, e.g. sex=male (default: each kind's largest)."),
    ] = None,
    min_ratio: Annotated[
        float, typer.Option(help="Rule: ratios within [r, 1/r] (four-fifths: 0.8).")
    ] = 0.8,
    role: Annotated[str, typer.Option(help="live or shadow.")] = "live",
    env: Annotated[str | None, typer.Option("--env", help="Only this environment.")] = None,
    subgroups: Annotated[
        Path | None,
        typer.Option(help="TOML file of site subgroups (default: CDS_FAIRNESS_SUBGROUPS_FILE)."),
    ] = None,
) -> None:
    """Fairness ratios per subgroup (sex, age band, the site's configured ones) against a
    reference group: flag rate, sensitivity and PPV, with a four-fifths style rule (exit 9 on a
    finding)."""
    from cds_service.config import Settings
    from cds_service.monitoring.context import load_context
    from cds_service.monitoring.fairness import fairness_counts
    from cds_service.monitoring.fairness_report import findings, references, render_fairness
    from cds_service.monitoring.site_subgroups import load_site_subgroups

    t0, t1 = parse_moment(start, "--from"), parse_moment(end, "--to")
    if t1 <= t0 or not 0 < min_ratio < 1:
        raise fail("--to must be after --from, and --min-ratio between 0 and 1", ExitCode.BAD_INPUT)
    chosen = dict(r.split("=", 1) for r in reference or [] if "=" in r)
    chosen = {kind: f"{kind}={value}" for kind, value in chosen.items()}
    settings = Settings()
    site_file = subgroups or settings.fairness_subgroups_file
    try:
        site = load_site_subgroups(site_file) if site_file else []
    except ValueError as exc:
        raise fail(str(exc), ExitCode.BAD_INPUT) from exc
    labels = _labels(model)
    bands = next((load_context(models_dir(), model, v).age_bands for v in sorted(labels)), None)
    eng = engine()
    try:
        counts = fairness_counts(
            eng,
            model,
            t0,
            t1,
            labels=labels,
            threshold=threshold,
            role=role,
            environment=env,
            site_subgroups=site,
            **({"age_bands": bands} if bands else {}),
        )
    finally:
        eng.dispose()
    if not counts.groups:
        raise fail(
            f"no {role} risk cards of {model} with sex, age or a site subgroup in the period",
            ExitCode.BAD_INPUT,
        )
    try:
        refs = references(counts, chosen)
    except ValueError as exc:
        raise fail(str(exc), ExitCode.BAD_INPUT) from exc
    minimum = settings.small_cell_min
    typer.echo(render_fairness(counts, refs, min_ratio, minimum))
    if findings(counts, refs, min_ratio, minimum):
        raise typer.Exit(int(ExitCode.FAIRNESS))

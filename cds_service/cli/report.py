"""``cds-service report``: documents for the quality team and the regulator, generated from SQL.

``report pms`` writes the post-market surveillance report of one model and period (HTML, and a
PDF printed by headless Chromium) with its applied model card (CHAI JSON); ``report model-card``
writes the card alone. Both read the model's PMS plan (models/<model>/pms.toml)."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from cds_service.cli.common import engine, fail
from cds_service.cli.exit_codes import ExitCode
from cds_service.cli.retention import parse_moment
from cds_service.paths import models_dir

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine

    from cds_service.reports import PmsData

__all__ = ["report_app"]

report_app = typer.Typer(help="Reports from SQL: post-market surveillance, applied model card.")

Model = Annotated[str, typer.Option("--model", help="Model name (models/<name>).")]
Start = Annotated[str, typer.Option("--from", help="Start date/time (ISO 8601).")]
End = Annotated[str, typer.Option("--to", help="End date/time, exclusive (ISO 8601).")]
Out = Annotated[Path, typer.Option("--out", help="Folder to write into (created if missing).")]


def _collect(model: str, start: str, end: str) -> tuple[PmsData, Engine]:
    from cds_service.config import Settings
    from cds_service.reports import PmsPlanError, collect, load_plan

    t0: datetime = parse_moment(start, "--from")
    t1: datetime = parse_moment(end, "--to")
    if t1 <= t0:
        raise fail("--to must be after --from", ExitCode.BAD_INPUT)
    try:
        plan = load_plan(models_dir(), model)
    except PmsPlanError as exc:
        raise fail(str(exc), ExitCode.BAD_INPUT) from exc
    eng = engine()
    return collect(eng, plan, t0, t1, Settings().small_cell_min), eng


def _card_json(data: PmsData, eng: Engine, version: str | None) -> str:
    from cds_service.reports import applied_model_card

    try:
        card = applied_model_card(models_dir(), eng, data, version)
    except FileNotFoundError as exc:
        raise fail(str(exc), ExitCode.BAD_INPUT) from exc
    return card.model_dump_json(indent=2, exclude_none=True) + "\n"


@report_app.command("pms")
def pms(
    model: Model,
    start: Start,
    end: End,
    out: Out = Path("reports"),
    pdf: Annotated[bool, typer.Option(help="Print the PDF with headless Chromium.")] = True,
) -> None:
    """The post-market surveillance report of MODEL over [--from, --to): use, performance,
    calibration, drift, subgroups, alerts, feedback and deployments against the PMS plan."""
    from cds_service.reports import print_pdf, render_html
    from cds_service.reports.pdf import ChromiumMissing

    data, eng = _collect(model, start, end)
    try:
        card = _card_json(data, eng, None)
    finally:
        eng.dispose()
    out.mkdir(parents=True, exist_ok=True)
    stem = f"pms-{model}-{data.start:%Y%m%d}-{data.end:%Y%m%d}"
    html = out / f"{stem}.html"
    html.write_text(render_html(data), encoding="utf-8")
    (out / f"{stem}.model-card.json").write_text(card, encoding="utf-8")
    typer.echo(f"wrote {html}")
    typer.echo(f"wrote {out / f'{stem}.model-card.json'}")
    if pdf:
        try:
            typer.echo(f"wrote {print_pdf(html, out / f'{stem}.pdf')}")
        except ChromiumMissing as exc:
            raise fail(f"{exc} (or pass --no-pdf)", ExitCode.BAD_INPUT) from exc
        except (RuntimeError, OSError) as exc:
            raise fail(
                f"printing the PDF failed: {exc} (the HTML is written)", ExitCode.BAD_INPUT
            ) from exc
    typer.echo(f"{len(data.exceedances)} exceedance(s) of the PMS plan")
    for line in data.exceedances:
        typer.echo(f"  {line}")


@report_app.command("model-card")
def model_card(
    model: Model,
    start: Start,
    end: End,
    version: Annotated[
        str | None, typer.Option(help="Model version (default: the live one).")
    ] = None,
    out: Annotated[
        Path | None, typer.Option("--out", help="File to write (default: stdout).")
    ] = None,
) -> None:
    """The applied model card (CHAI schema v0.2, JSON) of MODEL, with the period's monitoring."""
    data, eng = _collect(model, start, end)
    try:
        text = _card_json(data, eng, version)
    finally:
        eng.dispose()
    if out is None:
        typer.echo(text, nl=False)
    else:
        out.write_text(text, encoding="utf-8")
        typer.echo(f"wrote {out}")

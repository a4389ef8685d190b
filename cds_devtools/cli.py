"""``python -m cds_devtools``: the developer tools, run from a checkout.

They live outside the service wheel (the installed ``cds-service`` cannot import them), so they
have their own entry point. Exit codes are the service CLI's (:mod:`cds_service.cli.exit_codes`).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from cds_service.cli.common import engine, fail, local_issuer, local_key_path
from cds_service.cli.exit_codes import ExitCode
from cds_service.paths import data_dir, models_dir

if TYPE_CHECKING:
    from cds_service.config import Settings

app = typer.Typer(
    help="Developer tools: a synthetic FHIR cohort and a simulated month of calls.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


@app.command()
def synth(
    out: Annotated[Path, typer.Option(help="Output folder (FHIR Bulk NDJSON).")] = Path(
        "data/synth"
    ),
    ed_patients: Annotated[int, typer.Option(help="Patients in the ED cohort.")] = 4000,
    post_mi_patients: Annotated[int, typer.Option(help="Patients in home monitoring.")] = 800,
    seed: Annotated[int, typer.Option(help="Random seed; same seed, same bytes.")] = 20261123,
    progress: Annotated[bool, typer.Option(help="Show a progress bar.")] = True,
) -> None:
    """Generate the synthetic FHIR cohort (no clinical truth; see docs/synthetic-data.md)."""
    from cds_devtools.synth import generate_cohort

    try:
        counts = generate_cohort(
            out,
            ed_patients=ed_patients,
            post_mi_patients=post_mi_patients,
            seed=seed,
            progress=progress,
        )
    except ValueError as exc:
        raise fail(str(exc), ExitCode.BAD_INPUT) from exc
    for rtype, count in counts.items():
        typer.echo(f"{rtype}: {count}")
    typer.echo(f"written to {out}")


@app.command()
def simulate(
    url: Annotated[
        str | None,
        typer.Option(
            help="The service's public base URL (default: CDS_PUBLIC_BASE_URL, else where the "
            "last `cds-service serve` said it serves), as for `demo-call`."
        ),
    ] = None,
    days: Annotated[int, typer.Option(help="Simulated days.")] = 28,
    shift: Annotated[str, typer.Option(help="none | lactate-unit | population")] = "none",
    shift_day: Annotated[int, typer.Option(help="Inject the shift from this day on.")] = 14,
    patients: Annotated[int, typer.Option(help="Synthetic ED cohort size.")] = 20000,
    seed: Annotated[int, typer.Option(help="Seed of the synthetic cohort.")] = 20261123,
    sign: Annotated[bool, typer.Option(help="Sign calls with the local key (keys init).")] = True,
    withhold_days: Annotated[
        int,
        typer.Option(
            help="Then check the estimated performance: withhold the outcomes of the last N "
            "days, monitor in N-day windows, add them back, monitor again; print both."
        ),
    ] = 0,
) -> None:
    """Replay synthetic ED visits as signed calls over simulated days, post feedback, derive
    outcomes and run the monitor (the service needs CDS_ALLOW_SIMULATED_TIME=true)."""
    from cds_devtools.simulate import run_simulation
    from cds_service.audit.spool import Spool
    from cds_service.audit.writer import AuditWriter
    from cds_service.cli.first_run import service_url
    from cds_service.config import Settings
    from cds_service.security.local_issuer import load_private_key
    from cds_service.security.local_issuer import sign as sign_token

    settings = Settings()
    base = service_url(url)  # where the calls go and the audience they are signed for
    signer = None
    if sign:
        if not local_key_path().is_file():
            message = "no local key: run `cds-service keys init` (or --no-sign)"
            raise fail(message, ExitCode.BAD_INPUT)
        key = load_private_key(local_key_path())

        def signer(aud: str) -> str:
            return sign_token(key, iss=local_issuer(), aud=aud)

    eng = engine()
    report = run_simulation(
        base_url=base,
        public_base_url=base,
        engine=eng,
        writer=AuditWriter(eng, Spool(settings.spool_dir)),
        models_dir=models_dir(),
        pseudonym_key=settings.effective_pseudonym_key,
        workdir=data_dir() / "simulation",
        sign=signer,
        days=days,
        shift=shift,
        shift_day=shift_day,
        cohort_patients=patients,
        seed=seed,
    )
    typer.echo(
        f"calls {report.calls} {report.status_counts}, cards {report.cards}, "
        f"feedback {report.feedback}"
    )
    if report.outcomes:
        typer.echo(f"outcomes written {report.outcomes.outcomes_written}")
    typer.echo(report.monitor_summary)
    typer.echo("drift alerts: " + (", ".join(report.drift_alerts) or "none"))
    if withhold_days > 0 and report.window_start and report.window_end:
        _estimate_check(report.window_start, report.window_end, withhold_days, settings)


def _estimate_check(start: datetime, end: datetime, days: int, settings: Settings) -> None:
    """Estimates with the last days' outcomes withheld, then beside the realized figures."""
    from cds_devtools.estimate_check import check_estimates
    from cds_service.monitoring.estimate_report import estimate_rows, render_estimates

    span = timedelta(days=days)
    eng = engine()
    check = check_estimates(
        eng, models_dir(), start=start, end=end, window=span, withhold_from=end - span
    )
    minimum = settings.small_cell_min
    typer.echo(f"\nestimated performance, outcomes of the last {days} day(s) withheld:")
    typer.echo(render_estimates(estimate_rows(eng, check.before.run_id), minimum))
    typer.echo(f"\nthe same windows once their {check.withheld} outcome(s) are added:")
    typer.echo(render_estimates(estimate_rows(eng, check.after.run_id), minimum))

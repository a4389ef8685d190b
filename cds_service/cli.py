"""The ``cds-service`` command: one entry point for people, CI and hospital IT.

Exit codes are numbered and never reused: 0 ok, 2 usage (Typer), 3 bad input or configuration,
4 training failed its own checks.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from cds_service.paths import data_dir, models_dir

app = typer.Typer(
    help="Clinical risk cards over CDS Hooks: synthetic data, training and serving.",
    no_args_is_help=True,
    add_completion=False,
)

EXIT_BAD_INPUT = 3
EXIT_TRAINING = 4


def _err(message: str, code: int) -> typer.Exit:
    sys.stderr.write(f"error: {message}\n")
    return typer.Exit(code)


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
    from cds_service.synth import generate_cohort

    counts = generate_cohort(
        out,
        ed_patients=ed_patients,
        post_mi_patients=post_mi_patients,
        seed=seed,
        progress=progress,
    )
    for rtype, count in counts.items():
        typer.echo(f"{rtype}: {count}")
    typer.echo(f"written to {out}")


@app.command()
def train(
    model: Annotated[str, typer.Argument(help="Model folder name under models/.")],
    export: Annotated[
        Path | None, typer.Option(help="FHIR Bulk export folder (default: training.toml).")
    ] = None,
    version: Annotated[str | None, typer.Option(help="Version (default: training.toml).")] = None,
    models: Annotated[Path | None, typer.Option(help="Models root folder.")] = None,
    progress: Annotated[bool, typer.Option(help="Show progress bars.")] = True,
) -> None:
    """Train, calibrate and evaluate a model; write its artifact, manifest and model card."""
    from cds_service.training import train_model
    from cds_service.training_config import ConfigError
    from fhir_mappers.spec import SpecError

    root = models or models_dir()
    if not (root / model / "features.toml").is_file():
        raise _err(f"no models/{model}/features.toml under {root}", EXIT_BAD_INPUT)
    try:
        result = train_model(
            model, models_root=root, export_dir=export, version=version, progress=progress
        )
    except (SpecError, ConfigError, FileNotFoundError) as exc:
        raise _err(str(exc), EXIT_BAD_INPUT) from exc
    except ValueError as exc:
        raise _err(str(exc), EXIT_TRAINING) from exc
    test = result.manifest["metrics"]["test"]
    typer.echo(f"model: {result.directory}")
    typer.echo(f"sha256: {result.model_sha256}")
    typer.echo(
        f"test AUROC {test['auroc']}, AUPRC {test['auprc']}, Brier {test['brier']}, "
        f"calibration intercept {test['calibration_intercept']}, "
        f"slope {test['calibration_slope']}"
    )


@app.command()
def table(
    model: Annotated[str, typer.Argument(help="Model folder name under models/.")],
    export: Annotated[Path, typer.Option(help="FHIR Bulk export folder.")] = Path("data/synth"),
    out: Annotated[Path | None, typer.Option(help="CSV to write.")] = None,
    progress: Annotated[bool, typer.Option(help="Show progress bars.")] = True,
) -> None:
    """Build the training table (one row per index event, with the label) as CSV."""
    from fhir_mappers.bulk import write_training_table
    from fhir_mappers.spec import load_spec

    spec = load_spec(models_dir() / model / "features.toml")
    target = out or data_dir() / "tables" / f"{model}.csv"
    stats = write_training_table(export, spec, target, progress=progress)
    typer.echo(
        f"{target}: {stats.rows} rows, {stats.positives} positives, "
        f"{stats.dropped_missing_required} dropped for missing required inputs, "
        f"{stats.resources} resources from {stats.patients} patients"
    )
    if stats.warnings:
        typer.echo(
            "mapper warnings: " + ", ".join(f"{k}={v}" for k, v in sorted(stats.warnings.items()))
        )


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="Interface to bind.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port.")] = 8000,
    workers: Annotated[int, typer.Option(help="Worker processes.")] = 1,
    log_level: Annotated[str, typer.Option(help="uvicorn log level.")] = "info",
) -> None:
    """Serve the CDS Hooks services (settings from CDS_* environment variables)."""
    import uvicorn
    from pydantic import ValidationError

    from cds_service.settings import Settings

    try:
        Settings()
    except ValidationError as exc:
        first = exc.errors(include_input=False)[0]
        raise _err(f"invalid settings: {first['msg']}", EXIT_BAD_INPUT) from exc
    uvicorn.run(
        "cds_service.asgi:app",
        host=host,
        port=port,
        workers=workers,
        log_level=log_level,
        loop="uvloop",
        http="httptools",
        access_log=False,
        factory=True,
    )


@app.command()
def example(
    service_id: Annotated[str, typer.Argument(help="CDS service id (see GET /cds-services).")],
) -> None:
    """Print a synthetic CDS Hooks request (with prefetch, times relative to now) for a service."""
    from datetime import UTC, datetime

    import orjson

    from cds_service.examples import example_request
    from cds_service.hook_defs import HookDefinitionError
    from cds_service.registry import load_registry
    from cds_service.settings import Settings

    settings = Settings()
    try:
        registry = load_registry(settings.hooks_dir, settings.models_dir)
    except (HookDefinitionError, OSError, ValueError) as exc:
        raise _err(str(exc), EXIT_BAD_INPUT) from exc
    hook_def = registry.services.get(service_id)
    if hook_def is None:
        raise _err(f"unknown service id; known: {sorted(registry.services)}", EXIT_BAD_INPUT)
    body = example_request(service_id, hook_def.hook, hook_def.model, datetime.now(UTC))
    typer.echo(orjson.dumps(body, option=orjson.OPT_INDENT_2).decode())


db_app = typer.Typer(help="Database schema (Alembic migrations).", no_args_is_help=True)
app.add_typer(db_app, name="db")


@db_app.command("upgrade")
def db_upgrade(revision: Annotated[str, typer.Argument()] = "head") -> None:
    """Migrate the audit database at CDS_DATABASE_URL to REVISION."""
    from cds_service.db import make_engine, upgrade
    from cds_service.settings import Settings

    upgrade(make_engine(Settings().database_url), revision)
    typer.echo(f"database at {revision}")


if __name__ == "__main__":  # pragma: no cover
    app()

"""Training data and training: ``train`` and ``table``."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from cds_service.cli.common import Jobs, SiteDir, fail, jobs_or_default, load_site
from cds_service.cli.exit_codes import ExitCode
from cds_service.paths import data_dir, models_dir

if TYPE_CHECKING:
    from fhir_mappers.site_terminology import SiteTerminology
    from fhir_mappers.spec import ModelSpec


def _spec(model: str, site: SiteTerminology) -> ModelSpec:
    """The model's spec with the site's local codes; a refusal names the file and element."""
    from fhir_mappers.site_binding import load_site_spec
    from fhir_mappers.site_terminology import TerminologyError
    from fhir_mappers.spec import SpecError

    try:
        return load_site_spec(models_dir() / model / "features.toml", site)
    except SpecError as exc:
        raise fail(str(exc), ExitCode.BAD_INPUT) from exc
    except TerminologyError as exc:
        raise fail(f"site terminology refused: {exc}", ExitCode.BAD_INPUT) from exc


def train(
    model: Annotated[str, typer.Argument(help="Model folder name under models/.")],
    export: Annotated[
        Path | None, typer.Option(help="FHIR Bulk export folder (default: training.toml).")
    ] = None,
    version: Annotated[str | None, typer.Option(help="Version (default: training.toml).")] = None,
    models: Annotated[Path | None, typer.Option(help="Models root folder.")] = None,
    progress: Annotated[bool, typer.Option(help="Show progress bars.")] = True,
    site_terminology: SiteDir = None,
    jobs: Jobs = None,
) -> None:
    """Train, calibrate and evaluate a model; write its artifact, manifest and model card."""
    from cds_service.training.config import ConfigError
    from cds_service.training.train import train_model
    from fhir_mappers.site_terminology import TerminologyError
    from fhir_mappers.spec import SpecError

    site = load_site(site_terminology)
    root = models or models_dir()
    if not (root / model / "features.toml").is_file():
        raise fail(f"no models/{model}/features.toml under {root}", ExitCode.BAD_INPUT)
    try:
        result = train_model(
            model,
            models_dir=root,
            export_dir=export,
            version=version,
            progress=progress,
            site=site,
            jobs=jobs_or_default(jobs),
        )
    except TerminologyError as exc:
        raise fail(f"site terminology refused: {exc}", ExitCode.BAD_INPUT) from exc
    except (SpecError, ConfigError, FileNotFoundError) as exc:
        raise fail(str(exc), ExitCode.BAD_INPUT) from exc
    except ValueError as exc:
        raise fail(str(exc), ExitCode.TRAINING) from exc
    data = result.manifest["training_data"]
    typer.echo(
        f"table: kept {data['rows']} rows ({data['positives']} positive), dropped 0; "
        f"{data['unscorable_rows']} lack a required input ({data['unscorable_positives']} "
        "positive): trained on, not used to calibrate or evaluate"
    )
    test = result.manifest["metrics"]["test"]
    typer.echo(f"model: {result.directory}")
    typer.echo(f"sha256: {result.model_sha256}")
    typer.echo(f"site terminology sha256: {site.sha256} ({len(site.files)} files)")
    typer.echo(
        f"test AUROC {test['auroc']}, AUPRC {test['auprc']}, Brier {test['brier']}, "
        f"calibration intercept {test['calibration_intercept']}, "
        f"slope {test['calibration_slope']}"
    )


def table(
    model: Annotated[str, typer.Argument(help="Model folder name under models/.")],
    export: Annotated[Path, typer.Option(help="FHIR Bulk export folder.")] = Path("data/synth"),
    out: Annotated[Path | None, typer.Option(help="CSV to write.")] = None,
    progress: Annotated[bool, typer.Option(help="Show progress bars.")] = True,
    site_terminology: SiteDir = None,
    jobs: Jobs = None,
    shard: Annotated[
        str | None,
        typer.Option(
            help="K/N: only shard K of N of the patients, a partial table to join with --merge "
            "(one pod of a Kubernetes indexed Job each)."
        ),
    ] = None,
    merge: Annotated[
        Path | None,
        typer.Option(help="Join the partial tables of --shard 0/N .. N-1/N in this folder."),
    ] = None,
) -> None:
    """Build the training table (one row per index event, with the label) as CSV."""
    from cds_service.training.population import population_summary
    from fhir_mappers.bulk import write_training_table
    from fhir_mappers.shards import Selection
    from fhir_mappers.table_job import merge_table_parts, write_part_stats

    target = out or data_dir() / "tables" / f"{model}.csv"
    if merge is not None:
        try:
            stats = merge_table_parts(merge, target)
        except (FileNotFoundError, ValueError) as exc:
            raise fail(str(exc), ExitCode.BAD_INPUT) from exc
        typer.echo(f"{target}: {stats.resources} resources from {stats.patients} patients")
    else:
        try:
            selection = Selection.parse(shard) if shard is not None else None
        except ValueError as exc:
            raise fail(str(exc), ExitCode.BAD_INPUT) from exc
        site = load_site(site_terminology)
        spec = _spec(model, site)
        try:
            stats = write_training_table(
                export,
                spec,
                target,
                progress=progress,
                jobs=jobs_or_default(jobs),
                selection=selection,
            )
        except FileNotFoundError as exc:
            raise fail(str(exc), ExitCode.BAD_INPUT) from exc
        if selection is not None:
            typer.echo(f"shard {selection}: {write_part_stats(target, stats, selection)}")
        typer.echo(f"{target}: {stats.resources} resources from {stats.patients} patients")
        typer.echo(f"site terminology sha256: {site.sha256} ({len(site.files)} files)")
    for line in population_summary(stats):
        typer.echo(line)
    if stats.warnings:
        typer.echo(
            "mapper warnings: " + ", ".join(f"{k}={v}" for k, v in sorted(stats.warnings.items()))
        )


def profile(
    model: Annotated[str, typer.Argument(help="Model folder name under models/.")],
    export: Annotated[Path, typer.Option(help="FHIR Bulk export folder.")] = Path("data/synth"),
    out: Annotated[Path | None, typer.Option(help="HTML report to write.")] = None,
    progress: Annotated[bool, typer.Option(help="Show progress bars.")] = True,
    site_terminology: SiteDir = None,
    jobs: Jobs = None,
) -> None:
    """Data coverage of an export for a model: features filled, look-alike codes not mapped,
    units, label balance of rows a required input would drop."""
    from cds_service.training.profile import profile_export
    from cds_service.training.profile_report import html_report, text_report

    spec = _spec(model, load_site(site_terminology))
    try:
        result = profile_export(export, spec, model, progress=progress, jobs=jobs_or_default(jobs))
    except FileNotFoundError as exc:
        raise fail(str(exc), ExitCode.BAD_INPUT) from exc
    for line in text_report(result, spec):
        typer.echo(line)
    target = out or data_dir() / "profiles" / f"{model}.html"
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(html_report(result, spec), encoding="utf-8")
    typer.echo(f"report: {target}")

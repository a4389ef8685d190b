"""The model lifecycle: ``promote``, ``rollback``, ``retire``, ``audit verify`` and ``outcomes``.

Every decision is recorded with who made it and why, in the hash-chained deployment records.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from cds_service.cli.common import Jobs, SiteDir, engine, fail, jobs_or_default, load_site
from cds_service.cli.exit_codes import ExitCode
from cds_service.paths import data_dir, models_dir

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine

Env = Annotated[str, typer.Option("--env", help="acceptance | production | development")]
By = Annotated[str, typer.Option("--by", help="Who decides (name or user id).")]
Reason = Annotated[str, typer.Option("--reason", help="Why (recorded in the audit trail).")]

audit_app = typer.Typer(help="The audit trail.", no_args_is_help=True)


def promote(
    model: Annotated[str, typer.Argument()],
    version: Annotated[str, typer.Argument()],
    env: Env,
    by: By,
    reason: Reason,
    role: Annotated[str, typer.Option(help="live (cards shown) or shadow (logged only)")] = "live",
    holdout: Annotated[
        Path | None, typer.Option(help="Held-out FHIR Bulk export for the validation gate.")
    ] = None,
    override_reason: Annotated[
        str | None, typer.Option(help="Promote despite a failed gate (recorded as override).")
    ] = None,
    site_terminology: SiteDir = None,
) -> None:
    """Run the validation gate and record a deployment of MODEL VERSION."""
    from cds_service.db.deployments import ENVIRONMENTS, ROLES
    from cds_service.lifecycle.promotion import PromotionRefused
    from cds_service.lifecycle.promotion import promote as do_promote

    if env not in ENVIRONMENTS or role not in ROLES:
        raise fail(f"--env one of {ENVIRONMENTS}, --role one of {ROLES}", ExitCode.BAD_INPUT)
    export = holdout or data_dir() / "holdout"
    if not export.is_dir():
        raise fail(f"no held-out export at {export} (use --holdout)", ExitCode.BAD_INPUT)
    try:
        result = do_promote(
            engine(),
            models_dir(),
            model,
            version,
            environment=env,
            role=role,
            by=by,
            reason=reason,
            holdout=export,
            override_reason=override_reason,
            site=load_site(site_terminology),
        )
    except PromotionRefused as exc:
        typer.echo(exc.evidence.get("report", ""))
        message = "promotion refused by the validation gate: " + str(exc)
        raise fail(message, ExitCode.GATE) from exc
    except (ValueError, FileNotFoundError) as exc:
        raise fail(str(exc), ExitCode.BAD_INPUT) from exc
    rec = result.record
    typer.echo(json.loads(rec["evidence"]).get("report", ""))
    note = " (gate overridden)" if rec["override"] else ""
    typer.echo(f"recorded: {model} {version} {role} in {env}{note}, record {rec['record_hash']}")


def rollback(
    model: Annotated[str, typer.Argument()],
    env: Env,
    by: By,
    reason: Reason,
    to: Annotated[
        str | None, typer.Option(help="Version to make live (default: previous).")
    ] = None,
) -> None:
    """Make the previous live version live again (recorded like a promotion)."""
    from cds_service.lifecycle.promotion import rollback as do_rollback

    try:
        rec = do_rollback(
            engine(), models_dir(), model, environment=env, by=by, reason=reason, to_version=to
        )
    except ValueError as exc:
        raise fail(str(exc), ExitCode.BAD_INPUT) from exc
    typer.echo(f"recorded: {model} {rec['model_version']} live again in {env}")


def retire(
    model: Annotated[str, typer.Argument()],
    version: Annotated[str, typer.Argument()],
    env: Env,
    by: By,
    reason: Reason,
) -> None:
    """Stop a shadow version (recorded)."""
    from cds_service.lifecycle.promotion import retire_shadow

    retire_shadow(engine(), models_dir(), model, version, environment=env, by=by, reason=reason)
    typer.echo(f"recorded: {model} {version} retired in {env}")


@audit_app.command("verify")
def audit_verify(
    archive: Annotated[
        Path | None,
        typer.Option(help="Also check the purge archives in this folder (sha256, row count)."),
    ] = None,
) -> None:
    """Check the hash chain of the deployment records (purge records included)."""
    eng = engine()
    try:
        _verify(eng, archive)
    finally:
        eng.dispose()


def _verify(eng: Engine, archive: Path | None) -> None:
    from cds_service.db.deployments import PURGE_ACTION, all_records, verify_chain
    from cds_service.db.purge import verify_archives

    problems = verify_chain(eng)
    if problems:
        for problem in problems:
            typer.echo(problem)
        raise fail(f"deployment chain broken ({len(problems)} problem(s))", ExitCode.CHAIN)
    records = all_records(eng)
    typer.echo(f"deployment chain intact ({len(records)} records)")
    if archive is not None:
        archive_problems = verify_archives(eng, archive)
        for problem in archive_problems:
            typer.echo(problem)
        if archive_problems:
            raise fail(f"{len(archive_problems)} archive(s) do not match", ExitCode.CHAIN)
        purges = sum(1 for r in records if r["action"] == PURGE_ACTION)
        typer.echo(f"{purges} archive(s) match their purge records")


def outcomes(
    export: Annotated[Path, typer.Option(help="FHIR Bulk export with the outcome encounters.")],
    site_terminology: SiteDir = None,
    jobs: Jobs = None,
) -> None:
    """Derive outcomes for audited cards from a FHIR export (keyed by audit pseudonyms)."""
    from cds_service.audit.spool import Spool
    from cds_service.audit.writer import AuditWriter
    from cds_service.config import Settings
    from cds_service.lifecycle.outcomes import derive_outcomes
    from fhir_mappers.bulk import export_files

    if not export.is_dir() or not export_files(export):
        raise fail(f"no FHIR NDJSON or Bundle files in {export}", ExitCode.BAD_INPUT)
    site = load_site(site_terminology)
    settings = Settings()
    eng = engine()
    writer = AuditWriter(eng, Spool(settings.spool_dir))
    stats = derive_outcomes(
        eng,
        writer,
        models_dir(),
        export,
        settings.effective_pseudonym_key,
        site=site,
        jobs=jobs_or_default(jobs),
    )
    typer.echo(
        f"cards considered {stats.cards_considered}, outcomes written {stats.outcomes_written}, "
        f"window still open {stats.window_still_open}, positives {stats.by_label}"
    )

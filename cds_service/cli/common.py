"""Helpers every command group shares: failing with a numbered code, the audit database, the
local signing key, and the hook definitions (the only place a service id is tied to a model)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from cds_service.cli.exit_codes import ExitCode

__all__ = [
    "SiteDir",
    "engine",
    "fail",
    "hook_definitions",
    "load_site",
    "local_issuer",
    "local_issuer_path",
    "local_key_path",
]

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine

    from cds_service.serving.hook_defs import HookDefinition
    from fhir_mappers.site_terminology import SiteTerminology


SiteDir = Annotated[
    Path | None,
    typer.Option(
        "--site-terminology",
        envvar="CDS_SITE_TERMINOLOGY_DIR",
        help="Folder of the hospital's ConceptMap/ValueSet JSON files (local codes).",
    ),
]

Jobs = Annotated[
    int | None,
    typer.Option(
        "--jobs",
        min=1,
        help="Processes reading the export's patient shards (default: the CPUs this process "
        "may use).",
    ),
]


def jobs_or_default(jobs: int | None) -> int:
    from fhir_mappers.jobs import default_jobs

    return jobs or default_jobs()


def load_site(folder: Path | None) -> SiteTerminology:
    """The hospital's local codes from the folder; a refusal names the file and element."""
    from fhir_mappers.site_terminology import TerminologyError, load_site_terminology

    try:
        return load_site_terminology(folder)
    except TerminologyError as exc:
        raise fail(f"site terminology refused: {exc}", ExitCode.BAD_INPUT) from exc


def fail(message: str, code: ExitCode) -> typer.Exit:
    """The exception to raise: one ``error:`` line on stderr, then exit with ``code``."""
    sys.stderr.write(f"error: {message}\n")
    return typer.Exit(int(code))


def engine() -> Engine:
    """The audit database at CDS_DATABASE_URL, migrated to the newest schema."""
    from cds_service.config import Settings
    from cds_service.db.engine import make_engine, upgrade

    eng = make_engine(Settings().database_url)
    upgrade(eng)
    return eng


def local_key_path() -> Path:
    from cds_service.security import local_issuer as local  # joserfc only when signing

    return local.local_key_path()


def local_issuer_path() -> Path:
    from cds_service.security import local_issuer as local

    return local.local_issuer_path()


def local_issuer() -> str:
    """The issuer `keys init` registered the local key under (default: the built-in one)."""
    from cds_service.security import local_issuer as local

    return local.configured_local_issuer()


def hook_definitions() -> dict[str, HookDefinition]:
    """Service id -> hook definition from CDS_HOOKS_DIR; a new model needs a TOML file, not code."""
    from cds_service.config import Settings
    from cds_service.serving.hook_defs import HookDefinitionError
    from cds_service.serving.registry import load_registry

    settings = Settings()
    try:
        registry = load_registry(settings.hooks_dir, settings.models_dir)
    except (HookDefinitionError, OSError, ValueError) as exc:
        raise fail(str(exc), ExitCode.BAD_INPUT) from exc
    return registry.services

"""A change of site terminology is a deployment: recorded in the hash-chained trail.

Local codes change what a model sees without changing the model, so in acceptance and
production the trail must show when the terminology a service reads with changed, who ran it
and which files it was. The service records this itself when it starts with a terminology the
environment's trail does not show yet (and the database is reachable); an unchanged restart or
a second worker records nothing.
"""

from __future__ import annotations

import getpass
import json

from sqlalchemy.engine import Engine

from cds_service.db.deployments import (
    TERMINOLOGY_ACTION,
    TERMINOLOGY_RECORD,
    append_terminology_change,
)
from fhir_mappers.site_terminology import SiteTerminology

__all__ = ["RECORDED_ENVIRONMENTS", "operator_name", "record_site_terminology"]

RECORDED_ENVIRONMENTS = ("acceptance", "production")
REASON = "site terminology changed"


def operator_name(configured: str | None) -> str:
    """CDS_OPERATOR, else the user the process runs as (what hospital IT deployed it under)."""
    if configured:
        return configured
    try:
        return getpass.getuser()
    except (OSError, KeyError):  # no login name and no passwd entry (some containers)
        return "unknown"


def record_site_terminology(
    engine: Engine, environment: str, site: SiteTerminology, by: str
) -> bool:
    """Append a trail record when ``site`` is new for ``environment``; True when appended."""
    if environment not in RECORDED_ENVIRONMENTS:
        return False
    evidence = {
        "terminology_sha256": site.sha256,
        "files": list(site.files),
        "mappings": len(site.mappings),
        "value_set_extensions": len(site.extensions),
    }
    record = {
        "model_name": TERMINOLOGY_RECORD,
        "model_version": site.sha256[:12],
        "artifact_sha256": site.sha256,
        "environment": environment,
        "role": "live",
        "action": TERMINOLOGY_ACTION,
        "decided_by": by[:128],
        "reason": REASON,
        "evidence": json.dumps(evidence, sort_keys=True),
    }
    return append_terminology_change(engine, environment, site.sha256, record) is not None

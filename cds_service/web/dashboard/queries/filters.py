"""The dashboard's selection (service, environment, days, role, version) and the filter form's
choices, with the SQL conditions every query of the page shares."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from cds_service.db.deployments import ENVIRONMENTS
from cds_service.db.views import (
    V_CARDS,
    V_DEPLOYMENTS,
)
from cds_service.serving.registry import Registry
from fhir_mappers.timeutil import as_utc

MAX_RANGE_DAYS = 400
ROLES = ("live", "shadow")


def _midnight(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=UTC)


# --- filters ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Filters:
    """One dashboard selection. ``start`` and ``end`` are UTC calendar days, both included."""

    service_id: str
    environment: str
    start: date
    end: date
    role: str = "live"
    model_version: str | None = None
    window_seconds: int | None = None
    # A service may answer with more than one model (an arrival fallback): the figures are of
    # one model at a time, the hook's primary model unless another is chosen.
    model_name: str | None = None

    @property
    def start_at(self) -> datetime:
        return _midnight(self.start)

    @property
    def end_at(self) -> datetime:
        """Exclusive upper bound: midnight after the last day."""
        return _midnight(self.end) + timedelta(days=1)

    @property
    def days(self) -> list[date]:
        return [self.start + timedelta(days=i) for i in range((self.end - self.start).days + 1)]


@dataclass(slots=True)
class Options:
    """What the filter form offers."""

    services: list[tuple[str, str]]  # (id, title)
    environments: list[str]
    versions: list[str]
    last_day: date | None
    models: list[str] = field(default_factory=list)  # the service's models, primary first


def latest_service(conn: Connection) -> str | None:
    """The service of the most recent card (an index scan on requested_at, one row)."""
    c = V_CARDS
    row = conn.execute(sa.select(c.c.service_id).order_by(c.c.requested_at.desc()).limit(1)).first()
    return str(row[0]) if row else None


def options(
    conn: Connection,
    registry: Registry,
    service_id: str,
    environment: str,
    model_name: str | None = None,
) -> Options:
    """Choices without scanning the audit table: services from the hook definitions, models
    from the service's definition, versions of the chosen model from the loaded models and the
    deployment records, environments from the fixed list."""
    services = {sid: d.title for sid, d in registry.services.items()}
    services.setdefault(service_id, service_id)
    hook_def = registry.services.get(service_id)
    versions: set[str] = set()
    models: list[str] = []
    if hook_def is not None:
        models = list(dict.fromkeys(name for name, _ in hook_def.model_versions))
        chosen = model_name if model_name in models else hook_def.model
        versions.update(v for (name, v) in registry.models if name == chosen)
        d = V_DEPLOYMENTS
        versions.update(
            r[0]
            for r in conn.execute(
                sa.select(d.c.model_version).where(d.c.model_name == chosen).distinct().limit(200)
            )
        )
    c = V_CARDS
    row = conn.execute(
        sa.select(c.c.requested_at)
        .where(c.c.service_id == service_id, c.c.environment == environment)
        .order_by(c.c.requested_at.desc())
        .limit(1)
    ).first()
    return Options(
        services=sorted(services.items()),
        environments=list(ENVIRONMENTS),
        versions=sorted(versions, key=version_key),
        last_day=as_utc(row[0]).date() if row else None,
        models=models,
    )


def version_key(version: str) -> tuple[Any, ...]:
    parts = []
    for piece in version.replace("-", ".").split("."):
        parts.append((0, int(piece), "") if piece.isdigit() else (1, 0, piece))
    return tuple(parts)


def card_filters(t: sa.TableClause, f: Filters, *, role: bool = True) -> list[Any]:
    out: list[Any] = [
        t.c.service_id == f.service_id,
        t.c.environment == f.environment,
        t.c.requested_at >= f.start_at,
        t.c.requested_at < f.end_at,
    ]
    if role:
        out.append(t.c.role == f.role)
    return out + model_filters(t, f)


def model_filters(t: sa.TableClause, f: Filters) -> list[Any]:
    """The selection's model and version, on any view that has both columns."""
    out: list[Any] = []
    if f.model_name:
        out.append(t.c.model_name == f.model_name)
    if f.model_version:
        out.append(t.c.model_version == f.model_version)
    return out


def day_expression(conn: Connection, column: Any) -> Any:
    """The UTC calendar day of a timestamp as 'YYYY-MM-DD' text (as the views compute it)."""
    if conn.dialect.name == "postgresql":
        return sa.func.to_char(sa.func.timezone("UTC", column), "YYYY-MM-DD")
    return sa.func.substr(sa.cast(column, sa.Text), 1, 10)


def count_if(condition: Any) -> Any:
    return sa.func.coalesce(sa.func.sum(sa.case((condition, 1), else_=0)), 0)

"""How long each audit table keeps its rows, and the least a hospital may set.

The EU AI Act asks deployers of a high-risk system to keep its automatic logs for at least six
months (Articles 12, 19 and 26): every card is such a log, so ``card_audit`` (with the feedback and
outcomes of its cards, which mean nothing without them) cannot be set shorter than six calendar
months (at most 184 days). The deployment trail is never purged: it is the record of the purges.
A table without a policy keeps its rows for ever.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

__all__ = [
    "CARD_AUDIT_MINIMUM_DAYS",
    "DEFAULT_POLICY",
    "RETAINED",
    "RetainedTable",
    "RetentionError",
    "cutoffs",
    "policy",
]

# Six calendar months are at most 184 days (July to December).
CARD_AUDIT_MINIMUM_DAYS = 184


class RetentionError(ValueError):
    """A retention setting or purge request that would break the policy (the message says which)."""


@dataclass(frozen=True, slots=True)
class Dependent:
    """Rows that belong to a card: purged with their card; without a card (feedback on a card
    the service never logged), by their own time column."""

    name: str
    time_column: str


@dataclass(frozen=True, slots=True)
class RetainedTable:
    name: str
    time_column: str
    minimum_days: int
    dependents: tuple[Dependent, ...] = ()


RETAINED: dict[str, RetainedTable] = {
    t.name: t
    for t in (
        RetainedTable(
            "card_audit",
            "requested_at",
            CARD_AUDIT_MINIMUM_DAYS,
            (Dependent("card_feedback", "received_at"), Dependent("outcomes", "derived_at")),
        ),
        RetainedTable("monitoring_results", "window_end", 1),
        RetainedTable("alerts", "created_at", 1),
    )
}
DEFAULT_POLICY: dict[str, int] = {"card_audit": CARD_AUDIT_MINIMUM_DAYS}
_NEVER = {
    "deployments": "the deployment trail is never purged (it records the purges)",
    "card_feedback": "card_feedback is purged with its cards (set card_audit)",
    "outcomes": "outcomes are purged with their cards (set card_audit)",
}


def _check(table: str, days: int) -> None:
    if table in _NEVER:
        raise RetentionError(f"no retention for {table}: {_NEVER[table]}")
    spec = RETAINED.get(table)
    if spec is None:
        raise RetentionError(
            f"no retention for unknown table {table!r}; tables: {', '.join(sorted(RETAINED))}"
        )
    if days < spec.minimum_days:
        why = " (six months, EU AI Act Art. 12, 19, 26)" if table == "card_audit" else ""
        raise RetentionError(
            f"{table} must be kept at least {spec.minimum_days} days{why}; {days} refused"
        )


def policy(configured: Mapping[str, int]) -> dict[str, int]:
    """Days to keep per table: the defaults, overridden by the hospital's setting
    (``CDS_RETENTION_DAYS``); a setting shorter than a table's minimum is refused."""
    merged = dict(DEFAULT_POLICY)
    for table, days in configured.items():
        _check(table, days)
        merged[table] = days
    return merged


def cutoffs(
    days_by_table: Mapping[str, int],
    now: datetime,
    before: datetime | None = None,
    tables: list[str] | None = None,
) -> dict[str, datetime]:
    """Table -> purge rows older than this. ``before`` (an explicit purge) applies to the given
    tables (default: those with a policy) and must leave each table's minimum untouched."""
    if now.tzinfo is None or (before is not None and before.tzinfo is None):
        raise RetentionError("purge times need a UTC offset")
    chosen = tables or sorted(days_by_table)
    out: dict[str, datetime] = {}
    for table in chosen:
        if table not in RETAINED:
            _check(table, 0)  # names why (unknown table, or never purged on its own)
        keep = days_by_table.get(table, RETAINED[table].minimum_days)
        latest = now - timedelta(days=keep)
        if before is None:
            if table not in days_by_table:
                raise RetentionError(f"{table} has no retention policy; give --before")
            out[table] = latest
        elif before > latest:
            raise RetentionError(
                f"{table} is kept {keep} days; --before {before.isoformat()} is too recent "
                f"(at most {latest.isoformat()})"
            )
        else:
            out[table] = before
    return out

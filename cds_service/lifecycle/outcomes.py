"""Outcomes for audited cards, derived from a FHIR Bulk export through the same mapping engine.

For each card, the label definition of its model (``[label]`` in features.toml) is evaluated with
the card's request time as the index time and, as anchor, the latest index resource (the ED
encounter, the infarction) at or before it. A card whose outcome window has not yet closed at the
export's transaction time gets no outcome. Rows are keyed by card and audit pseudonym, never by
patient id.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from cds_service.audit.writer import AuditWriter
from cds_service.db.tables import CardAudit, Outcome
from cds_service.security.pseudonym import pseudonym
from fhir_mappers.bulk import TableStats, export_files
from fhir_mappers.events import IndexEvent, index_events, label_for
from fhir_mappers.jobs import run_patient_job
from fhir_mappers.site_binding import load_site_spec
from fhir_mappers.site_terminology import NO_SITE_TERMINOLOGY, SiteTerminology
from fhir_mappers.spec import ModelSpec
from fhir_mappers.timeutil import as_utc, parse_fhir_datetime


@dataclass(slots=True)
class OutcomeStats:
    patients_seen: int = 0
    cards_considered: int = 0
    outcomes_written: int = 0
    window_still_open: int = 0
    by_label: dict[str, int] = field(default_factory=dict)


def export_time(export_dir: Path) -> datetime | None:
    manifest = export_dir / "manifest.json"
    if manifest.is_file():
        parsed = parse_fhir_datetime(json.loads(manifest.read_text()).get("transactionTime"))
        if parsed is not None:
            return parsed.value
    return None


def _cards_by_pseudonym(engine: Engine) -> dict[str, list[tuple[str, str, datetime]]]:
    cards: sa.Table = CardAudit.__table__  # type: ignore[attr-defined]
    outcomes: sa.Table = Outcome.__table__  # type: ignore[attr-defined]
    query = sa.select(
        cards.c.card_uuid, cards.c.patient_pseudonym, cards.c.model_name, cards.c.requested_at
    ).where(
        cards.c.card_kind == "risk",
        ~sa.exists().where(outcomes.c.card_uuid == cards.c.card_uuid),
    )
    out: dict[str, list[tuple[str, str, datetime]]] = {}
    with engine.connect() as conn:
        for card_uuid, pseudo, model, requested in conn.execute(query):
            out.setdefault(pseudo, []).append((card_uuid, model, as_utc(requested)))
    return out


def _event_for(resources: list[dict[str, Any]], spec: ModelSpec, at: datetime) -> IndexEvent:
    anchors = [e for e in index_events(resources, spec) if e.anchor_time <= at]
    if anchors:
        latest = max(anchors, key=lambda e: e.anchor_time)
        return IndexEvent(latest.anchor_ref, latest.anchor_time, at)
    return IndexEvent("none", at, at)


@dataclass(slots=True)
class OutcomeJob:
    """Outcomes of one shard's patients (``fhir_mappers.jobs``); pickled once to each worker."""

    cards: dict[str, list[tuple[str, str, datetime]]]
    key: bytes
    models_dir: Path
    site: SiteTerminology
    closes_at: datetime | None
    now: datetime
    specs: dict[str, ModelSpec] = field(default_factory=dict)

    def _spec(self, model: str) -> ModelSpec:
        spec = self.specs.get(model)
        if spec is None:
            spec = self.specs[model] = load_site_spec(
                self.models_dir / model / "features.toml", self.site
            )
        return spec

    def run(
        self, patients: Iterator[tuple[str, list[dict[str, Any]]]], stats: TableStats
    ) -> Iterator[tuple[str, dict[str, Any] | None]]:
        """(patient id, outcome row), or None for a card whose window is still open."""
        for pid, resources in patients:
            pseudo = pseudonym(self.key, "Patient", pid)
            for card_uuid, model, requested in self.cards.get(pseudo, []):
                spec = self._spec(model)
                event = _event_for(resources, spec, requested)
                relative = spec.label.relative_to == "anchor"
                base = event.anchor_time if relative else event.index_time
                if self.closes_at is not None and base + spec.label.window.end > self.closes_at:
                    yield pid, None
                    continue
                yield (
                    pid,
                    {
                        "card_uuid": card_uuid,
                        "label_name": spec.label.name,
                        "patient_pseudonym": pseudo,
                        "model_name": model,
                        "label": label_for(resources, event, spec.label),
                        "source": "bulk-export",
                        "derived_at": self.now,
                    },
                )


def derive_outcomes(
    engine: Engine,
    writer: AuditWriter,
    models_dir: Path,
    export_dir: Path,
    key: bytes,
    *,
    derived_at: datetime | None = None,
    site: SiteTerminology = NO_SITE_TERMINOLOGY,
    jobs: int = 1,
) -> OutcomeStats:
    """Labels for audited cards, read with the site's local codes as serving and training read
    them (a label coded locally would otherwise count as no outcome). ``jobs`` processes read
    the export's patient shards; the outcomes are the same for any."""
    stats = OutcomeStats()
    cards = _cards_by_pseudonym(engine)
    if not cards:
        return stats
    if not export_files(export_dir):
        raise FileNotFoundError(f"no FHIR Bulk NDJSON files in {export_dir}")
    job = OutcomeJob(
        cards, key, models_dir, site, export_time(export_dir), derived_at or datetime.now(UTC)
    )
    rows: list[dict[str, Any]] = []
    last_patient = None
    for pid, row in run_patient_job(
        export_dir, job, TableStats(), jobs=jobs, resource_types=_OUTCOME_TYPES
    ):
        if pid != last_patient:
            stats.patients_seen += 1
            last_patient = pid
        stats.cards_considered += 1
        if row is None:
            stats.window_still_open += 1
            continue
        stats.by_label[row["label_name"]] = stats.by_label.get(row["label_name"], 0) + row["label"]
        rows.append(row)
        if len(rows) >= 1000:
            writer.write("outcomes", rows)
            stats.outcomes_written += len(rows)
            rows = []
    writer.write("outcomes", rows)
    stats.outcomes_written += len(rows)
    return stats


_OUTCOME_TYPES = ("Patient", "Encounter", "Condition")

"""FHIR Bulk Data export (NDJSON per resource type) -> training table, with bounded memory.

Bulk files are not grouped by patient, so a single pass cannot see a patient's whole record. The
reader partitions lines into shard files by a stable hash of the patient id (one streaming pass),
then reads one shard at a time: peak memory is about one shard, whatever the export's size.
Features come from exactly the same normalize/aggregate code as the live service.

Besides NDJSON per type, a folder of Bundle JSON files is read too (Synthea writes one transaction
Bundle per patient, referencing the Patient by ``urn:uuid:`` through the entries' ``fullUrl``):
each file is parsed whole, so its size bounds memory the way a shard does.
"""

from __future__ import annotations

import csv
import hashlib
import math
import tempfile
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fhir_mappers.events import index_events, label_for
from fhir_mappers.extract import aggregate
from fhir_mappers.facts import normalize
from fhir_mappers.shards import (
    RESOURCE_TYPES,
    Counts,
    Selection,
    partition_chunk,
    plan_chunks,
    resolve_pending,
    shard_patients,
    size_estimate,
)
from fhir_mappers.spec import ModelSpec

DEFAULT_SHARD_BYTES = 48 * 1024 * 1024
META_COLUMNS = ("patient_id", "index_time", "anchor")


@dataclass(slots=True)
class TableStats:
    resources: int = 0
    patients: int = 0
    rows: int = 0
    positives: int = 0
    # Rows that lack a required input stay in the table (the model learns with the value
    # missing); the service shows them no risk, so they are counted with their outcomes and the
    # inputs they lacked, and left out of calibration and evaluation.
    unscorable: int = 0
    unscorable_positives: int = 0
    unscorable_for: Counter[str] = field(default_factory=Counter)
    unparseable_lines: int = 0
    without_patient: int = 0
    warnings: Counter[str] = field(default_factory=Counter)
    export_sha256: str = ""


def export_files(export_dir: Path, resource_types: tuple[str, ...] = RESOURCE_TYPES) -> list[Path]:
    """The NDJSON files of an export, per type, in a stable order (the bulk manifest's names),
    then the Bundle JSON files (one Bundle per file, e.g. Synthea's per-patient output)."""
    files: list[Path] = []
    for rtype in resource_types:
        found = [*export_dir.glob(f"{rtype}*.ndjson"), *export_dir.glob(f"{rtype}*.ndjson.gz")]
        files.extend(sorted(found))
    bundles = [*export_dir.glob("*.json"), *export_dir.glob("*.json.gz")]
    files.extend(sorted(p for p in bundles if not p.name.startswith(_NOT_BUNDLES)))
    return files


# Bulk Data's manifest and generators' metadata sit beside the data; they hold no resources.
_NOT_BUNDLES = ("_", "manifest.json")


def export_sha256(export_dir: Path) -> str:
    """Hash of the export content the table was built from, for the model manifest."""
    digest = hashlib.sha256()
    for path in export_files(export_dir):
        digest.update(path.name.encode() + b"\0")
        with path.open("rb") as handle:
            for chunk in iter(lambda: handle.read(1 << 20), b""):
                digest.update(chunk)
    return digest.hexdigest()


def partition_export(
    export_dir: Path,
    stats: TableStats,
    *,
    resource_types: tuple[str, ...] = RESOURCE_TYPES,
    shard_bytes: int = DEFAULT_SHARD_BYTES,
    progress: bool = False,
) -> Iterator[tuple[str, list[dict[str, Any]]]]:
    """Yield (patient id, that patient's de-duplicated resources), one shard in memory at a time.

    In this process, shard after shard; ``fhir_mappers.jobs`` runs the same steps in parallel."""
    from tqdm import tqdm

    files = export_files(export_dir, resource_types)
    if not files:
        raise FileNotFoundError(f"no *.ndjson files of types {resource_types} in {export_dir}")
    total = sum(size_estimate(p) for p in files)
    shards = max(1, math.ceil(total / shard_bytes))
    with tempfile.TemporaryDirectory(prefix="cds-bulk-") as tmp:
        results = []
        with tqdm(
            total=total, unit="B", unit_scale=True, desc="partition", disable=not progress
        ) as bar:
            for chunk in plan_chunks(files, shard_bytes):
                results.append(partition_chunk(chunk, tmp, shards, None))
                bar.update(chunk.size)
        counts = Counts()
        pending = resolve_pending(results, tmp, shards, None, counts)
        for part_counts in [*(r.counts for r in results), counts]:
            part_counts.add_to(stats, general=True)
        for shard in tqdm(range(shards), desc="extract", unit="shard", disable=not progress):
            parts = [r.parts[shard] for r in results if shard in r.parts]
            parts += [pending[shard]] if shard in pending else []
            yield from shard_patients(parts, stats)
            for part in parts:
                Path(part).unlink()


def iter_rows(
    export_dir: Path,
    spec: ModelSpec,
    stats: TableStats,
    *,
    shard_bytes: int = DEFAULT_SHARD_BYTES,
    progress: bool = False,
    patients: Iterable[tuple[str, list[dict[str, Any]]]] | None = None,
) -> Iterator[dict[str, Any]]:
    """Yield one row per index event: meta columns, feature values (None = missing), label.

    Every index event is a row: a feature marked ``required`` is a serving-time safety rule and
    never decides who is in the training population (the rows it would leave unscored are
    counted in ``stats``). ``patients``: read these (one shard's, in a worker of
    ``fhir_mappers.jobs``) instead of the whole export."""
    names = spec.feature_names
    if patients is None:
        patients = partition_export(export_dir, stats, shard_bytes=shard_bytes, progress=progress)
    for pid, resources in patients:
        events = index_events(resources, spec)
        if not events:
            continue
        facts = normalize(resources, spec)
        stats.warnings.update(facts.warnings)
        for event in events:
            extraction = aggregate(facts, event.index_time, spec, event.anchor_time)
            label = label_for(resources, event, spec.label)
            missing = extraction.missing_required(spec)
            if missing:
                stats.unscorable += 1
                stats.unscorable_positives += label
                stats.unscorable_for.update(missing)
            stats.rows += 1
            stats.positives += label
            row: dict[str, Any] = {
                "patient_id": pid,
                "index_time": extraction.index_time.isoformat(),
                "anchor": event.anchor_ref,
            }
            for name in names:
                row[name] = extraction.values[name]
            row[spec.label.name] = label
            yield row


def write_training_table(
    export_dir: Path,
    spec: ModelSpec,
    out_csv: Path,
    *,
    shard_bytes: int = DEFAULT_SHARD_BYTES,
    progress: bool = False,
    jobs: int = 1,
    selection: Selection | None = None,
) -> TableStats:
    """Stream the table to CSV (empty cell = missing), sorted by patient and index time.

    ``jobs`` processes; ``selection``: only shard K of N of the patients (a partial table that
    ``fhir_mappers.table_job.merge_table_parts`` joins to the whole)."""
    from fhir_mappers.table_job import table_rows  # it runs iter_rows in the workers

    stats = TableStats()
    columns = [*META_COLUMNS, *spec.feature_names, spec.label.name]
    out_csv.parent.mkdir(parents=True, exist_ok=True)
    with out_csv.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns, lineterminator="\n")
        writer.writeheader()
        for row in table_rows(
            export_dir,
            spec,
            stats,
            shard_bytes=shard_bytes,
            progress=progress,
            jobs=jobs,
            selection=selection,
            hash_export=True,
        ):
            writer.writerow({k: ("" if v is None else v) for k, v in row.items()})
    return stats

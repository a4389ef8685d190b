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
import gzip
import hashlib
import math
import tempfile
import zlib
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, BinaryIO, cast

import orjson

from fhir_mappers.events import index_events, label_for
from fhir_mappers.extract import aggregate
from fhir_mappers.facts import normalize
from fhir_mappers.resources import (
    dedupe,
    flatten,
    has_modifier_extension,
    patient_id_of,
    patient_identifiers,
)
from fhir_mappers.spec import ModelSpec

RESOURCE_TYPES = ("Patient", "Encounter", "Condition", "Observation")
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


def _open_lines(path: Path) -> BinaryIO:
    """Plain or gzip-compressed NDJSON (servers often hand out ``.ndjson.gz``)."""
    if path.name.endswith(".gz"):
        return cast(BinaryIO, gzip.open(path, "rb"))
    return path.open("rb")


def _size_estimate(path: Path) -> int:
    """Bytes of NDJSON a file holds, to size the shards (gzip shrinks FHIR JSON about tenfold)."""
    size = path.stat().st_size
    return size * 10 if path.name.endswith(".gz") else size


def export_sha256(export_dir: Path) -> str:
    """Hash of the export content the table was built from, for the model manifest."""
    digest = hashlib.sha256()
    for path in export_files(export_dir):
        digest.update(path.name.encode() + b"\0")
        with path.open("rb") as handle:
            for chunk in iter(lambda: handle.read(1 << 20), b""):
                digest.update(chunk)
    return digest.hexdigest()


def _shard_of(patient_id: str, shards: int) -> int:
    return zlib.crc32(patient_id.encode()) % shards


def _is_bundle_file(path: Path) -> bool:
    return path.name.endswith((".json", ".json.gz"))


def _file_records(
    path: Path, stats: TableStats, progress: Callable[[int], None]
) -> Iterator[tuple[Any, bytes, dict[str, dict[str, Any]]]]:
    """(parsed JSON, or None when unparseable; its raw bytes; the fullUrls of its Bundle)."""
    with _open_lines(path) as handle:
        if not _is_bundle_file(path):
            for line in handle:
                progress(len(line))
                if line.strip():
                    try:
                        res = orjson.loads(line)
                    except orjson.JSONDecodeError:
                        yield None, b"", {}
                        continue
                    yield res, line.rstrip(b"\r\n"), {}
            return
        raw = handle.read()
    progress(len(raw))
    try:
        doc = orjson.loads(raw)
    except orjson.JSONDecodeError:
        yield None, b"", {}
        return
    if not isinstance(doc, dict) or "resourceType" not in doc:
        return  # not FHIR (a generator's metadata file): no resource to account for
    flat = flatten(doc)
    if flat.outcomes:
        stats.warnings["operation_outcome"] += len(flat.outcomes)
    if flat.skipped:
        stats.unparseable_lines += flat.skipped
    # Patients first, so that identifier references of the same Bundle can be resolved.
    for res in sorted(flat.resources, key=lambda r: r.get("resourceType") != "Patient"):
        if res.get("resourceType") in RESOURCE_TYPES:
            yield res, orjson.dumps(res), flat.full_urls


def _partition(
    files: list[Path],
    workdir: Path,
    shards: int,
    stats: TableStats,
    progress: Callable[[int], None],
) -> list[Path]:
    paths = [workdir / f"shard-{i:04d}.ndjson" for i in range(shards)]
    handles: list[IO[bytes]] = [p.open("wb") for p in paths]
    # (system, value) -> Patient id, for {type: Patient, identifier} references. Patient files
    # come first in an export, and a Bundle's Patients are learnt before its other entries.
    identifiers: dict[tuple[str, str], str] = {}
    try:
        for path in files:
            for res, line, full_urls in _file_records(path, stats, progress):
                if res is None:
                    stats.unparseable_lines += 1
                    continue
                if not isinstance(res, dict):
                    stats.without_patient += 1
                    continue
                rid = res.get("id")
                if res.get("resourceType") == "Patient" and isinstance(rid, str):
                    identifiers.update(dict.fromkeys(patient_identifiers(res), rid))
                pid = patient_id_of(res, full_urls, identifiers)
                if pid is None:
                    stats.without_patient += 1
                    continue
                # As at serving: a modifier extension this reader does not understand means
                # the resource must not be processed (the byte check keeps reading fast).
                if b'"modifierExtension"' in line and has_modifier_extension(res):
                    stats.warnings["modifier_extension_skipped"] += 1
                    continue
                stats.resources += 1
                out = handles[_shard_of(pid, shards)]
                # The patient id travels in front of the raw line, so that reading a shard
                # back groups raw bytes and parses one patient at a time.
                out.write(pid.encode() + b"\t" + line + b"\n")
    finally:
        for out in handles:
            out.close()
    return paths


def _patients_in(shard: Path) -> Iterator[tuple[str, list[dict[str, Any]]]]:
    """Group a shard's raw lines by patient; parse each patient only when it is yielded.

    Holding raw bytes instead of parsed dicts keeps memory near the shard size and spares the
    garbage collector from walking hundreds of megabytes of small objects.
    """
    grouped: dict[str, list[bytes]] = {}
    with shard.open("rb") as handle:
        for line in handle:
            head, _, raw = line.partition(b"\t")
            grouped.setdefault(head.decode(), []).append(raw)
    for patient in sorted(grouped):
        yield patient, [orjson.loads(raw) for raw in grouped.pop(patient)]


def partition_export(
    export_dir: Path,
    stats: TableStats,
    *,
    resource_types: tuple[str, ...] = RESOURCE_TYPES,
    shard_bytes: int = DEFAULT_SHARD_BYTES,
    progress: bool = False,
) -> Iterator[tuple[str, list[dict[str, Any]]]]:
    """Yield (patient id, that patient's de-duplicated resources), one shard in memory at a time."""
    from tqdm import tqdm

    files = export_files(export_dir, resource_types)
    if not files:
        raise FileNotFoundError(f"no *.ndjson files of types {resource_types} in {export_dir}")
    total = sum(_size_estimate(p) for p in files)
    shards = max(1, math.ceil(total / shard_bytes))
    with tempfile.TemporaryDirectory(prefix="cds-bulk-") as tmp:
        with tqdm(
            total=total, unit="B", unit_scale=True, desc="partition", disable=not progress
        ) as bar:
            paths = _partition(files, Path(tmp), shards, stats, bar.update)
        for shard in tqdm(paths, desc="extract", unit="shard", disable=not progress):
            for pid, duplicated in _patients_in(shard):
                stats.patients += 1
                resources, duplicates = dedupe(duplicated)
                if duplicates:
                    stats.warnings["duplicate_resource"] += duplicates
                yield pid, resources
            shard.unlink()


def iter_rows(
    export_dir: Path,
    spec: ModelSpec,
    stats: TableStats,
    *,
    shard_bytes: int = DEFAULT_SHARD_BYTES,
    progress: bool = False,
) -> Iterator[dict[str, Any]]:
    """Yield one row per index event: meta columns, feature values (None = missing), label.

    Every index event is a row: a feature marked ``required`` is a serving-time safety rule and
    never decides who is in the training population (the rows it would leave unscored are
    counted in ``stats``)."""
    names = spec.feature_names
    for pid, resources in partition_export(
        export_dir, stats, shard_bytes=shard_bytes, progress=progress
    ):
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
) -> TableStats:
    """Stream the table to CSV (empty cell = missing), sorted by patient and index time."""
    stats = TableStats(export_sha256=export_sha256(export_dir))
    columns = [*META_COLUMNS, *spec.feature_names, spec.label.name]
    out_csv.parent.mkdir(parents=True, exist_ok=True)
    with out_csv.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns, lineterminator="\n")
        writer.writeheader()
        for row in iter_rows(export_dir, spec, stats, shard_bytes=shard_bytes, progress=progress):
            writer.writerow({k: ("" if v is None else v) for k, v in row.items()})
    return stats

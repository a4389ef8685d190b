"""The training table in parallel processes, and in shards joined later (a Kubernetes indexed Job).

Each worker runs ``iter_rows`` (the one definition of a row) over one patient shard; the rows
come back merged in patient id order, so the table is the same for any number of processes. A
sharded run (``--shard K/N``) writes a partial table and its counts beside it; ``merge_table_parts``
joins N partial tables into the table one run would have written, byte for byte.
"""

from __future__ import annotations

import csv
import heapq
import json
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from fhir_mappers.bulk import DEFAULT_SHARD_BYTES, TableStats, export_sha256, iter_rows
from fhir_mappers.jobs import JobReport, Patients, canonical_counters, merge_stats, run_patient_job
from fhir_mappers.shards import Selection
from fhir_mappers.spec import ModelSpec

PART_SUFFIX = ".part.json"


@dataclass(frozen=True, slots=True)
class TableJob:
    """Rows of one shard's patients; ``options`` go to ``iter_rows`` unchanged."""

    spec: ModelSpec
    options: dict[str, Any] = field(default_factory=dict)

    def run(self, patients: Patients, stats: TableStats) -> Iterator[tuple[str, Any]]:
        for row in iter_rows(Path(), self.spec, stats, patients=patients, **self.options):
            yield row["patient_id"], row


def table_rows(
    export_dir: Path,
    spec: ModelSpec,
    stats: TableStats,
    *,
    jobs: int = 1,
    progress: bool = False,
    shard_bytes: int = DEFAULT_SHARD_BYTES,
    selection: Selection | None = None,
    report: JobReport | None = None,
    hash_export: bool = False,
    **options: Any,
) -> Iterator[dict[str, Any]]:
    """``iter_rows`` over the whole export (or shard K/N of it), in patient id order.

    ``hash_export``: set ``stats.export_sha256`` by the end, hashed in a thread meanwhile (a
    serial read of the whole export would otherwise come before the parallel work)."""
    hasher = ThreadPoolExecutor(1) if hash_export else None
    digest = hasher.submit(export_sha256, export_dir) if hasher else None
    records = run_patient_job(
        export_dir,
        TableJob(spec, options),
        stats,
        jobs=jobs,
        progress=progress,
        shard_bytes=shard_bytes,
        selection=selection,
        report=report,
    )
    try:
        for _pid, row in records:
            yield row
        if digest is not None:
            stats.export_sha256 = digest.result()
    finally:
        if hasher is not None:
            hasher.shutdown(cancel_futures=True)


def part_stats_path(table_csv: Path) -> Path:
    return table_csv.with_name(table_csv.name + PART_SUFFIX)


def write_part_stats(table_csv: Path, stats: TableStats, selection: Selection) -> Path:
    """The counts of a partial table, beside it, to be added up by ``merge_table_parts``."""
    target = part_stats_path(table_csv)
    # Not dataclasses.asdict: it rebuilds a Counter from (key, count) pairs, counting the pairs.
    values = {f.name: getattr(stats, f.name) for f in fields(TableStats)}
    plain = {k: dict(v) if isinstance(v, Counter) else v for k, v in values.items()}
    body = {"shard": str(selection), "stats": plain}
    target.write_text(json.dumps(body, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    return target


def _read_part(path: Path) -> tuple[Selection, TableStats]:
    body = json.loads(path.read_text(encoding="utf-8"))
    selection = Selection.parse(str(body["shard"]))
    stats = TableStats()
    for item in fields(TableStats):
        value = body["stats"].get(item.name)
        if value is None:
            continue
        setattr(stats, item.name, Counter(value) if isinstance(value, dict) else value)
    return selection, stats


def _patient_of(row: list[str]) -> str:
    return row[0]


def _rows(path: Path, header: list[str]) -> Iterator[list[str]]:
    """The rows of a partial table after its header (which must be the others')."""
    with path.open(newline="", encoding="utf-8") as handle:
        reader = csv.reader(handle)
        if next(reader, None) != header:
            raise ValueError(f"{path.name}: its columns differ from the other parts'")
        yield from reader


def merge_table_parts(parts_dir: Path, out_csv: Path) -> TableStats:
    """Join the partial tables of shards 0..N-1 (``*.csv`` with their ``.part.json``) in patient
    id order; refuse a missing or repeated shard, or parts of different exports."""
    found = sorted(parts_dir.glob("*" + PART_SUFFIX))
    if not found:
        raise FileNotFoundError(f"no partial tables (*{PART_SUFFIX}) in {parts_dir}")
    by_shard: dict[int, tuple[Path, TableStats]] = {}
    counts = set()
    for path in found:
        selection, stats = _read_part(path)
        counts.add(selection.count)
        if selection.index in by_shard:
            raise ValueError(f"shard {selection} appears twice in {parts_dir}")
        by_shard[selection.index] = (path.with_name(path.name[: -len(PART_SUFFIX)]), stats)
    total = counts.pop() if len(counts) == 1 else 0
    if not total or sorted(by_shard) != list(range(total)):
        raise ValueError(f"{parts_dir} holds shards {sorted(by_shard)}, not all of 0..N-1 of one N")
    hashes = {stats.export_sha256 for _, stats in by_shard.values()}
    if len(hashes) != 1:
        raise ValueError(f"the parts in {parts_dir} come from different exports")
    merged = TableStats(export_sha256=hashes.pop())
    tables = [by_shard[i][0] for i in range(total)]
    with tables[0].open(newline="", encoding="utf-8") as handle:
        header = next(csv.reader(handle))
    for index in range(total):
        merge_stats(merged, by_shard[index][1])
    canonical_counters(merged)
    out_csv.parent.mkdir(parents=True, exist_ok=True)
    with out_csv.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(header)
        streams: list[Iterator[list[str]]] = [_rows(t, header) for t in tables]
        merged_rows = heapq.merge(*streams, key=_patient_of)
        writer.writerows(merged_rows)
    return merged

"""Read a bulk export in chunks that separate processes can take: byte ranges of plain NDJSON
files (a line belongs to the chunk it starts in), whole gzip files, runs of Bundle files.

Each record comes with its raw bytes, and, for a Bundle's entries, the Bundle's fullUrls (for
``urn:uuid:`` references). What cannot be parsed is counted, never raised.
"""

from __future__ import annotations

import gzip
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO, Protocol, cast

import orjson

from fhir_mappers.resources import flatten

RESOURCE_TYPES = ("Patient", "Encounter", "Condition", "Observation")
# Warnings about records no patient owns: a sharded run counts them in its first shard only.
GENERAL_WARNINGS = frozenset({"operation_outcome"})
Record = tuple[Any, bytes, dict[str, dict[str, Any]]]


class PartitionStats(Protocol):
    """What partitioning counts (``TableStats`` has these fields)."""

    resources: int
    patients: int
    unparseable_lines: int
    without_patient: int
    warnings: Counter[str]


@dataclass(frozen=True, slots=True)
class Chunk:
    """Files read by one task: one plain NDJSON file's byte range [start, end), or whole files
    (end = -1). ``size`` is the estimated NDJSON bytes, for the progress bar."""

    index: int
    files: tuple[str, ...]
    start: int
    end: int
    size: int


@dataclass(slots=True)
class Counts:
    resources: int = 0
    unparseable_lines: int = 0
    without_patient: int = 0
    warnings: Counter[str] = field(default_factory=Counter)

    def add_to(self, stats: PartitionStats, *, general: bool) -> None:
        """``general``: also the records no patient owns (false in all shards but the first)."""
        stats.resources += self.resources
        if general:
            stats.unparseable_lines += self.unparseable_lines
            stats.without_patient += self.without_patient
        stats.warnings.update(
            {k: v for k, v in self.warnings.items() if general or k not in GENERAL_WARNINGS}
        )


def size_estimate(path: Path) -> int:
    """Bytes of NDJSON a file holds, to size the shards (gzip shrinks FHIR JSON about tenfold)."""
    size = path.stat().st_size
    return size * 10 if path.name.endswith(".gz") else size


def is_bundle_file(path: Path) -> bool:
    return path.name.endswith((".json", ".json.gz"))


def plan_chunks(files: list[Path], chunk_bytes: int) -> list[Chunk]:
    """Chunks in export order: plain NDJSON cut at ``chunk_bytes``, Bundle files grouped."""
    chunks: list[Chunk] = []
    run: list[str] = []
    run_size = 0

    def flush() -> None:
        nonlocal run, run_size
        if run:
            chunks.append(Chunk(len(chunks), tuple(run), 0, -1, run_size))
        run, run_size = [], 0

    for path in files:
        size = size_estimate(path)
        if is_bundle_file(path):
            run.append(str(path))
            run_size += size
            if run_size >= chunk_bytes:
                flush()
            continue
        flush()
        if path.name.endswith(".gz") or size <= chunk_bytes:
            chunks.append(Chunk(len(chunks), (str(path),), 0, -1, size))
            continue
        for start in range(0, size, chunk_bytes):
            end = min(start + chunk_bytes, size)
            chunks.append(Chunk(len(chunks), (str(path),), start, end, end - start))
    flush()
    return chunks


def _open_lines(path: Path) -> BinaryIO:
    """Plain or gzip-compressed NDJSON (servers often hand out ``.ndjson.gz``)."""
    if path.name.endswith(".gz"):
        return cast(BinaryIO, gzip.open(path, "rb"))
    return path.open("rb")


def _line_records(lines: Iterator[bytes]) -> Iterator[Record]:
    for line in lines:
        if line.strip():
            try:
                res = orjson.loads(line)
            except orjson.JSONDecodeError:
                yield None, b"", {}
                continue
            yield res, line.rstrip(b"\r\n"), {}


def _range_lines(path: Path, start: int, end: int) -> Iterator[bytes]:
    """Lines that begin in [start, end): the line running over ``start`` is the previous chunk's."""
    with path.open("rb") as handle:
        if start > 0:
            handle.seek(start - 1)
            handle.readline()
        pos = handle.tell()
        while pos < end:
            line = handle.readline()
            if not line:
                return
            pos += len(line)
            yield line


def _file_records(path: Path, counts: Counts) -> Iterator[Record]:
    """(parsed JSON, or None when unparseable; its raw bytes; the fullUrls of its Bundle)."""
    with _open_lines(path) as handle:
        if not is_bundle_file(path):
            yield from _line_records(iter(handle))
            return
        raw = handle.read()
    try:
        doc = orjson.loads(raw)
    except orjson.JSONDecodeError:
        yield None, b"", {}
        return
    if not isinstance(doc, dict) or "resourceType" not in doc:
        return  # not FHIR (a generator's metadata file): no resource to account for
    flat = flatten(doc)
    if flat.outcomes:
        counts.warnings["operation_outcome"] += len(flat.outcomes)
    if flat.skipped:
        counts.unparseable_lines += flat.skipped
    # Patients first, so that identifier references of the same Bundle can be resolved.
    for res in sorted(flat.resources, key=lambda r: r.get("resourceType") != "Patient"):
        if res.get("resourceType") in RESOURCE_TYPES:
            yield res, orjson.dumps(res), flat.full_urls


def chunk_records(chunk: Chunk, counts: Counts) -> Iterator[Record]:
    if chunk.end >= 0:
        yield from _line_records(_range_lines(Path(chunk.files[0]), chunk.start, chunk.end))
        return
    for name in chunk.files:
        yield from _file_records(Path(name), counts)

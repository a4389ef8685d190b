"""Cut a bulk export into chunks, route each chunk's resources to patient shards, read shards back.

Bulk files are not grouped by patient, so one pass cannot see a patient's whole record. The export
is cut into chunks (byte ranges of plain NDJSON files, whole gzip files, runs of Bundle files) and
each chunk is routed on its own to shard part files by a stable hash of the patient id: separate
processes can partition separate chunks, and every line carries its position in the export so a
patient's resources are read back in export order however the chunks were scheduled. Reading one
shard at a time keeps memory near one shard, whatever the export's size.

``{type: Patient, identifier}`` references need the Patients read before them. A chunk cannot know
them, so such resources wait in a pending file and are resolved after all chunks, in export order,
against the identifiers of the Patients before them: exactly what a single pass would find.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from operator import itemgetter
from pathlib import Path
from typing import IO, Any

import orjson

from fhir_mappers.chunks import (
    RESOURCE_TYPES,
    Chunk,
    Counts,
    PartitionStats,
    chunk_records,
    plan_chunks,
    size_estimate,
)
from fhir_mappers.resources import (
    dedupe,
    has_modifier_extension,
    patient_id_of,
    patient_identifiers,
)

__all__ = [
    "RESOURCE_TYPES",
    "Chunk",
    "ChunkResult",
    "Counts",
    "Selection",
    "partition_chunk",
    "plan_chunks",
    "resolve_pending",
    "route",
    "shard_patients",
    "size_estimate",
]

_REFERENCE_KEYS = ("subject", "patient")


@dataclass(frozen=True, slots=True)
class Selection:
    """Shard ``index`` of ``count`` of the export's patients: one pod of a Kubernetes indexed Job
    reads the whole export and keeps the patients whose hash falls in its shard."""

    index: int
    count: int

    @classmethod
    def parse(cls, text: str) -> Selection:
        """``K/N`` with 0 <= K < N."""
        head, sep, tail = text.partition("/")
        if not sep or not head.strip().isdigit() or not tail.strip().isdigit():
            raise ValueError(f"shard {text!r} is not K/N (e.g. 0/4)")
        index, count = int(head), int(tail)
        if not 0 <= index < count:
            raise ValueError(f"shard {text!r}: K must be at least 0 and below N")
        return cls(index, count)

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"


@dataclass(slots=True)
class ChunkResult:
    index: int
    counts: Counts
    parts: dict[int, str]
    pending: str | None
    identifiers: str | None


def route(patient_id: str, shards: int, selection: Selection | None) -> int | None:
    """The local shard of a patient, or None when another shard of a selection owns it."""
    digest = zlib.crc32(patient_id.encode())
    if selection is None:
        return digest % shards
    if digest % selection.count != selection.index:
        return None
    return (digest // selection.count) % shards


class _Parts:
    """Shard part files of one chunk, opened on first use (most chunks miss most shards)."""

    def __init__(self, workdir: Path, tag: str) -> None:
        self._workdir, self._tag = workdir, tag
        self.handles: dict[int, IO[bytes]] = {}

    def write(self, shard: int, data: bytes) -> None:
        out = self.handles.get(shard)
        if out is None:
            out = self.handles[shard] = self.path(shard).open("wb")
        out.write(data)

    def path(self, shard: int) -> Path:
        return self._workdir / f"shard-{shard:05d}-{self._tag}.part"

    def close(self) -> dict[int, str]:
        for out in self.handles.values():
            out.close()
        return {shard: str(self.path(shard)) for shard in self.handles}


def _by_identifier(res: dict[str, Any]) -> bool:
    return any(isinstance(res.get(k), dict) and "identifier" in res[k] for k in _REFERENCE_KEYS)


def _referenced_urls(res: dict[str, Any], full_urls: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """The fullUrl entries a pending resource's references can reach (all it needs later)."""
    out: dict[str, Any] = {}
    for key in _REFERENCE_KEYS:
        ref = res.get(key)
        target = ref.get("reference") if isinstance(ref, dict) else None
        if isinstance(target, str) and target in full_urls:
            found = full_urls[target]
            out[target] = {"resourceType": found.get("resourceType"), "id": found.get("id")}
    return out


@dataclass(slots=True)
class _Router:
    parts: _Parts
    shards: int
    selection: Selection | None
    counts: Counts

    def place(self, res: dict[str, Any], line: bytes, pid: str | None, pos: bytes) -> None:
        if pid is None:
            self.counts.without_patient += 1
            return
        shard = route(pid, self.shards, self.selection)
        if shard is None:
            return  # another shard's patient: counted there
        # As at serving: a modifier extension this reader does not understand means the
        # resource must not be processed (the byte check keeps reading fast).
        if b'"modifierExtension"' in line and has_modifier_extension(res):
            self.counts.warnings["modifier_extension_skipped"] += 1
            return
        self.counts.resources += 1
        # Position and patient id travel in front of the raw line, so that reading a shard
        # back groups raw bytes, restores export order and parses one patient at a time.
        self.parts.write(shard, pos + b"\t" + pid.encode() + b"\t" + line + b"\n")


def partition_chunk(
    chunk: Chunk, workdir: str, shards: int, selection: Selection | None
) -> ChunkResult:
    """Route one chunk's resources to shard part files; defer identifier references."""
    counts = Counts()
    router = _Router(_Parts(Path(workdir), f"{chunk.index:06d}"), shards, selection, counts)
    pending: IO[bytes] | None = None
    idents: IO[bytes] | None = None
    base = Path(workdir) / f"chunk-{chunk.index:06d}"
    try:
        for seq, (res, line, full_urls) in enumerate(chunk_records(chunk, counts)):
            pos = b"%06d%010d" % (chunk.index, seq)
            if res is None:
                counts.unparseable_lines += 1
                continue
            if not isinstance(res, dict):
                counts.without_patient += 1
                continue
            rid = res.get("id")
            if res.get("resourceType") == "Patient":
                found = sorted(patient_identifiers(res)) if isinstance(rid, str) else []
                if found:
                    idents = idents or base.with_suffix(".idents").open("wb")
                    idents.write(orjson.dumps([pos.decode(), found, rid]) + b"\n")
            elif _by_identifier(res):
                pending = pending or base.with_suffix(".pending").open("wb")
                urls = orjson.dumps(_referenced_urls(res, full_urls))
                pending.write(pos + b"\t" + urls + b"\t" + line + b"\n")
                continue
            router.place(res, line, patient_id_of(res, full_urls), pos)
    finally:
        parts = router.parts.close()
        for handle in (pending, idents):
            if handle is not None:
                handle.close()
    return ChunkResult(
        chunk.index,
        counts,
        parts,
        str(base.with_suffix(".pending")) if pending else None,
        str(base.with_suffix(".idents")) if idents else None,
    )


def _identifier_entries(results: list[ChunkResult]) -> Iterator[tuple[bytes, list[Any], str]]:
    for result in results:
        if result.identifiers is None:
            continue
        with open(result.identifiers, "rb") as handle:
            for line in handle:
                pos, found, rid = orjson.loads(line)
                yield pos.encode(), found, rid


def resolve_pending(
    results: list[ChunkResult],
    workdir: str,
    shards: int,
    selection: Selection | None,
    counts: Counts,
) -> dict[int, str]:
    """Route the identifier references, in export order, with the identifiers of the Patients
    read before each (as one pass over the export would). Returns the extra part files."""
    router = _Router(_Parts(Path(workdir), "pending"), shards, selection, counts)
    identifiers: dict[tuple[str, str], str] = {}
    entries = _identifier_entries(sorted(results, key=lambda r: r.index))
    upcoming = next(entries, None)
    try:
        for result in sorted(results, key=lambda r: r.index):
            if result.pending is None:
                continue
            with open(result.pending, "rb") as handle:
                for raw in handle:
                    pos, _, rest = raw.partition(b"\t")
                    urls, _, line = rest.partition(b"\t")
                    while upcoming is not None and upcoming[0] < pos:
                        identifiers.update(dict.fromkeys(map(tuple, upcoming[1]), upcoming[2]))
                        upcoming = next(entries, None)
                    res = orjson.loads(line)
                    pid = patient_id_of(res, orjson.loads(urls), identifiers)
                    router.place(res, line.rstrip(b"\r\n"), pid, pos)
    finally:
        parts = router.parts.close()
    return parts


def shard_patients(
    parts: list[str], stats: PartitionStats
) -> Iterator[tuple[str, list[dict[str, Any]]]]:
    """Group a shard's raw lines by patient (in id order), in export order; parse each patient
    only when it is yielded. Raw bytes instead of parsed dicts keep memory near the shard size."""
    grouped: dict[str, list[tuple[bytes, bytes]]] = {}
    for part in parts:
        with open(part, "rb") as handle:
            for line in handle:
                pos, _, rest = line.partition(b"\t")
                head, _, raw = rest.partition(b"\t")
                grouped.setdefault(head.decode(), []).append((pos, raw))
    for patient in sorted(grouped):
        lines = grouped.pop(patient)
        lines.sort(key=itemgetter(0))
        resources, duplicates = dedupe([orjson.loads(raw) for _, raw in lines])
        stats.patients += 1
        if duplicates:
            stats.warnings["duplicate_resource"] += duplicates
        yield patient, resources

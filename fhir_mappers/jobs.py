"""Per-patient work over a bulk export in parallel processes, merged in patient id order.

Both phases run in a pool of ``jobs`` processes: chunks of the export are partitioned into patient
shards (``fhir_mappers.shards``), then each shard is handed to a :class:`PatientJob` that yields
records for its patients, written to a result file. Each worker holds one chunk or one shard at a
time, so memory per process is bounded by the shard size. The parent merges the shard results by
patient id (a heap over open files): the output is the same, byte for byte, for any number of
processes, shards or chunks. ``jobs=1`` runs the same steps in this process.

Workers start by ``forkserver`` (``spawn`` where there is none), never ``fork``: the service's
threads (telemetry exporters, database pools, progress bars) do not survive a fork.
"""

from __future__ import annotations

import heapq
import math
import multiprocessing
import os
import pickle
import resource
import tempfile
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import Executor, Future, ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field, fields
from multiprocessing.context import BaseContext
from operator import itemgetter
from pathlib import Path
from typing import Any, ParamSpec, Protocol, TypeVar

from fhir_mappers.bulk import DEFAULT_SHARD_BYTES, TableStats, export_files
from fhir_mappers.shards import (
    RESOURCE_TYPES,
    Chunk,
    ChunkResult,
    Counts,
    Selection,
    partition_chunk,
    plan_chunks,
    resolve_pending,
    shard_patients,
    size_estimate,
)

P = ParamSpec("P")
T = TypeVar("T")
Patients = Iterator[tuple[str, list[dict[str, Any]]]]


class PatientJob(Protocol):
    """Work per patient; must pickle (it is sent to each worker once)."""

    def run(self, patients: Patients, stats: TableStats) -> Iterator[tuple[str, Any]]:
        """(patient id, record) in the patients' order; several records per patient allowed."""
        ...


@dataclass(slots=True)
class Usage:
    """CPU seconds and peak resident memory (KiB) of one process, for the bench."""

    cpu_seconds: float = 0.0
    peak_rss_kib: int = 0


@dataclass(slots=True)
class JobReport:
    workers: dict[int, Usage] = field(default_factory=dict)
    parent: Usage = field(default_factory=Usage)


def default_jobs() -> int:
    """The CPUs this process may run on (a container's cpuset), capped by a CPU quota (a pod's
    ``limits.cpu`` is a CFS quota, not a cpuset: a 1-CPU pod on a 32-core node must not start 32
    workers, each holding a shard in memory)."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cpus = os.cpu_count() or 1
    quota = _cgroup_cpu_quota()
    return max(1, min(cpus, math.ceil(quota)) if quota else cpus)


def _cgroup_cpu_quota(root: Path = Path("/sys/fs/cgroup")) -> float | None:
    """CPUs allowed by the cgroup's quota (v2 ``cpu.max``, v1 ``cpu.cfs_quota_us``), if any."""
    try:
        text = (root / "cpu.max").read_text().split()
        if text and text[0] != "max":
            return int(text[0]) / int(text[1])
        return None
    except (OSError, ValueError, IndexError):
        pass
    try:
        quota = int((root / "cpu" / "cpu.cfs_quota_us").read_text())
        period = int((root / "cpu" / "cpu.cfs_period_us").read_text())
    except (OSError, ValueError):
        return None
    return quota / period if quota > 0 and period > 0 else None


def _usage() -> tuple[int, Usage]:
    own = resource.getrusage(resource.RUSAGE_SELF)
    return os.getpid(), Usage(own.ru_utime + own.ru_stime, own.ru_maxrss)


class _Inline(Executor):
    """``jobs=1``: the same tasks, run here at submission."""

    def submit(self, fn: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> Future[T]:
        done: Future[T] = Future()
        done.set_result(fn(*args, **kwargs))
        return done


_JOB: PatientJob | None = None


def _install(job: PatientJob) -> None:
    global _JOB
    _JOB = job


def _partition(
    chunk: Chunk, workdir: str, shards: int, selection: Selection | None
) -> tuple[ChunkResult, tuple[int, Usage]]:
    return partition_chunk(chunk, workdir, shards, selection), _usage()


def _extract(parts: list[str], out: str) -> tuple[TableStats, tuple[int, Usage]]:
    """One shard: the job's records to a result file (pickles of our own, read back by us)."""
    assert _JOB is not None, "worker started without its job"
    stats = TableStats()
    with open(out, "wb") as handle:
        for item in _JOB.run(shard_patients(parts, stats), stats):
            pickle.dump(item, handle, protocol=pickle.HIGHEST_PROTOCOL)
    for part in parts:
        os.unlink(part)
    return stats, _usage()


def _records(path: str) -> Iterator[tuple[str, Any]]:
    with open(path, "rb") as handle:
        while True:
            try:
                yield pickle.load(handle)  # noqa: S301 - a file this run wrote in its temp dir
            except EOFError:
                return


def merge_stats(into: TableStats, part: TableStats) -> None:
    """Counts add up; the export hash is the caller's."""
    for item in fields(TableStats):
        value = getattr(part, item.name)
        if isinstance(value, Counter):
            getattr(into, item.name).update(value)
        elif isinstance(value, int):
            setattr(into, item.name, getattr(into, item.name) + value)


def canonical_counters(stats: TableStats) -> None:
    """Counters in key order, so ties in ``most_common`` do not depend on which shard came first."""
    for item in fields(TableStats):
        value = getattr(stats, item.name)
        if isinstance(value, Counter):
            setattr(stats, item.name, Counter(dict(sorted(value.items()))))


def _executor(jobs: int, job: PatientJob) -> Executor:
    context: BaseContext
    if jobs <= 1:
        _install(job)
        return _Inline()
    if "forkserver" in multiprocessing.get_all_start_methods():
        context = multiprocessing.get_context("forkserver")
        # Imported once in the server, not again in every worker it forks.
        context.set_forkserver_preload(["fhir_mappers.preload", type(job).__module__])
    else:
        context = multiprocessing.get_context("spawn")
    return ProcessPoolExecutor(jobs, mp_context=context, initializer=_install, initargs=(job,))


def _note(report: JobReport | None, usage: tuple[int, Usage]) -> None:
    if report is None:
        return
    pid, seen = usage
    known = report.workers.setdefault(pid, Usage())
    known.cpu_seconds = max(known.cpu_seconds, seen.cpu_seconds)
    known.peak_rss_kib = max(known.peak_rss_kib, seen.peak_rss_kib)


def _partition_all(
    pool: Executor,
    chunks: list[Chunk],
    workdir: str,
    shards: int,
    selection: Selection | None,
    bar: Any,
    report: JobReport | None,
) -> list[ChunkResult]:
    futures = {pool.submit(_partition, c, workdir, shards, selection): c for c in chunks}
    results: list[ChunkResult] = []
    for future in as_completed(futures):
        result, usage = future.result()
        results.append(result)
        _note(report, usage)
        bar.update(futures[future].size)
    return sorted(results, key=lambda r: r.index)


def _extract_all(
    pool: Executor,
    parts: dict[int, list[str]],
    outputs: dict[int, str],
    bar: Any,
    report: JobReport | None,
) -> dict[int, TableStats]:
    futures = {pool.submit(_extract, parts[s], outputs[s]): s for s in outputs}
    done: dict[int, TableStats] = {}
    for future in as_completed(futures):
        done[futures[future]], usage = future.result()
        _note(report, usage)
        bar.update(1)
    return done


def run_patient_job(
    export_dir: Path,
    job: PatientJob,
    stats: TableStats,
    *,
    jobs: int = 1,
    progress: bool = False,
    resource_types: tuple[str, ...] = RESOURCE_TYPES,
    shard_bytes: int = DEFAULT_SHARD_BYTES,
    selection: Selection | None = None,
    report: JobReport | None = None,
    chunk_bytes: int | None = None,
) -> Iterator[tuple[str, Any]]:
    """Yield the job's (patient id, record) in patient id order; ``stats`` is complete when the
    iterator is exhausted. ``selection``: only shard K of N of the patients."""
    from tqdm import tqdm

    files = export_files(export_dir, resource_types)
    if not files:
        raise FileNotFoundError(f"no *.ndjson files of types {resource_types} in {export_dir}")
    total = sum(size_estimate(p) for p in files)
    # Many shards per process keep the processes busy to the end (the last one to finish waits
    # for at most one small shard); none above shard_bytes.
    shards = max(math.ceil(total / shard_bytes), 16 * jobs)
    chunk_bytes = chunk_bytes or min(max(1 << 20, math.ceil(total / (8 * jobs))), 256 << 20)
    general = selection is None or selection.index == 0
    with tempfile.TemporaryDirectory(prefix="cds-bulk-") as tmp:
        with _executor(jobs, job) as pool:
            with tqdm(
                total=total, unit="B", unit_scale=True, desc="partition", disable=not progress
            ) as bar:
                chunks = plan_chunks(files, chunk_bytes)
                results = _partition_all(pool, chunks, tmp, shards, selection, bar, report)
            counts = Counts()
            pending = resolve_pending(results, tmp, shards, selection, counts)
            for part_counts in [*(r.counts for r in results), counts]:
                part_counts.add_to(stats, general=general)
            parts: dict[int, list[str]] = {}
            for part_map in [*(r.parts for r in results), pending]:
                for shard, path in part_map.items():
                    parts.setdefault(shard, []).append(path)
            outputs = {s: str(Path(tmp) / f"result-{s:05d}.pickle") for s in sorted(parts)}
            with tqdm(
                total=len(outputs), desc="extract", unit="shard", disable=not progress
            ) as bar:
                shard_stats = _extract_all(pool, parts, outputs, bar, report)
        for shard in sorted(shard_stats):
            merge_stats(stats, shard_stats[shard])
        canonical_counters(stats)
        if report is not None:
            report.parent = _usage()[1]
        yield from heapq.merge(*(_records(outputs[s]) for s in sorted(outputs)), key=itemgetter(0))

"""Scaling of the training-table build with the number of processes (``--jobs``), issue 13.

Builds the same table with ``--jobs 1`` and ``--jobs 2`` (or ``--jobs 1,2,4``) in the same run,
each in its own child process (this script re-invoked with ``--child``), alternating the job
counts for ``--repeat`` rounds so that load from other processes falls on all of them. Per build:
wall time, rows/s and resources/s, speed-up against ``--jobs 1`` of the same round, CPU seconds of
the parent and of each worker (their sum over wall time is how many cores the build kept busy),
and peak RSS per process (``ru_maxrss`` as each process reports it). The tables' SHA-256 must be
equal for every job count; the script says so.

The timed section is what ``cds-service table`` does after its imports: the export's SHA-256,
partition, extraction, merge and the CSV. It includes starting the worker processes.

    python bench/batch_scaling.py --generate            # default synth cohort into bench/out/
    python bench/batch_scaling.py --export /tmp/export --jobs 1,2 --repeat 3

Benchmarks print figures; they never assert.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
SPECS = {
    "ed": ROOT / "models" / "ed-admission" / "features.toml",
    "post-mi": ROOT / "models" / "post-mi-unplanned-visit" / "features.toml",
}


def _child(export: Path, spec_name: str, jobs: int, out_csv: Path) -> dict[str, Any]:
    from fhir_mappers.bulk import META_COLUMNS, TableStats
    from fhir_mappers.jobs import JobReport
    from fhir_mappers.spec import load_spec
    from fhir_mappers.table_job import table_rows

    spec = load_spec(SPECS[spec_name])
    report = JobReport()
    start = time.perf_counter()
    # write_training_table's steps, with the report the bench needs.
    stats = TableStats()
    columns = [*META_COLUMNS, *spec.feature_names, spec.label.name]
    with out_csv.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns, lineterminator="\n")
        writer.writeheader()
        for row in table_rows(export, spec, stats, jobs=jobs, report=report, hash_export=True):
            writer.writerow({k: ("" if v is None else v) for k, v in row.items()})
    wall = time.perf_counter() - start
    return {
        "jobs": jobs,
        "wall": wall,
        "rows": stats.rows,
        "resources": stats.resources,
        "parent_cpu": report.parent.cpu_seconds,
        "parent_rss_kib": report.parent.peak_rss_kib,
        "workers": [
            {"cpu": u.cpu_seconds, "rss_kib": u.peak_rss_kib}
            for pid, u in sorted(report.workers.items())
            if pid != os.getpid()
        ],
        "table_sha256": hashlib.sha256(out_csv.read_bytes()).hexdigest(),
        "export_sha256": stats.export_sha256,
    }


def _run(export: Path, spec: str, jobs: int, work: Path) -> dict[str, Any]:
    out = work / f"table-{jobs}.csv"
    cmd = [sys.executable, __file__, "--child", "--export", str(export), "--spec", spec]
    cmd += ["--jobs", str(jobs), "--out", str(out)]
    env = {**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    done = subprocess.run(cmd, capture_output=True, text=True, check=True, env=env)
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def _generate(target: Path, ed: int, post_mi: int) -> None:
    if (target / "Observation.ndjson").is_file():
        print(f"reusing {target}")
        return
    from cds_devtools.synth import generate_cohort

    print(f"generating {ed} ED + {post_mi} post-MI patients into {target} ...", flush=True)
    generate_cohort(target, ed_patients=ed, post_mi_patients=post_mi)


def _mib(kib: int) -> str:
    return f"{kib / 1024:.0f}"


def _cpu(result: dict[str, Any]) -> float:
    return float(result["parent_cpu"] + sum(w["cpu"] for w in result["workers"]))


def _critical_cpu(result: dict[str, Any]) -> float:
    """CPU seconds on the longest path: the parent's plus the busiest worker's."""
    return float(result["parent_cpu"] + max((w["cpu"] for w in result["workers"]), default=0.0))


def _print(result: dict[str, Any], base: dict[str, Any] | None) -> None:
    workers = result["workers"]
    cpu = _cpu(result)
    speed_up = f"{base['wall'] / result['wall']:.2f}x" if base else "-"
    # What the speed-up would be with a core per process: the one-process build's CPU over the
    # CPU on this build's longest path (the forkserver's start is in neither).
    estimate = f"{_cpu(base) / _critical_cpu(result):.2f}x" if base else "-"
    rss = "/".join(_mib(w["rss_kib"]) for w in workers) or "-"
    worker_cpu = "/".join(f"{w['cpu']:.1f}" for w in workers) or "-"
    print(
        f"{result['jobs']:>4} {result['wall']:>8.2f} {result['rows'] / result['wall']:>8.0f} "
        f"{result['resources'] / result['wall']:>10.0f} {speed_up:>8} "
        f"{result['parent_cpu']:>7.2f} "
        f"{worker_cpu:>11} {cpu / result['wall']:>6.2f} "
        f"{_mib(result['parent_rss_kib']):>7} {rss:>11} {estimate:>8}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--export", type=Path)
    parser.add_argument("--generate", action="store_true", help="synth cohort into bench/out/")
    parser.add_argument("--ed-patients", type=int, default=4000)
    parser.add_argument("--post-mi-patients", type=int, default=2500)
    parser.add_argument("--spec", choices=sorted(SPECS), default="ed")
    parser.add_argument("--jobs", default="1,2", help="comma-separated job counts; 1 first")
    parser.add_argument("--repeat", type=int, default=2, help="rounds, job counts alternating")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    counts = [int(j) for j in args.jobs.split(",")]
    if args.child:
        print(json.dumps(_child(args.export, args.spec, counts[0], args.out)))
        return
    export = args.export
    if args.generate or export is None:
        export = ROOT / "bench" / "out" / "batch-export"
        _generate(export, args.ed_patients, args.post_mi_patients)
    size = sum(p.stat().st_size for p in export.iterdir() if p.is_file())
    print(f"export {export} ({size / 2**20:.0f} MiB), spec {args.spec}, cpus {os.cpu_count()}")
    print(f"load average before: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print(
        "jobs   wall s   rows/s resources/s speed-up parent cpu  worker cpu cores  "
        "parent MiB  worker MiB  cpu-est"
    )
    hashes = set()
    best: dict[int, float] = {}
    with tempfile.TemporaryDirectory(prefix="bench-scaling-") as tmp:
        for round_no in range(args.repeat):
            print(f"round {round_no + 1}")
            base = None
            for jobs in counts:
                result = _run(export, args.spec, jobs, Path(tmp))
                _print(result, base)
                base = base or result
                hashes.add(result["table_sha256"])
                best[jobs] = min(best.get(jobs, float("inf")), result["wall"])
    print(f"load average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    first = counts[0]
    summary = ", ".join(f"{j} jobs {best[first] / best[j]:.2f}x" for j in counts[1:])
    print(f"best of {args.repeat}: {first} job {best[first]:.2f} s; {summary}")
    print("tables identical for every job count" if len(hashes) == 1 else "TABLES DIFFER")


if __name__ == "__main__":
    main()

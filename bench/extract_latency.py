"""Single-patient extraction latency: ``extract`` on a 200-Observation prefetch, p50/p90/p99/max.

The input is what the post-MI service's prefetch brings for one patient: the Patient, a searchset
Bundle of that patient's 200 most recent Observations (``_sort=-date``) and a Bundle of their
Conditions, taken from a synthetic bulk export (``--export``; otherwise a small cohort is
generated into a temporary folder). The index time is one hour after an Observation, the first
such moment with at least 200 Observations before it and a busy last three days (so that the
feature windows have data); the bundle holds the 200 most recent Observations at that moment.

Three configurations of ``--calls`` calls each, after a warm-up (the UCUM registry loads on first
use), run in interleaved blocks of ``--block`` calls so that load from other processes on the
machine falls on all three alike; both the wall time and the thread CPU time of every call are
recorded:

* ``gc on``      -- the collector as it is by default;
* ``gc frozen``  -- after ``gc.collect(); gc.freeze()``, as the service does after start-up;
* ``gc frozen, cold timestamps`` -- as above, but the mapper's timestamp-parse cache is cleared
  before every call (outside the timed region): every timestamp is parsed again, as for a patient
  never seen before. The unit-conversion cache stays warm, as it does in a running service.

Benchmarks print figures; they never assert. Target (issue 3): p99 under 2 ms.
"""

from __future__ import annotations

import argparse
import gc
import json
import math
import statistics
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
SPEC = ROOT / "models" / "post-mi-unplanned-visit" / "features.toml"
TARGET_P99_MS = 2.0
BUSY_3D = 12  # Observations in the 3 days before the index time (about 4 a day at home)


def _read_patient(export: Path, rtype: str, patient_id: str) -> list[dict[str, Any]]:
    needle = f'"Patient/{patient_id}"'.encode()
    out: list[dict[str, Any]] = []
    for path in sorted(export.glob(f"{rtype}*.ndjson")):
        with path.open("rb") as handle:
            for line in handle:
                if needle in line:
                    res = json.loads(line)
                    ref = (res.get("subject") or res.get("patient") or {}).get("reference")
                    if ref == f"Patient/{patient_id}":
                        out.append(res)
    return out


def _first_patient_with(export: Path, n_obs: int) -> str:
    counts: Counter[str] = Counter()
    marker = b'"reference":"Patient/mi-'
    for path in sorted(export.glob("Observation*.ndjson")):
        with path.open("rb") as handle:
            for line in handle:
                at = line.find(marker)
                if at < 0:
                    continue
                start = at + len(b'"reference":"Patient/')
                pid = line[start : line.index(b'"', start)].decode()
                counts[pid] += 1
                if counts[pid] >= n_obs:
                    return pid
    raise SystemExit(f"no post-MI patient with {n_obs} Observations in {export}")


def _effective(obs: dict[str, Any]) -> datetime:
    text = obs.get("effectiveDateTime") or (obs.get("effectivePeriod") or {}).get("start")
    return datetime.fromisoformat(text).astimezone(UTC)


def _pick_index(dated: list[dict[str, Any]], n_obs: int) -> tuple[list[dict[str, Any]], datetime]:
    """The first moment (1 h after an Observation) with >= n_obs before it and a busy last 3 days.

    A call made right after a gap in home measurements would find empty windows and do little
    work; the service is meant for patients who are measuring.
    """
    times = [_effective(o) for o in dated]
    for k in range(n_obs - 1, len(dated)):
        moment = times[k] + timedelta(hours=1)
        upto = sum(t <= moment for t in times)
        if sum(moment - timedelta(days=3) < t <= moment for t in times) >= BUSY_3D:
            return dated[:upto][-n_obs:], moment
    return dated[:n_obs], times[n_obs - 1] + timedelta(hours=1)


def _searchset(resources: list[dict[str, Any]]) -> dict[str, Any]:
    base = "https://ehr.example/fhir"
    return {
        "resourceType": "Bundle",
        "type": "searchset",
        "total": len(resources),
        "entry": [
            {
                "fullUrl": f"{base}/{r['resourceType']}/{r['id']}",
                "resource": r,
                "search": {"mode": "match"},
            }
            for r in resources
        ],
    }


def build_prefetch(
    export: Path, patient_id: str | None, n_obs: int
) -> tuple[list[Any], datetime, str, Counter[str]]:
    pid = patient_id or _first_patient_with(export, n_obs)
    patients = [json.loads(line) for line in _patient_line(export, pid)]
    if not patients:
        raise SystemExit(f"no Patient {pid} in {export}")
    observations = _read_patient(export, "Observation", pid)
    conditions = _read_patient(export, "Condition", pid)
    dated = sorted(
        (o for o in observations if o.get("effectiveDateTime") or o.get("effectivePeriod")),
        key=_effective,
    )
    if len(dated) < n_obs:
        raise SystemExit(f"patient {pid} has only {len(dated)} dated Observations")
    chosen, index_time = _pick_index(dated, n_obs)
    units: Counter[str] = Counter()
    for obs in chosen:
        for node in [obs, *(obs.get("component") or [])]:
            q = node.get("valueQuantity")
            if isinstance(q, dict):
                units[str(q.get("code") or q.get("unit"))] += 1
    prefetch = [patients[0], _searchset(chosen[::-1]), _searchset(conditions)]
    return prefetch, index_time, pid, units


def _patient_line(export: Path, pid: str) -> list[bytes]:
    needle = f'"id":"{pid}"'.encode()
    out: list[bytes] = []
    for path in sorted(export.glob("Patient*.ndjson")):
        with path.open("rb") as handle:
            out.extend(line for line in handle if needle in line)
    return [line for line in out if json.loads(line).get("id") == pid][:1]


def _percentiles(samples_ns: list[int]) -> dict[str, float]:
    ms = sorted(s / 1e6 for s in samples_ns)
    cuts = statistics.quantiles(ms, n=1000, method="inclusive")
    return {
        "p50": cuts[499],
        "p90": cuts[899],
        "p99": cuts[989],
        "p99.9": cuts[998],
        "max": ms[-1],
        "mean": statistics.fmean(ms),
    }


class Run:
    """One configuration: wall and thread-CPU time of every call."""

    def __init__(self, label: str, setup: Callable[[], None], before: Callable[[], None] | None):
        self.label = label
        self.setup = setup
        self.before = before
        self.wall: list[int] = []
        self.cpu: list[int] = []

    def block(self, call: Callable[[], Any], calls: int) -> None:
        self.setup()
        wall, cpu = time.perf_counter_ns, time.thread_time_ns
        for _ in range(calls):
            if self.before is not None:
                self.before()
            c0 = cpu()
            t0 = wall()
            call()
            t1 = wall()
            c1 = cpu()
            self.wall.append(t1 - t0)
            self.cpu.append(c1 - c0)


def _stage_p50(fn: Callable[[], Any], calls: int) -> float:
    samples = []
    for _ in range(calls):
        t0 = time.perf_counter_ns()
        fn()
        samples.append(time.perf_counter_ns() - t0)
    return statistics.median(samples) / 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--export", type=Path, help="FHIR Bulk export (default: generate one)")
    parser.add_argument("--patient", help="patient id (default: first post-MI with enough data)")
    parser.add_argument("--observations", type=int, default=200)
    parser.add_argument("--calls", type=int, default=5000)
    parser.add_argument("--warmup", type=int, default=300)
    parser.add_argument("--block", type=int, default=250, help="calls per interleaved block")
    args = parser.parse_args()

    from fhir_mappers import aggregate, extract, flatten, load_spec, normalize
    from fhir_mappers import facts as facts_module

    with tempfile.TemporaryDirectory(prefix="bench-extract-") as tmp:
        export = args.export
        if export is None:
            from cds_devtools.synth import generate_cohort

            export = Path(tmp)
            generate_cohort(export, ed_patients=0, post_mi_patients=3)
        prefetch, index_time, pid, units = build_prefetch(export, args.patient, args.observations)
    spec = load_spec(SPEC)
    n_obs = len(prefetch[1]["entry"])
    result = extract(prefetch, index_time, spec)
    present = sum(v is not None for v in result.values.values())
    print(
        f"patient {pid}: {n_obs} Observations, {len(prefetch[2]['entry'])} Conditions, "
        f"index time {index_time.isoformat()}"
    )
    print("units in the bundle: " + ", ".join(f"{u} x{n}" for u, n in units.most_common()))
    print(
        f"spec {spec.name}: {present}/{len(result.values)} features present, "
        f"{sum(result.warnings.values())} warnings; python {sys.version.split()[0]}"
    )

    def call() -> Any:
        return extract(prefetch, index_time, spec)

    for _ in range(args.warmup):
        call()

    def gc_on() -> None:
        gc.unfreeze()
        gc.collect()

    def gc_frozen() -> None:
        gc.collect()
        gc.freeze()

    runs = [Run("gc on", gc_on, None), Run("gc frozen", gc_frozen, None)]
    time_cache = getattr(facts_module, "_TIME_CACHE", None)  # private: absent in other versions
    if isinstance(time_cache, dict):
        runs.append(Run("gc frozen, cold timestamps", gc_frozen, time_cache.clear))
    # Interleaved blocks, so that load from other processes falls on every run alike.
    block = max(1, min(args.block, args.calls))
    for _ in range(math.ceil(args.calls / block)):
        for run in runs:
            run.block(call, block)
    gc.unfreeze()

    print()
    names = ["p50", "p90", "p99", "p99.9", "max", "mean"]
    width = max(len(run.label) for run in runs) + 7
    title = f"ms, {len(runs[0].wall)} calls each"
    print(f"{title:<{width}}" + "".join(f"{n:>9}" for n in names))
    for run in runs:
        for kind, samples in (("wall", run.wall), ("cpu", run.cpu)):
            stats = _percentiles(samples)
            label = f"{run.label} {kind}"
            print(f"{label:<{width}}" + "".join(f"{stats[n]:>9.3f}" for n in names))
    print("wall = perf_counter_ns around the call; cpu = thread CPU time of the call (excludes")
    print("time the thread was preempted by other processes sharing the cores)")

    flat = flatten(prefetch)
    pf = normalize(flat.resources, spec)
    stages = {
        "flatten": lambda: flatten(prefetch),
        "normalize": lambda: normalize(flat.resources, spec),
        "aggregate": lambda: aggregate(pf, index_time, spec),
    }
    print(
        "stage p50 (warm caches): "
        + ", ".join(f"{k} {_stage_p50(fn, 1000):.3f} ms" for k, fn in stages.items())
    )
    print()
    for run in runs:
        p99 = _percentiles(run.wall)["p99"]
        p99_cpu = _percentiles(run.cpu)["p99"]
        verdict = "meets" if p99 < TARGET_P99_MS else "misses"
        print(
            f"target p99 < {TARGET_P99_MS} ms ({run.label}): wall p99 {p99:.3f} ms, {verdict} "
            f"(cpu p99 {p99_cpu:.3f} ms)"
        )


if __name__ == "__main__":
    main()

"""Single-patient extraction latency: ``extract`` on a 200-Observation prefetch, p50/p90/p99/max.

The input is what the post-MI service's prefetch brings for one patient: the Patient, a searchset
Bundle of that patient's 200 most recent Observations (``_sort=-date``) and a Bundle of their
Conditions, taken from a synthetic bulk export (``--export``; otherwise a small cohort is
generated into a temporary folder). The index time is one hour after the 200th Observation.

Three timed runs of ``--calls`` calls each, after a warm-up (the UCUM registry loads on first use):

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
    chosen = dated[:n_obs]
    index_time = _effective(chosen[-1]) + timedelta(hours=1)
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


def _run(call: Callable[[], Any], calls: int, before: Callable[[], None] | None) -> list[int]:
    samples: list[int] = []
    clock = time.perf_counter_ns
    for _ in range(calls):
        if before is not None:
            before()
        t0 = clock()
        call()
        samples.append(clock() - t0)
    return samples


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--export", type=Path, help="FHIR Bulk export (default: generate one)")
    parser.add_argument("--patient", help="patient id (default: first post-MI with enough data)")
    parser.add_argument("--observations", type=int, default=200)
    parser.add_argument("--calls", type=int, default=5000)
    parser.add_argument("--warmup", type=int, default=300)
    args = parser.parse_args()

    from fhir_mappers import extract, load_spec
    from fhir_mappers import facts as facts_module

    with tempfile.TemporaryDirectory(prefix="bench-extract-") as tmp:
        export = args.export
        if export is None:
            from cds_service.synth import generate_cohort

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
    gc.collect()
    runs: list[tuple[str, list[int]]] = []
    runs.append(("gc on", _run(call, args.calls, None)))
    gc.collect()
    gc.freeze()
    runs.append(("gc frozen", _run(call, args.calls, None)))
    clear = facts_module._TIME_CACHE.clear
    runs.append(("gc frozen, cold timestamps", _run(call, args.calls, clear)))
    gc.unfreeze()

    print()
    names = ["p50", "p90", "p99", "p99.9", "max", "mean"]
    width = max(len(label) for label, _ in runs)
    print(
        f"{'run (' + str(args.calls) + ' calls, ms)':<{width + 14}}"
        + "".join(f"{n:>9}" for n in names)
    )
    for label, samples in runs:
        stats = _percentiles(samples)
        print(f"{label:<{width + 14}}" + "".join(f"{stats[n]:>9.3f}" for n in names))
    print()
    for label, samples in runs:
        p99 = _percentiles(samples)["p99"]
        verdict = "meets" if p99 < TARGET_P99_MS else "misses"
        print(f"target p99 < {TARGET_P99_MS} ms ({label}): p99 {p99:.3f} ms, {verdict}")


if __name__ == "__main__":
    main()

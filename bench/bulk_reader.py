"""Bulk reader throughput and peak memory, beside fhir-pyrate and fhiry on the same export.

Every measured tool runs in its own child process (this script re-invoked with ``--child``), so
peak memory is that child's own high-water mark (``wait4`` rusage ``ru_maxrss``, cross-checked
with ``VmHWM``) and no tool's imports or garbage inflate another's figure. Timed sections cover
the work only (parse + flatten/extract + write), not interpreter start-up or imports.

What each row does:

* ``fhir_mappers`` -- ``write_training_table`` on the whole export (all resource types): partition
  by patient into shards, parse, unit-normalize to the spec's canonical units, aggregate over
  feature windows at every index event, label, and stream a CSV. Provenance is computed for every
  feature of every row (``aggregate`` builds it) even though the CSV keeps only the values.
* ``fhir-pyrate flatten_data`` -- NDJSON lines wrapped into searchset Bundles of 100 entries
  (what ``Pirate`` gets from a server page), turned into ``FHIRObj`` as ``Pirate`` does with a
  response, then ``Pirate.bundles_to_dataframe`` with its default processing function: one row
  per resource, one column per leaf path (values as found, no units, no windows).
* ``fhir-pyrate fhir_paths`` -- the same, with FHIRPath columns that select what the features
  need (subject, status, code, time, value, unit, component code/value/unit).
* ``fhiry Fhirndjson`` -- ``Fhirndjson().process_source()`` on a folder holding the slice's
  Observation NDJSON: ``pd.json_normalize`` per line, code extraction, patientId, one DataFrame.
* ``floor orjson.loads`` -- only parse every line of the export: no reader can beat this in Python.

The peers see Observations only (the issue's "the same export turned into a table"); they run on
a slice of whole patients picked by a hash of the patient id, so the slice has the export's mix of
ED and post-MI records. fhiry is far slower and runs on the first ``--fhiry-slice`` lines of that
slice. ``fhir_mappers`` also runs on the slice (all resource types of the same patients) so that
its memory and rate can be compared on equal input.

Benchmarks print figures; they never assert. Run ``python bench/bulk_reader.py --help``.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
SPECS = {
    "post-mi": ROOT / "models" / "post-mi-unplanned-visit" / "features.toml",
    "ed": ROOT / "models" / "ed-admission" / "features.toml",
}
RESOURCE_TYPES = ("Patient", "Encounter", "Condition", "Observation")
BUNDLE_SIZE = 100
# FHIRPath columns for fhir-pyrate: what one needs to compute this project's features from a
# table (the grouping, windows and unit conversion would still be left to do in pandas).
PYRATE_PATHS = [
    ("patient", "subject.reference"),
    ("status", "status"),
    ("code", "code.coding.code"),
    ("system", "code.coding.system"),
    ("time", "effectiveDateTime"),
    ("value", "valueQuantity.value"),
    ("unit", "valueQuantity.code"),
    ("component_code", "component.code.coding.code"),
    ("component_value", "component.valueQuantity.value"),
    ("component_unit", "component.valueQuantity.code"),
]
_SUBJECT = re.compile(rb'"(?:subject|patient)"\s*:\s*\{[^{}]*?"reference"\s*:\s*"Patient/([^"/]+)')


# --------------------------------------------------------------------------------------------
# Children: one tool each, in its own process.


def _status_kib(field: str) -> int:
    with open("/proc/self/status", encoding="ascii") as handle:
        for line in handle:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


def _ndjson_lines(path: Path) -> Iterator[str]:
    with path.open(encoding="utf-8") as handle:
        for line in handle:
            if line.strip():
                yield line


def _child_ours(args: argparse.Namespace) -> dict[str, Any]:
    from fhir_mappers.bulk import write_training_table
    from fhir_mappers.spec import load_spec

    spec = load_spec(Path(args.spec_path))
    out_csv = Path(args.out_dir) / f"table-{os.getpid()}.csv"
    baseline = _status_kib("VmRSS")
    t0, c0 = time.perf_counter(), time.process_time()
    stats = write_training_table(Path(args.input), spec, out_csv, progress=False)
    seconds, cpu = time.perf_counter() - t0, time.process_time() - c0
    size = out_csv.stat().st_size
    out_csv.unlink()
    return {
        "resources": stats.resources,
        "seconds": seconds,
        "cpu_seconds": cpu,
        "baseline_kib": baseline,
        "output": (
            f"CSV {stats.rows} rows x {len(spec.feature_names)} features + label "
            f"({stats.patients} patients, {size / 2**20:.1f} MiB, "
            f"{sum(stats.warnings.values())} counted warnings)"
        ),
    }


def _child_floor(args: argparse.Namespace) -> dict[str, Any]:
    import orjson

    baseline = _status_kib("VmRSS")
    export = Path(args.input)
    count = 0
    t0, c0 = time.perf_counter(), time.process_time()
    for rtype in RESOURCE_TYPES:
        for path in sorted(export.glob(f"{rtype}*.ndjson")):
            with path.open("rb") as handle:
                for line in handle:
                    if line.strip():
                        orjson.loads(line)
                        count += 1
    seconds, cpu = time.perf_counter() - t0, time.process_time() - c0
    return {
        "resources": count,
        "seconds": seconds,
        "cpu_seconds": cpu,
        "baseline_kib": baseline,
        "output": "nothing (parse each line, drop it)",
    }


def _pyrate_bundles(path: Path) -> Iterator[Any]:
    from fhir_pyrate.util import FHIRObj

    entries: list[dict[str, Any]] = []
    for line in _ndjson_lines(path):
        entries.append({"resource": json.loads(line)})
        if len(entries) == BUNDLE_SIZE:
            yield FHIRObj(resourceType="Bundle", type="searchset", entry=entries)
            entries = []
    if entries:
        yield FHIRObj(resourceType="Bundle", type="searchset", entry=entries)


def _child_pyrate(args: argparse.Namespace, with_paths: bool) -> dict[str, Any]:
    import logging
    import warnings

    from fhir_pyrate import Pirate

    logging.disable(logging.WARNING)
    warnings.simplefilter("ignore")
    path = Path(args.input)
    resources = sum(1 for _ in _ndjson_lines(path))
    # No request is made: bundles_to_dataframe only transforms the bundles it is given.
    pirate = Pirate(base_url="http://localhost/fhir", auth=None, num_processes=1)
    baseline = _status_kib("VmRSS")
    t0, c0 = time.perf_counter(), time.process_time()
    if with_paths:
        df = pirate.bundles_to_dataframe(_pyrate_bundles(path), fhir_paths=PYRATE_PATHS)
    else:
        df = pirate.bundles_to_dataframe(_pyrate_bundles(path))
    seconds, cpu = time.perf_counter() - t0, time.process_time() - c0
    pirate.close()
    assert not isinstance(df, dict)
    return {
        "resources": resources,
        "seconds": seconds,
        "cpu_seconds": cpu,
        "baseline_kib": baseline,
        "output": f"DataFrame {df.shape[0]} rows x {df.shape[1]} columns (raw values)",
    }


def _child_fhiry(args: argparse.Namespace) -> dict[str, Any]:
    import contextlib
    import io
    import logging

    from fhiry import Fhirndjson

    logging.disable(logging.WARNING)
    folder = Path(args.input)
    resources = sum(sum(1 for _ in _ndjson_lines(p)) for p in folder.glob("*.ndjson"))
    reader = Fhirndjson()
    reader.folder = str(folder)
    baseline = _status_kib("VmRSS")
    t0, c0 = time.perf_counter(), time.process_time()
    with contextlib.redirect_stdout(io.StringIO()):  # it prints a resource summary
        reader.process_source()
    seconds, cpu = time.perf_counter() - t0, time.process_time() - c0
    df = reader.df
    return {
        "resources": resources,
        "seconds": seconds,
        "cpu_seconds": cpu,
        "baseline_kib": baseline,
        "output": f"DataFrame {df.shape[0]} rows x {df.shape[1]} columns (raw values)",
    }


def child_main(args: argparse.Namespace) -> None:
    os.environ["TQDM_DISABLE"] = "1"
    runners = {
        "ours": _child_ours,
        "floor": _child_floor,
        "pyrate-flatten": lambda a: _child_pyrate(a, with_paths=False),
        "pyrate-paths": lambda a: _child_pyrate(a, with_paths=True),
        "fhiry": _child_fhiry,
    }
    try:
        result = runners[args.child](args)
        result["vmhwm_kib"] = _status_kib("VmHWM")
    except ImportError as exc:
        result = {"error": f"not installed here ({exc.name}); see bench/requirements.txt"}
    Path(args.result).write_text(json.dumps(result), encoding="utf-8")


# --------------------------------------------------------------------------------------------
# Parent: data preparation, spawning, report.


def _count_lines(path: Path) -> int:
    count = 0
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 22), b""):
            count += chunk.count(b"\n")
    return count


def _patient_of(line: bytes, rtype: str) -> str | None:
    if rtype == "Patient":
        rid = json.loads(line).get("id")
        return rid if isinstance(rid, str) else None
    match = _SUBJECT.search(line)
    if match is not None:
        return match.group(1).decode()
    res = json.loads(line)
    for key in ("subject", "patient"):
        ref = res.get(key)
        if isinstance(ref, dict) and "Patient/" in str(ref.get("reference", "")):
            return str(ref["reference"]).rsplit("Patient/", 1)[1].split("/", 1)[0]
    return None


def make_slice(export: Path, target_observations: int, fhiry_lines: int, work: Path) -> Path:
    """Whole patients picked by crc32(patient id), about ``target_observations`` Observations."""
    total = sum(_count_lines(p) for p in export.glob("Observation*.ndjson"))
    fraction = min(1.0, target_observations / max(total, 1))
    limit = int(fraction * 2**32)
    sources = sorted(export.glob("*.ndjson"))
    tag = zlib.crc32(
        repr([(str(p), p.stat().st_size, p.stat().st_mtime_ns) for p in sources]).encode()
    )
    out = work / f"slice-{target_observations}-{fhiry_lines}-{tag:08x}"
    if (out / "done").exists():
        return out
    shutil.rmtree(out, ignore_errors=True)
    (out / "fhiry").mkdir(parents=True)
    for rtype in RESOURCE_TYPES:
        target = out / f"{rtype}.ndjson"
        with target.open("wb") as sink:
            for path in sorted(export.glob(f"{rtype}*.ndjson")):
                with path.open("rb") as handle:
                    for line in handle:
                        if not line.strip():
                            continue
                        pid = _patient_of(line, rtype)
                        if pid is not None and zlib.crc32(pid.encode()) < limit:
                            sink.write(line if line.endswith(b"\n") else line + b"\n")
    with (
        (out / "Observation.ndjson").open("rb") as src,
        (out / "fhiry" / "Observation.ndjson").open("wb") as dst,
    ):
        for i, line in enumerate(src):
            if i >= fhiry_lines:
                break
            dst.write(line)
    (out / "done").write_text("ok\n", encoding="ascii")
    return out


def spawn(python: str, child: str, work: Path, **kwargs: str) -> dict[str, Any]:
    """Run one child; its peak RSS comes from wait4, so it is that process's alone."""
    result = work / f"result-{child}-{time.monotonic_ns()}.json"
    argv = [python, str(Path(__file__).resolve()), "--child", child, "--result", str(result)]
    for key, value in kwargs.items():
        argv += [f"--{key.replace('_', '-')}", value]
    env = dict(os.environ, TQDM_DISABLE="1", PYTHONHASHSEED="0")
    with open(os.devnull, "wb") as devnull:
        proc = subprocess.Popen(argv, env=env, stdout=devnull)
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0 or not result.exists():
        return {"error": f"child exited with {proc.returncode}"}
    data: dict[str, Any] = json.loads(result.read_text(encoding="utf-8"))
    result.unlink()
    data["maxrss_kib"] = usage.ru_maxrss
    return data


def _fmt_row(cells: list[str], widths: list[int]) -> str:
    last = len(cells) - 1
    return "  ".join(
        c if i == last else c.ljust(w) if i in (0, 1) else c.rjust(w)
        for i, (c, w) in enumerate(zip(cells, widths, strict=True))
    )


def _rate(data: dict[str, Any], key: str = "seconds") -> float | None:
    if "error" in data or data[key] <= 0:
        return None
    return float(data["resources"] / data[key])


def _peak(data: dict[str, Any]) -> float:
    return float(max(data["maxrss_kib"], data.get("vmhwm_kib", 0)) / 1024)


def report(rows: list[tuple[str, str, dict[str, Any]]]) -> None:
    header = [
        "tool",
        "input",
        "resources",
        "seconds",
        "cpu s",
        "resources/s",
        "per cpu s",
        "peak MiB",
        "produced",
    ]
    table: list[list[str]] = []
    for tool, data_in, data in rows:
        if "error" in data:
            table.append([tool, data_in, *["-"] * 6, data["error"]])
            continue
        table.append(
            [
                tool,
                data_in,
                f"{data['resources']:,}",
                f"{data['seconds']:.1f}",
                f"{data['cpu_seconds']:.1f}",
                f"{_rate(data) or 0:,.0f}",
                f"{_rate(data, 'cpu_seconds') or 0:,.0f}",
                f"{_peak(data):.0f} ({data['baseline_kib'] / 1024:.0f})",
                data["output"],
            ]
        )
    widths = [max(len(r[i]) for r in [header, *table]) for i in range(len(header))]
    print(_fmt_row(header, widths))
    print("  ".join("-" * w for w in widths))
    for cells in table:
        print(_fmt_row(cells, widths))
    print(
        "seconds = wall time of the work in the child; cpu s = its process CPU time; "
        "peak MiB = the child's peak RSS (in brackets: RSS after imports, before the work)"
    )


def verdicts(
    ours: dict[str, Any], ours_label: str, peers: list[tuple[str, dict[str, Any]]]
) -> None:
    mine, mine_cpu = _rate(ours), _rate(ours, "cpu_seconds")
    if mine is None or mine_cpu is None or all(_rate(data) is None for _, data in peers):
        return
    print()
    print(f"Target >= 10x fhir-pyrate resources/s at <= its peak memory -- {ours_label}:")
    for name, data in peers:
        theirs, theirs_cpu = _rate(data), _rate(data, "cpu_seconds")
        if theirs is None or theirs_cpu is None:
            continue
        ratio, ratio_cpu = mine / theirs, mine_cpu / theirs_cpu
        fast = min(ratio, ratio_cpu) >= 10
        lean = _peak(ours) <= _peak(data)
        print(
            f"  vs {name}: {ratio:.1f}x wall, {ratio_cpu:.1f}x per CPU second; "
            f"peak {_peak(ours):.0f} vs {_peak(data):.0f} MiB -> "
            f"throughput {'meets' if fast else 'misses'} 10x, memory "
            f"{'lower or equal' if lean else 'HIGHER'}: "
            f"target {'met' if fast and lean else 'NOT met'}"
        )


def _load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    src = parser.add_mutually_exclusive_group()
    src.add_argument("--export", type=Path, help="existing FHIR Bulk export folder")
    src.add_argument(
        "--generate", action="store_true", help="generate a synthetic export (default)"
    )
    parser.add_argument("--ed-patients", type=int, default=4000)
    parser.add_argument(
        "--post-mi-patients", type=int, default=2500, help="2500 gives ~1M Observations"
    )
    parser.add_argument("--seed", type=int, default=20261123)
    parser.add_argument(
        "--work", type=Path, default=ROOT / "bench" / "out", help="generated data and slices"
    )
    parser.add_argument("--spec", choices=["post-mi", "ed", "both"], default="both")
    parser.add_argument(
        "--peer-slice", type=int, default=50_000, help="Observations for fhir-pyrate"
    )
    parser.add_argument(
        "--fhiry-slice", type=int, default=8_000, help="Observations for fhiry (slow)"
    )
    parser.add_argument(
        "--peer-python",
        default=sys.executable,
        help="interpreter with bench/requirements.txt installed (default: this one)",
    )
    parser.add_argument(
        "--peer-full",
        action="store_true",
        help="also run fhir-pyrate flatten_data on every Observation of the export "
        "(equal input for the memory comparison; ~2 min and a few GiB per 1M)",
    )
    parser.add_argument("--skip-peers", action="store_true")
    parser.add_argument("--skip-full", action="store_true", help="skip the whole-export runs")
    # child mode (internal)
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--result", help=argparse.SUPPRESS)
    parser.add_argument("--input", help=argparse.SUPPRESS)
    parser.add_argument("--spec-path", help=argparse.SUPPRESS)
    parser.add_argument("--out-dir", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child_main(args)
        return

    work: Path = args.work.resolve()
    work.mkdir(parents=True, exist_ok=True)
    if args.export is not None:
        export = args.export.resolve()
    else:
        export = work / f"export-ed{args.ed_patients}-mi{args.post_mi_patients}-s{args.seed}"
        if not (export / "manifest.json").exists():
            from cds_devtools.synth import generate_cohort

            t0 = time.perf_counter()
            generate_cohort(
                export,
                ed_patients=args.ed_patients,
                post_mi_patients=args.post_mi_patients,
                seed=args.seed,
            )
            print(f"generated {export} in {time.perf_counter() - t0:.0f} s")
    counts = {
        rtype: sum(_count_lines(p) for p in export.glob(f"{rtype}*.ndjson"))
        for rtype in RESOURCE_TYPES
    }
    print(f"export {export}: " + ", ".join(f"{k} {v:,}" for k, v in counts.items()))
    print(
        f"python {sys.version.split()[0]}, {os.cpu_count()} cores, load average {_load()}; "
        f"peers run with {args.peer_python}",
        flush=True,
    )

    scratch = Path(tempfile.mkdtemp(prefix="bench-bulk-", dir=work))
    specs = ["post-mi", "ed"] if args.spec == "both" else [args.spec]
    rows: list[tuple[str, str, dict[str, Any]]] = []
    total = sum(counts.values())
    try:
        sl = make_slice(export, args.peer_slice, args.fhiry_slice, work)
        n_slice = _count_lines(sl / "Observation.ndjson")
        n_fhiry = _count_lines(sl / "fhiry" / "Observation.ndjson")
        n_slice_all = sum(_count_lines(p) for p in sl.glob("*.ndjson"))
        print(
            f"slice {sl}: {n_slice:,} Observations of whole patients ({n_slice_all:,} resources "
            f"of all types); fhiry gets its first {n_fhiry:,}",
            flush=True,
        )
        if not args.skip_full:
            for name in specs:
                data = spawn(
                    sys.executable,
                    "ours",
                    scratch,
                    input=str(export),
                    spec_path=str(SPECS[name]),
                    out_dir=str(scratch),
                )
                rows.append((f"fhir_mappers {name} spec", f"export, {total:,} res", data))
                print(f"  done: {rows[-1][0]}", flush=True)
            data = spawn(sys.executable, "floor", scratch, input=str(export))
            rows.append(("floor orjson.loads", f"export, {total:,} res", data))
        for name in specs:
            data = spawn(
                sys.executable,
                "ours",
                scratch,
                input=str(sl),
                spec_path=str(SPECS[name]),
                out_dir=str(scratch),
            )
            rows.append((f"fhir_mappers {name} spec", "slice, all types", data))
            print(f"  done: {rows[-1][0]} (slice)", flush=True)
        if not args.skip_peers:
            obs = str(sl / "Observation.ndjson")
            for child, label in (
                ("pyrate-flatten", "fhir-pyrate flatten_data"),
                ("pyrate-paths", f"fhir-pyrate fhir_paths ({len(PYRATE_PATHS)})"),
            ):
                rows.append(
                    (
                        label,
                        "slice, Observations",
                        spawn(args.peer_python, child, scratch, input=obs),
                    )
                )
                print(f"  done: {label}", flush=True)
            if args.peer_full:
                for path in sorted(export.glob("Observation*.ndjson")):
                    data = spawn(args.peer_python, "pyrate-flatten", scratch, input=str(path))
                    rows.append(("fhir-pyrate flatten_data", f"export, {path.name}", data))
                    print("  done: fhir-pyrate flatten_data (whole export)", flush=True)
            data = spawn(args.peer_python, "fhiry", scratch, input=str(sl / "fhiry"))
            rows.append(("fhiry Fhirndjson", "slice head, Observations", data))
            print("  done: fhiry", flush=True)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)

    print(f"\nload average at the end: {_load()} (other processes share the cores)\n")
    report(rows)
    peers = [
        (f"{tool} [{data_in}]", data)
        for tool, data_in, data in rows
        if tool.startswith("fhir-pyrate")
    ]
    for tool, data_in, data in rows:
        if tool.startswith("fhir_mappers") and data_in.startswith("export"):
            verdicts(data, f"{tool}, whole export", peers)
    for tool, data_in, data in rows:
        if tool.startswith("fhir_mappers") and data_in.startswith("slice"):
            verdicts(data, f"{tool}, same slice", peers)


if __name__ == "__main__":
    main()

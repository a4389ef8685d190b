"""Service latency benchmark: the real server, ED encounter-start calls with a 200-Observation
prefetch, the audit row committed on every call.

Two measurements per worker count:
1. sequential calls from one client, reading the server's own ``Server-Timing`` header: server-side
   p50/p99 per stage (parse, fetch, map, predict, explain, card, audit, total);
2. ``wrk`` (if installed: apt-get install wrk) with several connections for requests/s and
   client-side latency percentiles.

Prints figures; asserts nothing. Targets loopback only and is bounded in time.

    python3 bench/service_latency.py [--workers 1 2] [--seconds 10] [--database-url URL]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx

from cds_service.examples import ed_case, ed_prefetch, hook_body, obs, searchset

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def request_body(now: datetime) -> dict:  # type: ignore[type-arg]
    """An ED case padded to 200 Observations (older vitals of the same patient)."""
    case = ed_case(now, pid="bench-ed-1")
    observations = list(case["observations"])
    codes = [
        ("8867-4", "/min", 80),
        ("9279-1", "/min", 16),
        ("59408-5", "%", 97),
        ("8310-5", "Cel", 37.0),
    ]
    i = 0
    while len(observations) < 200:
        code, unit, value = codes[i % len(codes)]
        at = now - timedelta(hours=2 + i * 0.5)
        observations.append(obs("bench-ed-1", f"bench-old-{i}", code, value + (i % 5), unit, at))
        i += 1
    case["observations"] = observations
    prefetch = ed_prefetch(case)
    prefetch["observations"] = searchset(observations)
    return hook_body("encounter-start", "bench-ed-1", prefetch, encounter_id=case["encounter_id"])


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def start_server(workers: int, port: int, env: dict[str, str]) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "cds_service.cli",
            "serve",
            "--port",
            str(port),
            "--workers",
            str(workers),
            "--log-level",
            "warning",
        ],
        env=env,
        cwd=ROOT,
        start_new_session=True,
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                return proc
        except httpx.HTTPError:
            time.sleep(0.2)
    proc.kill()
    raise RuntimeError("server did not start")


def sequential(url: str, body: bytes, n: int) -> dict[str, list[float]]:
    stages: dict[str, list[float]] = {}
    with httpx.Client(timeout=10) as client:
        for i in range(n + 50):
            r = client.post(url, content=body, headers={"content-type": "application/json"})
            r.raise_for_status()
            if i < 50:  # warm-up
                continue
            for part in r.headers["server-timing"].split(","):
                name, dur = part.strip().split(";dur=")
                stages.setdefault(name, []).append(float(dur))
    return stages


def run_wrk(url: str, body_file: Path, seconds: int, connections: int) -> str | None:
    if shutil.which("wrk") is None:
        return None
    script = body_file.with_suffix(".lua")
    script.write_text(
        'wrk.method = "POST"\n'
        'wrk.headers["Content-Type"] = "application/json"\n'
        f'local f = io.open("{body_file}", "rb")\nwrk.body = f:read("*all")\nf:close()\n'
    )
    out = subprocess.run(
        [
            "wrk",
            "-t",
            "1",
            "-c",
            str(connections),
            "-d",
            f"{seconds}s",
            "--latency",
            "-s",
            str(script),
            url,
        ],
        capture_output=True,
        text=True,
        timeout=seconds + 30,
        check=True,
    )
    return out.stdout


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--sequential", type=int, default=1000)
    parser.add_argument("--database-url", default=None, help="default: SQLite in a temp folder")
    args = parser.parse_args()
    body = json.dumps(request_body(datetime.now(UTC))).encode()
    n_obs = len(json.loads(body)["prefetch"]["observations"]["entry"])
    print(f"request: encounter-start, ed-admission, {n_obs} Observations, {len(body)} bytes")
    for workers in args.workers:
        with tempfile.TemporaryDirectory(prefix="cds-bench-") as tmp:
            env = dict(os.environ, CDS_DATA_DIR=tmp)
            if args.database_url:
                env["CDS_DATABASE_URL"] = args.database_url
            port = free_port()
            proc = start_server(workers, port, env)
            try:
                url = f"http://127.0.0.1:{port}/cds-services/ed-admission-risk"
                stages = sequential(url, body, args.sequential)
                print(
                    f"\n== {workers} worker(s), database "
                    f"{'SQLite' if not args.database_url else args.database_url.split('@')[-1]}"
                )
                print(f"server-side stages over {args.sequential} sequential calls (ms):")
                print(f"  {'stage':<8} {'p50':>8} {'p99':>8} {'mean':>8}")
                for name, values in stages.items():
                    print(
                        f"  {name:<8} {percentile(values, 0.5):8.3f} "
                        f"{percentile(values, 0.99):8.3f} {statistics.fmean(values):8.3f}"
                    )
                body_file = Path(tmp) / "body.json"
                body_file.write_bytes(body)
                out = run_wrk(url, body_file, args.seconds, args.connections)
                if out is None:
                    print("wrk not installed: no throughput figure (apt-get install wrk)")
                else:
                    print(f"wrk, {args.connections} connections, {args.seconds} s:")
                    for line in out.splitlines():
                        if any(
                            k in line
                            for k in (
                                "Requests/sec",
                                "50%",
                                "99%",
                                "requests in",
                                "Non-2xx",
                                "Socket errors",
                            )
                        ):
                            print("  " + line.strip())
            finally:
                os.killpg(proc.pid, signal.SIGTERM)
                proc.wait(timeout=30)


if __name__ == "__main__":
    main()

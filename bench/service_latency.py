"""Service latency benchmark: the real server, signed ED encounter-start calls (ES384 JWTs, each
with its own jti) with a 200-Observation prefetch, the audit row committed on every call.

Two measurements per worker count:
1. sequential calls from one client, reading the server's own ``Server-Timing`` header: server-side
   p50/p99 per stage (parse, fetch, map, predict, explain, card, audit, total);
2. ``wrk`` (if installed: apt-get install wrk) with several connections for requests/s and
   client-side latency percentiles.

Prints figures; asserts nothing. Targets loopback only and is bounded in time.

    python3 bench/service_latency.py [--workers 1 2] [--seconds 10] [--database-url URL]
                                     [--shadow]   # also: with a shadow model, p99 compared
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

from cds_service.cds_hooks.examples import ed_case, ed_prefetch, hook_body, obs, searchset

ROOT = Path(__file__).resolve().parents[1]
ISSUER = "urn:cds-risk:bench"


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


def sequential(url: str, body: bytes, n: int, tokens: list[str]) -> dict[str, list[float]]:
    stages: dict[str, list[float]] = {}
    with httpx.Client(timeout=10) as client:
        for i in range(n + 50):
            headers = {
                "content-type": "application/json",
                "authorization": f"Bearer {tokens[i % len(tokens)]}",
            }
            r = client.post(url, content=body, headers=headers)
            r.raise_for_status()
            if i < 50:  # warm-up
                continue
            for part in r.headers["server-timing"].split(","):
                name, dur = part.strip().split(";dur=")
                stages.setdefault(name, []).append(float(dur))
    return stages


def run_wrk(
    url: str, body_file: Path, tokens_file: Path, seconds: int, connections: int
) -> str | None:
    """wrk posts the body with a fresh pre-signed token per request (no jti is reused)."""
    if shutil.which("wrk") is None:
        return None
    script = body_file.with_suffix(".lua")
    script.write_text(
        'wrk.method = "POST"\n'
        'wrk.headers["Content-Type"] = "application/json"\n'
        f'local f = io.open("{body_file}", "rb")\nwrk.body = f:read("*all")\nf:close()\n'
        "local tokens = {}\n"
        f'for line in io.lines("{tokens_file}") do tokens[#tokens + 1] = line end\n'
        "local i = 0\n"
        "request = function()\n"
        "  i = i + 1\n"
        '  wrk.headers["Authorization"] = "Bearer " .. tokens[(i % #tokens) + 1]\n'
        "  return wrk.format()\n"
        "end\n"
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


def prepare(tmp: Path, port: int, shadow: bool) -> tuple[dict[str, str], object]:
    """Models (optionally with a shadow copy deployed), a trusted local key, the environment."""
    from cds_service.security.local_issuer import generate_key, public_jwks

    models = Path(tmp) / "models"
    shutil.copytree(ROOT / "models", models)
    key = generate_key("ES384")
    callers = Path(tmp) / "callers.json"
    callers.write_text(json.dumps([{"iss": ISSUER, "jwks": public_jwks(key), "fhir_servers": []}]))
    env = dict(
        os.environ,
        CDS_DATA_DIR=tmp,
        CDS_MODELS_DIR=str(models),
        CDS_TRUSTED_ISSUERS=str(callers),
        CDS_PUBLIC_BASE_URL=f"http://127.0.0.1:{port}",
    )
    if shadow:
        # A byte-identical copy under another version: the cost of shadow scoring, not its value.
        shutil.copytree(models / "ed-admission" / "1.0.0", models / "ed-admission" / "1.0.0-shadow")
        from cds_service.db.deployments import append_record
        from cds_service.db.engine import make_engine, upgrade

        url = env.get("CDS_DATABASE_URL") or f"sqlite:///{tmp}/cds.sqlite3"
        engine = make_engine(url)
        upgrade(engine)
        manifest = json.loads((models / "ed-admission" / "1.0.0" / "manifest.json").read_text())
        append_record(
            engine,
            {
                "model_name": "ed-admission",
                "model_version": "1.0.0-shadow",
                "artifact_sha256": manifest["artifact"]["sha256"],
                "environment": "development",
                "role": "shadow",
                "action": "promote",
                "decided_by": "bench",
                "reason": "benchmark of shadow scoring cost",
                "evidence": "{}",
            },
        )
        engine.dispose()
    return env, key


def tokens_for(key: object, aud: str, n: int) -> list[str]:
    from cds_service.security.local_issuer import sign

    return [sign(key, iss=ISSUER, aud=aud, lifetime=3000) for _ in range(n)]  # type: ignore[arg-type]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--sequential", type=int, default=1000)
    parser.add_argument("--database-url", default=None, help="default: SQLite in a temp folder")
    parser.add_argument("--shadow", action="store_true", help="also run with a shadow model")
    args = parser.parse_args()
    body = json.dumps(request_body(datetime.now(UTC))).encode()
    n_obs = len(json.loads(body)["prefetch"]["observations"]["entry"])
    print(f"request: signed encounter-start, ed-admission, {n_obs} Observations, {len(body)} bytes")
    runs = [(w, False) for w in args.workers] + ([(1, True)] if args.shadow else [])
    for workers, shadow in runs:
        with tempfile.TemporaryDirectory(prefix="cds-bench-") as tmp:
            port = free_port()
            env, key = prepare(Path(tmp), port, shadow)
            if args.database_url:
                env["CDS_DATABASE_URL"] = args.database_url
            proc = start_server(workers, port, env)
            try:
                url = f"http://127.0.0.1:{port}/cds-services/ed-admission-risk"
                tokens = tokens_for(key, url, args.sequential + 60)
                stages = sequential(url, body, args.sequential, tokens)
                where = "SQLite" if not args.database_url else args.database_url.split("@")[-1]
                label = " with a shadow model" if shadow else ""
                print(f"\n== {workers} worker(s){label}, database {where}")
                print(f"server-side stages over {args.sequential} sequential calls (ms):")
                print(f"  {'stage':<8} {'p50':>8} {'p99':>8} {'mean':>8}")
                for name, values in stages.items():
                    print(
                        f"  {name:<8} {percentile(values, 0.5):8.3f} "
                        f"{percentile(values, 0.99):8.3f} {statistics.fmean(values):8.3f}"
                    )
                body_file = Path(tmp) / "body.json"
                body_file.write_bytes(body)
                tokens_file = Path(tmp) / "tokens.txt"
                n_tokens = max(2000, 1200 * args.seconds * workers)
                tokens_file.write_text("\n".join(tokens_for(key, url, n_tokens)) + "\n")
                out = run_wrk(url, body_file, tokens_file, args.seconds, args.connections)
                if out is None:
                    print("wrk not installed: no throughput figure (apt-get install wrk)")
                else:
                    print(
                        f"wrk, {args.connections} connections, {args.seconds} s "
                        f"({n_tokens} distinct tokens):"
                    )
                    keys = ("Requests/sec", "50%", "99%", "requests in", "Non-2xx", "Socket errors")
                    for line in out.splitlines():
                        if any(k in line for k in keys):
                            print("  " + line.strip())
            finally:
                os.killpg(proc.pid, signal.SIGTERM)
                proc.wait(timeout=30)


if __name__ == "__main__":
    main()

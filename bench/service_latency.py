"""Service latency benchmark: the real server, signed ED encounter-start calls (ES384 JWTs, each
with its own jti) with a 200-Observation prefetch, the jti and the audit row committed on every
call.

Per database (SQLite and, with ``--database-url``, PostgreSQL) and worker count:
1. sequential calls from one client: server-side p50/p99 per stage from the server's own
   ``Server-Timing`` header (parse, fetch, map, predict, explain, card, audit, total), and the
   client's own p50/p99 around each call;
2. ``wrk`` (if installed: apt-get install wrk) with several connections, a Lua script that sends
   a distinct pre-signed token on every request: requests/s, client percentiles, errors.

The floor, measured in the same run with the same client, body and worker count: a bare uvicorn
app (same loop and HTTP parser) that reads the body, parses it with orjson and answers
``{"cards": []}``. Every figure is printed beside it as a ratio, so a figure means the same on a
busy or quiet machine. Prints figures; asserts nothing. Targets loopback only.

    python3 bench/service_latency.py [--workers 1 2] [--seconds 10]
        [--database-url sqlite postgresql://postgres@127.0.0.1:5432/cds_bench]
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


ECHO_APP = """
import orjson

async def app(scope, receive, send):
    if scope["type"] != "http":
        return
    body = b""
    more = True
    while more:
        message = await receive()
        body += message.get("body", b"")
        more = message.get("more_body", False)
    if body:
        orjson.loads(body)
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"application/json")]})
    await send({"type": "http.response.body", "body": b'{"cards":[]}'})
"""


def _wait_up(proc: subprocess.Popen[bytes], url: str) -> subprocess.Popen[bytes]:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(url, timeout=1).status_code < 500:
                return proc
        except httpx.HTTPError:
            time.sleep(0.2)
    proc.kill()
    raise RuntimeError("server did not start")


def start_server(workers: int, port: int, env: dict[str, str]) -> subprocess.Popen[bytes]:
    command = ["-m", "cds_service.cli", "serve", "--port", str(port), "--workers", str(workers)]
    # the service's JSON log (one line per card, as in production) goes to a file, not a terminal
    log = (Path(env["CDS_DATA_DIR"]) / "service.log").open("ab")
    proc = subprocess.Popen(
        [sys.executable, *command, "--log-level", "warning"],
        env=env,
        cwd=ROOT,
        start_new_session=True,
        stdout=log,
        stderr=log,
    )
    return _wait_up(proc, f"http://127.0.0.1:{port}/healthz")


def start_echo(workers: int, port: int, folder: Path) -> subprocess.Popen[bytes]:
    """The floor: uvicorn with the service's loop and parser, orjson.loads of the body."""
    (folder / "bench_echo.py").write_text(ECHO_APP)
    options = ["--loop", "uvloop", "--http", "httptools", "--no-access-log"]
    options += ["--log-level", "warning"]
    where = ["--app-dir", str(folder), "--port", str(port), "--workers", str(workers)]
    proc = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "bench_echo:app", *where, *options],
        start_new_session=True,
    )
    return _wait_up(proc, f"http://127.0.0.1:{port}/")


def sequential(url: str, body: bytes, n: int, tokens: list[str]) -> dict[str, list[float]]:
    """Server-Timing stages per call, and the client's own time around the call ('client')."""
    stages: dict[str, list[float]] = {}
    with httpx.Client(timeout=10) as client:
        for i in range(n + 50):
            headers = {
                "content-type": "application/json",
                "authorization": f"Bearer {tokens[i % len(tokens)]}",
            }
            start = time.perf_counter()
            r = client.post(url, content=body, headers=headers)
            elapsed = (time.perf_counter() - start) * 1000
            r.raise_for_status()
            if i < 50:  # warm-up
                continue
            stages.setdefault("client", []).append(elapsed)
            for part in r.headers.get("server-timing", "").split(","):
                if ";dur=" in part:
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


def prepare(
    tmp: Path, port: int, shadow: bool, database_url: str | None = None
) -> tuple[dict[str, str], object]:
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
    if database_url:
        env["CDS_DATABASE_URL"] = database_url
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


def _wrk_figures(out: str | None) -> dict[str, str]:
    """Requests/s, p50, p99 and errors from wrk's --latency report."""
    if out is None:
        return {}
    figures: dict[str, str] = {"errors": "0"}
    for line in out.splitlines():
        words = line.split()
        if line.startswith("Requests/sec:"):
            figures["rps"] = words[1]
        elif len(words) == 2 and words[0] in ("50%", "99%"):
            figures[words[0]] = words[1]
        elif "Non-2xx" in line:
            figures["errors"] = words[-1]
        elif "Socket errors" in line:
            figures["socket"] = line.split(":", 1)[1].strip()
    return figures


def _load(
    url: str, body: bytes, tmp: Path, tokens: list[str], args: argparse.Namespace
) -> tuple[dict[str, list[float]], dict[str, str]]:
    stages = sequential(url, body, args.sequential, tokens[: args.sequential + 60])
    body_file = tmp / "body.json"
    body_file.write_bytes(body)
    tokens_file = tmp / "tokens.txt"
    tokens_file.write_text("\n".join(tokens[args.sequential + 60 :]) + "\n")
    out = run_wrk(url, body_file, tokens_file, args.seconds, args.connections)
    return stages, _wrk_figures(out)


def _print_stages(stages: dict[str, list[float]]) -> None:
    print(f"  {'stage':<8} {'p50':>8} {'p99':>8} {'mean':>8}")
    for name, values in stages.items():
        print(
            f"  {name:<8} {percentile(values, 0.5):8.3f} "
            f"{percentile(values, 0.99):8.3f} {statistics.fmean(values):8.3f}"
        )


def _one_run(
    database: str, workers: int, shadow: bool, body: bytes, args: argparse.Namespace
) -> list[str]:
    """The service, then the echo floor, with the same client, body and workers."""
    where = "SQLite" if database == "sqlite" else database.split("@")[-1]
    label = f"{where}, {workers} worker(s)" + (", shadow model" if shadow else "")
    n_tokens = args.sequential + 60 + max(2000, 600 * args.seconds * workers)
    with tempfile.TemporaryDirectory(prefix="cds-bench-") as folder:
        tmp = Path(folder)
        port = free_port()
        env, key = prepare(tmp, port, shadow, None if database == "sqlite" else database)
        proc = start_server(workers, port, env)
        try:
            url = f"http://127.0.0.1:{port}/cds-services/ed-admission-risk"
            stages, wrk = _load(url, body, tmp, tokens_for(key, url, n_tokens), args)
        finally:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(timeout=30)
        port = free_port()
        echo = start_echo(workers, port, tmp)
        try:
            url = f"http://127.0.0.1:{port}/cds-services/ed-admission-risk"
            floor, floor_wrk = _load(url, body, tmp, ["unused"] * n_tokens, args)
        finally:
            os.killpg(echo.pid, signal.SIGTERM)
            echo.wait(timeout=30)
    print(f"\n== {label}: {args.sequential} sequential calls (ms; 'client' = around the call)")
    _print_stages(stages)
    print(f"  echo floor client p50 {percentile(floor['client'], 0.5):.3f}")
    print(f"  wrk service: {wrk or 'not installed (apt-get install wrk)'}")
    print(f"  wrk echo floor: {floor_wrk}")
    total, client, echo_client = stages["total"], stages["client"], floor["client"]
    ratio = percentile(client, 0.5) / percentile(echo_client, 0.5)
    return [
        label,
        f"{percentile(total, 0.5):.2f} / {percentile(total, 0.99):.2f}",
        f"{percentile(client, 0.5):.2f} / {percentile(client, 0.99):.2f}",
        f"{percentile(echo_client, 0.5):.2f} / {percentile(echo_client, 0.99):.2f}",
        f"{ratio:.1f}x",
        f"{wrk.get('rps', '-')} ({wrk.get('50%', '-')}/{wrk.get('99%', '-')}, "
        f"{wrk.get('errors', '-')} err)",
        floor_wrk.get("rps", "-"),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--sequential", type=int, default=1000)
    parser.add_argument(
        "--database-url",
        nargs="+",
        default=["sqlite"],
        help="'sqlite' (a temp file) and/or PostgreSQL URLs",
    )
    parser.add_argument("--shadow", action="store_true", help="also run with a shadow model")
    args = parser.parse_args()
    body = json.dumps(request_body(datetime.now(UTC))).encode()
    n_obs = len(json.loads(body)["prefetch"]["observations"]["entry"])
    print(f"request: signed encounter-start, ed-admission, {n_obs} Observations, {len(body)} bytes")
    print(f"load average at start: {os.getloadavg()[0]:.2f}")
    rows = []
    for database in args.database_url:
        runs = [(w, False) for w in args.workers] + ([(1, True)] if args.shadow else [])
        for workers, shadow in runs:
            rows.append(_one_run(database, workers, shadow, body, args))
    head = [
        "run",
        "server p50/p99",
        "client p50/p99",
        "echo client p50/p99",
        "client p50 / echo",
        "wrk req/s (p50/p99)",
        "echo wrk req/s",
    ]
    widths = [max(len(r[i]) for r in [head, *rows]) for i in range(len(head))]
    print(f"\nsummary (ms; load average at end: {os.getloadavg()[0]:.2f})")
    for r in [head, *rows]:
        print("  " + "  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)))


if __name__ == "__main__":
    main()

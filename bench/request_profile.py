"""The request path in one process, without HTTP: CPU per call, and profiles of where it goes.

Builds the real app (``cds_service.asgi.app``: logging, tracing, lifespan with models, units,
migrations and the frozen heap), then drives it through ASGI directly with the same signed ED
encounter-start call as ``service_latency.py`` (200 Observations, a fresh ES384 token per call,
the jti and the audit row committed). No socket and no HTTP parser, so the figures are the
service's own work:

- CPU milliseconds per call (``time.process_time``: every thread of the process, including the
  database commits in worker threads), which a busy neighbour barely moves; and wall p50/p99;
- ``--profile``: a pyinstrument profile of ``--calls`` calls (text summary to stdout);
- ``--gc-compare``: wall p50/p99/max with the lifespan's ``gc.freeze()`` undone and redone,
  interleaved in blocks.

For instruction counts that do not depend on the machine's load, run the script twice under
callgrind with different call counts and take the difference (start-up cancels out):

    valgrind --tool=callgrind --callgrind-out-file=/tmp/cg.%p python3 bench/request_profile.py \
        --calls 20   # then --calls 120; (Ir(120) - Ir(20)) / 100 = instructions per call

    python3 bench/request_profile.py [--calls 2000] [--database-url URL] [--profile] [--gc-compare]
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from service_latency import ISSUER, ROOT, percentile, request_body

PATH = "/cds-services/ed-admission-risk"
BASE = "http://127.0.0.1:8000"


def _environment(tmp: Path, database_url: str | None, audit_budget_ms: int = 0) -> Any:
    from cds_service.security.local_issuer import generate_key, public_jwks

    models = tmp / "models"
    shutil.copytree(ROOT / "models", models)
    key = generate_key("ES384")
    callers = tmp / "callers.json"
    callers.write_text(json.dumps([{"iss": ISSUER, "jwks": public_jwks(key), "fhir_servers": []}]))
    os.environ.update(
        CDS_DATA_DIR=str(tmp),
        CDS_MODELS_DIR=str(models),
        CDS_TRUSTED_ISSUERS=str(callers),
        CDS_PUBLIC_BASE_URL=BASE,
        CDS_LOG_LEVEL="WARNING",
    )
    if database_url:
        os.environ["CDS_DATABASE_URL"] = database_url
    if audit_budget_ms:
        os.environ["CDS_AUDIT_BUDGET_MS"] = str(audit_budget_ms)
    return key


class Driver:
    """One ASGI http request at a time, straight into the app."""

    def __init__(self, app: Any, body: bytes) -> None:
        self.app = app
        self.body = body

    async def call(self, token: str) -> int:
        scope = {
            "type": "http",
            "asgi": {"version": "3.0"},
            "http_version": "1.1",
            "method": "POST",
            "scheme": "http",
            "path": PATH,
            "raw_path": PATH.encode(),
            "query_string": b"",
            "root_path": "",
            "headers": [
                (b"host", b"127.0.0.1:8000"),
                (b"content-type", b"application/json"),
                (b"content-length", str(len(self.body)).encode()),
                (b"authorization", f"Bearer {token}".encode()),
            ],
            "client": ("127.0.0.1", 50000),
            "server": ("127.0.0.1", 8000),
            "state": {},
        }
        sent = False
        status = 0

        async def receive() -> dict[str, Any]:
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": self.body, "more_body": False}
            await asyncio.sleep(3600)
            return {"type": "http.disconnect"}

        async def send(message: dict[str, Any]) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]

        await self.app(scope, receive, send)
        return status


class _GcPauses:
    """gc.callbacks: the CPU time of each collection (thread time: a busy machine barely moves
    it), by arm and generation."""

    def __init__(self) -> None:
        self.arm: str | None = None
        self.cpu_ms: dict[tuple[str, int], list[float]] = {}
        self._start = 0.0

    def __call__(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._start = time.thread_time()
        elif self.arm is not None:
            key = (self.arm, info["generation"])
            self.cpu_ms.setdefault(key, []).append((time.thread_time() - self._start) * 1000)


async def _timed(driver: Driver, tokens: list[str]) -> tuple[list[float], float]:
    walls = []
    cpu0 = time.process_time()
    for token in tokens:
        t0 = time.perf_counter()
        status = await driver.call(token)
        walls.append((time.perf_counter() - t0) * 1000)
        if status != 200:
            raise RuntimeError(f"call answered {status}")
    return walls, (time.process_time() - cpu0) * 1000 / len(tokens)


def _summary(label: str, walls: list[float], cpu: float | None = None) -> str:
    cpu_text = f"  cpu/call {cpu:7.3f}" if cpu is not None else ""
    return (
        f"{label:<28} p50 {percentile(walls, 0.5):7.3f}  p99 {percentile(walls, 0.99):7.3f}  "
        f"max {max(walls):8.3f}  mean {statistics.fmean(walls):7.3f}{cpu_text}  (ms, {len(walls)})"
    )


async def run(args: argparse.Namespace, key: Any) -> None:
    from cds_service.asgi import app as factory
    from cds_service.security.local_issuer import sign

    app = factory()
    body = json.dumps(request_body(datetime.now(UTC))).encode()
    n = args.warmup + args.calls * (2 if args.gc_compare else 1)
    tokens = [sign(key, iss=ISSUER, aud=BASE + PATH, lifetime=3000) for _ in range(n)]
    driver = Driver(app, body)
    async with app.router.lifespan_context(app):
        if args.gc_threshold:
            gc.set_threshold(args.gc_threshold, *gc.get_threshold()[1:])
        print(f"gc thresholds {gc.get_threshold()}")
        for token in tokens[: args.warmup]:
            await driver.call(token)
        rest = tokens[args.warmup :]
        if args.profile:
            from pyinstrument import Profiler

            profiler = Profiler(interval=0.0005, async_mode="enabled")
            profiler.start()
            walls, cpu = await _timed(driver, rest[: args.calls])
            profiler.stop()
            print(profiler.output_text(unicode=False, color=False, show_all=False))
            print(_summary("profiled calls", walls, cpu))
            return
        if not args.gc_compare:
            walls, cpu = await _timed(driver, rest[: args.calls])
            print(_summary("calls", walls, cpu))
            return
        per = args.calls // args.blocks
        frozen: list[float] = []
        thawed: list[float] = []
        pauses = _GcPauses()
        gc.callbacks.append(pauses)
        for b in range(args.blocks):
            chunk = rest[2 * b * per : (2 * b + 2) * per]
            gc.unfreeze()
            pauses.arm = "thawed"
            thawed += (await _timed(driver, chunk[:per]))[0]
            pauses.arm = None
            gc.collect()
            gc.freeze()
            pauses.arm = "frozen"
            frozen += (await _timed(driver, chunk[per:]))[0]
            pauses.arm = None
        gc.callbacks.remove(pauses)
        print(_summary("gc.freeze() after start-up", frozen))
        print(_summary("heap not frozen", thawed))
        print("collections during the calls (CPU ms of the collecting thread, per generation):")
        for arm in ("frozen", "thawed"):
            for gen in (0, 1, 2):
                got = pauses.cpu_ms.get((arm, gen), [])
                if got:
                    print(
                        f"  {arm:<7} gen {gen}: {len(got):5d} collections, "
                        f"max {max(got):8.3f}, total {sum(got):9.3f}"
                    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--warmup", type=int, default=50)
    parser.add_argument("--database-url", default=None, help="default: SQLite in a temp folder")
    parser.add_argument("--profile", action="store_true", help="pyinstrument text profile")
    parser.add_argument("--gc-compare", action="store_true", help="frozen vs unfrozen heap")
    parser.add_argument("--gc-threshold", type=int, default=0, help="set gen-0 threshold")
    parser.add_argument(
        "--audit-budget-ms",
        type=int,
        default=0,
        help="raise the audit budget (under callgrind a commit takes longer than 200 ms, and a "
        "spooled row would be counted instead of a committed one)",
    )
    parser.add_argument("--blocks", type=int, default=10, help="blocks per --gc-compare arm")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="cds-prof-") as tmp:
        key = _environment(Path(tmp), args.database_url, args.audit_budget_ms)
        print(f"load average {os.getloadavg()[0]:.2f}")
        asyncio.run(run(args, key))


if __name__ == "__main__":
    main()

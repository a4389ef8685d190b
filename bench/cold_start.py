"""Cold start: how long until a worker can answer, and what its imports cost.

Three figures, each over ``--runs`` fresh processes (interleaved, so a busy neighbour spreads
over all of them):

1. ``import cds_service.asgi`` in a fresh interpreter: wall and CPU (user + sys) seconds;
2. the same plus ``create_app()`` and the lifespan (models loaded, units warmed, database
   migrated, heap frozen): the worker's own start-up, without uvicorn;
3. ``cds-service serve`` (one worker, SQLite in a temp folder) from ``exec`` until ``/readyz``
   answers 200: what an orchestrator waits for.

CPU seconds are the child's rusage, the figure to compare on a shared machine; wall time is
what the target (<= 3 s on a quiet machine) is about. Prints figures; asserts nothing.

    python3 bench/cold_start.py [--runs 5]
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]

_IMPORT = "import cds_service.asgi"
_LIFESPAN = """
import asyncio, os
from cds_service.asgi import app
application = app()
async def main():
    async with application.router.lifespan_context(application):
        pass
asyncio.run(main())
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _child_cpu(proc: subprocess.Popen[bytes]) -> float:
    _, _, usage = os.wait4(proc.pid, 0)
    proc.returncode = 0
    return usage.ru_utime + usage.ru_stime


def _python(code: str, env: dict[str, str]) -> tuple[float, float]:
    start = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-c", code], env=env, cwd=ROOT)
    cpu = _child_cpu(proc)
    return time.perf_counter() - start, cpu


def _serve_ready(env: dict[str, str]) -> tuple[float, float]:
    port = _free_port()
    start = time.perf_counter()
    command = ["-m", "cds_service.cli", "serve", "--port", str(port), "--log-level", "warning"]
    proc = subprocess.Popen(
        [sys.executable, *command],
        env=env,
        cwd=ROOT,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}/readyz"
    ready = float("nan")
    try:
        while time.perf_counter() - start < 60:
            try:
                if httpx.get(url, timeout=1).status_code == 200:
                    ready = time.perf_counter() - start
                    break
            except httpx.HTTPError:
                time.sleep(0.02)
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=30)
    return ready, float("nan")


def _row(name: str, values: list[tuple[float, float]]) -> str:
    walls = [w for w, _ in values]
    cpus = [c for _, c in values if c == c]
    cpu = f"{statistics.median(cpus):8.2f}" if cpus else f"{'-':>8}"
    return f"{name:<40} {statistics.median(walls):8.2f} {min(walls):8.2f} {max(walls):8.2f} {cpu}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    results: dict[str, list[tuple[float, float]]] = {"import": [], "lifespan": [], "serve": []}
    with tempfile.TemporaryDirectory(prefix="cds-cold-") as tmp:
        env = dict(os.environ, CDS_DATA_DIR=tmp, CDS_LOG_LEVEL="WARNING")
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
        _python(_LIFESPAN, env)  # migrate once: every run below starts on a migrated database
        for _ in range(args.runs):
            results["import"].append(_python(_IMPORT, env))
            results["lifespan"].append(_python(_LIFESPAN, env))
            results["serve"].append(_serve_ready(env))
    print(f"load average before/after: {os.getloadavg()[0]:.2f}; {args.runs} runs each")
    print(f"{'seconds':<40} {'median':>8} {'min':>8} {'max':>8} {'cpu med':>8}")
    print(_row("import cds_service.asgi", results["import"]))
    print(_row("import + create_app + lifespan", results["lifespan"]))
    print(_row("cds-service serve until /readyz 200", results["serve"]))


if __name__ == "__main__":
    main()

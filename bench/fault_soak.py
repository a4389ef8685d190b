"""Fault soak: ``serve --workers 2`` in production on PostgreSQL behind a TCP proxy, several
callers sending signed ED encounter-start calls (a fresh ES384 token each, 200-Observation
prefetch), while the database stalls, is cut, and a worker is killed with SIGKILL.

Phases (seconds, scaled by ``--scale``): baseline 8, stall 15 (connections open, no bytes),
recovery 8, cut 20 with a ``kill -9`` of one worker 5 s in, recovery 10; then it waits (at most
60 s) for the spool to drain. Prints per phase the calls, their statuses and the longest call, and
at the end: cards returned, rows found in ``card_audit``, lost, duplicated, rows left spooled.

Prints figures; asserts nothing. Loopback only, bounded in time.

    python3 bench/fault_soak.py --postgres-url postgresql://postgres@127.0.0.1:5432/test
                                [--callers 4] [--scale 1.0]
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import tempfile
import threading
import time
import uuid
from collections import defaultdict
from datetime import UTC, datetime
from pathlib import Path

import httpx
import orjson
import sqlalchemy as sa

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.service_latency import (
    ISSUER,
    free_port,
    prepare,
    request_body,
    start_server,
    tokens_for,
)
from cds_service.db.engine import make_engine, normalize_url, upgrade
from tests.utils.server import TcpProxy

SERVICE = "ed-admission-risk"


class Soak:
    def __init__(self, url: str, key: object, aud: str) -> None:
        self.url, self.key, self.aud = url, key, aud
        self.phase = "baseline"
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.cards: list[str] = []
        self.statuses: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
        self.longest: dict[str, float] = defaultdict(float)

    def caller(self) -> None:
        body = orjson.dumps(request_body(datetime.now(UTC)))
        with httpx.Client(base_url=self.url, timeout=30) as client:
            while not self.stop.is_set():
                (token,) = tokens_for(self.key, self.aud, 1)
                phase, t0 = self.phase, time.monotonic()
                try:
                    r = client.post(
                        f"/cds-services/{SERVICE}",
                        content=body,
                        headers={
                            "Authorization": f"Bearer {token}",
                            "Content-Type": "application/json",
                        },
                    )
                    status = str(r.status_code)
                    card = r.json()["cards"][0]["uuid"] if r.status_code == 200 else None
                except httpx.HTTPError as exc:
                    status, card = type(exc).__name__, None
                elapsed = time.monotonic() - t0
                with self.lock:
                    self.statuses[phase][status] += 1
                    self.longest[phase] = max(self.longest[phase], elapsed)
                    if card:
                        self.cards.append(card)


def workers_of(pid: int) -> list[int]:
    children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    out = []
    for c in children:
        try:
            cmd = Path(f"/proc/{c}/cmdline").read_bytes()
        except OSError:
            continue
        if b"resource_tracker" not in cmd:
            out.append(int(c))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--postgres-url", default=os.environ.get("CDS_TEST_POSTGRES_URL"))
    ap.add_argument("--callers", type=int, default=4)
    ap.add_argument("--scale", type=float, default=1.0, help="multiplies every phase length")
    args = ap.parse_args()
    if not args.postgres_url or "127.0.0.1:5432" not in args.postgres_url:
        sys.exit("--postgres-url must name PostgreSQL on 127.0.0.1:5432")
    schema = f"soak_{uuid.uuid4().hex[:10]}"
    admin = sa.create_engine(normalize_url(args.postgres_url))
    with admin.begin() as conn:
        conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    sep = "&" if "?" in args.postgres_url else "?"
    direct = f"{args.postgres_url}{sep}options=-csearch_path%3D{schema}"
    proxy = TcpProxy("127.0.0.1", 5432)
    proxy.start()
    engine = make_engine(direct)
    upgrade(engine)  # the deployment's migration step
    tmp = tempfile.mkdtemp(prefix="cds-soak-")
    port = free_port()
    env, key = prepare(Path(tmp), port, shadow=False)
    env.update(
        CDS_DATABASE_URL=direct.replace("127.0.0.1:5432", f"127.0.0.1:{proxy.port}"),
        CDS_ENVIRONMENT="production",
        CDS_PSEUDONYM_KEY="soak-pseudonym-key-0123456789",
        CDS_LOG_LEVEL="ERROR",
    )
    server = start_server(2, port, env)
    soak = Soak(f"http://127.0.0.1:{port}", key, f"http://127.0.0.1:{port}/cds-services/{SERVICE}")
    threads = [threading.Thread(target=soak.caller, daemon=True) for _ in range(args.callers)]
    s = args.scale
    try:
        for t in threads:
            t.start()
        time.sleep(8 * s)
        soak.phase = "stall 15 s"
        proxy.stall()
        time.sleep(15 * s)
        proxy.resume()
        soak.phase = "recovery 1"
        time.sleep(8 * s)
        soak.phase = "cut 20 s + kill -9"
        proxy.stop()
        time.sleep(5 * s)
        victims = workers_of(server.pid)
        if victims:
            os.kill(min(victims), signal.SIGKILL)
        time.sleep(15 * s)
        proxy.start()
        soak.phase = "recovery 2"
        time.sleep(10 * s)
        soak.stop.set()
        for t in threads:
            t.join(timeout=40)
        spool = Path(tmp) / "spool"
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and list(spool.glob("*.jsonl")):
            time.sleep(0.5)
        with engine.connect() as conn:
            counts = dict(
                conn.execute(
                    sa.text("SELECT card_uuid, count(*) FROM card_audit GROUP BY card_uuid")
                ).all()
            )
        returned = set(soak.cards)
        texts = {
            phase: ", ".join(f"{k}: {v}" for k, v in sorted(by_status.items()))
            for phase, by_status in soak.statuses.items()
        }
        width = max(len("calls by status"), *map(len, texts.values())) + 2
        print(f"{'phase':<22}{'calls by status':<{width}}longest call (s)")
        for phase, text in texts.items():
            print(f"{phase:<22}{text:<{width}}{soak.longest[phase]:.2f}")
        found = sum(1 for u in returned if counts.get(u, 0) >= 1)
        duplicated = sum(1 for u in returned if counts.get(u, 0) > 1)
        print(f"cards returned:     {len(soak.cards)} ({len(returned)} distinct)")
        print(f"rows found:         {found}")
        print(f"lost:               {len(returned) - found}")
        print(f"duplicated:         {duplicated}")
        print(f"left in the spool:  {len(list(spool.glob('*.jsonl')))} file(s)")
        print(f"server still up:    {server.poll() is None}  (issuer {ISSUER})")
    finally:
        soak.stop.set()
        os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(timeout=30)
        except Exception:
            os.killpg(server.pid, signal.SIGKILL)
        proxy.stop()
        engine.dispose()
        with admin.begin() as conn:
            conn.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


if __name__ == "__main__":
    main()

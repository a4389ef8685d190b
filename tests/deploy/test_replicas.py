"""Three `cds-service serve` processes (production settings) on PostgreSQL behind HAProxy, under a
bounded load of signed calls on loopback, while one replica is restarted gracefully, one is
killed, and a model version is promoted with the real `cds-service promote`.

Asserted: no failed call except those in flight on the killed replica; every returned card
audited exactly once (and no call audited twice); a call in flight on the replica that gets
SIGTERM completes; every replica serves the promoted version within the pick-up bound and never
the old one after; a used token is refused by every replica; the in-service monitor runs once per
interval across replicas. Printed: calls and failures per phase, rows found/lost/duplicated, the
pick-up time per replica, each replica's memory.
"""

from __future__ import annotations

import json
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from cds_service.cds_hooks.examples import ed_case, ed_prefetch, hook_body
from cds_service.db.engine import make_engine, upgrade
from cds_service.security.local_issuer import generate_key, public_jwks, sign
from tests.conftest import REPO_ROOT
from tests.deploy.cluster import HAProxy, Replica, haproxy_path, replica_env, wait_for
from tests.utils.service import PUBLIC_BASE, Database, new_database

pytestmark = pytest.mark.postgres

ISS = "https://ehr.example.org"
SERVICE = "ed-admission-risk"
MODEL, OLD, NEW = "ed-admission", "1.0.0", "1.0.1"
REFRESH_SECONDS = 1.0  # CDS_DEPLOYMENT_REFRESH_SECONDS: the promotion pick-up interval
PICKUP_BOUND = REFRESH_SECONDS + 4.0  # the interval plus loading the version on a busy host
MONITOR_SECONDS = 4.0  # CDS_MONITOR_INTERVAL_SECONDS
CLIENTS = 4
MAX_CALLS = 8000  # the load is bounded whatever the phases take


@dataclass
class Call:
    t0: float
    t1: float
    status: int
    served_by: str
    card: str | None
    hook_instance: str
    token: str


class Cluster:
    def __init__(self, tmp: Path, db: Database) -> None:
        self.db = db
        self.key = generate_key("ES384")
        callers = tmp / "trusted-callers.json"
        callers.write_text(json.dumps([{"iss": ISS, "jwks": public_jwks(self.key)}]))
        models = tmp / "models"
        shutil.copytree(REPO_ROOT / "models", models)
        shutil.copytree(models / MODEL / OLD, models / MODEL / NEW)  # the version to promote
        self.env = replica_env(
            CDS_DATABASE_URL=db.url,
            CDS_ENVIRONMENT="production",
            CDS_PSEUDONYM_KEY="a-test-only-pseudonym-key-0123456789",
            CDS_TRUSTED_ISSUERS=str(callers),
            CDS_PUBLIC_BASE_URL=PUBLIC_BASE,
            CDS_MODELS_DIR=str(models),
            CDS_DEPLOYMENT_REFRESH_SECONDS=str(REFRESH_SECONDS),
            CDS_MONITOR_INTERVAL_SECONDS=str(MONITOR_SECONDS),
            CDS_SPOOL_REPLAY_SECONDS="0.5",
            # a healthy write on this shared 2-core host must not count as an outage (as in
            # tests/utils/service.py); outages are tests/integration/test_db_faults.py's subject
            CDS_AUDIT_BUDGET_MS="3000",
            CDS_LOG_LEVEL="WARNING",
        )
        self.env["CDS_DATA_DIR"] = str(tmp / "data")
        self.replicas = [Replica(f"r{i}", tmp, self.env) for i in range(3)]
        self.tmp = tmp
        self.lb: HAProxy | None = None

    def token(self) -> str:
        return sign(self.key, iss=ISS, aud=f"{PUBLIC_BASE}/cds-services/{SERVICE}")


def _body(pid: str) -> dict[str, Any]:
    case = ed_case(datetime.now(UTC), pid=pid)
    return hook_body("encounter-start", pid, ed_prefetch(case), encounter_id=case["encounter_id"])


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    if haproxy_path() is None:
        pytest.skip("haproxy is not installed (.ci/run installs Debian's package)")
    tmp = tmp_path_factory.mktemp("replicas")
    db = new_database("postgres", tmp)
    engine = make_engine(db.url)
    upgrade(engine)  # the deployment's migration Job
    engine.dispose()
    c = Cluster(tmp, db)
    lb: HAProxy | None = None
    try:
        for r in c.replicas:
            r.start()
        assert wait_for(lambda: all(r.ready() for r in c.replicas), 180), "replicas not ready"
        lb = c.lb = HAProxy(tmp, c.replicas)
        assert wait_for(lambda: _lb_up(lb), 30)
        yield c
    finally:
        if lb is not None:
            lb.stop()
        for r in c.replicas:
            r.stop_quietly()
        db.close()


def _lb_up(lb: HAProxy) -> bool:
    try:
        return httpx.get(f"{lb.url}/healthz", timeout=2).status_code == 200
    except httpx.TransportError:
        return False


class Load:
    """CLIENTS threads calling through the balancer until stopped (or MAX_CALLS)."""

    def __init__(self, cluster: Cluster, url: str) -> None:
        self.cluster, self.url = cluster, url
        self.marks: list[tuple[float, str]] = [(0.0, "warm-up")]
        self.calls: list[Call] = []
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._threads = [threading.Thread(target=self._run, args=(i,)) for i in range(CLIENTS)]

    def __enter__(self) -> Load:
        for t in self._threads:
            t.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(timeout=120)

    def _run(self, client_no: int) -> None:
        with httpx.Client(base_url=self.url, timeout=30) as client:
            n = 0
            while not self._stop.is_set() and len(self.calls) < MAX_CALLS:
                n += 1
                body, token = _body(f"syn-lb-{client_no}-{n}"), self.cluster.token()
                t0 = time.time()
                try:
                    r = client.post(f"/cds-services/{SERVICE}", json=body,
                                    headers={"Authorization": f"Bearer {token}"})  # fmt: skip
                    status, by = r.status_code, r.headers.get("x-served-by", "")
                    card = r.json()["cards"][0]["uuid"] if status == 200 else None
                except httpx.TransportError as exc:  # between this client and the balancer
                    status, by, card = 0, type(exc).__name__, None
                call = Call(t0, time.time(), status, by, card, body["hookInstance"], token)
                with self._lock:
                    self.calls.append(call)
                time.sleep(0.02)  # each client at most ~50 calls/s

    @staticmethod
    def run_for(seconds: float) -> None:
        time.sleep(seconds)

    def mark(self, phase: str) -> float:
        """Start a phase now; calls are labelled by the phase their start falls in."""
        at = time.time()
        self.marks.append((at, phase))
        return at

    def label(self, call: Call) -> str:
        return next((p for at, p in reversed(self.marks) if at <= call.t0), self.marks[0][1])


def _post_raw_in_flight(replica: Replica, token: str, terminate: Any) -> tuple[int, str]:
    """Half a request body to the replica, then ``terminate()``, then the rest: the call is in
    flight when SIGTERM arrives. Returns the status and the card's uuid."""
    body = json.dumps(_body("syn-inflight-1")).encode()
    head = (
        f"POST /cds-services/{SERVICE} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        f"Authorization: Bearer {token}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    ).encode()
    with socket.create_connection(("127.0.0.1", replica.port), timeout=30) as s:
        s.sendall(head + body[:200])
        time.sleep(0.5)  # the server has read the headers (not a timing assertion)
        terminate()
        s.sendall(body[200:])
        data = b""
        while chunk := s.recv(65536):
            data += chunk
    head_part, _, payload = data.partition(b"\r\n\r\n")
    status = int(head_part.split()[1])
    return status, json.loads(payload)["cards"][0]["uuid"] if status == 200 else ""


def _promote(cluster: Cluster) -> datetime:
    holdout = cluster.tmp / "holdout"
    synth = [sys.executable, "-m", "cds_devtools", "synth", "--out", str(holdout),
             "--ed-patients", "150", "--post-mi-patients", "1", "--no-progress"]  # fmt: skip
    subprocess.run(synth, cwd=REPO_ROOT, env=cluster.env, check=True, capture_output=True)
    cmd = [sys.executable, "-m", "cds_service.cli", "promote", MODEL, NEW, "--env", "production",
           "--role", "live", "--by", "ci", "--reason", "multi-replica test",
           "--holdout", str(holdout), "--override-reason", "synthetic holdout"]  # fmt: skip
    done = subprocess.run(cmd, cwd=REPO_ROOT, env=cluster.env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    rows = cluster.db.rows(
        "SELECT created_at FROM deployments WHERE model_version = :v ORDER BY id DESC", v=NEW
    )
    created: datetime = rows[0]["created_at"]
    return created if created.tzinfo else created.replace(tzinfo=UTC)


def _version_of(cluster: Cluster, card: str) -> str | None:
    rows = cluster.db.rows("SELECT model_version FROM card_audit WHERE card_uuid = :u", u=card)
    return rows[0]["model_version"] if rows else None


def _pickups(calls: list[Call], versions: dict[str, str], since: float) -> dict[str, float]:
    """Per replica: seconds from the deployment record to the answer of its first card of the
    new version through the balancer (an upper bound: the load calls every ~30 ms)."""
    first: dict[str, float] = {}
    for c in sorted(calls, key=lambda c: c.t1):
        if c.card and versions.get(c.card) == NEW and c.served_by not in first:
            first[c.served_by] = c.t1 - since
    return first


def _rss(replica: Replica) -> str:
    assert replica.process is not None
    status = Path(f"/proc/{replica.process.pid}/status").read_text().splitlines()
    values = {line.split(":")[0]: int(line.split()[1]) // 1024 for line in status
              if line.startswith(("VmRSS", "VmHWM"))}  # fmt: skip
    return f"{replica.name} RSS {values['VmRSS']} MiB (peak {values['VmHWM']} MiB)"


def test_rolling_restart_kill_and_promotion_behind_a_load_balancer(cluster: Cluster) -> None:
    r0, r1, _ = cluster.replicas
    lb = cluster.lb
    assert lb is not None
    in_flight: tuple[int, str] = (0, "")
    with Load(cluster, lb.url) as load:
        load.run_for(4)

        load.mark("graceful restart r0")
        # what endpoint removal + preStop do in Kubernetes: the balancer stops sending new calls
        # to r0 and its calls in progress finish; then SIGTERM (with one call still in flight)
        lb.command("set server replicas/r0 state drain")
        assert wait_for(lambda: lb.sessions("r0") == 0, 30)
        in_flight = _post_raw_in_flight(
            r0, cluster.token(), lambda: r0.process.send_signal(signal.SIGTERM)
        )  # type: ignore[union-attr]
        assert r0.process is not None and r0.process.wait(timeout=45) in (0, -signal.SIGTERM)
        assert "Application shutdown complete." in r0.log.read_text()
        r0.start()
        assert wait_for(r0.ready, 120)
        lb.command("set server replicas/r0 state ready")
        load.run_for(3)

        killed_at = load.mark("kill r1")
        r1.kill()
        dead_at = time.time()  # reaped: its sockets are gone
        load.run_for(4)
        r1.start()  # the replacement pod, on the same spool volume
        assert wait_for(r1.ready, 120)
        load.run_for(2)

        load.mark("promotion")
        promoted_at = _promote(cluster).timestamp()
        load.mark("after promotion")
        load.run_for(PICKUP_BOUND + 2)
    memory = [_rss(r) for r in cluster.replicas]

    # a used token is refused by every replica, and through the balancer
    used = next(c.token for c in load.calls if c.status == 200)
    for url in [r.url for r in cluster.replicas] + [lb.url]:
        r = httpx.post(f"{url}/cds-services/{SERVICE}", json=_body("syn-replay-1"),
                       headers={"Authorization": f"Bearer {used}"}, timeout=30)  # fmt: skip
        assert r.status_code == 401 and "replayed" in r.text, (url, r.status_code)

    assert wait_for(lambda: not any(r.spooled() for r in cluster.replicas), 60)
    calls = load.calls
    ok = [c for c in calls if c.status == 200]
    failed = [c for c in calls if c.status != 200]
    returned = [c.card for c in ok if c.card] + [in_flight[1]]
    rows = cluster.db.rows("SELECT card_uuid, hook_instance, model_version FROM card_audit "
                           "WHERE role = 'live'")  # fmt: skip
    audited = Counter(row["card_uuid"] for row in rows)
    per_call = Counter(row["hook_instance"] for row in rows)
    versions = {row["card_uuid"]: row["model_version"] for row in rows}
    pickups = _pickups(calls, versions, promoted_at)
    lost = [u for u in returned if audited[u] == 0]
    duplicated = [c for c in ok if per_call[c.hook_instance] > 1]
    failed_audited = [c for c in failed if per_call[c.hook_instance]]

    print(f"\n{len(calls)} calls through HAProxy by {CLIENTS} clients, {len(ok)} returned a card")
    at_kill = [c for c in failed if c.t0 <= dead_at and c.t1 >= killed_at]
    for phase, n in Counter(load.label(c) for c in calls).items():
        bad = [c for c in failed if load.label(c) == phase]
        in_kill = sum(c in at_kill for c in bad)
        print(f"  {phase}: {n} calls, failed {len(bad)} ({in_kill} in flight on the killed r1)")
    print(f"in flight on r0 at SIGTERM: status {in_flight[0]}")
    print(f"rows: returned cards {len(returned)}, found {len(returned) - len(lost)}, lost "
          f"{len(lost)}, calls audited twice {len(duplicated)}, failed calls with a row "
          f"{len(failed_audited)}")  # fmt: skip
    shown = [f"{r.name} {pickups[r.name]:.2f} s" if r.name in pickups else f"{r.name} never"
             for r in cluster.replicas]  # fmt: skip
    print(f"promotion pick-up (interval {REFRESH_SECONDS} s): " + ", ".join(shown))
    print("; ".join(memory))

    for c in failed:  # diagnostics: where each failure sits against the events
        start, end, reaped = c.t0 - killed_at, c.t1 - killed_at, dead_at - killed_at
        print(f"failed {c.status} {c.served_by}: {start:+.3f}..{end:+.3f} s from the kill "
              f"(reaped at {reaped:+.3f} s)")  # fmt: skip
    assert in_flight[0] == 200, "the call in flight at SIGTERM must complete"
    assert len(at_kill) == len(failed)
    for c in failed:  # in flight on r1: handed to it before its sockets were gone
        # HAProxy answers a call whose server died mid-request with 502, or (on a keep-alive
        # client connection) closes that connection without a response, as HTTP allows
        assert c.served_by == r1.name or c.status == 0, c
        assert c.t0 <= dead_at and c.t1 >= killed_at, c
    assert not lost and not duplicated
    assert all(audited[u] == 1 for u in returned)
    assert set(pickups) == {r.name for r in cluster.replicas}
    assert all(seconds <= PICKUP_BOUND for seconds in pickups.values()), pickups
    for c in ok:  # never the old version from a replica after its pick-up
        if c.card and c.t0 > promoted_at + pickups[c.served_by]:
            assert versions[c.card] == NEW, c
    assert {versions[c.card] for c in ok if load.label(c) == "warm-up" and c.card} == {OLD}


def test_the_in_service_monitor_runs_once_per_interval_across_replicas(cluster: Cluster) -> None:
    """Every replica has CDS_MONITOR_INTERVAL_SECONDS set; the advisory lock lets one run at a
    time, and a replica skips its turn when another ran within the interval. Across the three
    replicas: one run per interval, not one per replica (7-9 in 4 intervals before the skip)."""
    sql = "SELECT count(*) AS n FROM monitoring_runs WHERE started_at >= :a AND started_at < :b"
    start = datetime.now(UTC)
    intervals = 4
    time.sleep(MONITOR_SECONDS * intervals)
    runs = cluster.db.rows(sql, a=start, b=datetime.now(UTC))[0]["n"]
    print(f"\n{runs} monitoring runs in {intervals} intervals of {MONITOR_SECONDS} s, 3 replicas")
    assert runs <= intervals + 1

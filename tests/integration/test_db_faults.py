"""Serving through PostgreSQL faults, against real servers with the database behind a TCP proxy
that stalls (connections open, no bytes) or cuts connections.

- A stall costs a call at most its budget: the audit write and the jti check run off the event
  loop, past the budget the row is spooled and the jti checked in memory; /healthz answers at once
  and /readyz says the service is degraded. After the stall every row is in the database once.
- A jti accepted from memory during an outage reaches the shared store when the database is
  back, so a replay on another replica is refused.
- A worker starts while the database is down (production: migrations are a deployment step).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
import respx

from cds_service.cds_hooks.examples import ed_case, ed_prefetch, hook_body
from cds_service.config import Settings
from cds_service.db.engine import make_engine, upgrade
from cds_service.main import create_app
from cds_service.security.local_issuer import generate_key, public_jwks, sign
from tests.conftest import REPO_ROOT
from tests.utils.server import ServerThread, TcpProxy, free_port
from tests.utils.service import NOW, PUBLIC_BASE, make_settings, new_database

pytestmark = pytest.mark.postgres

ISS = "https://ehr.example.org"
SERVICE = "ed-admission-risk"
AUD = f"{PUBLIC_BASE}/cds-services/{SERVICE}"
STALL_SECONDS = 15.0
SPOOLED_CALLS = 200  # rows in the spool when the server restarts


def _wait_for(predicate: Any, timeout: float = 30.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.1)
    return False


class Fault:
    """PostgreSQL (a schema of its own) behind a proxy, and an ES384 caller with inline keys."""

    def __init__(self, tmp: Path) -> None:
        self.db = new_database("postgres", tmp)
        self.proxy = TcpProxy("127.0.0.1", 5432)
        self.proxy.start()
        self.url = self.db.url.replace("127.0.0.1:5432", f"127.0.0.1:{self.proxy.port}")
        if str(self.proxy.port) not in self.url:
            pytest.skip("CDS_TEST_POSTGRES_URL must name 127.0.0.1:5432 for the proxy tests")
        self.key = generate_key("ES384")
        self.callers = tmp / "trusted-callers.json"
        self.callers.write_text(
            json.dumps([{"iss": ISS, "jwks": public_jwks(self.key), "fhir_servers": []}])
        )

    def settings(self, tmp: Path, **overrides: Any) -> Settings:
        values: dict[str, Any] = {
            "auth_disabled": False,
            "trusted_issuers": self.callers,
            "audit_budget_ms": 200,
        }
        values.update(overrides)
        return make_settings(self.url, tmp, **values)

    def token(self) -> str:
        return sign(self.key, iss=ISS, aud=AUD, now=NOW.timestamp())

    def count(self, card_uuid: str) -> int:
        rows = self.db.rows("SELECT card_uuid FROM card_audit WHERE card_uuid = :u", u=card_uuid)
        return len(rows)


@pytest.fixture
def fault(tmp_path: Path) -> Iterator[Fault]:
    f = Fault(tmp_path)
    try:
        yield f
    finally:
        f.proxy.stop()
        f.db.close()


def _app(settings: Settings) -> Any:
    router = respx.MockRouter(assert_all_called=False)
    return create_app(
        settings, clock=lambda: NOW, transport=httpx.MockTransport(router.async_handler)
    )


def _call(
    client: httpx.Client, token: str, pid: str, timeout: float = 10.0, at: datetime = NOW
) -> httpx.Response:
    """An encounter-start call for ``pid`` at ``at`` (the wall clock for servers in a process of
    their own); a new connection each time, so calls spread over the workers."""
    case = ed_case(at, pid=pid)
    body = hook_body("encounter-start", pid, ed_prefetch(case), encounter_id=case["encounter_id"])
    return client.post(
        f"/cds-services/{SERVICE}",
        json=body,
        headers={"Authorization": f"Bearer {token}", "Connection": "close"},
        timeout=timeout,
    )


def _up(client: httpx.Client) -> bool:
    try:
        return client.get("/healthz").status_code == 200
    except httpx.TransportError:
        return False


class TwoWorkers:
    """`cds-service serve --workers 2` in production on the fault's database behind the proxy,
    in a process of its own; the schema is migrated first (the deployment's migration step)."""

    def __init__(self, fault: Fault, tmp: Path) -> None:
        engine = make_engine(fault.db.url)
        upgrade(engine)
        engine.dispose()
        self.fault = fault
        self.port, self.spool = free_port(), tmp / "spool"
        self.base = f"http://127.0.0.1:{self.port}"
        self._env = dict(
            os.environ,
            CDS_DATABASE_URL=fault.url,
            CDS_ENVIRONMENT="production",
            CDS_PSEUDONYM_KEY="a-production-secret-key-0123",
            CDS_TRUSTED_ISSUERS=str(fault.callers),
            CDS_PUBLIC_BASE_URL=PUBLIC_BASE,
            CDS_SPOOL_DIR=str(self.spool),
            CDS_SPOOL_REPLAY_SECONDS="0.5",
            CDS_AUDIT_BUDGET_MS="200",
            CDS_LOG_LEVEL="WARNING",
        )
        self._cmd = [sys.executable, "-m", "cds_service.cli", "serve", "--workers", "2"]
        self._cmd += ["--port", str(self.port), "--log-level", "warning"]

    def start(self) -> subprocess.Popen[bytes]:
        return subprocess.Popen(
            self._cmd,
            cwd=REPO_ROOT,
            env=self._env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )

    @staticmethod
    def stop(server: subprocess.Popen[bytes]) -> None:
        server.send_signal(signal.SIGTERM)
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()

    @staticmethod
    def workers(server: subprocess.Popen[bytes]) -> set[int]:
        try:
            children = Path(f"/proc/{server.pid}/task/{server.pid}/children").read_text()
        except OSError:
            return set()
        return {int(c) for c in children.split() if "resource_tracker" not in _cmdline(int(c))}

    def card(self, client: httpx.Client, pid: str, timeout: float = 10.0) -> httpx.Response:
        token = sign(self.fault.key, iss=ISS, aud=AUD)
        return _call(client, token, pid, timeout, at=datetime.now(UTC))


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def _spooled(spool: Path) -> list[Path]:
    return list(spool.glob("*.jsonl"))


def test_a_stalled_database_costs_a_call_its_budget_and_loses_no_row(
    fault: Fault, tmp_path: Path
) -> None:
    settings = fault.settings(tmp_path)
    with ServerThread(_app(settings)) as server, httpx.Client(base_url=server.url) as client:
        first = _call(client, fault.token(), "syn-stall-0")
        assert first.status_code == 200, first.text
        assert fault.count(first.json()["cards"][0]["uuid"]) == 1

        fault.proxy.stall()
        stall_ends = time.monotonic() + STALL_SECONDS
        cards = []
        for i in range(1, 7):
            # each call within its budget plus slack: far below the stall
            r = _call(client, fault.token(), f"syn-stall-{i}", timeout=5.0)
            assert r.status_code == 200, r.text
            cards.append(r.json()["cards"][0]["uuid"])
            health = client.get("/healthz", timeout=1.0)
            assert health.status_code == 200
        assert time.monotonic() < stall_ends, "calls must not wait for the stalled database"
        assert _spooled(settings.spool_dir), "rows go to the spool while the database stalls"
        assert all(fault.count(u) == 0 for u in cards)
        ready = client.get("/readyz", timeout=1.0)
        assert ready.status_code == 503
        assert ready.json() == {"status": "degraded: audit spooling"}

        time.sleep(max(0.0, stall_ends - time.monotonic()))
        fault.proxy.resume()
        assert _wait_for(lambda: all(fault.count(u) == 1 for u in cards), 40)
        assert _wait_for(lambda: not _spooled(settings.spool_dir), 20)
        assert _wait_for(lambda: client.get("/readyz").status_code == 200, 20)
        assert all(fault.count(u) == 1 for u in cards)  # exactly once, late writes included


def test_a_jti_accepted_during_an_outage_is_refused_on_another_replica_afterwards(
    fault: Fault, tmp_path: Path
) -> None:
    a_dir, b_dir = tmp_path / "a", tmp_path / "b"
    a_settings = fault.settings(a_dir)
    b_settings = fault.settings(b_dir)
    with (
        ServerThread(_app(a_settings)) as a,
        ServerThread(_app(b_settings)) as b,
        httpx.Client(base_url=a.url, timeout=10) as on_a,
        httpx.Client(base_url=b.url, timeout=10) as on_b,
    ):
        assert _call(on_b, fault.token(), "syn-jti-0").status_code == 200  # B's pool is warm
        fault.proxy.stop()
        token = fault.token()
        assert _call(on_a, token, "syn-jti-1").status_code == 200  # accepted from memory
        assert _call(on_a, token, "syn-jti-1").status_code == 401  # A remembers it
        fault.proxy.start()
        assert _wait_for(lambda: not _spooled(a_settings.spool_dir), 30)
        replay = _call(on_b, token, "syn-jti-1")
        assert replay.status_code == 401, replay.text
        assert "replayed" in replay.text
        assert _wait_for(lambda: on_a.get("/readyz").status_code == 200, 30)


def test_readiness_counts_rows_another_worker_has_spooled(fault: Fault, tmp_path: Path) -> None:
    """/readyz answers for the host, not only the worker that happens to answer: while the
    spool folder the workers share holds another process's rows (here held under its lock, as
    a worker appending or replaying does), it says degraded although this worker reaches the
    database; once the rows are written it says ready."""
    import fcntl
    import os

    settings = fault.settings(tmp_path)
    with ServerThread(_app(settings)) as server, httpx.Client(base_url=server.url) as client:
        assert _call(client, fault.token(), "syn-ready-0").status_code == 200
        assert client.get("/readyz").status_code == 200
        other = settings.spool_dir / "audit-999999999.jsonl"  # another worker's file
        row = {"jti_hash": "ab" * 32, "expires_at": "2026-03-14T10:00:00+00:00"}
        other.write_bytes(json.dumps({"table": "seen_jti", "row": row}).encode() + b"\n")
        held = os.open(other, os.O_RDONLY)
        fcntl.flock(held, fcntl.LOCK_EX)
        try:
            for _ in range(3):  # several replay rounds of this worker pass meanwhile
                ready = client.get("/readyz", timeout=1.0)
                assert ready.status_code == 503
                assert ready.json() == {"status": "degraded: audit spooling"}
                time.sleep(settings.spool_replay_seconds * 2)
        finally:
            os.close(held)
        assert _wait_for(lambda: client.get("/readyz").status_code == 200, 20)
        assert not _spooled(settings.spool_dir)
        assert fault.db.rows("SELECT jti_hash FROM seen_jti WHERE jti_hash = :h", h="ab" * 32)


def test_browser_session_lookups_answer_503_while_the_database_stalls(
    fault: Fault, tmp_path: Path
) -> None:
    """The dashboard's and the SMART app's session lookups run off the event loop within their
    budget: while PostgreSQL stalls, a signed-in browser gets a 503 page (JSON for the
    dashboard's API) saying the database is not answering, with no identifier in it, instead
    of waiting on the stall; /healthz answers meanwhile."""
    settings = fault.settings(
        tmp_path, oidc_issuer="https://idp.example.org", oidc_client_id="cds-dashboard"
    )
    handle = "syn-handle-12345"  # a launch handle (16 characters)
    dashboard = {"cds_dashboard": "d" * 43}
    smart = {f"cds_smart_{handle}": "s" * 43}
    with ServerThread(_app(settings)) as server, httpx.Client(base_url=server.url) as client:

        def requests() -> list[httpx.Response]:
            return [
                client.get("/dashboard/api/data", cookies=dashboard, timeout=5.0),
                client.get("/dashboard", cookies=dashboard, timeout=5.0),
                client.get("/smart/app", params={"s": handle}, cookies=smart, timeout=5.0),
            ]

        # database up: the (unknown) sessions are looked up and refused
        assert [r.status_code for r in requests()] == [401, 303, 401]
        fault.proxy.stall()
        stall_ends = time.monotonic() + STALL_SECONDS
        try:
            api, page, app = requests()
            assert client.get("/healthz", timeout=1.0).status_code == 200
            assert time.monotonic() < stall_ends, "the lookups must not wait on the stall"
        finally:
            fault.proxy.resume()
        assert api.status_code == 503
        assert api.json()["error"] == "dashboard database unavailable"
        assert page.status_code == 503 and "not answering" in page.text
        assert app.status_code == 503 and "not answering" in app.text
        for r in (api, page, app):
            assert handle not in r.text and "d" * 43 not in r.text and "s" * 43 not in r.text
        assert _wait_for(lambda: client.get("/readyz").status_code == 200, 30)
        assert [r.status_code for r in requests()] == [401, 303, 401]


def test_a_production_worker_starts_and_serves_while_the_database_is_down(
    fault: Fault, tmp_path: Path
) -> None:
    engine = make_engine(fault.db.url)  # the deployment's migration step, before the outage
    upgrade(engine)
    engine.dispose()
    settings = fault.settings(
        tmp_path, environment="production", pseudonym_key="a-production-secret-key-0123"
    )
    fault.proxy.stop()
    with ServerThread(_app(settings)) as server, httpx.Client(base_url=server.url) as client:
        assert client.get("/healthz", timeout=1.0).status_code == 200
        r = _call(client, fault.token(), "syn-start-1")
        assert r.status_code == 200, r.text
        card = r.json()["cards"][0]["uuid"]
        assert _spooled(settings.spool_dir)
        assert client.get("/readyz").status_code == 503
        fault.proxy.start()
        assert _wait_for(lambda: fault.count(card) == 1, 30)
        assert _wait_for(lambda: client.get("/readyz").status_code == 200, 30)


def test_two_workers_keep_serving_when_one_is_killed_during_an_outage(
    fault: Fault, tmp_path: Path
) -> None:
    """`serve --workers 2` in production on PostgreSQL behind the proxy: the database goes away,
    a worker is killed with SIGKILL, its replacement starts without the database, the server
    keeps answering, and every card's row is in the database once when it is back."""
    srv = TwoWorkers(fault, tmp_path)
    server = srv.start()
    cards: list[str] = []

    def call(client: httpx.Client, pid: str) -> None:
        r = srv.card(client, pid)
        assert r.status_code == 200, r.text
        cards.append(r.json()["cards"][0]["uuid"])

    def workers() -> set[int]:
        return srv.workers(server)

    try:
        with httpx.Client(base_url=srv.base, timeout=10) as client:
            assert _wait_for(lambda: _up(client), 90), "server did not start"
            assert _wait_for(lambda: len(workers()) == 2, 30)
            for i in range(4):
                call(client, f"syn-w2-{i}")
            fault.proxy.stop()
            for i in range(4, 12):
                call(client, f"syn-w2-{i}")
            before = workers()
            victim = min(before)
            os.kill(victim, signal.SIGKILL)
            for i in range(12, 30):  # the other worker answers while the victim is replaced
                call(client, f"syn-w2-{i}")
            assert _wait_for(lambda: len(workers()) == 2 and victim not in workers(), 60)
            assert server.poll() is None, "the server must survive a worker's death"
            (replacement,) = workers() - before

            def replacement_serves() -> bool:
                # its spool file (or the one it replays) proves it started without the database
                call(client, f"syn-w2-{len(cards)}")
                names = [p.name for p in srv.spool.iterdir()]
                return any(
                    n.startswith((f"audit-{replacement}.", f"replaying-{replacement}-"))
                    for n in names
                )

            assert _wait_for(replacement_serves, 60), "the replacement worker never served"
            fault.proxy.start()
            assert _wait_for(lambda: all(fault.count(u) == 1 for u in cards), 60), (
                f"{sum(fault.count(u) == 0 for u in cards)} of {len(cards)} rows missing"
            )
            assert _wait_for(lambda: not _spooled(srv.spool), 30)
    finally:
        srv.stop(server)


def test_two_workers_restart_with_a_non_empty_spool_and_replay_it_once(
    fault: Fault, tmp_path: Path
) -> None:
    """Issue 12, failure 1: `serve --workers 2` in production spools during a cut, is stopped
    with rows in the spool, and is started again on the same spool once the database is back.
    Both workers replay at start-up; the server stays up, and every acknowledged card's row is
    in the database exactly once, and the spool is empty (on the old spool the second worker's
    `unlink()` raised FileNotFoundError and uvicorn stopped the server)."""
    from concurrent.futures import ThreadPoolExecutor

    srv = TwoWorkers(fault, tmp_path)
    spool, start, stop, workers = srv.spool, srv.start, srv.stop, srv.workers

    def spooled_pids() -> set[str]:
        names = [p.name for p in spool.iterdir()] if spool.exists() else []
        prefixes = ("audit-", "replaying-")
        return {n.split(".")[0].split("-")[1] for n in names if n.startswith(prefixes)}

    cards: list[str] = []
    client = httpx.Client(base_url=srv.base, timeout=10)

    def up() -> bool:
        return _up(client)

    def call(pid: str) -> None:
        r = srv.card(client, pid)
        assert r.status_code == 200, r.text
        cards.append(r.json()["cards"][0]["uuid"])

    server = start()
    try:
        # start-up takes 35-50 s on the shared 2-CPU test machine under load: a setup wait
        assert _wait_for(up, 90), "server did not start"
        assert _wait_for(lambda: len(workers(server)) == 2, 15)
        fault.proxy.stop()

        def both_spooled() -> bool:
            call(f"syn-rs-{len(cards)}")
            return len(spooled_pids()) >= 2

        assert _wait_for(both_spooled, 15), f"spool files of {spooled_pids()} only"
        with ThreadPoolExecutor(4) as pool:  # enough rows that the two replays overlap
            list(pool.map(call, [f"syn-rs-x{i}" for i in range(SPOOLED_CALLS)]))
        stop(server)
        assert server.returncode is not None
        held = [p for p in spool.iterdir() if p.name.startswith(("audit-", "replaying-"))]
        assert sum(len(p.read_text().splitlines()) for p in held) >= len(cards)
        fault.proxy.start()

        server = start()  # both workers replay the same spool at start-up
        assert _wait_for(up, 90), "the restarted server did not answer"  # dead: never
        assert _wait_for(lambda: len(workers(server)) == 2, 15), "both workers must start"
        deadline = time.monotonic() + 5  # and it stays up
        while time.monotonic() < deadline:
            assert server.poll() is None, "the restarted server stopped"
            assert up(), "the restarted server stopped answering /healthz"
            time.sleep(0.25)
        assert len(workers(server)) == 2
        missing = [u for u in cards if fault.count(u) != 1]
        assert _wait_for(lambda: all(fault.count(u) == 1 for u in cards), 15), (
            f"{len(missing)} of {len(cards)} rows not in the database exactly once"
        )
        left = [p.name for p in spool.iterdir() if p.name.startswith(("audit-", "replaying-"))]
        assert _wait_for(
            lambda: not any(p.name.startswith(("audit-", "replaying-")) for p in spool.iterdir()),
            10,
        ), f"spool not empty: {left}"
    finally:
        client.close()
        if server.poll() is None:
            stop(server)


def test_two_workers_answer_through_a_stall_within_the_budget(fault: Fault, tmp_path: Path) -> None:
    """`serve --workers 2` in production on PostgreSQL behind the proxy, 6 callers with a fresh
    token per call while the database stalls for 15 s (connections open, no bytes) and the
    replay loops retry every 0.5 s: /healthz answers within 1 s throughout, every call returns
    200 within 2 s (so it never waited on the stall: its database work is bounded by the 200 ms
    budget, then spooled), /readyz says degraded on whichever worker answers, and afterwards
    every card's row is in the database exactly once. On the old spool an append that opened
    its file just before the worker's own replay claimed it waited for that replay (a 3.2 s
    call in the soak); the 2 s client timeout fails such a call here."""
    import threading

    srv = TwoWorkers(fault, tmp_path)
    spool, base = srv.spool, srv.base
    server = srv.start()
    cards: list[str] = []
    failures: list[str] = []  # calls or health checks that failed, late or not 200
    done = threading.Event()

    def call(client: httpx.Client, pid: str) -> None:
        try:
            # the budget plus a generous margin; the stall lasts 15 s
            r = srv.card(client, pid, timeout=2.0)
        except httpx.TimeoutException:
            failures.append(f"call {pid}: no answer within 2 s")
            return
        if r.status_code != 200:
            failures.append(f"call {pid}: {r.status_code}")
            return
        cards.append(r.json()["cards"][0]["uuid"])

    def caller(n: int) -> None:
        with httpx.Client(base_url=base) as client:
            i = 0
            while not done.is_set():
                call(client, f"syn-st{n}-{i}")
                i += 1

    def health() -> None:
        with httpx.Client(base_url=base) as client:
            while not done.is_set():
                try:
                    r = client.get("/healthz", headers={"Connection": "close"}, timeout=1.0)
                    if r.status_code != 200:
                        failures.append(f"/healthz: {r.status_code}")
                except httpx.TimeoutException:
                    failures.append("/healthz: no answer within 1 s")
                time.sleep(0.2)

    def counts() -> dict[str, int]:
        rows = fault.db.rows("SELECT card_uuid, count(*) AS n FROM card_audit GROUP BY card_uuid")
        return {r["card_uuid"]: r["n"] for r in rows}

    threads = [threading.Thread(target=caller, args=(n,), daemon=True) for n in range(6)]
    threads.append(threading.Thread(target=health, daemon=True))
    try:
        with httpx.Client(base_url=base, timeout=10) as client:
            assert _wait_for(lambda: _up(client), 90), "server did not start"
            for t in threads:
                t.start()
            assert _wait_for(lambda: len(cards) >= 20, 30), "no calls before the stall"
            fault.proxy.stall()
            stall_ends = time.monotonic() + STALL_SECONDS
            before = len(cards)
            time.sleep(STALL_SECONDS / 2)
            readiness = [
                client.get("/readyz", headers={"Connection": "close"}, timeout=1.0)
                for _ in range(6)
            ]
            assert [r.status_code for r in readiness] == [503] * 6, "every worker: degraded"
            assert {r.json()["status"] for r in readiness} == {"degraded: audit spooling"}
            assert _spooled(spool), "rows go to the spool while the database stalls"
            time.sleep(max(0.0, stall_ends - time.monotonic()))
            during = len(cards) - before
            fault.proxy.resume()
            time.sleep(2)
            done.set()
            for t in threads:
                t.join(timeout=15)
            assert not failures, failures[:10]
            assert during >= 30, f"only {during} calls answered during the 15 s stall"
            assert _wait_for(lambda: all(counts().get(u) == 1 for u in cards), 60), (
                f"{sum(counts().get(u) != 1 for u in cards)} of {len(cards)} rows not in the "
                "database exactly once"
            )
            assert _wait_for(lambda: not _spooled(spool), 30)
            assert _wait_for(lambda: client.get("/readyz").status_code == 200, 30)
            assert server.poll() is None
    finally:
        done.set()
        srv.stop(server)

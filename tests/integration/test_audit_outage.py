"""A database outage must not lose an audit row: the card is returned, the row is spooled,
and it reaches the database once the database is back."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

import httpx
import pytest
import respx

from cds_service.cds_hooks.examples import ed_case, ed_prefetch, hook_body
from cds_service.main import create_app
from tests.utils.server import ServerThread, TcpProxy
from tests.utils.service import NOW, Database, make_settings, new_database, postgres_base_url


def _wait_for(predicate, timeout: float = 30.0) -> bool:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return False


def _count(db: Database, card_uuid: str) -> int:
    return len(db.rows("SELECT card_uuid FROM v_cards WHERE card_uuid = :u", u=card_uuid))


def _call(client: httpx.Client, pid: str) -> dict:  # type: ignore[type-arg]
    case = ed_case(NOW, pid=pid)
    body = hook_body("encounter-start", pid, ed_prefetch(case), encounter_id=case["encounter_id"])
    r = client.post("/cds-services/ed-admission-risk", json=body)
    assert r.status_code == 200, r.text
    return r.json()["cards"][0]  # type: ignore[no-any-return]


def test_sqlite_outage_spools_and_replays(tmp_path: Path) -> None:
    db = new_database("sqlite", tmp_path)
    settings = make_settings(db.url, tmp_path)
    app = create_app(
        settings, clock=lambda: NOW, transport=httpx.MockTransport(respx.MockRouter().async_handler)
    )
    with ServerThread(app) as server, httpx.Client(base_url=server.url, timeout=20) as client:
        before = _call(client, "syn-out-0")
        assert _count(db, before["uuid"]) == 1
        # Another process holds an exclusive lock: every write fails after the busy timeout.
        path = db.url.split("///", 1)[1]
        blocker = sqlite3.connect(path, timeout=0.1, isolation_level=None)
        blocker.execute("BEGIN EXCLUSIVE")
        try:
            cards = [_call(client, f"syn-out-{i}") for i in range(1, 4)]
            spooled = list((tmp_path / "spool").glob("*.jsonl"))
            assert spooled, "rows must be in the durable spool while the database is down"
            assert "syn-out" not in "".join(p.read_text() for p in spooled)
        finally:
            blocker.execute("ROLLBACK")
            blocker.close()
        assert _wait_for(lambda: all(_count(db, c["uuid"]) == 1 for c in cards))
        assert _wait_for(lambda: not list((tmp_path / "spool").glob("*.jsonl")))
        feedback = {
            "feedback": [
                {
                    "card": cards[0]["uuid"],
                    "outcome": "accepted",
                    "outcomeTimestamp": "2026-03-14T09:40:00Z",
                }
            ]
        }
        assert (
            client.post("/cds-services/ed-admission-risk/feedback", json=feedback).status_code
            == 200
        )
    rows = db.rows("SELECT risk, card_kind FROM v_cards")
    assert len(rows) == 4 and all(r["card_kind"] == "risk" for r in rows)
    db.close()


@pytest.mark.postgres
def test_postgres_outage_spools_and_replays(tmp_path: Path) -> None:
    base = postgres_base_url()
    if base is None:
        pytest.skip("PostgreSQL tests skipped: set CDS_TEST_POSTGRES_URL to run them")
    db = new_database("postgres", tmp_path)
    proxy = TcpProxy("127.0.0.1", 5432)
    proxy.start()
    proxied_url = db.url.replace("127.0.0.1:5432", f"127.0.0.1:{proxy.port}").replace(
        "localhost:5432", f"127.0.0.1:{proxy.port}"
    )
    assert str(proxy.port) in proxied_url, "CDS_TEST_POSTGRES_URL must name 127.0.0.1:5432"
    settings = make_settings(proxied_url, tmp_path)
    app = create_app(
        settings, clock=lambda: NOW, transport=httpx.MockTransport(respx.MockRouter().async_handler)
    )
    try:
        with ServerThread(app) as server, httpx.Client(base_url=server.url, timeout=30) as client:
            assert _count(db, _call(client, "syn-pg-0")["uuid"]) == 1
            proxy.stop()
            cards = [_call(client, f"syn-pg-{i}") for i in range(1, 4)]
            assert list((tmp_path / "spool").glob("*.jsonl"))
            assert all(_count(db, c["uuid"]) == 0 for c in cards)
            proxy.start()
            assert _wait_for(lambda: all(_count(db, c["uuid"]) == 1 for c in cards), 20)
            assert _wait_for(lambda: not list((tmp_path / "spool").glob("*.jsonl")))
    finally:
        proxy.stop()
        db.close()


def test_a_row_the_database_refuses_goes_to_dead_letter_and_does_not_block_others(
    tmp_path: Path,
) -> None:
    from cds_service.audit.spool import Spool
    from cds_service.audit.writer import AuditWriter

    db = new_database("sqlite", tmp_path)
    from cds_service.db.engine import upgrade

    upgrade(db.engine)
    spool = Spool(tmp_path / "spool")
    good = {
        "card_uuid": "11111111-1111-1111-1111-111111111111",
        "hook_instance": "h1",
        "service_id": "s",
        "hook": "patient-view",
        "model_name": "m",
        "model_version": "1",
        "artifact_sha256": "a" * 64,
        "environment": "development",
        "role": "live",
        "shown": True,
        "card_kind": "risk",
        "patient_pseudonym": "p" * 64,
        "requested_at": NOW.isoformat(),
        "risk": 0.2,
        "latency_ms": 1.0,
        "features": "{}",
        "missing_features": "[]",
        "inputs": "{}",
        "mapper_warnings": "{}",
        "summary": "s",
    }
    bad = dict(good, card_uuid="22222222-2222-2222-2222-222222222222", latency_ms=None)
    spool.append("card_audit", bad)
    spool.append("card_audit", good)
    writer = AuditWriter(db.engine, spool)
    assert writer.replay() == 1
    assert _count(db, good["card_uuid"]) == 1
    assert not list((tmp_path / "spool").glob("audit-*.jsonl"))
    dead = list((tmp_path / "spool").glob("dead-letter-*.jsonl"))
    assert dead and bad["card_uuid"] in dead[0].read_text()
    db.close()

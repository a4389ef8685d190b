"""Retention: the policy's limits, and the purge (Parquet archive, delete, hash-chained record),
on SQLite and PostgreSQL. The archive is read back with pyarrow and compared with the rows that
were in the database; the chain is walked with the same code as ``cds-service audit verify``."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest
import sqlalchemy as sa
from typer.testing import CliRunner

from cds_service.cli import ExitCode, app
from cds_service.db.archive import file_sha256
from cds_service.db.deployments import (
    PURGE_ACTION,
    RETENTION_RECORD,
    all_records,
    append_record,
    current_state,
    verify_chain,
)
from cds_service.db.purge import purge, verify_archives
from cds_service.db.retention import RetentionError, cutoffs, policy
from cds_service.db.tables import Alert
from tests.utils.audit_rows import card_row, feedback_row, insert, outcome_row
from tests.utils.service import Database

NOW = datetime(2026, 9, 1, 7, 45, tzinfo=UTC)
BEFORE = NOW - timedelta(days=190)


def _promotion(at: datetime) -> dict[str, Any]:
    return {
        "model_name": "ed-admission",
        "model_version": "1.0.0",
        "artifact_sha256": "a" * 64,
        "environment": "production",
        "role": "live",
        "action": "promote",
        "decided_by": "quality-officer",
        "reason": "go-live",
        "evidence": "{}",
        "created_at": at,
    }


def _fill(db: Database, now: datetime) -> dict[str, set[str]]:
    """30 cards older than the cutoff, 12 newer; feedback and outcomes on some of each; one
    feedback row on a card the service never logged (old). Returns the uuids expected purged."""
    old = [
        card_row(now - timedelta(days=200 + i), 0.1 + i / 100, patient=f"p{i}") for i in range(30)
    ]
    new = [card_row(now - timedelta(days=i + 1), 0.3, patient=f"q{i}") for i in range(12)]
    old_fb = [feedback_row(c) for c in old[:7]]
    new_fb = [feedback_row(c, "overridden") for c in new[:3]]
    orphan = feedback_row(card_row(now - timedelta(days=300), 0.2, patient="x"))
    old_out = [outcome_row(c, i % 2) for i, c in enumerate(old[:20])]
    new_out = [outcome_row(c, 1) for c in new[:5]]
    insert(db.engine, old + new, old_fb + new_fb + [orphan], old_out + new_out)
    return {
        "card_audit": {c["card_uuid"] for c in old},
        "card_feedback": {f["card_uuid"] for f in [*old_fb, orphan]},
        "outcomes": {o["card_uuid"] for o in old_out},
    }


def _counts(db: Database) -> dict[str, int]:
    return {
        t: db.rows(f"SELECT count(*) AS n FROM {t}")[0]["n"]
        for t in ("card_audit", "card_feedback", "outcomes")
    }


def test_purge_archives_deletes_and_records_and_the_chain_stays_verifiable(
    db: Database, tmp_path: Path
) -> None:
    append_record(db.engine, _promotion(NOW - timedelta(days=400)))
    expected = _fill(db, NOW)
    before_counts = _counts(db)
    archive = tmp_path / "archive"

    done = purge(
        db.engine,
        {"card_audit": BEFORE},
        archive_dir=archive,
        by="records-officer",
        reason="retention policy",
        environment="production",
        now=NOW,
    )

    after_counts = _counts(db)
    assert [d.table for d in done] == ["card_feedback", "outcomes", "card_audit"]
    records = [r for r in all_records(db.engine) if r["action"] == PURGE_ACTION]
    assert len(records) == 3
    for item, record in zip(done, records, strict=True):
        assert item.file is not None
        parquet = pq.read_table(item.file)
        # the archive holds exactly the rows that left the database
        assert parquet.num_rows == item.rows == before_counts[item.table] - after_counts[item.table]
        assert set(parquet.column("card_uuid").to_pylist()) == expected[item.table]
        evidence = json.loads(record["evidence"])
        assert evidence["rows"] == parquet.num_rows
        assert evidence["table"] == record["model_version"] == item.table
        assert evidence["sha256"] == record["artifact_sha256"] == file_sha256(item.file)
        assert record["model_name"] == RETENTION_RECORD
        assert record["decided_by"] == "records-officer"
    assert after_counts == {"card_audit": 12, "card_feedback": 3, "outcomes": 5}
    cards = pq.read_table(done[-1].file).to_pylist()
    assert all(c["requested_at"] < BEFORE for c in cards)
    assert cards[0]["requested_at"].tzinfo is not None
    assert json.loads(records[-1]["evidence"])["oldest"] == (NOW - timedelta(days=229)).isoformat()
    assert (
        db.rows("SELECT count(*) AS n FROM card_audit WHERE requested_at < :b", b=BEFORE)[0]["n"]
        == 0
    )

    assert verify_chain(db.engine) == []
    assert verify_archives(db.engine, archive) == []
    append_record(db.engine, _promotion(NOW + timedelta(minutes=1)))  # the chain goes on
    assert verify_chain(db.engine) == []
    # a purge record is not a deployment: serving state is unchanged
    assert set(current_state(all_records(db.engine), "production")) == {"ed-admission"}

    # an archive file changed after the purge, or a purge record edited, is found
    (archive / done[0].file.name).write_bytes(b"not the archive")  # type: ignore[union-attr]
    assert any("sha256" in p for p in verify_archives(db.engine, archive))
    with db.engine.begin() as conn:
        conn.execute(
            sa.text("UPDATE deployments SET evidence = :e WHERE id = :i"),
            {
                "e": records[-1]["evidence"].replace('"rows": 30', '"rows": 29'),
                "i": records[-1]["id"],
            },
        )
    assert any("does not match its hash" in p for p in verify_chain(db.engine))


def test_dry_run_and_an_empty_period_change_nothing(db: Database, tmp_path: Path) -> None:
    _fill(db, NOW)
    before_counts = _counts(db)
    done = purge(
        db.engine,
        {"card_audit": BEFORE},
        archive_dir=tmp_path / "a",
        by="x",
        reason="y",
        environment="production",
        now=NOW,
        dry_run=True,
    )
    assert {d.table: d.rows for d in done} == {"card_feedback": 8, "outcomes": 20, "card_audit": 30}
    assert _counts(db) == before_counts
    assert not (tmp_path / "a").exists()
    done = purge(
        db.engine,
        {"card_audit": NOW - timedelta(days=1000)},
        archive_dir=tmp_path / "a",
        by="x",
        reason="y",
        environment="production",
        now=NOW,
    )
    assert all(d.rows == 0 and d.file is None for d in done)
    assert all_records(db.engine) == []


def test_card_audit_is_kept_at_least_six_months() -> None:
    assert policy({}) == {"card_audit": 184}
    assert policy({"card_audit": 3650, "alerts": 30})["card_audit"] == 3650
    with pytest.raises(RetentionError, match=r"card_audit must be kept at least 184 days.*90"):
        policy({"card_audit": 90})
    with pytest.raises(RetentionError, match="deployment trail is never purged"):
        policy({"deployments": 400})
    with pytest.raises(RetentionError, match="purged with its cards"):
        policy({"card_feedback": 400})
    with pytest.raises(RetentionError, match="unknown table 'cards'"):
        policy({"cards": 400})
    days = policy({"card_audit": 365})
    assert cutoffs(days, NOW) == {"card_audit": NOW - timedelta(days=365)}
    with pytest.raises(RetentionError, match=r"kept 365 days; --before .* too recent"):
        cutoffs(days, NOW, NOW - timedelta(days=200))
    with pytest.raises(RetentionError, match="kept 184 days"):
        cutoffs(policy({}), NOW, NOW - timedelta(days=100), ["card_audit"])
    with pytest.raises(RetentionError, match="alerts has no retention policy"):
        cutoffs(policy({}), NOW, None, ["alerts"])


def test_cli_purge_then_verify(
    db: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    now = datetime.now(UTC)
    _fill(db, now)
    monkeypatch.setenv("CDS_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("CDS_DATABASE_URL", db.url)
    monkeypatch.setenv("CDS_RETENTION_DAYS", '{"card_audit": 190}')
    runner = CliRunner()
    args = ["audit", "purge", "--by", "records-officer", "--reason", "policy"]

    refused = runner.invoke(
        app, [*args, "--before", (now - timedelta(days=100)).date().isoformat()]
    )
    assert refused.exit_code == ExitCode.BAD_INPUT
    assert "card_audit is kept 190 days" in refused.output
    monkeypatch.setenv("CDS_RETENTION_DAYS", '{"card_audit": 30}')
    refused = runner.invoke(app, args)
    assert refused.exit_code == ExitCode.BAD_INPUT
    assert "card_audit must be kept at least 184 days" in refused.output
    monkeypatch.setenv("CDS_RETENTION_DAYS", "card_audit=190")
    refused = runner.invoke(app, args)
    assert refused.exit_code == ExitCode.BAD_INPUT
    assert "retention_days" in refused.output
    monkeypatch.setenv("CDS_RETENTION_DAYS", '{"card_audit": 190}')

    dry = runner.invoke(app, [*args, "--dry-run"])
    assert dry.exit_code == 0, dry.output
    assert "card_audit: would purge 30 rows" in dry.output
    assert "card_feedback: would purge <10 rows" in dry.output  # 8 rows: a small cell
    assert _counts(db)["card_audit"] == 42

    done = runner.invoke(app, [*args, "--archive", str(tmp_path / "arch")])
    assert done.exit_code == 0, done.output
    assert "card_audit: purged 30 rows" in done.output
    assert _counts(db)["card_audit"] == 12
    verified = runner.invoke(app, ["audit", "verify", "--archive", str(tmp_path / "arch")])
    assert verified.exit_code == 0, verified.output
    assert "deployment chain intact (3 records)" in verified.output
    assert "3 archive(s) match" in verified.output


def test_alerts_purged_by_their_own_policy(db: Database, tmp_path: Path) -> None:
    def alert(days_ago: int) -> dict[str, Any]:
        at = NOW - timedelta(days=days_ago)
        return {
            "run_id": "r1",
            "service_id": "ed-admission-risk",
            "model_name": "ed-admission",
            "model_version": "1.0.0",
            "environment": "production",
            "window_start": at - timedelta(days=1),
            "window_end": at,
            "metric": "psi",
            "value": 0.3,
            "created_at": at,
            "threshold": 0.2,
            "severity": "warning",
            "message": "psi of age",
        }

    alerts: sa.Table = Alert.__table__  # type: ignore[attr-defined]
    with db.engine.begin() as conn:
        conn.execute(alerts.insert(), [alert(d) for d in (5, 40, 41, 400)])
    _fill(db, NOW)
    days = policy({"alerts": 30})
    chosen = cutoffs(days, NOW, tables=["alerts"])
    done = purge(
        db.engine,
        chosen,
        archive_dir=tmp_path,
        by="x",
        reason="policy",
        environment="production",
        now=NOW,
    )
    assert [(d.table, d.rows) for d in done] == [("alerts", 3)]
    assert db.rows("SELECT count(*) AS n FROM alerts")[0]["n"] == 1
    assert _counts(db)["card_audit"] == 42  # other tables untouched
    assert pq.read_table(done[0].file).num_rows == 3  # type: ignore[arg-type]
    assert verify_chain(db.engine) == [] and verify_archives(db.engine, tmp_path) == []

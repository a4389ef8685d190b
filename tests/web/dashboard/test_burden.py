"""The alert-burden panel, on SQLite and PostgreSQL: a real service on loopback over synthetic
cards; the figures of /dashboard/api/data and of the page's table must be the ``thresholds``
command's for the same cards, and a threshold with fewer alerts than the minimum shows no figure."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from typer.testing import CliRunner

from cds_service.cli import app
from cds_service.main import create_app
from tests.utils.audit_rows import card_row, insert, outcome_row
from tests.utils.server import ServerThread
from tests.utils.service import Database, make_settings

START = datetime(2026, 3, 2, tzinfo=UTC)
DAYS = 14
QUERY = {
    "service": "ed-admission-risk",
    "environment": "production",
    "model": "ed-admission",
    "from": "2026-03-02",
    "to": "2026-03-15",
}


def _cards(db: Database) -> None:
    """Two weeks of live cards, outcomes on about 70%; few risks above 0.9 (a small cell)."""
    rng = random.Random(5)
    cards: list[dict[str, Any]] = []
    outcomes: list[dict[str, Any]] = []
    for day in range(DAYS):
        for i in range(30):
            at = START + timedelta(days=day, minutes=rng.randrange(24 * 60), seconds=i)
            risk = round(min(rng.betavariate(1.0, 2.2), 0.94), 4)
            card = card_row(at, risk, patient=f"syn-{day}-{i}")
            cards.append(card)
            if rng.random() < 0.7:
                outcomes.append(outcome_row(card, int(rng.random() < risk), "admitted_24h"))
    cards.append(card_row(START + timedelta(days=DAYS), 0.9, patient="after"))
    insert(db.engine, cards, outcomes=outcomes)


def _cli_grid(db: Database, tmp: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, list[str]]:
    monkeypatch.setenv("CDS_DATA_DIR", str(tmp / "data"))
    monkeypatch.setenv("CDS_DATABASE_URL", db.url)
    args = ["thresholds", "--model", "ed-admission", "--env", "production"]
    args += ["--from", "2026-03-02", "--to", "2026-03-16"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    header = next(i for i, line in enumerate(lines) if line.split()[:1] == ["threshold"])
    return {line.split()[0]: line.split() for line in lines[header + 1 :]}


def _printed(value: float | None, fmt: str) -> str:
    return "suppressed" if value is None else format(value, fmt)


def test_panel_equals_the_thresholds_command(
    db: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _cards(db)
    cli = _cli_grid(db, tmp_path, monkeypatch)
    settings = make_settings(db.url, tmp_path, dashboard_dev_user="Dev Tester")
    with (
        ServerThread(create_app(settings)) as server,
        httpx.Client(base_url=server.url, timeout=30) as client,
    ):
        body = client.get("/dashboard/api/data", params=QUERY).json()
        page = client.get("/dashboard", params=QUERY).text
    burden = body["burden"]
    assert burden["model"] == "ed-admission" and burden["days"] == DAYS
    assert burden["risk_cards"] == DAYS * 30
    rows = burden["rows"]
    assert len(rows) == len(cli) and len(rows) >= 19
    marked = [r["threshold"] for r in rows if r["band_limit"]]
    assert marked == [0.2, 0.5]  # ed-admission-risk's band limits
    small = 0
    for r in rows:
        line = cli[f"{r['threshold']:.2f}{'*' if r['band_limit'] else ''}"]
        # CLI columns: threshold alerts per-day peak-day day evening night sensitivity PPV NNA
        if r["alerts"] is None:
            small += 1
            assert line[1] == "<10" and line[2] == "suppressed"
            assert {"alerts", "per_day"} <= set(r["suppressed"])
            assert r["per_day"] is None
        else:
            assert line[1] == str(r["alerts"])
            assert line[2] == f"{r['per_day']:.1f}"
        assert line[-3] in (_printed(r["sensitivity"], ".3f"), "-")
        assert line[-2] in (_printed(r["ppv"], ".3f"), "-")
        if r["ppv"] is not None and line[-1] != "-":
            assert line[-1] == f"{r['nna']:.1f}"
        if r["ppv"] is None:
            assert r["nna"] is None
    assert small >= 1  # the grid reaches into thresholds with fewer than 10 alerts
    # a shown row has every figure, checked by hand at 0.5 against the rows inserted
    half = next(r for r in rows if r["threshold"] == 0.5)
    assert None not in (half["alerts"], half["sensitivity"], half["ppv"], half["nna"])
    # the page's table: the same figures, a small cell shows "suppressed", never a number
    assert "data-table='burden'" in page
    table = page.split("data-table='burden'")[1].split("</table>")[0]
    top = next(r for r in rows if r["alerts"] is None)
    cells = table.split(f"<th scope='row'>{top['threshold']:.2f}")[1].split("</tr>")[0]
    assert "suppressed" in cells and not any(ch.isdigit() for ch in cells.split("</th>")[1])
    shown = table.split("<th scope='row'>0.50 *")[1].split("</tr>")[0]
    assert f"<td>{half['alerts']:,}</td>" in shown


def test_hand_count_at_a_band_limit(
    db: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The 0.5 row against SQL written here."""
    _cards(db)
    settings = make_settings(db.url, tmp_path, dashboard_dev_user="Dev Tester")
    with (
        ServerThread(create_app(settings)) as server,
        httpx.Client(base_url=server.url, timeout=30) as client,
    ):
        rows = client.get("/dashboard/api/data", params=QUERY).json()["burden"]["rows"]
    half = next(r for r in rows if r["threshold"] == 0.5)
    end = START + timedelta(days=DAYS)
    sql = (
        "SELECT count(*) AS alerts, "
        "sum(CASE WHEN o.label IS NOT NULL THEN 1 ELSE 0 END) AS labelled, "
        "sum(CASE WHEN o.label = 1 THEN 1 ELSE 0 END) AS tp "
        "FROM v_cards c LEFT JOIN outcomes o ON o.card_uuid = c.card_uuid "
        "AND o.label_name = 'admitted_24h' "
        "WHERE c.model_name = 'ed-admission' AND c.card_kind = 'risk' AND c.risk >= 0.5 "
        "AND c.requested_at >= :start AND c.requested_at < :end"
    )
    hand = db.rows(sql, start=START, end=end)[0]
    positives = db.rows(
        "SELECT count(*) AS n FROM v_cards c JOIN outcomes o ON o.card_uuid = c.card_uuid "
        "WHERE o.label = 1 AND c.requested_at >= :start AND c.requested_at < :end",
        start=START,
        end=end,
    )[0]["n"]
    assert half["alerts"] == hand["alerts"]
    assert half["per_day"] == pytest.approx(hand["alerts"] / DAYS)
    assert half["ppv"] == pytest.approx(hand["tp"] / hand["labelled"])
    assert half["sensitivity"] == pytest.approx(hand["tp"] / positives)
    assert half["nna"] == pytest.approx(hand["labelled"] / hand["tp"])

"""Alert burden by threshold, on SQLite and PostgreSQL: the grid's counts are checked against
SQL written here by hand (per threshold, per UTC day and per shift hour), and the printed grid
against the small-cell rule."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from cds_service.cli import ExitCode, app
from cds_service.monitoring.alert_burden import DEFAULT_GRID, alert_burden, parse_shifts
from cds_service.monitoring.burden_report import render_burden
from tests.utils.audit_rows import card_row, insert, outcome_row
from tests.utils.service import Database

MODEL = "ed-admission"
LABEL = "admitted_24h"
START = datetime(2026, 3, 2, tzinfo=UTC)
END = START + timedelta(days=28)


def _month(db: Database, seed: int = 7, per_day: int = 40) -> None:
    """A month of live cards (some without a risk), outcomes for about 70% (and another label
    that must be ignored), plus rows the grid must leave out: shadow cards, another model,
    cards just outside the period."""
    rng = random.Random(seed)
    cards: list[dict[str, Any]] = []
    outcomes: list[dict[str, Any]] = []
    for day in range(28):
        for i in range(per_day):
            at = START + timedelta(days=day, minutes=rng.randrange(24 * 60), seconds=i)
            risk = None if rng.random() < 0.05 else round(rng.betavariate(0.8, 1.6), 4)
            card = card_row(at, risk, patient=f"syn-{day}-{i}")
            cards.append(card)
            if risk is not None and rng.random() < 0.7:
                outcomes.append(outcome_row(card, int(rng.random() < risk), LABEL))
                if rng.random() < 0.1:
                    outcomes.append(outcome_row(card, 1, "other_label"))
            if i % 10 == 0:
                cards.append(card_row(at, 0.9, patient=f"syn-{day}-{i}", role="shadow"))
                cards.append(card_row(at, 0.9, patient=f"syn-{day}-{i}", model="other-model"))
    cards.append(card_row(START - timedelta(seconds=1), 0.9, patient="before"))
    cards.append(card_row(END, 0.9, patient="at-end"))
    insert(db.engine, cards, outcomes=outcomes)


def _hour(db: Database) -> str:
    if db.engine.dialect.name == "postgresql":
        return "CAST(EXTRACT(HOUR FROM c.requested_at AT TIME ZONE 'UTC') AS INTEGER)"
    return "CAST(strftime('%H', c.requested_at) AS INTEGER)"


def _day(db: Database) -> str:
    if db.engine.dialect.name == "postgresql":
        return "to_char(c.requested_at AT TIME ZONE 'UTC', 'YYYY-MM-DD')"
    return "substr(CAST(c.requested_at AS TEXT), 1, 10)"


def _by_hand(db: Database, t: float) -> dict[str, Any]:
    where = (
        "c.model_name = :m AND c.role = 'live' AND c.card_kind = 'risk' "
        "AND c.requested_at >= :s AND c.requested_at < :e"
    )
    p = {"m": MODEL, "s": START, "e": END, "t": t, "label": LABEL}
    one = db.rows(
        f"""SELECT count(*) AS alerts,
               sum(CASE WHEN o.label IS NOT NULL THEN 1 ELSE 0 END) AS labelled,
               sum(CASE WHEN o.label = 1 THEN 1 ELSE 0 END) AS tp
            FROM card_audit c LEFT JOIN outcomes o
              ON o.card_uuid = c.card_uuid AND o.label_name = :label
            WHERE {where} AND c.risk >= :t""",
        **p,
    )[0]
    positives = db.rows(
        f"""SELECT count(*) AS n FROM card_audit c JOIN outcomes o
              ON o.card_uuid = c.card_uuid AND o.label_name = :label
            WHERE {where} AND o.label = 1""",
        **p,
    )[0]["n"]
    hour = _hour(db)
    shifts = db.rows(
        f"""SELECT CASE WHEN {hour} >= 7 AND {hour} < 15 THEN 'day'
                        WHEN {hour} >= 15 AND {hour} < 23 THEN 'evening'
                        ELSE 'night' END AS shift, count(*) AS n
            FROM card_audit c WHERE {where} AND c.risk >= :t GROUP BY 1""",
        **p,
    )
    peak = db.rows(
        f"""SELECT max(n) AS peak FROM (SELECT {_day(db)} AS d, count(*) AS n
            FROM card_audit c WHERE {where} AND c.risk >= :t GROUP BY 1) per_day""",
        **p,
    )[0]["peak"]
    return {
        "alerts": one["alerts"],
        "labelled": one["labelled"] or 0,
        "tp": one["tp"] or 0,
        "positives": positives,
        "shifts": {r["shift"]: r["n"] for r in shifts},
        "peak": peak or 0,
    }


def test_the_grid_counts_equal_sql_by_hand(db: Database) -> None:
    _month(db)
    burden = alert_burden(db.engine, MODEL, START, END, labels={"1.0.0": LABEL})

    assert burden.days == 28 and burden.versions == ["1.0.0"]
    assert [f.threshold for f in burden.rows] == list(DEFAULT_GRID)
    everything = _by_hand(db, 0.0)
    assert (burden.risk_cards, burden.labelled, burden.positives) == (
        everything["alerts"],
        everything["labelled"],
        everything["tp"],
    )
    for figures in burden.rows:
        hand = _by_hand(db, figures.threshold)
        assert figures.alerts == hand["alerts"] > 0
        assert figures.labelled_alerts == hand["labelled"]
        assert figures.true_alerts == hand["tp"]
        assert burden.positives == hand["positives"]
        assert {k: v for k, v in figures.by_shift.items() if v} == hand["shifts"]
        assert figures.peak_day == hand["peak"]
        assert sum(figures.by_day.values()) == figures.alerts
    # more alerts at a lower threshold, never fewer
    alerts = [f.alerts for f in burden.rows]
    assert alerts == sorted(alerts, reverse=True) and alerts[0] > alerts[-1]


def test_shadow_run_version_and_zone(db: Database) -> None:
    _month(db)
    shadow = alert_burden(db.engine, MODEL, START, END, labels={}, role="shadow", grid=(0.5, 0.95))
    assert [f.alerts for f in shadow.rows] == [28 * 4, 0]
    assert shadow.labelled == 0
    none = alert_burden(db.engine, MODEL, START, END, labels={}, version="2.0.0")
    assert none.risk_cards == 0
    # Amsterdam: UTC+1 in March until the 29th; the same cards, other shifts and days
    local = alert_burden(
        db.engine, MODEL, START, END, labels={"1.0.0": LABEL}, timezone="Europe/Amsterdam"
    )
    utc = alert_burden(db.engine, MODEL, START, END, labels={"1.0.0": LABEL})
    assert local.rows[3].alerts == utc.rows[3].alerts
    assert local.rows[3].by_shift != utc.rows[3].by_shift
    assert local.days == 28


def test_parse_shifts_refuses_bad_input() -> None:
    assert parse_shifts("early=6,late=14,night=22") == {"early": 6, "late": 14, "night": 22}
    for bad in ("day=25", "day", "a=7,b=7", "=7"):
        with pytest.raises(ValueError):
            parse_shifts(bad)


def test_printed_grid_suppresses_small_cells(db: Database) -> None:
    """Few cards: every printed count below 10 shows as <10, every ratio over a small cell as
    'suppressed'; nothing computed from fewer than 10 cards appears."""
    rng = random.Random(3)
    cards = [
        card_row(START + timedelta(hours=5 * i), 0.05 + 0.9 * i / 40, patient=f"s{i}")
        for i in range(40)
    ]
    outcomes = [outcome_row(c, int(rng.random() < 0.5), LABEL) for c in cards[::2]]
    insert(db.engine, cards, outcomes=outcomes)
    burden = alert_burden(db.engine, MODEL, START, END, labels={"1.0.0": LABEL}, grid=(0.1, 0.8))
    text = render_burden(burden, 10)
    low, high = text.splitlines()[-2:]
    # 0.80: 6 alerts (a small cell); 0.10: 37
    assert 0 < burden.rows[1].alerts < 10 and burden.rows[0].alerts >= 10
    assert high.split()[:4] == ["0.80", "<10", "suppressed", "<10"]
    assert high.split()[-3:] == ["suppressed"] * 3
    assert low.split()[1] == str(burden.rows[0].alerts)
    for cell in high.split()[1:]:
        assert cell in ("<10", "suppressed", "0.0", "-") or not cell[0].isdigit(), cell
    assert "ward: not recorded" in text


def test_cli_prints_the_grid(db: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _month(db)
    monkeypatch.setenv("CDS_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("CDS_DATABASE_URL", db.url)
    runner = CliRunner()
    args = ["thresholds", "--model", MODEL, "--from", "2026-03-02", "--to", "2026-03-30"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    header = next(i for i, line in enumerate(lines) if line.split()[:1] == ["threshold"])
    assert lines[header].split() == [
        "threshold",
        "alerts",
        "per",
        "day",
        "peak",
        "day",
        "day/day",
        "evening/day",
        "night/day",
        "sensitivity",
        "PPV",
        "NNA",
    ]
    grid = lines[header + 1 :]
    assert len(grid) == len(DEFAULT_GRID)
    hand = _by_hand(db, 0.5)
    # the hook definition's band limits (ed-admission-risk: 0.2 and 0.5) are marked
    assert [line.split()[0] for line in grid if "*" in line.split()[0]] == ["0.20*", "0.50*"]
    row = next(line.split() for line in grid if line.split()[0] == "0.50*")
    assert row[1] == str(hand["alerts"])
    assert row[2] == f"{hand['alerts'] / 28:.1f}"
    assert row[-2] == f"{hand['tp'] / hand['labelled']:.3f}"
    assert row[-3] == f"{hand['tp'] / hand['positives']:.3f}"
    assert row[-1] == f"{hand['labelled'] / hand['tp']:.1f}"

    empty = runner.invoke(app, [*args[:3], "--from", "2020-01-01", "--to", "2020-02-01"])
    assert empty.exit_code == ExitCode.BAD_INPUT
    assert "no live risk cards of ed-admission" in empty.output
    bad = runner.invoke(app, [*args, "--grid", "0.5,2"])
    assert bad.exit_code == ExitCode.BAD_INPUT
    assert "between 0 and 1" in bad.output

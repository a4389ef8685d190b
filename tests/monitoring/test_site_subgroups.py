"""Site-configured fairness subgroups (a TOML file), on SQLite and PostgreSQL: counts checked by
hand on a cohort built card by card, the same ratios and small-cell rule as sex and age band,
and a wrong file refused at load with a message naming the entry and the problem."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from cds_service.cli import ExitCode, app
from cds_service.monitoring.fairness import fairness_counts
from cds_service.monitoring.site_subgroups import load_site_subgroups
from tests.utils.audit_rows import card_row, insert, outcome_row
from tests.utils.service import Database

START = datetime(2026, 3, 2, tzinfo=UTC)
END = START + timedelta(days=2)
SUBGROUPS = """
[[subgroup]]
name = "ambulance"
feature = "arrival_ambulance"
equals = 1

[[subgroup]]
name = "age-80-plus"
feature = "age"
min = 80
"""


def _cohort(db: Database) -> None:
    """Flagged = indicator warning or critical (risk >= 0.2 in card_row).
    ambulance (aged 85): 8 flagged (6 positive, 2 negative), 4 not (1 positive, 3 negative);
    not ambulance (aged 50): 10 flagged (4 positive, 6 negative), 16 not (2 positive,
    12 negative, 2 without an outcome); 2 cards without arrival_ambulance (aged 90, risk 0.9,
    no outcome)."""
    plan: list[tuple[int | None, int, float, int | None]] = []  # ambulance, age, risk, label
    plan += (
        [(1, 85, 0.6, 1)] * 6 + [(1, 85, 0.6, 0)] * 2 + [(1, 85, 0.1, 1)] + [(1, 85, 0.1, 0)] * 3
    )
    plan += [(0, 50, 0.3, 1)] * 4 + [(0, 50, 0.3, 0)] * 6
    plan += [(0, 50, 0.1, 1)] * 2 + [(0, 50, 0.1, 0)] * 12 + [(0, 50, 0.1, None)] * 2
    plan += [(None, 90, 0.9, None)] * 2
    cards: list[dict[str, Any]] = []
    outcomes: list[dict[str, Any]] = []
    for i, (ambulance, age, risk, label) in enumerate(plan):
        card = card_row(START + timedelta(minutes=20 * i), risk, patient=f"syn-{i}")
        feats: dict[str, Any] = {"age": age, "sex_male": i % 2}
        if ambulance is not None:
            feats["arrival_ambulance"] = ambulance
        card["features"] = json.dumps(feats)
        cards.append(card)
        if label is not None:
            outcomes.append(outcome_row(card, label, "admitted_24h"))
    insert(db.engine, cards, outcomes=outcomes)


def _counts(db: Database, tmp_path: Path) -> dict[str, tuple[int, ...]]:
    path = tmp_path / "subgroups.toml"
    path.write_text(SUBGROUPS, encoding="utf-8")
    counts = fairness_counts(
        db.engine,
        "ed-admission",
        START,
        END,
        labels={"1.0.0": "admitted_24h"},
        site_subgroups=load_site_subgroups(path),
    )
    return {
        name: (g.cards, g.flagged, g.labelled, g.positives, g.flagged_labelled, g.true_flags)
        for name, g in counts.groups.items()
    }


def test_site_subgroups_counted_by_hand(db: Database, tmp_path: Path) -> None:
    _cohort(db)
    groups = _counts(db, tmp_path)
    # cards, flagged, labelled, positives, flagged with outcome, true flags
    assert groups["ambulance=yes"] == (12, 8, 12, 7, 8, 6)
    assert groups["ambulance=no"] == (26, 10, 24, 6, 10, 4)
    assert groups["age-80-plus=yes"] == (14, 10, 12, 7, 8, 6)
    assert groups["age-80-plus=no"] == (26, 10, 24, 6, 10, 4)
    assert groups["sex=male"][0] + groups["sex=female"][0] == 40  # the built-in kinds stay


def test_cli_ratios_rule_and_small_cells(
    db: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _cohort(db)
    path = tmp_path / "subgroups.toml"
    path.write_text(SUBGROUPS, encoding="utf-8")
    monkeypatch.setenv("CDS_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("CDS_DATABASE_URL", db.url)
    monkeypatch.setenv("CDS_FAIRNESS_SUBGROUPS_FILE", str(path))
    args = ["fairness", "--model", "ed-admission", "--from", "2026-03-02", "--to", "2026-03-04"]
    runner = CliRunner()
    # with a minimum of 1, every figure shows: ratios to the largest group (ambulance=no)
    monkeypatch.setenv("CDS_SMALL_CELL_MIN", "1")
    exact = runner.invoke(app, args)
    assert exact.exit_code == ExitCode.FAIRNESS, exact.output
    row = next(
        line.split()
        for line in exact.output.splitlines()
        if line.strip().startswith("ambulance=yes")
    )
    flag, sens, ppv = 8 / 12, 6 / 7, 6 / 8
    ref_flag, ref_sens, ref_ppv = 10 / 26, 4 / 6, 4 / 10
    assert row == [
        "ambulance=yes",
        "12",
        f"{flag:.3f}",
        f"{flag / ref_flag:.2f}",
        f"{sens:.3f}",
        f"{sens / ref_sens:.2f}",
        f"{ppv:.3f}",
        f"{ppv / ref_ppv:.2f}",
    ]
    assert "ambulance ambulance=no" in exact.output  # the reference of the kind
    assert "FINDING ambulance=yes: flag rate" in exact.output  # 1.73 > 1.25
    # the default minimum (10): 4 unflagged ambulance cards make its flag rate a small cell
    monkeypatch.setenv("CDS_SMALL_CELL_MIN", "10")
    safe = runner.invoke(app, args)
    assert safe.exit_code in (0, ExitCode.FAIRNESS), safe.output
    row = next(
        line.split()
        for line in safe.output.splitlines()
        if line.strip().startswith("ambulance=yes")
    )
    assert row[:4] == ["ambulance=yes", "12", "suppressed", "suppressed"]
    assert "FINDING ambulance=yes: flag rate" not in safe.output


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("[[subgroup]]\nname='a'\nfeature='age'\nequals=1\nmin=2\n", "either equals, or a range"),
        ("[[subgroup]]\nname='a'\nfeature='age'\n", "either equals, or a range"),
        ("[[subgroup]]\nname='a'\nfeature='age'\nmin=80\nbelow=20\n", "min 80.0 is not below"),
        ("[[subgroup]]\nname='a'\nfeature='age'\nequal=1\n", "equal: Extra inputs"),
        ("[[subgroup]]\nname='sex'\nfeature='sex_male'\nequals=1\n", "built-in subgroup"),
        ("[[subgroup]]\nname='A B'\nfeature='age'\nequals=1\n", "name: String should match"),
        ("[[subgroup]]\nname='a'\nfeature='age'\nequals='x'\n", "equals: Input should be"),
        ("[[group]]\nname='a'\n", "expected one or more [[subgroup]]"),
        ("[[subgroup]\nname=", "not TOML"),
        ("[[subgroup]]\nname='a'\nfeature='f'\nequals=1\n" * 2, "appears twice"),
    ],
)
def test_a_wrong_file_is_refused_at_load(tmp_path: Path, text: str, problem: str) -> None:
    path = tmp_path / "subgroups.toml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ValueError, match="subgroups file") as info:
        load_site_subgroups(path)
    assert problem in str(info.value)


def test_cli_refuses_a_wrong_or_missing_file(
    db: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CDS_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("CDS_DATABASE_URL", db.url)
    args = ["fairness", "--model", "ed-admission", "--from", "2026-03-02", "--to", "2026-03-04"]
    missing = CliRunner().invoke(app, [*args, "--subgroups", str(tmp_path / "none.toml")])
    assert missing.exit_code == ExitCode.BAD_INPUT
    assert "cannot read" in missing.output
    bad = tmp_path / "bad.toml"
    bad.write_text("[[subgroup]]\nname='a'\nfeature='age'\n", encoding="utf-8")
    wrong = CliRunner().invoke(app, [*args, "--subgroups", str(bad)])
    assert wrong.exit_code == ExitCode.BAD_INPUT
    assert "subgroup 1" in wrong.output and "either equals" in wrong.output

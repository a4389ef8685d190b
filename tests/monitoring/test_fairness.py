"""Fairness ratios per subgroup, on SQLite and PostgreSQL: the counts are recomputed here with
plain loops over the rows inserted, the four-fifths rule finds the group built to be flagged
half as often, and a group of fewer than 10 cards shows no figure."""

from __future__ import annotations

import json
import random
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from cds_service.cli import ExitCode, app
from cds_service.monitoring.fairness import fairness_counts
from cds_service.monitoring.fairness_report import findings, references, render_fairness
from tests.utils.audit_rows import card_row, insert, outcome_row
from tests.utils.service import Database

MODEL = "ed-admission"
LABEL = "admitted_24h"
START = datetime(2026, 3, 2, tzinfo=UTC)
END = START + timedelta(days=14)


def _cohort(db: Database) -> list[tuple[dict[str, Any], int | None]]:
    """300 men and 300 women aged 55-85 (women's risks halved: flagged about half as often),
    6 patients aged 30 (a small cell); outcomes for about 80%."""
    rng = random.Random(5)
    rows: list[tuple[dict[str, Any], int | None]] = []
    cards, outcomes = [], []
    for i in range(606):
        male = i % 2
        age = 30 if i >= 600 else rng.randint(55, 85)
        risk = rng.betavariate(1.2, 1.5) * (1.0 if male else 0.5)
        card = card_row(START + timedelta(minutes=30 * i), risk, patient=f"syn-{i}")
        card["features"] = json.dumps({"age": age, "sex_male": male, "heart_rate": None})
        label = int(rng.random() < risk) if rng.random() < 0.8 else None
        cards.append(card)
        if label is not None:
            outcomes.append(outcome_row(card, label, LABEL))
        rows.append((card, label))
    insert(db.engine, cards, outcomes=outcomes)
    return rows


def _expected(rows: list[tuple[dict[str, Any], int | None]], group: str) -> dict[str, int]:
    kind, _, value = group.partition("=")
    out = dict.fromkeys(("cards", "flagged", "labelled", "positives", "fl", "tp"), 0)
    for card, label in rows:
        feats = json.loads(card["features"])
        if kind == "sex" and feats["sex_male"] != (value == "male"):
            continue
        lo, _, hi = value.partition("-")
        if kind == "age" and not float(lo) <= feats["age"] < float(hi):
            continue
        flagged = card["indicator"] in ("warning", "critical")
        out["cards"] += 1
        out["flagged"] += flagged
        out["labelled"] += label is not None
        out["positives"] += label == 1
        out["fl"] += flagged and label is not None
        out["tp"] += flagged and label == 1
    return out


def test_counts_ratios_and_the_four_fifths_rule(db: Database) -> None:
    rows = _cohort(db)
    counts = fairness_counts(db.engine, MODEL, START, END, labels={"1.0.0": LABEL})
    assert set(counts.groups) == {"sex=female", "sex=male", "age=0-50", "age=50-70", "age=70-200"}
    for name, g in counts.groups.items():
        e = _expected(rows, name)
        got = (g.cards, g.flagged, g.labelled, g.positives, g.flagged_labelled, g.true_flags)
        assert got == (e["cards"], e["flagged"], e["labelled"], e["positives"], e["fl"], e["tp"])

    refs = references(counts)
    assert refs["sex"] in ("sex=male", "sex=female") and refs["age"] in ("age=50-70", "age=70-200")
    refs = references(counts, {"sex": "sex=male"})
    found = findings(counts, refs, 0.8, 10)
    female = [f for f in found if f.subgroup == "sex=female" and f.rate == "flag rate"]
    men, women = counts.groups["sex=male"], counts.groups["sex=female"]
    assert len(female) == 1
    assert female[0].ratio == pytest.approx(
        (women.flagged / women.cards) / (men.flagged / men.cards)
    )
    assert female[0].ratio < 0.8
    assert not [f for f in found if f.subgroup == "age=0-50"]  # 6 cards: no figure, no finding

    text = render_fairness(counts, refs, 0.8, 10)
    small = next(line for line in text.splitlines() if line.strip().startswith("age=0-50"))
    assert small.split() == ["age=0-50", "<10", *(["suppressed"] * 6)]
    assert "FINDING sex=female: flag rate" in text

    # a candidate threshold instead of the recorded indicator
    high = fairness_counts(db.engine, MODEL, START, END, labels={"1.0.0": LABEL}, threshold=0.9)
    assert high.groups["sex=male"].flagged == sum(
        1 for c, _ in rows if c["risk"] >= 0.9 and json.loads(c["features"])["sex_male"] == 1
    )


def test_cli_exit_code_on_a_finding(
    db: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _cohort(db)
    monkeypatch.setenv("CDS_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("CDS_DATABASE_URL", db.url)
    runner = CliRunner()
    args = ["fairness", "--model", MODEL, "--from", "2026-03-02", "--to", "2026-03-16"]
    result = runner.invoke(app, [*args, "--reference", "sex=male"])
    assert result.exit_code == ExitCode.FAIRNESS, result.output
    assert "FINDING sex=female: flag rate" in result.output
    assert "references: age age=" in result.output and "sex sex=male" in result.output
    loose = runner.invoke(app, [*args, "--min-ratio", "0.01"])
    assert loose.exit_code == 0, loose.output
    assert "no ratio outside the rule" in loose.output
    bad = runner.invoke(app, [*args, "--reference", "sex=other"])
    assert bad.exit_code == ExitCode.BAD_INPUT
    assert "reference 'sex=other' has no cards" in bad.output

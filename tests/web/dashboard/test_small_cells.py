"""Small-cell suppression on the dashboard, on SQLite and PostgreSQL: a real monitoring run over
synthetic cards with one small age band, then the dashboard's data (what the page and
/dashboard/api/data show) must carry no subgroup figure, calibration bin or override-reason
count computed from fewer than the minimum."""

from __future__ import annotations

import json
import random
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cds_service.monitoring import run_monitoring
from cds_service.serving.registry import load_registry
from cds_service.web.dashboard import queries
from cds_service.web.dashboard.panels.monitoring import subgroup_panel
from cds_service.web.dashboard.routes import plain
from tests.utils.audit_rows import card_row, feedback_row, insert, outcome_row
from tests.utils.service import Database

REPO = Path(__file__).resolve().parents[3]
START = datetime(2026, 3, 2, tzinfo=UTC)
END = START + timedelta(days=7)


def _cards(db: Database) -> None:
    """150 cards aged 50 and 4 aged 92 (a small age band); outcomes on all; overrides with one
    reason given 12 times and another 3 times."""
    rng = random.Random(11)
    cards, outcomes, feedback = [], [], []
    for i in range(154):
        risk = rng.betavariate(0.7, 2.5)  # few high risks: small calibration bins
        card = card_row(START + timedelta(minutes=60 * i), risk, patient=f"syn-{i}")
        card["features"] = json.dumps({"age": 92 if i < 4 else 50, "sex_male": i % 2})
        cards.append(card)
        outcomes.append(outcome_row(card, int(rng.random() < risk), "admitted_24h"))
        if 10 <= i < 25:
            fb = feedback_row(card, "overridden")
            fb["override_reason_code"] = "already-known" if i < 22 else "rare-reason"
            feedback.append(fb)
    insert(db.engine, cards, feedback, outcomes)


def test_no_dashboard_figure_from_a_small_cell(db: Database) -> None:
    _cards(db)
    run_monitoring(db.engine, REPO / "models", window_start=START, window_end=END)
    registry = load_registry(REPO / "hooks", REPO / "models")
    f = queries.Filters(
        service_id="ed-admission-risk",
        environment="production",
        start=START.date(),
        end=(END - timedelta(days=1)).date(),
    )
    exact = queries.collect(db.engine, registry, f, small_cell_min=1)
    data = queries.collect(db.engine, registry, f)

    # the exact figures have small cells; the suppressed ones none
    small_bands = [r for r in exact.subgroups if r.figures.get("volume", (0, 0))[0] == 4]
    assert len(small_bands) == 1
    assert any(b.n < 10 for b in exact.calibration)
    assert ("rare-reason", 3) in exact.feedback.reasons

    for row in data.subgroups:
        for metric, (value, n) in row.figures.items():
            if metric in row.suppressed:
                assert (value, n) == (None, 0)
                continue
            assert n >= 10, (row.subgroup, metric, n)
            if metric in ("volume", "outcomes"):
                assert value is not None and value >= 10
    band = next(r for r in data.subgroups if r.subgroup == small_bands[0].subgroup)
    assert set(band.suppressed) == set(band.figures) and band.figures
    assert all(b.n >= 10 for b in data.calibration) and data.calibration
    assert data.feedback.reasons == [("already-known", 12)]

    # what leaves: the JSON of /dashboard/api/data and the subgroup panel's HTML
    body = plain(data)
    small = next(r for r in body["subgroups"] if r["subgroup"] == band.subgroup)
    assert all(v == [None, 0] for v in small["figures"].values())
    html = subgroup_panel(data)
    row_html = html.split(f">{band.subgroup}<", 1)[1].split("</tr>", 1)[0]
    assert row_html.count("&lt;10") == len(
        [
            m
            for m in ("volume", "alert_rate", "outcomes", "prevalence", "auroc", "brier")
            if m in band.figures
        ]
    )
    assert ">4<" not in row_html

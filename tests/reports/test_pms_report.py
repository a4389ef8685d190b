"""The post-market surveillance report and the applied model card, on SQLite and PostgreSQL: for
each bundled model a four-week simulated period is monitored, `cds-service report pms` prints
the PDF with Debian's Chromium, and the PDF is read back (pages, section headings). Small cells
(a subgroup of 6 cards, an override reason given 3 times) show no figure in the HTML, the PDF or
the JSON card."""

from __future__ import annotations

import json
import re
from datetime import timedelta
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from pypdf import PdfReader
from typer.testing import CliRunner

from cds_service.cli import ExitCode, app
from cds_service.db.tables import MonitoringResult
from cds_service.monitoring.context import load_context
from cds_service.reports import AppliedModelCard, screenshot
from cds_service.reports.pms_types import figure
from tests.utils import pms_cohort
from tests.utils.browser import require_chromium
from tests.utils.screenshots import screenshot_dir
from tests.utils.service import Database

REPO = Path(__file__).resolve().parents[2]
MODELS = ("ed-admission", "ed-admission-arrival", "post-mi-unplanned-visit")
SECTIONS = (
    "Indicators against the plan",
    "1. Use",
    "2. Performance, realized and estimated",
    "3. Calibration",
    "4. Drift",
    "5. Subgroups",
    "6. Alerts and how they were handled",
    "7. Feedback and override reasons",
    "8. Deployments and changes",
)
PERIOD = ["--from", "2026-03-02", "--to", "2026-03-30"]


class _Cells(HTMLParser):
    """The rows of every table: lists of cell texts."""

    def __init__(self) -> None:
        super().__init__()
        self.rows: list[list[str]] = []
        self._cell: list[str] | None = None

    def handle_starttag(self, tag: str, attrs: Any) -> None:
        if tag == "tr":
            self.rows.append([])
        elif tag in ("td", "th"):
            self._cell = []

    def handle_endtag(self, tag: str) -> None:
        if tag in ("td", "th") and self._cell is not None:
            self.rows[-1].append("".join(self._cell).strip())
            self._cell = None

    def handle_data(self, data: str) -> None:
        if self._cell is not None:
            self._cell.append(data)


def _cells(html: str) -> list[list[str]]:
    parser = _Cells()
    parser.feed(html)
    return parser.rows


def _report(db: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, model: str) -> Path:
    monkeypatch.setenv("CDS_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("CDS_DATABASE_URL", db.url)
    out = tmp_path / "out"
    result = CliRunner().invoke(
        app, ["report", "pms", "--model", model, *PERIOD, "--out", str(out)]
    )
    assert result.exit_code == 0, result.output
    assert "exceedance(s) of the PMS plan" in result.output
    return out / f"pms-{model}-20260302-20260330"


def _small_band(model: str) -> str:
    bands = load_context(REPO / "models", model, "1.0.0").age_bands
    return f"age={bands[0]:g}-{bands[1]:g}"


@pytest.mark.parametrize("model", MODELS)
def test_pms_report_pdf_for_each_bundled_model(
    db: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, model: str
) -> None:
    require_chromium()
    built = pms_cohort.build(db.engine, REPO / "models", model)
    stem = _report(db, tmp_path, monkeypatch, model)

    reader = PdfReader(stem.with_suffix(".pdf"))
    assert len(reader.pages) >= 2
    text = re.sub(r"\s+", " ", " ".join(p.extract_text() or "" for p in reader.pages))
    for heading in SECTIONS:
        assert heading in text, heading
    assert f"Post-market surveillance report: {model}" in text
    # The monitor (run_monitoring in the cohort) now writes label-free estimates beside the
    # realized figures: the report shows them.
    assert "estimated_auroc" in text and "not yet estimated" not in text
    band = _small_band(model)
    lines = [ln for p in reader.pages for ln in (p.extract_text() or "").splitlines()]
    small = [ln for ln in lines if band in ln]
    assert small
    assert all(re.search(rf"{band} <10 suppressed (suppressed|-)$", ln) for ln in small), small

    html = stem.with_suffix(".html").read_text()
    rows = _cells(html)
    # use: the live production risk cards, counted by hand
    risk_cards = sum(1 for c in built["cards"] if c["card_kind"] == "risk")
    assert ["1.0.0", "production/live", "risk", str(risk_cards), str(risk_cards)] in rows
    # the trail: both promotions, who and why, with the gate's evidence
    promotions = [r for r in rows if len(r) == 8 and r[2] == "promote"]
    assert [r[4] for r in promotions] == ["acceptance/live", "production/live"]
    assert all(r[5] == "dr-quality-lead" and "gate passed" in r[7] for r in promotions)
    assert promotions[1][0].endswith("*") and not promotions[0][0].endswith("*")

    if db.url.startswith("sqlite"):
        screenshot(stem.with_suffix(".html"), screenshot_dir(tmp_path) / f"pms-report-{model}.png")

    card = AppliedModelCard.model_validate_json(
        stem.with_name(stem.name + ".model-card.json").read_text()
    )
    assert card.ReleaseInfo.ReleaseStage == "live in production"
    assert card.ReleaseInfo.ReleaseVersion == "1.0.0"
    assert card.ReleaseInfo.ReleaseDate == "2026-03-02"
    realized = json.loads(card.KeyMetrics.UsefulnessUsabilityEfficacy.Results[-1].ValueJson)
    assert realized["auroc"]["n"] >= 10


@pytest.mark.parametrize("model", ["ed-admission"])
def test_small_cells_leave_no_output(
    db: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, model: str
) -> None:
    """HTML/PDF: the 6-card subgroup and the reason given 3 times show no figure; JSON: no
    figure from fewer than 10; the exceedances printed come only from figures shown."""
    pms_cohort.build(db.engine, REPO / "models", model)
    monkeypatch.setenv("CDS_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("CDS_DATABASE_URL", db.url)
    out = tmp_path / "out"
    args = ["report", "pms", "--model", model, *PERIOD, "--out", str(out), "--no-pdf"]
    assert CliRunner().invoke(app, args).exit_code == 0
    stem = out / f"pms-{model}-20260302-20260330"
    rows = _cells(stem.with_suffix(".html").read_text())

    band = _small_band(model)
    small = [r for r in rows if len(r) > 2 and r[2] == band]
    assert small, "the small subgroup is listed"
    for r in small:
        assert r[3:] in (["<10", "suppressed", "suppressed"], ["<10", "suppressed", "-"]), r
    rare = [r for r in rows if r and r[0] == pms_cohort.RARE_REASON]
    assert rare == [[pms_cohort.RARE_REASON, "(none given)", "<10", "suppressed"]]
    trail = {r[0] for r in rows if len(r) == 8 and r[2] == "promote"}  # "#": sequence numbers
    for r in rows:  # no bare count from 1 to 9 anywhere else
        assert not [c for c in r if re.fullmatch(r"[1-9]", c) and c not in trail], r

    card = json.loads(stem.with_name(stem.name + ".model-card.json").read_text())
    AppliedModelCard.model_validate(card)
    labels = []
    for metric in card["KeyMetrics"].values():
        for result in metric["Results"]:
            labels.append(result["Label"])
            payload = json.loads(result["ValueJson"])
            for value in [payload, *payload.values()]:
                if isinstance(value, dict) and "n" in value:
                    assert value["n"] >= 10, result
    assert not [label for label in labels if label.startswith(f"{band}, monitoring")]


def test_estimated_figures_are_read_when_monitoring_wrote_them(
    db: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pms_cohort.build(db.engine, REPO / "models", "post-mi-unplanned-visit")
    rows = [
        {
            "run_id": "estimate-run",
            "service_id": "post-mi-unplanned-visit-risk",
            "model_name": "post-mi-unplanned-visit",
            "model_version": "1.0.0",
            "environment": "production",
            "role": "live",
            "window_start": pms_cohort.START + timedelta(days=14 * k),
            "window_end": pms_cohort.START + timedelta(days=14 * (k + 1)),
            "metric": "estimated_auroc",
            "feature": "",
            "subgroup": "",
            "value": value,
            "n": n,
            "details": "{}",
        }
        for k, (value, n) in enumerate(((0.7312, 500), (0.9, 7)))
    ]
    # AUROC below the plan's 0.7 in acceptance: an exceedance when shown, none from 7 outcomes
    rows += [
        {**rows[k], "environment": "acceptance", "metric": "auroc", "value": value, "n": n}
        for k, (value, n) in enumerate(((0.61, 400), (0.42, 7)))
    ]
    table = MonitoringResult.__table__  # type: ignore[attr-defined]
    with db.engine.begin() as conn:
        # The cohort's monitoring run wrote its own estimates; these known values replace them.
        conn.execute(sa.delete(table).where(table.c.metric.like("estimated_%")))
        conn.execute(sa.insert(table), rows)
    monkeypatch.setenv("CDS_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("CDS_DATABASE_URL", db.url)
    out = tmp_path / "out"
    args = ["report", "pms", "--model", "post-mi-unplanned-visit", *PERIOD, "--out", str(out)]
    result = CliRunner().invoke(app, [*args, "--no-pdf"])
    assert result.exit_code == 0, result.output
    assert "auroc 0.610 against the plan's minimum 0.7: 1.0.0 acceptance/live" in result.output
    assert "0.420" not in result.output
    html = (out / "pms-post-mi-unplanned-visit-20260302-20260330.html").read_text()
    assert "not yet estimated" not in html
    estimated = [r for r in _cells(html) if r and "estimated_auroc" in r]
    assert estimated
    assert ["2026-03-02 to 2026-03-16", "1.0.0 production/live", "0.731"] in _cells(html)
    assert ["2026-03-16 to 2026-03-30", "1.0.0 production/live", "suppressed"] in _cells(html)


def test_figure_withholds_small_cells() -> None:
    assert figure("auroc", 0.81, 9, 10) == "suppressed"
    assert figure("auroc", 0.81, 10, 10) == "0.810"
    assert figure("override_rate", 3 / 200, 200, 10) == "suppressed"  # 3 overrides
    assert figure("override_rate", 197 / 200, 200, 10) == "suppressed"  # 3 not overridden
    assert figure("override_rate", 0.5, 200, 10) == "0.500"
    assert figure("auroc", None, 0, 10) == "-"


def test_invalid_plan_is_refused_with_the_field_named(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    models = tmp_path / "models"
    (models / "ed-admission").mkdir(parents=True)
    plan = (REPO / "models" / "ed-admission" / "pms.toml").read_text()
    (models / "ed-admission" / "pms.toml").write_text(
        plan.replace("min_auroc = 0.75", "min_auroc = 1.5").replace(
            "max_psi = 0.25", "max_psi = 0.25\nmax_psl = 0.3"
        )
    )
    monkeypatch.setenv("CDS_MODELS_DIR", str(models))
    monkeypatch.setenv("CDS_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("CDS_DATABASE_URL", f"sqlite:///{tmp_path / 'a.db'}")
    result = CliRunner().invoke(app, ["report", "pms", "--model", "ed-admission", *PERIOD])
    assert result.exit_code == ExitCode.BAD_INPUT
    assert "indicators.min_auroc" in result.output and "indicators.max_psl" in result.output
    missing = CliRunner().invoke(app, ["report", "model-card", "--model", "nope", *PERIOD])
    assert missing.exit_code == ExitCode.BAD_INPUT
    assert "no PMS plan for nope" in missing.output

"""Monitoring over the audit trail, on SQLite and PostgreSQL.

Synthetic cards (synthetic pseudonyms, features drawn from the ed-admission manifest's own reference
sample) are inserted directly; the figures run_monitoring writes are compared with figures computed
here from the raw rows (numpy by hand, scikit-learn, SciPy).
"""

from __future__ import annotations

import json
import logging
import shutil
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import sqlalchemy as sa
from scipy.stats import ks_2samp
from sklearn.metrics import brier_score_loss, roc_auc_score

from cds_service.db.engine import upgrade
from cds_service.db.tables import CardAudit, CardFeedback, Outcome
from cds_service.monitoring import (
    MonitorReport,
    Thresholds,
    parse_duration,
    recent_windows,
    run_monitoring,
    run_recent,
)
from cds_service.monitoring.accumulate import feature_matrix
from cds_service.stats import BottomKSample, psi, reference_bins
from tests.utils.service import Database, new_database

REPO = Path(__file__).resolve().parents[2]
MODEL = "ed-admission"
MANIFEST = json.loads((REPO / "models" / MODEL / "1.0.0" / "manifest.json").read_text())
FEATURES: list[str] = MANIFEST["feature_names"]
LABEL = MANIFEST["label"]["name"]
DAY0 = datetime(2026, 3, 2, tzinfo=UTC)
SERVICE = "ed-admission-risk"
BACKENDS = ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]


# Result rows per monitoring run id (run ids are unique uuids), read once per test.
_RESULTS: dict[str, list[dict[str, Any]]] = {}


@pytest.fixture(scope="module")
def models_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """ed-admission 1.0.0 (live) and a 1.1.0 with the same manifest (the shadow candidate)."""
    root = tmp_path_factory.mktemp("models")
    src = REPO / "models" / MODEL
    shutil.copy(src / "training.toml", root / "training.toml")
    (root / MODEL).mkdir()
    shutil.copy(src / "training.toml", root / MODEL / "training.toml")
    for version in ("1.0.0", "1.1.0"):
        (root / MODEL / version).mkdir()
        shutil.copy(src / "1.0.0" / "manifest.json", root / MODEL / version / "manifest.json")
    return root


# --- synthetic audit rows --------------------------------------------------------------------


def band(risk: float | None) -> tuple[str | None, str]:
    if risk is None:
        return None, "info"
    if risk < 0.2:
        return "low", "info"
    return ("moderate", "warning") if risk < 0.5 else ("high", "critical")


@dataclass
class Cohort:
    cards: list[dict[str, Any]] = field(default_factory=list)
    feedback: list[dict[str, Any]] = field(default_factory=list)
    outcomes: list[dict[str, Any]] = field(default_factory=list)

    def insert(self, db: Database) -> None:
        with db.engine.begin() as conn:
            for table, rows in (
                (CardAudit, self.cards),
                (CardFeedback, self.feedback),
                (Outcome, self.outcomes),
            ):
                if rows:
                    conn.execute(table.__table__.insert(), rows)  # type: ignore[attr-defined]


SAMPLES = {n: np.array(MANIFEST["reference"][n]["sample"]) for n in FEATURES}
MISSING = np.array([MANIFEST["reference"][n]["missing_rate"] for n in FEATURES])


def features_row(rng: np.random.Generator, shift: dict[str, float]) -> dict[str, float | None]:
    """Values drawn from the manifest's reference sample, missing at the reference rate."""
    missing = rng.random(len(FEATURES)) < MISSING
    picks = rng.random(len(FEATURES))
    out: dict[str, float | None] = {}
    for j, name in enumerate(FEATURES):
        sample = SAMPLES[name]
        value = float(sample[int(picks[j] * len(sample))]) + shift.get(name, 0.0)
        out[name] = None if missing[j] else value
    return out


def card(
    day: int,
    i: int,
    feats: dict[str, float | None],
    risk: float | None,
    *,
    version: str = "1.0.0",
    role: str = "live",
    hook_instance: str | None = None,
    environment: str = "production",
) -> dict[str, Any]:
    risk_band, indicator = band(risk)
    return {
        "card_uuid": str(uuid.uuid4()),
        "hook_instance": hook_instance or str(uuid.uuid4()),
        "service_id": SERVICE,
        "hook": "encounter-start",
        "model_name": MODEL,
        "model_version": version,
        "artifact_sha256": "0" * 64,
        "environment": environment,
        "role": role,
        "shown": role == "live",
        "card_kind": "no-risk" if risk is None else "risk",
        "patient_pseudonym": f"synthetic-patient-{day}-{i}",
        "encounter_pseudonym": f"synthetic-encounter-{day}-{i}",
        "requested_at": DAY0 + timedelta(days=day, minutes=i % 1400),
        "risk": risk,
        "risk_band": risk_band,
        "indicator": indicator,
        "latency_ms": 5.0,
        "features": json.dumps(feats),
        "missing_features": json.dumps([k for k, v in feats.items() if v is None]),
        "inputs": "{}",
        "mapper_warnings": "{}",
        "summary": "synthetic",
    }


def cohort(
    seed: int, days: int, per_day: int, *, shift: dict[str, float] | None = None, shadow: int = 0
) -> Cohort:
    """``per_day`` live cards a day (5% without a risk), ``shadow`` of them shadowed by 1.1.0,
    outcomes for about 70% of risk cards, feedback on about 20%."""
    rng = np.random.default_rng(seed)
    c = Cohort()
    reasons = ["already-known", "disagree", "data-wrong"]
    for day in range(days):
        for i in range(per_day):
            feats = features_row(rng, shift or {})
            risk = None if rng.random() < 0.05 else float(rng.beta(0.7, 1.4))
            live = card(day, i, feats, risk)
            c.cards.append(live)
            label = int(rng.random() < risk) if risk is not None else None
            has_outcome = risk is not None and rng.random() < 0.7
            if has_outcome:
                c.outcomes.append(outcome(live["card_uuid"], label))
                if rng.random() < 0.1:  # another label for the same card: must be ignored
                    c.outcomes.append(outcome(live["card_uuid"], 1 - int(label), "other_label"))
            if risk is not None and rng.random() < 0.2:
                overridden = rng.random() < 0.4
                c.feedback.append(
                    {
                        "card_uuid": live["card_uuid"],
                        "service_id": SERVICE,
                        "outcome": "overridden" if overridden else "accepted",
                        "override_reason_code": str(rng.choice(reasons)) if overridden else None,
                        "override_reason_display": None,
                        "accepted_suggestions": "[]",
                        "outcome_timestamp": live["requested_at"] + timedelta(minutes=2),
                        "received_at": live["requested_at"] + timedelta(minutes=2),
                        "channel": "cds-hooks",
                    }
                )
            if i < shadow:
                s_risk = None if risk is None else float(np.clip(risk + rng.normal(0, 0.08), 0, 1))
                sh = card(
                    day,
                    i,
                    feats,
                    s_risk,
                    version="1.1.0",
                    role="shadow",
                    hook_instance=live["hook_instance"],
                )
                sh["requested_at"] = live["requested_at"] + timedelta(milliseconds=5)
                c.cards.append(sh)
                if s_risk is not None and label is not None and has_outcome:
                    # as `cds-service outcomes` does: an outcome for the shadow card too (a few
                    # differ, so that the test sees which one monitoring used)
                    c.outcomes.append(outcome(sh["card_uuid"], label if i % 25 else 1 - label))
    return c


def outcome(card_uuid: str, label: int, label_name: str = LABEL) -> dict[str, Any]:
    return {
        "card_uuid": card_uuid,
        "label_name": label_name,
        "patient_pseudonym": "synthetic-patient",
        "model_name": MODEL,
        "label": label,
        "source": "test",
        "derived_at": DAY0,
    }


# --- reading results -------------------------------------------------------------------------


def _utc(value: Any) -> datetime:
    """Timestamps come back as text from SQLite (through sa.text) and aware from PostgreSQL."""
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def results(db: Database, report: MonitorReport, **where: Any) -> list[dict[str, Any]]:
    rows = _RESULTS.get(report.run_id)
    if rows is None:
        rows = db.rows("SELECT * FROM monitoring_results WHERE run_id = :r", r=report.run_id)
        for r in rows:
            r["window_start"], r["window_end"] = _utc(r["window_start"]), _utc(r["window_end"])
        _RESULTS[report.run_id] = rows
    return [r for r in rows if all(r[k] == v for k, v in where.items())]


def one(db: Database, report: MonitorReport, **where: Any) -> dict[str, Any]:
    rows = results(db, report, **where)
    assert len(rows) == 1, f"expected one result for {where}, found {len(rows)}"
    return rows[0]


def day_rows(c: Cohort, day: int, version: str = "1.0.0") -> list[dict[str, Any]]:
    start = DAY0 + timedelta(days=day)
    return [
        r
        for r in c.cards
        if r["model_version"] == version and start <= r["requested_at"] < start + timedelta(days=1)
    ]


def hand_psi(values: np.ndarray, entry: dict[str, Any]) -> float:
    counts = np.bincount(
        np.searchsorted(entry["edges"], values, side="right"), minlength=len(entry["fractions"])
    )
    a = np.maximum(counts / counts.sum(), 1e-4)
    e = np.maximum(np.array(entry["fractions"]), 1e-4)
    return float(np.sum((a - e) * np.log(a / e)))


# --- tests -----------------------------------------------------------------------------------


def test_figures_equal_figures_from_the_raw_rows(db: Database, models_dir: Path) -> None:
    c = cohort(seed=1, days=2, per_day=400, shadow=250)
    c.insert(db)
    report = run_monitoring(
        db.engine,
        models_dir,
        window_start=DAY0,
        window_end=DAY0 + timedelta(days=2),
        window=timedelta(days=1),
        now=DAY0 + timedelta(days=3),
    )
    assert report.windows == 2 and report.rows_scanned == len(c.cards)
    assert {g.role for g in report.groups} == {"live", "shadow"}
    outcomes = {o["card_uuid"]: o["label"] for o in c.outcomes if o["label_name"] == LABEL}
    feedback = {f["card_uuid"]: f for f in c.feedback}

    for day in (0, 1):
        ws = DAY0 + timedelta(days=day)
        live = day_rows(c, day)
        key = {"model_version": "1.0.0", "role": "live", "window_start": ws}
        # volume, no-risk and alert rates
        assert one(db, report, metric="volume", subgroup="", **key)["value"] == len(live)
        risk_rows = [r for r in live if r["risk"] is not None]
        no_risk = one(db, report, metric="no_risk_rate", **key)
        assert no_risk["value"] == pytest.approx(1 - len(risk_rows) / len(live))
        alerting = sum(r["indicator"] in ("warning", "critical") for r in risk_rows)
        alert_rate = one(db, report, metric="alert_rate", subgroup="", **key)
        assert alert_rate["value"] == pytest.approx(alerting / len(risk_rows))
        assert alert_rate["n"] == len(risk_rows)

        # missing rates and input drift, per feature
        feats = [json.loads(r["features"]) for r in live]
        for name in ("lactate", "crp", "heart_rate", "sex_male"):
            values = np.array([f[name] for f in feats if f[name] is not None])
            missing = one(db, report, metric="missing_rate", feature=name, **key)
            assert missing["value"] == pytest.approx(1 - len(values) / len(live))
            ref = one(db, report, metric="missing_rate_reference", feature=name, **key)
            assert ref["value"] == MANIFEST["reference"][name]["missing_rate"]
            if len(values) < 50:
                continue
            bins, _ = reference_bins(MANIFEST["reference"][name])
            assert bins is not None
            entry = {"edges": list(bins.edges), "fractions": list(bins.fractions)}
            got = one(db, report, metric="psi", feature=name, **key)
            assert got["value"] == pytest.approx(hand_psi(values, entry), abs=1e-8)
            assert got["n"] == len(values)
            ks = ks_2samp(values, MANIFEST["reference"][name]["sample"])
            assert one(db, report, metric="ks_statistic", feature=name, **key)[
                "value"
            ] == pytest.approx(ks.statistic, abs=1e-8)
            assert one(db, report, metric="ks_pvalue", feature=name, **key)[
                "value"
            ] == pytest.approx(ks.pvalue, rel=1e-6, abs=1e-12)

        # performance against sklearn on the raw rows (the other label is ignored)
        pairs = [
            (r["risk"], outcomes[r["card_uuid"]]) for r in risk_rows if r["card_uuid"] in outcomes
        ]
        p = np.array([x[0] for x in pairs])
        y = np.array([x[1] for x in pairs], dtype=float)
        assert one(db, report, metric="outcomes", subgroup="", **key)["value"] == len(pairs)
        auroc = one(db, report, metric="auroc", subgroup="", **key)
        assert auroc["value"] == pytest.approx(roc_auc_score(y, p), abs=1e-6)
        brier = one(db, report, metric="brier", subgroup="", **key)
        assert brier["value"] == pytest.approx(brier_score_loss(y, p), abs=1e-6)
        assert one(db, report, metric="prevalence", subgroup="", **key)["value"] == pytest.approx(
            y.mean(), abs=1e-6
        )
        cal = results(db, report, metric="calibration_bin", **key)
        assert sum(b["n"] for b in cal) == len(pairs)
        top = next(b for b in cal if b["feature"] == "bin=3")
        sel = (p >= 0.3) & (p < 0.4)
        assert top["n"] == sel.sum() and top["value"] == pytest.approx(y[sel].mean())
        assert json.loads(top["details"])["predicted"] == pytest.approx(p[sel].mean())

        # subgroups
        sex = np.array(
            [
                json.loads(r["features"])["sex_male"]
                for r in risk_rows
                if r["card_uuid"] in outcomes
            ],
            dtype=float,
        )
        female = sex == 0
        sub = one(db, report, metric="auroc", subgroup="sex=female", **key)
        assert sub["value"] == pytest.approx(roc_auc_score(y[female], p[female]), abs=1e-6)
        assert sub["n"] == female.sum()
        age = np.array(
            [json.loads(r["features"])["age"] for r in risk_rows if r["card_uuid"] in outcomes]
        )
        band_50_70 = (age >= 50) & (age < 70)
        assert one(db, report, metric="outcomes", subgroup="age=50-70", **key)["value"] == (
            band_50_70.sum()
        )
        assert one(db, report, metric="volume", subgroup="sex=male", **key)["value"] == sum(
            f["sex_male"] == 1 for f in feats
        )

        # clinician feedback
        fb = [feedback[r["card_uuid"]] for r in live if r["card_uuid"] in feedback]
        accepted = sum(f["outcome"] == "accepted" for f in fb)
        acc = one(db, report, metric="acceptance_rate", **key)
        assert (acc["value"], acc["n"]) == (pytest.approx(accepted / len(fb)), len(fb))
        over = one(db, report, metric="override_rate", **key)
        assert over["value"] == pytest.approx(1 - accepted / len(fb))
        reasons: dict[str, int] = {}
        for f in fb:
            if f["outcome"] == "overridden":
                reasons[f["override_reason_code"]] = reasons.get(f["override_reason_code"], 0) + 1
        assert json.loads(over["details"])["reasons"] == reasons

        # shadow: agreement with the live row of the same hook_instance, on the shadow's rows
        shadow = day_rows(c, day, "1.1.0")
        by_hook = {r["hook_instance"]: r for r in live}
        agree = sum(by_hook[s["hook_instance"]]["risk_band"] == s["risk_band"] for s in shadow)
        skey = {"model_version": "1.1.0", "role": "shadow", "window_start": ws}
        got = one(db, report, metric="shadow_agreement", **skey)
        assert (got["value"], got["n"]) == (pytest.approx(agree / len(shadow)), len(shadow))
        diffs = [
            abs(s["risk"] - by_hook[s["hook_instance"]]["risk"])
            for s in shadow
            if s["risk"] is not None
        ]
        assert one(db, report, metric="shadow_mean_abs_diff", **skey)["value"] == pytest.approx(
            np.mean(diffs), abs=1e-8
        )
        assert not results(db, report, metric="shadow_agreement", **key)
        # the shadow's performance uses the shadow card's own outcomes
        s_pairs = [
            (s["risk"], outcomes[s["card_uuid"]]) for s in shadow if s["card_uuid"] in outcomes
        ]
        sp, sy = np.array([x[0] for x in s_pairs]), np.array([x[1] for x in s_pairs])
        assert one(db, report, metric="auroc", subgroup="", **skey)["value"] == pytest.approx(
            roc_auc_score(sy, sp), abs=1e-6
        )

    # prediction drift: day 2's risks against the decile bins of day 1's
    day0 = np.array([r["risk"] for r in day_rows(c, 0) if r["risk"] is not None])
    day1 = np.array([r["risk"] for r in day_rows(c, 1) if r["risk"] is not None])
    edges = np.unique(np.round(np.quantile(day0, np.linspace(0, 1, 11)), 6))[1:-1]
    ref = np.bincount(np.searchsorted(edges, day0, side="right"), minlength=len(edges) + 1)
    entry = {"edges": list(edges), "fractions": list(ref / len(day0))}
    pred = results(db, report, metric="prediction_psi", model_version="1.0.0", role="live")
    assert len(pred) == 1 and pred[0]["n"] == len(day1)
    assert pred[0]["value"] == pytest.approx(hand_psi(day1, entry), abs=1e-8)

    # the quality views return the rows
    run = {"r": report.run_id}
    for view, metric in (
        ("v_drift", "psi"),
        ("v_drift", "missing_rate"),
        ("v_drift", "prediction_psi"),
        ("v_performance", "auroc"),
        ("v_performance", "acceptance_rate"),
        ("v_performance", "shadow_agreement"),
        ("v_calibration", "calibration_bin"),
        ("v_subgroups", "auroc"),
    ):
        rows = db.rows(f"SELECT * FROM {view} WHERE run_id = :r AND metric = :m", m=metric, **run)
        assert rows, f"{view} has no {metric} rows"
    assert not db.rows("SELECT * FROM v_performance WHERE run_id = :r AND subgroup <> ''", **run)
    assert all(r["subgroup"] for r in db.rows("SELECT * FROM v_subgroups WHERE run_id = :r", **run))
    runs = db.rows("SELECT * FROM monitoring_runs WHERE run_id = :r", **run)
    assert runs[0]["finished_at"] is not None
    assert json.loads(runs[0]["parameters"])["windows"] == 2


def test_shifted_feature_raises_a_psi_alert_and_an_unshifted_one_does_not(
    db: Database, models_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    drift_metrics = {"psi", "ks_pvalue", "missing_rate", "prediction_psi"}
    base = cohort(seed=2, days=1, per_day=600)
    base.insert(db)
    day = {"window_start": DAY0, "window_end": DAY0 + timedelta(days=1)}
    calm = run_monitoring(db.engine, models_dir, **day)
    assert not [a for a in calm.alerts if a.metric in drift_metrics], calm.summary()
    assert one(db, calm, metric="psi", feature="heart_rate")["value"] < 0.1

    shifted = cohort(seed=3, days=1, per_day=600, shift={"heart_rate": 30.0})
    for r in shifted.cards:
        r["requested_at"] += timedelta(days=1)
    shifted.insert(db)
    caplog.set_level(logging.WARNING, logger="cds_service.monitoring.run")
    both = {"window_start": DAY0, "window_end": DAY0 + timedelta(days=2)}
    report = run_monitoring(db.engine, models_dir, window=timedelta(days=1), **both)
    hr = [a for a in report.alerts if a.metric == "psi" and a.feature == "heart_rate"]
    assert len(hr) == 1, report.summary()
    alert = hr[0]
    assert alert.window_start == DAY0 + timedelta(days=1) and alert.severity == "critical"
    assert alert.threshold == 0.25 and alert.value is not None and alert.value > 0.25
    assert "heart_rate" in alert.message and "0.25" in alert.message
    assert not [a for a in report.alerts if a.feature not in ("heart_rate", "")]
    stored = db.rows("SELECT * FROM v_alerts WHERE run_id = :r", r=report.run_id)
    assert {(a["metric"], a["feature"], a["severity"]) for a in stored} >= {
        ("psi", "heart_rate", "critical")
    }
    assert stored[0]["message"] and "synthetic" not in " ".join(a["message"] for a in stored)
    assert any("heart_rate" in rec.getMessage() for rec in caplog.records)

    # a second run over the same windows does not raise the same alerts again
    again = run_monitoring(db.engine, models_dir, window=timedelta(days=1), **both)
    assert not again.alerts
    assert again.repeated_alerts == len(report.alerts) + report.repeated_alerts
    assert len(db.rows("SELECT * FROM v_alerts WHERE metric = 'psi'")) == 1


def test_a_tiny_window_reports_reference_too_small(db: Database, models_dir: Path) -> None:
    c = cohort(seed=4, days=1, per_day=12)
    c.insert(db)
    report = run_monitoring(
        db.engine, models_dir, window_start=DAY0, window_end=DAY0 + timedelta(days=1)
    )
    small = results(db, report, metric="reference_too_small")
    by_feature = {r["feature"]: json.loads(r["details"]) for r in small}
    assert set(FEATURES) <= set(by_feature)
    assert "fewer than 50" in by_feature["heart_rate"]["skipped"]["psi"]
    assert "ks" in by_feature["heart_rate"]["skipped"]
    assert "prediction_psi" in by_feature[""]["skipped"]
    assert not results(db, report, metric="psi") and not results(db, report, metric="ks_pvalue")
    assert not report.alerts
    assert db.rows(
        "SELECT * FROM v_drift WHERE run_id = :r AND metric = 'reference_too_small'",
        r=report.run_id,
    )
    assert one(db, report, metric="volume", subgroup="")["value"] == 12


def test_a_small_reference_sample_skips_ks(tmp_path: Path, models_dir: Path) -> None:
    db = new_database("sqlite", tmp_path)
    upgrade(db.engine)
    root = tmp_path / "models"
    shutil.copytree(models_dir, root)
    path = root / MODEL / "1.0.0" / "manifest.json"
    manifest = json.loads(path.read_text())
    manifest["reference"]["heart_rate"]["sample"] = manifest["reference"]["heart_rate"]["sample"][
        :20
    ]
    path.write_text(json.dumps(manifest))
    cohort(seed=5, days=1, per_day=120).insert(db)
    report = run_monitoring(db.engine, root, window_start=DAY0, window_end=DAY0 + timedelta(days=1))
    row = one(db, report, metric="reference_too_small", feature="heart_rate")
    assert "reference sample has 20" in json.loads(row["details"])["skipped"]["ks"]
    assert one(db, report, metric="psi", feature="heart_rate")["n"] > 50
    assert not results(db, report, metric="ks_pvalue", feature="heart_rate")
    db.close()


def test_thresholds_can_be_overridden_and_the_gate_applies(
    tmp_path: Path, models_dir: Path
) -> None:
    db = new_database("sqlite", tmp_path)
    upgrade(db.engine)
    c = cohort(seed=6, days=1, per_day=300)
    for o in c.outcomes:  # labels unrelated to the risk: AUROC about 0.5, below the gate's 0.75
        o["label"] = int(uuid.UUID(o["card_uuid"]).int % 2)
    c.insert(db)
    day = {"window_start": DAY0, "window_end": DAY0 + timedelta(days=1)}
    report = run_monitoring(db.engine, models_dir, **day)
    auroc = [a for a in report.alerts if a.metric == "auroc"]
    assert len(auroc) == 1 and auroc[0].threshold == 0.75 and auroc[0].severity == "critical"
    relaxed = run_monitoring(
        db.engine, models_dir, thresholds=Thresholds(min_auroc=0.3, psi_warning=0.0001), **day
    )
    assert not [a for a in relaxed.alerts if a.metric == "auroc"]
    assert [a for a in relaxed.alerts if a.metric == "psi"]  # everything drifts at 0.0001
    db.close()


@pytest.mark.postgres
def test_sqlite_and_postgresql_give_the_same_results(tmp_path: Path, models_dir: Path) -> None:
    c = cohort(seed=9, days=2, per_day=250, shadow=120)
    figures = []
    for kind in ("sqlite", "postgres"):
        db = new_database(kind, tmp_path)
        try:
            upgrade(db.engine)
            c.insert(db)
            report = run_monitoring(
                db.engine,
                models_dir,
                window_start=DAY0,
                window_end=DAY0 + timedelta(days=2),
                window=timedelta(days=1),
            )
            keys = ("model_version", "role", "window_start", "metric", "feature", "subgroup", "n")
            figures.append(sorted((*(r[k] for k in keys), r["value"]) for r in results(db, report)))
        finally:
            db.close()
    lite, pg = figures
    assert [f[:7] for f in lite] == [f[:7] for f in pg]
    for a, b in zip(lite, pg, strict=True):
        assert (a[7] is None and b[7] is None) or a[7] == pytest.approx(b[7], rel=1e-8), a


# --- units -----------------------------------------------------------------------------------


def test_psi_counts_empty_bins_as_epsilon() -> None:
    assert psi(np.array([50, 50]), np.array([0.5, 0.5])) == 0.0
    # empty in the window
    assert psi(np.array([0, 100]), np.array([0.5, 0.5])) == pytest.approx(
        (1e-4 - 0.5) * np.log(1e-4 / 0.5) + 0.5 * np.log(1 / 0.5)
    )
    # empty in the reference
    assert psi(np.array([90, 10]), np.array([1.0, 0.0])) == pytest.approx(
        -0.1 * np.log(0.9) + (0.1 - 1e-4) * np.log(0.1 / 1e-4)
    )


def test_binary_reference_is_rebuilt_from_the_mean() -> None:
    bins, reason = reference_bins(MANIFEST["reference"]["sex_male"])
    assert bins is not None and reason == ""
    assert list(bins.edges) == [1.0]
    assert bins.fractions[1] == pytest.approx(MANIFEST["reference"]["sex_male"]["mean"])
    assert list(bins.counts(np.array([0.0, 1.0, 1.0]))) == [1, 2]
    none, reason = reference_bins({"edges": [], "fractions": [1.0], "sample": [3.0], "mean": 3.0})
    assert none is None and "single bin" in reason


def test_bottom_k_sample_is_bounded_and_independent_of_row_order() -> None:
    rng = np.random.default_rng(7)
    keys = rng.integers(0, 2**32, 20_000)
    values = rng.normal(size=20_000)
    a, b = BottomKSample(500), BottomKSample(500)
    for chunk in np.array_split(np.arange(20_000), 13):
        a.add(keys[chunk], values[chunk])
    order = rng.permutation(20_000)
    for chunk in np.array_split(order, 7):
        b.add(keys[chunk], values[chunk])
    assert len(a.values) == 500 and a.seen == 20_000
    assert sorted(a.values) == sorted(b.values)
    assert sorted(a.values) == sorted(values[np.argsort(keys, kind="stable")[:500]])


def test_feature_json_is_parsed_tolerantly() -> None:
    texts = ['{"a": 1, "b": null}', '{"a": "x"}', "not json", '{"b": 2.5, "a": true}']
    matrix, bad = feature_matrix(texts, ["a", "b"])
    assert bad == 1
    expected = np.array([[1, np.nan], [np.nan, np.nan], [np.nan, np.nan], [1, 2.5]])
    np.testing.assert_array_equal(matrix, expected)


def test_durations_and_recent_windows() -> None:
    assert parse_duration("1d") == timedelta(days=1)
    assert parse_duration("6h") == parse_duration("6") == timedelta(hours=6)
    assert parse_duration("2w") == timedelta(days=14)
    with pytest.raises(ValueError):
        parse_duration("soon")
    now = datetime(2026, 3, 14, 9, 30, tzinfo=UTC)
    start, end, step = recent_windows(now, days=3, window_hours=24)
    assert (start, end, step) == (
        datetime(2026, 3, 11, tzinfo=UTC),
        datetime(2026, 3, 14, tzinfo=UTC),
        timedelta(days=1),
    )
    with pytest.raises(ValueError):
        run_monitoring(
            sa.create_engine("sqlite://"),
            REPO / "models",
            window_start=datetime(2026, 3, 1),
            window_end=datetime(2026, 3, 2),
        )


def test_run_recent_covers_complete_windows(tmp_path: Path, models_dir: Path) -> None:
    db = new_database("sqlite", tmp_path)
    upgrade(db.engine)
    cohort(seed=8, days=2, per_day=60).insert(db)
    report = run_recent(
        db.engine, models_dir, days=2, window_hours=24, now=DAY0 + timedelta(days=2, hours=5)
    )
    assert report is not None and report.windows == 2
    volumes = results(db, report, metric="volume", subgroup="")
    assert sorted(r["value"] for r in volumes) == [60, 60]
    db.close()


def test_a_scheduled_run_skips_when_a_replica_ran_within_the_interval(
    tmp_path: Path, models_dir: Path
) -> None:
    """Each replica keeps its own schedule; the one whose turn comes less than an interval after
    another's run skips it, and the next interval runs again."""
    db = new_database("sqlite", tmp_path)
    upgrade(db.engine)
    cohort(seed=8, days=1, per_day=20).insert(db)
    first = DAY0 + timedelta(days=1, hours=5)
    hour = timedelta(hours=1)

    def run(at: datetime) -> MonitorReport | None:
        return run_recent(db.engine, models_dir, days=1, now=at, min_interval=hour)

    assert run(first) is not None
    assert run(first + timedelta(minutes=40)) is None  # another replica, same interval
    assert run(first + hour + timedelta(seconds=1)) is not None
    assert len(db.rows("SELECT run_id FROM monitoring_runs")) == 2
    db.close()

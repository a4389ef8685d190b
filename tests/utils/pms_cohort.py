"""A short simulated period for the PMS report tests: four weeks of live cards of one bundled
model (features drawn from its manifest's reference sample), outcomes for about 70%, feedback
with override reasons on about 20%, a deployment trail with gate evidence, and a monitoring run
over two-week windows. Six cards fall in the youngest age band: a small cell every output must
withhold. Pseudonyms are synthetic."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import sqlalchemy as sa

from cds_service.db.deployments import append_record
from cds_service.monitoring import run_monitoring
from cds_service.monitoring.context import load_context
from tests.utils.audit_rows import insert

START = datetime(2026, 3, 2, tzinfo=UTC)
DAYS = 28
END = START + timedelta(days=DAYS)
PER_DAY = 40
SMALL = 6  # cards in the youngest age band
REASONS = ("already-known", "disagree")  # frequent override reasons
RARE_REASON = "data-wrong"  # given 3 times: a small cell


def _indicator(risk: float | None) -> tuple[str | None, str]:
    if risk is None:
        return None, "info"
    if risk < 0.2:
        return "low", "info"
    return ("moderate", "warning") if risk < 0.5 else ("high", "critical")


def _features(manifest: dict[str, Any], rng: np.random.Generator) -> dict[str, float | None]:
    out: dict[str, float | None] = {}
    for name in manifest["feature_names"]:
        ref = manifest["reference"][name]
        sample = ref["sample"]
        missing = rng.random() < ref["missing_rate"]
        out[name] = None if missing else float(sample[int(rng.random() * len(sample))])
    return out


def build(engine: sa.Engine, models_dir: Path, model: str, seed: int = 7) -> dict[str, Any]:
    """Insert the period, record the trail and run monitoring; returns what was inserted."""
    manifest = json.loads((models_dir / model / "1.0.0" / "manifest.json").read_text())
    youngest = load_context(models_dir, model, "1.0.0").age_bands[1]
    rng = np.random.default_rng(seed)
    cards, outcomes, feedback = [], [], []
    rare_left = 3
    for i in range(DAYS * PER_DAY + SMALL):
        feats = _features(manifest, rng)
        small = i >= DAYS * PER_DAY
        feats["age"] = youngest - 10 if small else max(float(feats["age"] or 0), youngest + 1)
        risk = None if rng.random() < 0.04 and not small else float(rng.beta(0.8, 1.5))
        band, indicator = _indicator(risk)
        at = START + timedelta(minutes=int(i * (DAYS * 1440 - 60) / (DAYS * PER_DAY + SMALL)))
        card = {
            "card_uuid": str(uuid.uuid4()),
            "hook_instance": str(uuid.uuid4()),
            "service_id": f"{model}-risk",
            "hook": "patient-view",
            "model_name": model,
            "model_version": "1.0.0",
            "artifact_sha256": manifest["artifact"]["sha256"],
            "environment": "production",
            "role": "live",
            "shown": True,
            "card_kind": "no-risk" if risk is None else "risk",
            "patient_pseudonym": f"syn-patient-{i}",
            "encounter_pseudonym": f"syn-encounter-{i}",
            "requested_at": at,
            "risk": risk,
            "risk_band": band,
            "indicator": indicator,
            "latency_ms": 5.0,
            "features": json.dumps(feats),
            "missing_features": json.dumps([k for k, v in feats.items() if v is None]),
            "inputs": "{}",
            "mapper_warnings": "{}",
            "summary": "synthetic",
        }
        cards.append(card)
        if risk is not None and rng.random() < 0.7:
            outcomes.append(
                {
                    "card_uuid": card["card_uuid"],
                    "label_name": manifest["label"]["name"],
                    "patient_pseudonym": card["patient_pseudonym"],
                    "model_name": model,
                    "label": int(rng.random() < risk),
                    "source": "fhir-export",
                    "derived_at": at + timedelta(days=2),
                }
            )
        if risk is not None and not small and rng.random() < 0.2:
            overridden = rng.random() < 0.35
            reason = str(rng.choice(REASONS)) if overridden else None
            if overridden and rare_left:
                reason, rare_left = RARE_REASON, rare_left - 1
            feedback.append(
                {
                    "card_uuid": card["card_uuid"],
                    "service_id": card["service_id"],
                    "outcome": "overridden" if overridden else "accepted",
                    "override_reason_code": reason,
                    "override_reason_display": None,
                    "accepted_suggestions": "[]",
                    "outcome_timestamp": at + timedelta(minutes=2),
                    "received_at": at + timedelta(minutes=2),
                    "channel": "cds-hooks",
                }
            )
    insert(engine, cards, feedback=feedback, outcomes=outcomes)
    _trail(engine, model, manifest)
    report = run_monitoring(
        engine,
        models_dir,
        window_start=START,
        window_end=END,
        window=timedelta(days=14),
        now=END + timedelta(hours=1),
    )
    return {"cards": cards, "outcomes": outcomes, "feedback": feedback, "monitoring": report}


def _trail(engine: sa.Engine, model: str, manifest: dict[str, Any]) -> None:
    test = manifest["metrics"]["test"]
    evidence = {
        "metrics": test,
        "scored_rows": test["n"],
        "failures": [],
        "held_out_export_sha256": manifest["training_data"]["export_sha256"],
    }
    for env, when in (("acceptance", START - timedelta(days=30)), ("production", START)):
        append_record(
            engine,
            {
                "model_name": model,
                "model_version": "1.0.0",
                "artifact_sha256": manifest["artifact"]["sha256"],
                "environment": env,
                "role": "live",
                "action": "promote",
                "decided_by": "dr-quality-lead",
                "reason": f"validated for {env}",
                "override": False,
                "override_reason": None,
                "evidence": json.dumps(evidence, sort_keys=True),
                "created_at": when,
            },
        )

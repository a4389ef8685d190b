"""The applied model card (CHAI schema v0.2, JSON) of one model version, generated rather than
written: release facts from the deployment trail, the model's facts from its manifest, the
validation figures from the gate evidence recorded at promotion, the realized figures from the
PMS period's monitoring, and the texts only people can write from the PMS plan. docs/pms.md
lists which field comes from where. Every figure passes the small-cell rule."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from cds_service.db.views import V_DEPLOYMENTS
from cds_service.monitoring.suppression import is_small
from cds_service.reports import chai_schema as s
from cds_service.reports.pms_data import PmsData

__all__ = ["AppliedModelCard", "applied_model_card", "released_version"]

AppliedModelCard = s.AppliedModelCard
_DEVELOPMENT_METRICS = ("auroc", "auprc", "brier", "calibration_intercept", "calibration_slope")


def released_version(engine: Engine, model: str) -> tuple[str | None, dict[str, Any] | None]:
    """The version live in the most advanced environment, and its promotion record."""
    d = V_DEPLOYMENTS.c
    query = (
        sa.select(d.model_version, d.environment, d.role, d.action, d.created_at, d.evidence)
        .where(d.model_name == model)
        .order_by(d.seq)
    )
    with engine.connect() as conn:
        records = [dict(r._mapping) for r in conn.execute(query)]
    rank = {"development": 0, "acceptance": 1, "production": 2}
    live: dict[str, dict[str, Any]] = {}
    for r in records:
        if r["role"] == "live" and r["action"] == "promote":
            live[r["environment"]] = r
        elif r["role"] == "live" and r["action"] == "retire":
            live.pop(r["environment"], None)
    if not live:
        return None, None
    best = max(live.values(), key=lambda r: rank.get(r["environment"], -1))
    return str(best["model_version"]), best


def _value(value: float | None, n: int, minimum: int) -> float | str | None:
    if is_small(n, minimum):
        return "suppressed"
    return None if value is None else round(float(value), 4)


def _result(label: str, payload: dict[str, Any]) -> s.MetricResultType:
    return s.MetricResultType(Label=label, ValueJson=json.dumps(payload, sort_keys=True))


def _development(manifest: dict[str, Any], minimum: int) -> list[s.MetricResultType]:
    test = manifest["metrics"]["test"]
    n = int(test["n"])
    figures = {m: _value(test.get(m), n, minimum) for m in _DEVELOPMENT_METRICS}
    return [_result("held-out test set at training", {**figures, "n": n})]


def _realized(data: PmsData, subgroup: str = "") -> dict[str, Any]:
    return {
        m: {"value": round(v, 4), "n": n} for (g, m), (v, n) in data.shown.items() if g == subgroup
    }


def _gate(record: dict[str, Any] | None, minimum: int) -> list[s.MetricResultType]:
    if record is None:
        return []
    ev = json.loads(record["evidence"] or "{}")
    metrics = ev.get("metrics") if isinstance(ev, dict) else None
    if not isinstance(metrics, dict):
        return []
    n = int(ev.get("scored_rows") or 0)
    figures = {m: _value(metrics.get(m), n, minimum) for m in _DEVELOPMENT_METRICS}
    label = f"validation gate at promotion to {record['environment']}"
    return [_result(label, {**figures, "n": n, "failures": ev.get("failures") or []})]


def _fairness(manifest: dict[str, Any], data: PmsData) -> list[s.MetricResultType]:
    out = []
    for name, m in sorted(manifest["metrics"]["subgroups"].items()):
        n = int(m["n"])
        out.append(
            _result(
                f"{name}, held-out test set",
                {"auroc": _value(m.get("auroc"), n, data.minimum), "n": n},
            )
        )
    subgroups = sorted({g for g, _m in data.shown if g})
    out += [
        _result(f"{g}, monitoring {data.start:%Y-%m-%d} to {data.end:%Y-%m-%d}", _realized(data, g))
        for g in subgroups
    ]
    return out


def applied_model_card(
    models_dir: Path, engine: Engine, data: PmsData, version: str | None = None
) -> AppliedModelCard:
    """The card of ``version`` (default: the version live in the most advanced environment,
    else the newest bundled one)."""
    released, record = released_version(engine, data.model)
    chosen = version or released
    if chosen is None:
        found = sorted(p.parent.name for p in (models_dir / data.model).glob("*/manifest.json"))
        if not found:
            raise FileNotFoundError(f"no manifest under {models_dir / data.model}")
        chosen = found[-1]
    if record is not None and record["model_version"] != chosen:
        record = None
    manifest = json.loads((models_dir / data.model / chosen / "manifest.json").read_text())
    plan, texts, i = data.plan, data.plan.card, data.plan.indicators
    training = manifest["training_data"]
    stage = (
        f"live in {record['environment']}"
        if record
        else "not promoted (no live deployment recorded)"
    )
    period = f"{data.start:%Y-%m-%d} to {data.end:%Y-%m-%d}"
    return s.AppliedModelCard(
        BasicInfo=s.BasicInfoType(
            ModelName=f"{manifest['title']} ({data.model})",
            ModelDeveloper=texts.developer,
            DeveloperContact=texts.contact,
        ),
        ReleaseInfo=s.ReleaseInfoType(
            ReleaseStage=stage,
            ReleaseDate=f"{record['created_at']:%Y-%m-%d}" if record else "not released",
            ReleaseVersion=chosen,
            GlobalAvailability="Per hospital: served inside the hospital's network only.",
            EHRCompatibility=s.EHRCompatibilityType(
                EHR=["any CDS Hooks 2.0 client", "SMART on FHIR launch"]
            ),
            RegulatoryApproval=texts.regulatory_approval,
        ),
        ModelSummary=s.ModelSummaryType(
            Summary=f"{manifest['title']}: {manifest['label']['description']}",
            Keywords=texts.keywords,
        ),
        UsesAndDirections=s.UsesAndDirectionsType(
            IntendedUseAndWorkflow=texts.intended_use,
            PrimaryIntendedUsers=texts.intended_users,
            HowToUse=texts.how_to_use,
            TargetedPatientPopulation=texts.target_population,
            CautionedOutOfScopeSettings=texts.out_of_scope,
        ),
        Warnings=s.WarningsType(
            KnownRisksAndLimitations=texts.known_risks,
            KnownBiasesOrEthicalConsiderations=texts.known_biases,
            ClinicalRiskLevel=texts.clinical_risk_level,
        ),
        TrustIngredients=s.TrustIngredientsType(
            AISystemFacts=s.AISystemFactsType(
                OutcomesAndOutputs=(
                    f"Calibrated probability of {manifest['label']['name']} "
                    f"({manifest['label']['description']}), its risk band and top "
                    "contributing factors."
                ),
                ModelType=(
                    f"Gradient-boosted trees ({manifest['artifact']['format']}), "
                    f"{manifest['calibration']['method']} calibration"
                ),
                InputDataSource=(
                    "FHIR R4 resources of the EHR (CDS Hooks prefetch or the FHIR server)."
                ),
                OutputAndInputDataTypes=(
                    f"Inputs: {', '.join(manifest['feature_names'])}. Output: a probability."
                ),
                DevelopmentDataCharacterization=(
                    f"{training.get('rows')} rows from {training.get('patients')} patients "
                    f"(export sha256 {training.get('export_sha256')})."
                ),
                BiasMitigationApproaches=(
                    "Validation gate on the subgroup AUROC gap (max "
                    f"{manifest['gate'].get('max_subgroup_auroc_gap')}); "
                    "fairness ratios and subgroup monitoring with small-cell suppression."
                ),
                OngoingMaintenance=(
                    f"PMS plan models/{data.model}/pms.toml, reviewed every "
                    f"{plan.review_period_days} days "
                    f"by {plan.owner}; drift, calibration and AUROC monitored from the audit trail."
                ),
                Transparency=(
                    f"Artifact sha256 {manifest['artifact']['sha256']}; every card is audited "
                    "in SQL."
                ),
            ),
            TransparencyInformation=s.TransparencyInformationType(
                FundingSource=texts.funding, StakeholdersConsulted=texts.stakeholders
            ),
        ),
        KeyMetrics=s.KeyMetricsType(
            UsefulnessUsabilityEfficacy=s.KeyMetricType(
                MetricGoal=f"AUROC at least {i.min_auroc} in every monitoring window.",
                Results=[
                    *_development(manifest, data.minimum),
                    *_gate(record, data.minimum),
                    _result(f"monitoring {period}", _realized(data)),
                ],
                Interpretation=(
                    "Discrimination of the calibrated risk on patients whose outcome is known."
                ),
                TestType="Held-out test set, validation gate, then live monitoring.",
                TestingDataDescription=(
                    f"Held-out rows of the training export; live cards {period}."
                ),
                ValidationProcessAndJustification=(
                    "The promotion gate (docs/lifecycle.md) and the PMS plan."
                ),
            ),
            FairnessEquity=s.KeyMetricType(
                MetricGoal=(
                    "No subgroup AUROC gap beyond the gate; fairness ratios within the "
                    "four-fifths rule."
                ),
                Results=_fairness(manifest, data),
                Interpretation=(
                    "Subgroups by sex and age band; groups under the small-cell threshold "
                    "are withheld."
                ),
                TestType="Subgroup analysis.",
                TestingDataDescription=f"Held-out test set; live cards {period}.",
                ValidationProcessAndJustification=(
                    f"Gate at promotion; review every {plan.review_period_days} days."
                ),
            ),
            SafetyReliability=s.KeyMetricType(
                MetricGoal=(
                    f"Calibration intercept {i.calibration_intercept_range}, "
                    f"slope {i.calibration_slope_range}; "
                    f"PSI at most {i.max_psi}; inputs missing at most "
                    f"{i.max_missing_rate_excess} more often than in training."
                ),
                Results=[_result(f"plan exceedances {period}", {"count": len(data.exceedances)})],
                Interpretation="Exceedances are listed in the PMS report of the period.",
                TestType="Live monitoring against the PMS plan.",
                TestingDataDescription=f"Live cards {period}.",
                ValidationProcessAndJustification="MDR post-market surveillance (Articles 83-86).",
            ),
        ),
        Resources=s.ResourcesType(
            EvaluationReferences=f"models/{data.model}/{chosen}/model_card.md",
            PeerReviewedPublications="None.",
            PatientConsentOrDisclosure=texts.patient_disclosure,
        ),
        Bibliography="",
    )

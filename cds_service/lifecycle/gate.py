"""Validation gate for promotions: the candidate is scored on a held-out FHIR export through the
same mapper as in service, and must meet the thresholds of its training config.

The evidence (metrics, data hash, failures, report) is stored with the deployment record, whether
the promotion passes, is refused, or is overridden with a recorded reason.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy.engine import Engine

from cds_service.db.deployments import predictions_in_environment
from cds_service.serving.model_runtime import LoadedModel, load_model
from cds_service.stats import binary_metrics, feature_subgroup_masks
from cds_service.training.config import load_training_config
from cds_service.training.population import PopulationError, check_population, scorable_mask
from cds_service.training.train import build_table, table_sha256
from fhir_mappers.site_terminology import NO_SITE_TERMINOLOGY, SiteTerminology


@dataclass(slots=True)
class GateResult:
    passed: bool
    failures: list[str]
    evidence: dict[str, Any]


def _score(model: LoadedModel, x: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
    return np.array([model.risk(list(row)) for row in x], dtype=np.float64)


def _subgroup_aurocs(
    names: list[str], x: Any, y: Any, p: Any, bands: tuple[float, ...]
) -> dict[str, float | None]:
    masks = feature_subgroup_masks(names, x, bands)
    return {name: binary_metrics(y[sel], p[sel])["auroc"] for name, sel in masks.items()}


def _threshold_failures(metrics: dict[str, Any], gate: dict[str, Any], gap: float) -> list[str]:
    """The candidate's own figures against the gate's thresholds."""
    failures = []
    auroc = metrics["auroc"]
    if auroc is None or auroc < float(gate.get("min_auroc", 0.5)):
        failures.append(f"AUROC {auroc} below the minimum {gate.get('min_auroc')}")
    intercept = metrics["calibration_intercept"]
    limit = float(gate.get("max_abs_calibration_intercept", 1.0))
    if intercept is None or abs(intercept) > limit:
        failures.append(f"calibration intercept {intercept} outside ±{limit}")
    slope = metrics["calibration_slope"]
    lo, hi = gate.get("calibration_slope_range", [0.0, 10.0])
    if slope is None or not lo <= slope <= hi:
        failures.append(f"calibration slope {slope} outside [{lo}, {hi}]")
    if gap > float(gate.get("max_subgroup_auroc_gap", 1.0)):
        failures.append(f"subgroup AUROC gap {gap:.3f} above {gate.get('max_subgroup_auroc_gap')}")
    return failures


def _versus_live(
    auroc: float | None, live_version: str, live_metrics: dict[str, Any], gate: dict[str, Any]
) -> list[str]:
    """A candidate may not be worse than the version it replaces by more than the tolerance."""
    tolerance = float(gate.get("max_auroc_drop_vs_live", 0.01))
    live_auroc = live_metrics["auroc"]
    if auroc is None or live_auroc is None or auroc >= live_auroc - tolerance:
        return []
    return [
        f"AUROC {auroc:.4f} worse than the live version {live_version} "
        f"({live_auroc:.4f}) by more than {tolerance}"
    ]


def _acceptance_failures(
    engine: Engine, model_name: str, version: str, gate: dict[str, Any]
) -> tuple[int, list[str]]:
    """Production needs the candidate to have run in acceptance first."""
    needed = int(gate.get("min_acceptance_predictions", 200))
    runs = predictions_in_environment(engine, model_name, version, "acceptance")
    if runs >= needed:
        return runs, []
    return runs, [f"ran {runs} predictions in acceptance; production needs {needed}"]


def evaluate(
    models_dir: Path,
    model_name: str,
    version: str,
    export_dir: Path,
    *,
    engine: Engine,
    environment: str,
    live_version: str | None,
    site: SiteTerminology = NO_SITE_TERMINOLOGY,
) -> GateResult:
    """The held-out export is read with the site's local codes, as serving reads the hospital's
    data: without them a model that serves well would fail the gate on unmapped inputs."""
    candidate = load_model(models_dir, model_name, version, site)
    cfg = load_training_config(models_dir / model_name / "training.toml")
    gate = {**(candidate.manifest.get("gate") or {}), **cfg.gate}
    table, stats = build_table(export_dir, candidate.spec)
    # Judged on the rows the service gives a risk, as in training; the rest are counted.
    scored = scorable_mask(candidate.spec, table.names, table.x)
    x, y = table.x[scored], table.y[scored]
    if len(y) == 0:
        which = "no rows the service scores" if len(table.y) else "no rows"
        return GateResult(False, [f"held-out export gave {which}"], {"export": str(export_dir)})
    p = _score(candidate, x)
    metrics = binary_metrics(y, p)
    subgroups = _subgroup_aurocs(table.names, x, y, p, cfg.age_bands)
    present = [v for v in subgroups.values() if v is not None]
    gap = max(present) - min(present) if len(present) >= 2 else 0.0
    failures = _threshold_failures(metrics, gate, gap)
    try:  # the held-out rows must stand for the population, as in training
        check_population(stats, cfg.max_unscorable_positive_share)
    except PopulationError as exc:
        failures.append(str(exc))
    live_metrics = None
    if live_version and live_version != version:
        live = load_model(models_dir, model_name, live_version, site)
        live_metrics = binary_metrics(y, _score(live, x))
        failures += _versus_live(metrics["auroc"], live_version, live_metrics, gate)
    acceptance_runs = None
    if environment == "production":
        acceptance_runs, more = _acceptance_failures(engine, model_name, version, gate)
        failures += more
    evidence = {
        "candidate": {
            "model": model_name,
            "version": version,
            "artifact_sha256": candidate.artifact_sha256,
        },
        "held_out_export_sha256": stats.export_sha256,
        "terminology_sha256": site.sha256,
        "held_out_table_sha256": table_sha256(table),
        "rows": len(table.y),
        "scored_rows": len(y),
        "unscorable_rows": stats.unscorable,
        "unscorable_positives": stats.unscorable_positives,
        "unscorable_for": dict(sorted(stats.unscorable_for.items())),
        "metrics": metrics,
        "subgroup_auroc": subgroups,
        "subgroup_auroc_gap": round(gap, 6),
        "live_version": live_version,
        "live_metrics": live_metrics,
        "acceptance_predictions": acceptance_runs,
        "thresholds": gate,
        "failures": failures,
        "report": _report(
            model_name, version, metrics, subgroups, failures, live_version, live_metrics
        ),
    }
    return GateResult(not failures, failures, evidence)


def _report(
    model: str,
    version: str,
    metrics: dict[str, Any],
    subgroups: dict[str, Any],
    failures: list[str],
    live_version: str | None,
    live_metrics: dict[str, Any] | None,
) -> str:
    lines = [
        f"Validation of {model} {version} on the held-out export",
        f"n={metrics['n']} events={metrics['positives']} AUROC={metrics['auroc']} "
        f"Brier={metrics['brier']} intercept={metrics['calibration_intercept']} "
        f"slope={metrics['calibration_slope']}",
    ]
    lines += [f"  {k}: AUROC {v}" for k, v in subgroups.items()]
    if live_metrics is not None:
        lines.append(f"live {live_version}: AUROC {live_metrics['auroc']}")
    lines.append("PASSED" if not failures else "FAILED: " + "; ".join(failures))
    return "\n".join(lines)

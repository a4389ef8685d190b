"""Promotion and rollback: the validation gate, then an append-only deployment record."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy.engine import Engine

from cds_service.db.deployments import all_records, append_record, current_state
from cds_service.lifecycle.gate import evaluate
from cds_service.serving.model_runtime import load_model
from fhir_mappers.site_terminology import NO_SITE_TERMINOLOGY, SiteTerminology


class PromotionRefused(Exception):
    def __init__(self, failures: list[str], evidence: dict[str, Any]) -> None:
        super().__init__("; ".join(failures))
        self.failures = failures
        self.evidence = evidence


@dataclass(slots=True)
class PromotionResult:
    record: dict[str, Any]
    passed_gate: bool
    failures: list[str]


def promote(
    engine: Engine,
    models_dir: Path,
    model: str,
    version: str,
    *,
    environment: str,
    role: str,
    by: str,
    reason: str,
    holdout: Path,
    override_reason: str | None = None,
    site: SiteTerminology = NO_SITE_TERMINOLOGY,
) -> PromotionResult:
    if not by.strip() or not reason.strip():
        raise ValueError("a promotion needs --by and --reason")
    state = current_state(all_records(engine), environment).get(model)
    live = state.live if state else None
    result = evaluate(
        models_dir,
        model,
        version,
        holdout,
        engine=engine,
        environment=environment,
        live_version=live,
        site=site,
    )
    if not result.passed and not override_reason:
        raise PromotionRefused(result.failures, result.evidence)
    artifact = load_model(models_dir, model, version).artifact_sha256
    record = append_record(
        engine,
        {
            "model_name": model,
            "model_version": version,
            "artifact_sha256": artifact,
            "environment": environment,
            "role": role,
            "action": "promote",
            "decided_by": by,
            "reason": reason,
            "override": bool(override_reason and not result.passed),
            "override_reason": override_reason if not result.passed else None,
            "evidence": json.dumps(result.evidence, sort_keys=True, default=str),
        },
    )
    return PromotionResult(record, result.passed, result.failures)


def rollback(
    engine: Engine,
    models_dir: Path,
    model: str,
    *,
    environment: str,
    by: str,
    reason: str,
    to_version: str | None = None,
) -> dict[str, Any]:
    """Make the previous live version (or ``to_version``) live again; recorded like a promotion."""
    if not by.strip() or not reason.strip():
        raise ValueError("a rollback needs --by and --reason")
    state = current_state(all_records(engine), environment).get(model)
    target = to_version or (state.live_history[-1] if state and state.live_history else None)
    if target is None:
        raise ValueError(f"no earlier live version of {model} in {environment} to roll back to")
    artifact = load_model(models_dir, model, target).artifact_sha256
    return append_record(
        engine,
        {
            "model_name": model,
            "model_version": target,
            "artifact_sha256": artifact,
            "environment": environment,
            "role": "live",
            "action": "rollback",
            "decided_by": by,
            "reason": reason,
            "override": False,
            "override_reason": None,
            "evidence": json.dumps({"previous_live": state.live if state else None}),
        },
    )


def retire_shadow(
    engine: Engine,
    models_dir: Path,
    model: str,
    version: str,
    *,
    environment: str,
    by: str,
    reason: str,
) -> dict[str, Any]:
    artifact = load_model(models_dir, model, version).artifact_sha256
    return append_record(
        engine,
        {
            "model_name": model,
            "model_version": version,
            "artifact_sha256": artifact,
            "environment": environment,
            "role": "shadow",
            "action": "retire",
            "decided_by": by,
            "reason": reason,
            "override": False,
            "override_reason": None,
            "evidence": "{}",
        },
    )

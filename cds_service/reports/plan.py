"""The post-market surveillance plan of one model (``models/<model>/pms.toml``): the indicators
and their thresholds that the PMS report measures the period against (MDR Articles 83-86,
Annex III), and the texts of the applied model card that no manifest holds (intended use,
users, warnings). Validated when loaded, so a typo fails the report with the file and field
named instead of silently dropping an indicator."""

from __future__ import annotations

import tomllib
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

__all__ = ["CardTexts", "Indicators", "PmsPlan", "PmsPlanError", "load_plan"]

PLAN_FILE = "pms.toml"


class PmsPlanError(ValueError):
    """A missing or invalid plan file; the message names the file and the field."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _ordered(pair: tuple[float, float], name: str) -> None:
    if pair[0] >= pair[1]:
        raise ValueError(f"{name}: the lower bound must be below the upper bound")


class Indicators(_Strict):
    """Thresholds; a figure of the period beyond one is an exceedance in the report."""

    min_auroc: float = Field(gt=0.5, le=1.0)
    calibration_intercept_range: tuple[float, float]
    calibration_slope_range: tuple[float, float]
    max_psi: float = Field(gt=0.0)
    # Missing rate of an input minus its rate in the training reference (labs are often not
    # measured by design; what matters is that they go missing more often than in training).
    max_missing_rate_excess: float = Field(gt=0.0, le=1.0)
    max_override_rate: float = Field(gt=0.0, le=1.0)
    max_alert_rate: float = Field(gt=0.0, le=1.0)

    @model_validator(mode="after")
    def _ranges(self) -> Indicators:
        _ordered(self.calibration_intercept_range, "calibration_intercept_range")
        _ordered(self.calibration_slope_range, "calibration_slope_range")
        return self


class CardTexts(_Strict):
    """Applied model card fields only people can write (CHAI v0.2 element names in docs/pms.md)."""

    developer: str
    contact: str
    intended_use: str
    intended_users: str
    how_to_use: str
    target_population: str
    out_of_scope: str
    known_risks: str
    known_biases: str
    clinical_risk_level: str
    regulatory_approval: str
    funding: str
    stakeholders: str
    patient_disclosure: str
    keywords: list[str] = Field(default_factory=list)


class PmsPlan(_Strict):
    model: str
    review_period_days: int = Field(gt=0, le=366)
    owner: str
    indicators: Indicators
    card: CardTexts


def load_plan(models_dir: Path, model: str) -> PmsPlan:
    path = models_dir / model / PLAN_FILE
    if not path.is_file():
        raise PmsPlanError(f"no PMS plan for {model}: {path} is missing (see docs/pms.md)")
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
        plan = PmsPlan.model_validate(raw)
    except tomllib.TOMLDecodeError as exc:
        raise PmsPlanError(f"{path}: not valid TOML: {exc}") from exc
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or '(file)'}: {e['msg']}" for e in exc.errors()
        )
        raise PmsPlanError(f"{path}: {problems}") from exc
    if plan.model != model:
        raise PmsPlanError(f"{path}: model is {plan.model!r}, expected {model!r}")
    return plan

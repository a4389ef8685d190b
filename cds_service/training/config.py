"""``models/<model>/training.toml``: how a model is trained, gated and described."""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cds_service.stats import DEFAULT_AGE_BANDS, parse_age_bands
from cds_service.training.population import DEFAULT_MAX_UNSCORABLE_POSITIVE_SHARE


class ConfigError(ValueError):
    pass


@dataclass(frozen=True, slots=True)
class TrainingConfig:
    version: str
    export: str
    split_seed: int
    test_fraction: float
    calibration_fraction: float
    lightgbm: dict[str, Any]
    num_boost_round: int
    calibration: str
    age_bands: tuple[float, ...]
    gate: dict[str, Any]
    card: dict[str, str]
    max_unscorable_positive_share: float = DEFAULT_MAX_UNSCORABLE_POSITIVE_SHARE


def load_training_config(path: Path) -> TrainingConfig:
    try:
        doc = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"{path}: {exc}") from exc
    try:
        model, split = doc["model"], doc["split"]
        lgbm = dict(doc["lightgbm"])
        rounds = int(lgbm.pop("num_boost_round"))
        calibration = doc.get("calibration", {}).get("method", "platt")
        if calibration != "platt":
            raise ConfigError(f"{path}: calibration.method must be 'platt'")
        bands = parse_age_bands(doc.get("subgroups", {}).get("age_bands", DEFAULT_AGE_BANDS))
        test, cal = float(split["test_fraction"]), float(split["calibration_fraction"])
        if not (0 < test < 1 and 0 < cal < 1 and test + cal < 0.9):
            raise ConfigError(f"{path}: split fractions must leave at least 10% for training")
        return TrainingConfig(
            version=str(model["version"]),
            export=str(model.get("export", "data/synth")),
            split_seed=int(split["seed"]),
            test_fraction=test,
            calibration_fraction=cal,
            lightgbm=lgbm,
            num_boost_round=rounds,
            calibration=calibration,
            age_bands=bands,
            gate=dict(doc.get("gate", {})),
            card={k: str(v) for k, v in doc.get("card", {}).items()},
            max_unscorable_positive_share=_share_setting(doc.get("table", {})),
        )
    except (KeyError, TypeError, ValueError) as exc:
        if isinstance(exc, ConfigError):
            raise
        raise ConfigError(f"{path}: missing or invalid key: {exc}") from exc


def _share_setting(table: dict[str, Any]) -> float:
    if "max_dropped_positive_share" in table:
        raise ConfigError(
            "table.max_dropped_positive_share is now table.max_unscorable_positive_share: rows "
            "lacking a required input are kept for training and no longer dropped"
        )
    share = float(table.get("max_unscorable_positive_share", DEFAULT_MAX_UNSCORABLE_POSITIVE_SHARE))
    if not 0 <= share <= 1:
        raise ConfigError("table.max_unscorable_positive_share must be between 0 and 1")
    return share

"""Training: a FHIR bulk export through the same feature mappers the service uses, to a
deterministic LightGBM model with Platt calibration, its manifest and its model card.

The model file must reproduce byte for byte from the same export, configuration and code (see
``train.CODE_FILES``): a manifest proves where a served model came from.
"""

from cds_service.training.config import ConfigError, TrainingConfig, load_training_config
from cds_service.training.model_card import render_model_card
from cds_service.training.train import (
    CODE_FILES,
    Table,
    TrainResult,
    build_table,
    code_sha256,
    table_sha256,
    train_model,
)

__all__ = [
    "CODE_FILES",
    "ConfigError",
    "Table",
    "TrainResult",
    "TrainingConfig",
    "build_table",
    "code_sha256",
    "load_training_config",
    "render_model_card",
    "table_sha256",
    "train_model",
]

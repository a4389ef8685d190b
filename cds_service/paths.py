"""Where the project's definitions live; overridable so a hospital can mount its own."""

from __future__ import annotations

import os
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[1]


def models_dir() -> Path:
    return Path(os.environ.get("CDS_MODELS_DIR", PROJECT_ROOT / "models"))


def hooks_dir() -> Path:
    return Path(os.environ.get("CDS_HOOKS_DIR", PROJECT_ROOT / "hooks"))


def data_dir() -> Path:
    return Path(os.environ.get("CDS_DATA_DIR", PROJECT_ROOT / "data"))

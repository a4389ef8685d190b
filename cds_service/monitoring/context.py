"""What monitoring needs to know about one model version: its features and their training
reference (from ``manifest.json``), its validation gate, its outcome label and its age bands.

Read from the JSON and TOML files directly: monitoring needs no model artifact and must work for a
version that is no longer deployed (or whose artifact was removed)."""

from __future__ import annotations

import json
import logging
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from cds_service.stats import (
    DEFAULT_AGE_BANDS,
    FloatArray,
    ReferenceBins,
    parse_age_bands,
    reference_bins,
)

log = logging.getLogger("cds_service.monitoring.run")


@dataclass(slots=True)
class ModelContext:
    name: str
    version: str
    found: bool
    features: list[str] = field(default_factory=list)
    reference: dict[str, dict[str, Any]] = field(default_factory=dict)
    bins: dict[str, ReferenceBins | None] = field(default_factory=dict)
    bin_reasons: dict[str, str] = field(default_factory=dict)
    samples: dict[str, FloatArray] = field(default_factory=dict)
    gate: dict[str, Any] = field(default_factory=dict)
    label: str | None = None
    age_bands: tuple[float, ...] = DEFAULT_AGE_BANDS
    prediction_reference: ReferenceBins | None = None

    @property
    def sex_index(self) -> int | None:
        return self.features.index("sex_male") if "sex_male" in self.features else None

    @property
    def age_index(self) -> int | None:
        return self.features.index("age") if "age" in self.features else None


def _age_bands(models_dir: Path, name: str) -> tuple[float, ...]:
    """``[subgroups] age_bands`` of the model's training.toml, else DEFAULT_AGE_BANDS."""
    path = models_dir / name / "training.toml"
    try:
        doc = tomllib.loads(path.read_text(encoding="utf-8"))
        return parse_age_bands(doc["subgroups"]["age_bands"])
    except (OSError, tomllib.TOMLDecodeError, KeyError, TypeError, ValueError):
        return DEFAULT_AGE_BANDS


def load_context(models_dir: Path, name: str, version: str) -> ModelContext:
    path = models_dir / name / version / "manifest.json"
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        log.warning(
            "monitoring: no readable manifest for model %s %s (%s): drift, missing-rate and "
            "subgroup figures are skipped for it",
            name,
            version,
            type(exc).__name__,
        )
        return ModelContext(name=name, version=version, found=False)
    ctx = ModelContext(
        name=name,
        version=version,
        found=True,
        features=[str(f) for f in manifest.get("feature_names", [])],
        reference=dict(manifest.get("reference", {})),
        gate=dict(manifest.get("gate", {})),
        label=(manifest.get("label") or {}).get("name"),
        age_bands=_age_bands(models_dir, name),
    )
    for feature in ctx.features:
        entry = ctx.reference.get(feature)
        if entry is None:
            ctx.bins[feature] = None
            ctx.bin_reasons[feature] = "the manifest has no reference for this feature"
            continue
        ctx.bins[feature], ctx.bin_reasons[feature] = reference_bins(entry)
        ctx.samples[feature] = np.asarray(entry.get("sample") or [], dtype=np.float64)
    pred = manifest.get("prediction_reference")
    if isinstance(pred, dict):
        ctx.prediction_reference, _ = reference_bins(pred)
    return ctx

"""Load a versioned model artifact, prove it matches its feature spec, and score one patient.

The manifest check is a safety interlock: a model trained on other features (or another order of
features) would produce a plausible-looking but wrong risk, so the service refuses to start.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cds_service.serving.lgbm_native import NativeBooster, NativeModelError
from fhir_mappers.site_binding import apply_site_terminology
from fhir_mappers.site_terminology import (
    EMPTY_TERMINOLOGY_SHA256,
    NO_SITE_TERMINOLOGY,
    SiteTerminology,
)
from fhir_mappers.spec import ModelSpec, load_spec


class ModelLoadError(RuntimeError):
    pass


@dataclass(frozen=True, slots=True)
class Prediction:
    risk: float
    margin: float
    contributions: dict[str, float]  # in log-odds of the calibrated risk


@dataclass(slots=True)
class LoadedModel:
    name: str
    version: str
    spec: ModelSpec
    manifest: dict[str, Any]
    artifact_sha256: str
    model_card_md: str
    _booster: NativeBooster
    _a: float
    _b: float
    # Site terminology the spec was extended with (the spec's own sha256 stays as trained).
    terminology_sha256: str = EMPTY_TERMINOLOGY_SHA256

    @property
    def feature_names(self) -> list[str]:
        return list(self.manifest["feature_names"])

    def risk(self, vector: list[float]) -> float:
        """Calibrated risk only (cheap: no contributions)."""
        margin = self._booster.raw_score(vector)
        return 1.0 / (1.0 + math.exp(-(self._a * margin + self._b)))

    def explain(self, vector: list[float]) -> Prediction:
        """Calibrated risk and per-feature contributions (TreeSHAP) in calibrated log-odds."""
        contrib = self._booster.contributions(vector)
        margin = float(contrib.sum())
        risk = 1.0 / (1.0 + math.exp(-(self._a * margin + self._b)))
        names = self.feature_names
        return Prediction(
            risk=risk,
            margin=margin,
            contributions={n: float(self._a * c) for n, c in zip(names, contrib[:-1], strict=True)},
        )


def load_model(
    models_dir: Path, name: str, version: str, site: SiteTerminology = NO_SITE_TERMINOLOGY
) -> LoadedModel:
    """Check the artifact against the spec as trained, then add the site's local codes (a
    ``TerminologyError`` when they would change what an input means)."""
    folder = models_dir / name / version
    spec = load_spec(models_dir / name / "features.toml")
    try:
        manifest = json.loads((folder / "manifest.json").read_text(encoding="utf-8"))
        model_bytes = (folder / manifest["artifact"]["file"]).read_bytes()
        card = (folder / "model_card.md").read_text(encoding="utf-8")
    except (OSError, KeyError, ValueError) as exc:
        raise ModelLoadError(f"model {name} {version}: cannot read artifact: {exc}") from exc
    sha = hashlib.sha256(model_bytes).hexdigest()
    if sha != manifest["artifact"]["sha256"]:
        raise ModelLoadError(
            f"model {name} {version}: model file sha256 {sha[:12]} does not match the manifest "
            f"({manifest['artifact']['sha256'][:12]})"
        )
    if manifest.get("feature_names") != spec.feature_names:
        raise ModelLoadError(
            f"model {name} {version}: manifest features {manifest.get('feature_names')} differ "
            f"from features.toml {spec.feature_names}"
        )
    if manifest.get("feature_spec_sha256") != spec.sha256:
        raise ModelLoadError(
            f"model {name} {version}: features.toml changed since training (spec sha256 "
            f"{spec.sha256[:12]}, manifest {str(manifest.get('feature_spec_sha256'))[:12]}); "
            "retrain or restore the spec"
        )
    try:
        booster = NativeBooster(model_bytes.decode("utf-8"))
    except (NativeModelError, UnicodeDecodeError) as exc:
        raise ModelLoadError(f"model {name} {version}: LightGBM refused the model: {exc}") from exc
    if booster.feature_names() != spec.feature_names:
        raise ModelLoadError(f"model {name} {version}: booster feature names differ from spec")
    cal = manifest["calibration"]
    return LoadedModel(
        name=name,
        version=version,
        spec=apply_site_terminology(spec, site),
        manifest=manifest,
        artifact_sha256=sha,
        model_card_md=card,
        _booster=booster,
        _a=float(cal["a"]),
        _b=float(cal["b"]),
        terminology_sha256=site.sha256,
    )

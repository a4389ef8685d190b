"""The request path scores through LightGBM's C API (``serving/lgbm_native.py``): it must give the
very numbers ``lightgbm.Booster.predict`` gives for the same model file, missing values included,
and refuse what it cannot score instead of answering wrongly."""

from __future__ import annotations

import hashlib
import json
import random
from pathlib import Path

import lightgbm as lgb
import numpy as np
import pytest

from cds_service.serving.lgbm_native import NativeBooster, NativeModelError
from cds_service.serving.model_runtime import ModelLoadError, load_model

MODELS = Path(__file__).resolve().parents[2] / "models"
BUNDLED = sorted(p.parent.name for p in MODELS.glob("*/1.0.0"))


def _model_text(name: str) -> str:
    folder = MODELS / name / "1.0.0"
    manifest = json.loads((folder / "manifest.json").read_text(encoding="utf-8"))
    return (folder / manifest["artifact"]["file"]).read_text(encoding="utf-8")


@pytest.mark.parametrize("name", BUNDLED)
def test_scores_and_contributions_equal_the_python_package(name: str) -> None:
    text = _model_text(name)
    native, reference = NativeBooster(text), lgb.Booster(model_str=text)
    assert native.feature_names() == reference.feature_name()
    rng = random.Random(20261204)
    for _ in range(300):
        row = [
            float("nan") if rng.random() < 0.3 else rng.uniform(-10.0, 250.0)
            for _ in range(native.num_features)
        ]
        matrix = np.asarray([row], dtype=np.float64)
        raw = reference.predict(matrix, raw_score=True, num_threads=1)[0]
        contrib = reference.predict(matrix, pred_contrib=True, num_threads=1)[0]
        assert native.raw_score(row) == raw
        assert np.array_equal(native.contributions(row), contrib)


def test_a_row_of_the_wrong_length_is_refused() -> None:
    native = NativeBooster(_model_text(BUNDLED[0]))
    with pytest.raises(NativeModelError, match="values for"):
        native.raw_score([1.0] * (native.num_features + 1))


def test_a_model_file_lightgbm_cannot_read_stops_the_load(tmp_path: Path) -> None:
    with pytest.raises(NativeModelError):
        NativeBooster("tree\nversion=v4\nthis is not a model\n")
    models = tmp_path / "models"
    name = BUNDLED[0]
    for path in (MODELS / name).rglob("*"):
        if path.is_file():
            target = models / name / path.relative_to(MODELS / name)
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(path.read_bytes())
    folder = models / name / "1.0.0"
    manifest = json.loads((folder / "manifest.json").read_text(encoding="utf-8"))
    broken = b"not a LightGBM model\n"
    (folder / manifest["artifact"]["file"]).write_bytes(broken)
    manifest["artifact"]["sha256"] = hashlib.sha256(broken).hexdigest()
    (folder / "manifest.json").write_text(json.dumps(manifest), encoding="utf-8")
    with pytest.raises(ModelLoadError, match="LightGBM refused the model"):
        load_model(models, name, "1.0.0")

"""Training: determinism, artifacts, model cards, and reproduction of the committed artifacts."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import pytest

from cds_devtools.synth import generate_cohort
from cds_service.serving.model_runtime import load_model
from cds_service.training.train import train_model
from tests.conftest import MODELS_DIR


def _models_root(tmp: Path) -> Path:
    root = tmp / "models"
    for name in ("ed-admission", "post-mi-unplanned-visit"):
        (root / name).mkdir(parents=True)
        for file in ("features.toml", "training.toml"):
            shutil.copy(MODELS_DIR / name / file, root / name / file)
    return root


@pytest.fixture(scope="module")
def small_export(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("export")
    generate_cohort(out, ed_patients=500, post_mi_patients=120, seed=7)
    return out


def test_training_twice_gives_byte_identical_artifacts(small_export: Path, tmp_path: Path) -> None:
    first = train_model(
        "ed-admission",
        models_root=_models_root(tmp_path / "a"),
        export_dir=small_export,
        version="0.0.1",
    )
    second = train_model(
        "ed-admission",
        models_root=_models_root(tmp_path / "b"),
        export_dir=small_export,
        version="0.0.1",
    )
    for name in ("model.txt", "manifest.json", "metrics.json", "model_card.md"):
        assert (first.directory / name).read_bytes() == (second.directory / name).read_bytes()
    assert (
        first.model_sha256
        == hashlib.sha256((first.directory / "model.txt").read_bytes()).hexdigest()
    )


def test_artifacts_carry_manifest_metrics_and_model_card(
    small_export: Path, tmp_path: Path
) -> None:
    root = _models_root(tmp_path)
    result = train_model(
        "post-mi-unplanned-visit", models_root=root, export_dir=small_export, version="0.0.2"
    )
    manifest = json.loads((result.directory / "manifest.json").read_text())
    assert manifest["artifact"]["sha256"] == result.model_sha256
    assert manifest["feature_names"][0] == "age"
    assert len(manifest["training_data"]["export_sha256"]) == 64
    assert manifest["parameters"]["lightgbm"]["deterministic"] is True
    test = manifest["metrics"]["test"]
    for key in ("auroc", "auprc", "brier", "calibration_intercept", "calibration_slope"):
        assert key in test
    assert any(k.startswith("sex=") for k in manifest["metrics"]["subgroups"])
    assert any(k.startswith("age=") for k in manifest["metrics"]["subgroups"])
    assert set(manifest["reference"]) == set(manifest["feature_names"])
    card = (result.directory / "model_card.md").read_text()
    for heading in (
        "## Intended use",
        "## Must not be used for",
        "## Performance on the held-out",
        "## Subgroups",
        "## Calibration",
        "## Limitations",
        "AUROC",
    ):
        assert heading in card
    model = load_model(root, "post-mi-unplanned-visit", "0.0.2")
    risk = model.risk([float("nan")] * len(model.feature_names))
    assert 0 < risk < 1
    explained = model.explain([float("nan")] * len(model.feature_names))
    assert abs(explained.risk - risk) < 1e-12


def test_different_seed_changes_the_split_and_so_the_model(
    small_export: Path, tmp_path: Path
) -> None:
    root = _models_root(tmp_path)
    config = root / "ed-admission" / "training.toml"
    base = train_model("ed-admission", models_root=root, export_dir=small_export, version="a")
    config.write_text(config.read_text().replace("seed = 20261123", "seed = 1", 1))
    other = train_model("ed-admission", models_root=root, export_dir=small_export, version="b")
    assert base.model_sha256 != other.model_sha256


@pytest.mark.slow
@pytest.mark.parametrize("model", ["ed-admission", "post-mi-unplanned-visit"])
def test_default_synth_then_train_reproduces_committed_artifact(
    model: str, tmp_path_factory: pytest.TempPathFactory
) -> None:
    export = tmp_path_factory.getbasetemp() / "default-synth"
    if not (export / "manifest.json").exists():
        generate_cohort(export)  # `cds-service synth` defaults
    committed = json.loads((MODELS_DIR / model / "1.0.0" / "manifest.json").read_text())
    result = train_model(
        model, models_root=_models_root(tmp_path_factory.mktemp(model)), export_dir=export
    )
    assert (
        result.manifest["training_data"]["export_sha256"]
        == (committed["training_data"]["export_sha256"])
    ), "the default synthetic cohort changed: regenerate and retrain the committed models"
    assert result.model_sha256 == committed["artifact"]["sha256"]

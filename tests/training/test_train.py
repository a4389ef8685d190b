"""Training: determinism, artifacts, model cards, and reproduction of the committed artifacts."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from cds_devtools.synth import generate_cohort
from cds_service.serving.model_runtime import load_model
from cds_service.training.config import load_training_config
from cds_service.training.population import scorable_mask
from cds_service.training.train import build_table, split_of, train_model
from fhir_mappers.bulk import export_sha256
from tests.conftest import MODELS_DIR


def _models_dir(tmp: Path) -> Path:
    root = tmp / "models"
    for name in ("ed-admission", "ed-admission-arrival", "post-mi-unplanned-visit"):
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
        models_dir=_models_dir(tmp_path / "a"),
        export_dir=small_export,
        version="0.0.1",
    )
    second = train_model(
        "ed-admission",
        models_dir=_models_dir(tmp_path / "b"),
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
    root = _models_dir(tmp_path)
    result = train_model(
        "post-mi-unplanned-visit", models_dir=root, export_dir=small_export, version="0.0.2"
    )
    manifest = json.loads((result.directory / "manifest.json").read_text())
    assert manifest["artifact"]["sha256"] == result.model_sha256
    assert manifest["feature_names"][0] == "age"
    assert manifest["training_data"]["export_sha256"] == export_sha256(small_export)
    assert manifest["parameters"]["lightgbm"]["deterministic"] is True
    metrics = manifest["metrics"]
    assert json.loads((result.directory / "metrics.json").read_text()) == metrics

    # The test figures are those of the saved model on the test split, recomputed here.
    model = load_model(root, "post-mi-unplanned-visit", "0.0.2")
    cfg = load_training_config(root / "post-mi-unplanned-visit" / "training.toml")
    table, _ = build_table(small_export, model.spec)
    in_test = np.array([split_of(pid, cfg) == "test" for pid in table.patient_ids])
    # Evaluated on the rows the service scores; trained on every row of the train split.
    test_rows = in_test & scorable_mask(model.spec, table.names, table.x)
    y = table.y[test_rows]
    p = np.array([model.risk(list(row)) for row in table.x[test_rows]])
    test = metrics["test"]
    assert (test["n"], test["positives"]) == (len(y), int(y.sum()))
    assert metrics["splits"]["test"]["scored_rows"] == len(y)
    assert metrics["splits"]["test"]["rows"] == int(in_test.sum())
    assert sum(s["rows"] for s in metrics["splits"].values()) == manifest["training_data"]["rows"]
    data = manifest["training_data"]
    assert data["rows"] == len(table.y)  # nothing dropped
    assert sum(s["scored_rows"] for s in metrics["splits"].values()) == (
        data["rows"] - data["unscorable_rows"]
    )
    assert test["auroc"] == pytest.approx(roc_auc_score(y, p), abs=2e-6)
    assert test["brier"] == pytest.approx(float(np.mean((p - y) ** 2)), abs=2e-6)
    assert test["prevalence"] == pytest.approx(y.mean(), abs=1e-6)
    assert 0.5 < test["auroc"] <= 1.0
    # Platt's fit matches the mean risk to the outcome rate on the rows it was fitted on: the
    # calibration split's scored rows (not its unscored ones, whose rate differs).
    cal_rows = np.array([split_of(pid, cfg) == "calibration" for pid in table.patient_ids])
    cal_scored = cal_rows & scorable_mask(model.spec, table.names, table.x)
    p_cal = np.array([model.risk(list(row)) for row in table.x[cal_scored]])
    assert p_cal.mean() == pytest.approx(table.y[cal_scored].mean(), abs=1e-3)
    assert table.y[cal_rows].mean() != pytest.approx(table.y[cal_scored].mean(), abs=2e-3)
    # On 29 test patients the rate differs from the calibration split's by sampling alone.
    assert 0.7 * test["prevalence"] < test["mean_predicted"] < 1.4 * test["prevalence"]

    # Subgroups: the training config's age bands and both sexes, each row in one group of each.
    subgroups = metrics["subgroups"]
    assert set(subgroups) == {"sex=female", "sex=male", "age=0-60", "age=60-75", "age=75-200"}
    assert subgroups["sex=female"]["n"] + subgroups["sex=male"]["n"] == test["n"]
    assert sum(subgroups[k]["n"] for k in subgroups if k.startswith("age=")) == test["n"]

    # Drift reference: decile bins whose shares add up to one, for every feature.
    assert set(manifest["reference"]) == set(manifest["feature_names"])
    for name, ref in manifest["reference"].items():
        assert ref["n"] == metrics["splits"]["train"]["rows"], name
        if "fractions" in ref:
            assert len(ref["fractions"]) == len(ref["edges"]) + 1, name
            assert sum(ref["fractions"]) == pytest.approx(1.0, abs=1e-5), name
            assert ref["edges"] == sorted(ref["edges"]), name

    card = (result.directory / "model_card.md").read_text()
    for heading in (
        "## Intended use",
        "## Must not be used for",
        "## Performance on the held-out",
        "## Subgroups",
        "## Calibration",
        "## Limitations",
        "## Contributing factors on the card",
    ):
        assert heading in card
    assert f"| all | {test['n']} | {test['positives']} | " in card
    assert f" | {test['auroc']:.3f} | " in card
    assert f"sha256 `{result.model_sha256}`" in card

    risk = model.risk([float("nan")] * len(model.feature_names))
    assert 0 < risk < 1
    explained = model.explain([float("nan")] * len(model.feature_names))
    assert abs(explained.risk - risk) < 1e-12


def test_different_seed_changes_the_split_and_so_the_model(
    small_export: Path, tmp_path: Path
) -> None:
    root = _models_dir(tmp_path)
    config = root / "ed-admission" / "training.toml"
    base = train_model("ed-admission", models_dir=root, export_dir=small_export, version="a")
    config.write_text(config.read_text().replace("seed = 20261123", "seed = 1", 1))
    other = train_model("ed-admission", models_dir=root, export_dir=small_export, version="b")
    assert base.model_sha256 != other.model_sha256


@pytest.mark.slow
@pytest.mark.parametrize(
    "model", ["ed-admission", "ed-admission-arrival", "post-mi-unplanned-visit"]
)
def test_default_synth_then_train_reproduces_committed_artifact(
    model: str, tmp_path_factory: pytest.TempPathFactory
) -> None:
    export = tmp_path_factory.getbasetemp() / "default-synth"
    if not (export / "manifest.json").exists():
        generate_cohort(export)  # `python -m cds_devtools synth` defaults
    committed = json.loads((MODELS_DIR / model / "1.0.0" / "manifest.json").read_text())
    result = train_model(
        model, models_dir=_models_dir(tmp_path_factory.mktemp(model)), export_dir=export
    )
    assert (
        result.manifest["training_data"]["export_sha256"]
        == (committed["training_data"]["export_sha256"])
    ), "the default synthetic cohort changed: regenerate and retrain the committed models"
    assert result.model_sha256 == committed["artifact"]["sha256"]

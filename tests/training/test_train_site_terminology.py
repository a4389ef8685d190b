"""Training reads local codes through the site terminology and names it in the manifest."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from cds_devtools.synth import generate_cohort
from cds_service.training.train import train_model
from fhir_mappers.site_terminology import EMPTY_TERMINOLOGY_SHA256, load_site_terminology
from tests.conftest import MODELS_DIR
from tests.utils.site_terminology import glucose_concept_map, localize_export, write_site


@pytest.fixture(scope="module")
def local_export(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A synthetic export whose lab sends glucose under its local code only."""
    out = tmp_path_factory.mktemp("export")
    generate_cohort(out, ed_patients=300, post_mi_patients=20, seed=11)
    return localize_export(out)


def _models(tmp: Path) -> Path:
    root = tmp / "models" / "ed-admission"
    root.mkdir(parents=True)
    for file in ("features.toml", "training.toml"):
        shutil.copy(MODELS_DIR / "ed-admission" / file, root / file)
    return tmp / "models"


def test_manifest_carries_the_terminology_hash(local_export: Path, tmp_path: Path) -> None:
    folder = write_site(tmp_path / "site", glucose_concept_map())
    site = load_site_terminology(folder)
    plain = train_model(
        "ed-admission", models_dir=_models(tmp_path / "a"), export_dir=local_export, version="0.1"
    ).manifest
    mapped = train_model(
        "ed-admission",
        models_dir=_models(tmp_path / "b"),
        export_dir=local_export,
        version="0.1",
        site=site,
    ).manifest
    assert plain["terminology_sha256"] == EMPTY_TERMINOLOGY_SHA256
    assert plain["site_terminology_files"] == []
    assert mapped["terminology_sha256"] == site.sha256
    assert mapped["site_terminology_files"] == ["00-conceptmap.json"]
    # the spec (and its hash) is the model's; only what training saw changed
    assert mapped["feature_spec_sha256"] == plain["feature_spec_sha256"]
    assert plain["reference"]["glucose"]["missing_rate"] == 1.0
    assert mapped["reference"]["glucose"]["missing_rate"] < 0.9  # filled wherever measured

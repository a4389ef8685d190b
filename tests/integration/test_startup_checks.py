"""The service refuses to start when a model's manifest and its feature spec disagree."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from cds_service.config import Settings
from cds_service.serving.model_runtime import ModelLoadError
from cds_service.serving.registry import load_registry
from tests.conftest import REPO_ROOT


def _copy(tmp: Path) -> tuple[Path, Path]:
    models = tmp / "models"
    shutil.copytree(REPO_ROOT / "models", models)
    hooks = tmp / "hooks"
    shutil.copytree(REPO_ROOT / "hooks", hooks)
    return hooks, models


def test_bundled_hooks_and_models_load(tmp_path: Path) -> None:
    hooks, models = _copy(tmp_path)
    registry = load_registry(hooks, models)
    assert set(registry.services) == {
        "ed-admission-risk",
        "ed-admission-risk-patient-view",
        "post-mi-unplanned-visit-risk",
    }


def test_changed_feature_spec_refuses_start(tmp_path: Path) -> None:
    hooks, models = _copy(tmp_path)
    spec = models / "ed-admission" / "features.toml"
    spec.write_text(
        spec.read_text().replace('window = ["-PT6H", "PT0S"]', 'window = ["-PT8H", "PT0S"]', 1)
    )
    with pytest.raises(ModelLoadError, match=r"features\.toml changed since training"):
        load_registry(hooks, models)


def test_tampered_model_file_refuses_start(tmp_path: Path) -> None:
    hooks, models = _copy(tmp_path)
    model = models / "ed-admission" / "1.0.0" / "model.txt"
    model.write_text(model.read_text() + "\n")
    with pytest.raises(ModelLoadError, match="does not match the manifest"):
        load_registry(hooks, models)


def test_reordered_manifest_features_refuse_start(tmp_path: Path) -> None:
    hooks, models = _copy(tmp_path)
    path = models / "ed-admission" / "1.0.0" / "manifest.json"
    manifest = json.loads(path.read_text())
    manifest["feature_names"] = list(reversed(manifest["feature_names"]))
    path.write_text(json.dumps(manifest))
    with pytest.raises(ModelLoadError, match=r"differ from features\.toml"):
        load_registry(hooks, models)


def test_bad_prefetch_token_refuses_start(tmp_path: Path) -> None:
    from cds_service.serving.hook_defs import HookDefinitionError

    hooks, models = _copy(tmp_path)
    path = hooks / "post-mi-unplanned-visit-risk.toml"
    path.write_text(
        path.read_text().replace("{{context.patientId}}&code", "{{context.medication.id}}&code", 1)
    )
    with pytest.raises(HookDefinitionError, match="not allowed"):
        load_registry(hooks, models)


def test_secrets_required_outside_development(tmp_path: Path) -> None:
    callers = tmp_path / "callers.json"
    callers.write_text("[]")
    with pytest.raises(ValueError, match="CDS_PSEUDONYM_KEY"):
        Settings(environment="production", pseudonym_key=None, trusted_issuers=callers)
    with pytest.raises(ValueError, match="CDS_TRUSTED_ISSUERS"):
        Settings(environment="acceptance", pseudonym_key="a" * 32)
    with pytest.raises(ValueError, match="only allowed in development"):
        Settings(
            environment="production",
            pseudonym_key="a" * 32,
            trusted_issuers=callers,
            auth_disabled=True,
        )
    ok = Settings(environment="acceptance", pseudonym_key="a" * 32, trusted_issuers=callers)
    assert ok.pseudonym_key

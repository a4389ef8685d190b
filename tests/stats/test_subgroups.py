"""Subgroups and age bands: one definition for training, the gate and monitoring."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from cds_service.stats import (
    DEFAULT_AGE_BANDS,
    feature_subgroup_masks,
    parse_age_bands,
    subgroup_masks,
)
from cds_service.training.config import ConfigError, load_training_config
from tests.conftest import MODELS_DIR


def test_masks_by_sex_and_half_open_age_band() -> None:
    sex = np.array([0.0, 1.0, np.nan, 1.0])
    age = np.array([49.9, 50.0, 70.0, np.nan])
    masks = subgroup_masks(sex, age, DEFAULT_AGE_BANDS)
    assert list(masks) == ["sex=female", "sex=male", "age=0-50", "age=50-70", "age=70-200"]
    assert list(masks["sex=female"]) == [True, False, False, False]
    assert list(masks["sex=male"]) == [False, True, False, True]
    assert list(masks["age=0-50"]) == [True, False, False, False]
    assert list(masks["age=50-70"]) == [False, True, False, False]
    assert list(masks["age=70-200"]) == [False, False, True, False]  # NaN age: no band


def test_a_model_without_the_features_has_no_such_subgroups() -> None:
    assert subgroup_masks(None, None, DEFAULT_AGE_BANDS) == {}
    x = np.array([[1.0, 63.0], [0.0, 20.0]])
    masks = feature_subgroup_masks(["sex_male", "age"], x, (0.0, 60.0, 200.0))
    assert {k: list(v) for k, v in masks.items()} == {
        "sex=female": [False, True],
        "sex=male": [True, False],
        "age=0-60": [False, True],
        "age=60-200": [True, False],
    }
    assert list(feature_subgroup_masks(["heart_rate"], x[:, :1], DEFAULT_AGE_BANDS)) == []


@pytest.mark.parametrize("bad", [[50], [0, 70, 50], [0, 0, 200], ["a", "b"]])
def test_age_bands_must_increase(bad: list[object]) -> None:
    with pytest.raises(ValueError):
        parse_age_bands(bad)


def test_the_committed_models_bands_and_the_default() -> None:
    assert parse_age_bands([0, 50, 70, 200]) == DEFAULT_AGE_BANDS
    ed = load_training_config(MODELS_DIR / "ed-admission" / "training.toml")
    assert ed.age_bands == DEFAULT_AGE_BANDS


def test_training_config_without_bands_uses_the_default_and_refuses_bad_ones(
    tmp_path: Path,
) -> None:
    text = (MODELS_DIR / "ed-admission" / "training.toml").read_text()
    start = text.index("[subgroups]")
    end = text.index("\n[", start + 1)
    path = tmp_path / "training.toml"
    path.write_text(text[:start] + text[end + 1 :])
    assert load_training_config(path).age_bands == DEFAULT_AGE_BANDS
    path.write_text(text.replace("[subgroups]\n", "[subgroups]\nage_bands = [70, 50]\n#", 1))
    with pytest.raises(ConfigError):
        load_training_config(path)

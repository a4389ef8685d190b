"""Subgroups by sex and age band: the one definition training, the validation gate and
monitoring share, so a model card's subgroup and a monitoring figure's subgroup are the same rows.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from typing import Any

from cds_service.stats.arrays import BoolArray, FloatArray

__all__ = ["DEFAULT_AGE_BANDS", "feature_subgroup_masks", "parse_age_bands", "subgroup_masks"]


# The bands of the committed models' training.toml; used where a model names none.
DEFAULT_AGE_BANDS: tuple[float, ...] = (0.0, 50.0, 70.0, 200.0)


def parse_age_bands(value: Any) -> tuple[float, ...]:
    """``[subgroups] age_bands`` of a training.toml: at least two increasing edges (years).

    Raises ValueError (or TypeError for a non-list) so each caller decides: training refuses the
    config, monitoring falls back to DEFAULT_AGE_BANDS.
    """
    bands = tuple(float(x) for x in value)
    if len(bands) < 2 or any(lo >= hi for lo, hi in itertools.pairwise(bands)):
        raise ValueError(f"age_bands must be at least two increasing numbers, not {list(value)}")
    return bands


def subgroup_masks(
    sex_male: FloatArray | None, age: FloatArray | None, age_bands: Sequence[float]
) -> dict[str, BoolArray]:
    """'sex=female' / 'sex=male' from the 0/1 feature sex_male, and 'age=<lo>-<hi>' for each
    [lo, hi) band. Missing values (NaN) belong to no subgroup."""
    out: dict[str, BoolArray] = {}
    if sex_male is not None:
        out["sex=female"] = sex_male == 0
        out["sex=male"] = sex_male == 1
    if age is not None:
        for lo, hi in itertools.pairwise(age_bands):
            out[f"age={lo:g}-{hi:g}"] = (age >= lo) & (age < hi)
    return out


def feature_subgroup_masks(
    names: Sequence[str], x: FloatArray, age_bands: Sequence[float]
) -> dict[str, BoolArray]:
    """``subgroup_masks`` on a feature matrix whose columns are ``names``."""
    names = list(names)
    sex = x[:, names.index("sex_male")] if "sex_male" in names else None
    age = x[:, names.index("age")] if "age" in names else None
    return subgroup_masks(sex, age, age_bands)

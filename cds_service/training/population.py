"""Who is in the training table, and whom the service will score.

A feature marked ``required`` is a serving-time safety rule: the service shows no risk without
it. It must never decide the training population unseen (a real export where, say, triage vitals
are recorded hours later would otherwise train on a biased remainder and lose the positives
without a word). So every index event is a row and the model learns with missing values; the
rows the service would leave unscored are reported with their label balance and the inputs they
lacked, calibration and evaluation use the rows the service scores, and training refuses when
the unscored rows hold more than a set share of the positives: the figures would then describe
a population the card mostly never reaches.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from fhir_mappers.bulk import TableStats
from fhir_mappers.spec import ModelSpec

DEFAULT_MAX_UNSCORABLE_POSITIVE_SHARE = 0.2


class PopulationError(ValueError):
    """The service would score too few of the positives for the figures to stand for them."""


def _share(part: int, whole: int) -> str:
    return f"{100 * part / whole:.1f}%" if whole else "n/a"


def scorable_mask(spec: ModelSpec, names: list[str], x: NDArray[np.float64]) -> NDArray[np.bool_]:
    """Rows with every required input present: the rows the service gives a risk."""
    mask = np.ones(len(x), dtype=bool)
    for feat in spec.features:
        if feat.required:
            mask &= ~np.isnan(x[:, names.index(feat.name)])
    return mask


def population_summary(stats: TableStats) -> list[str]:
    """Rows with their label balance, and the rows the service would not score and why."""
    scorable = stats.rows - stats.unscorable
    lines = [
        f"kept {stats.rows} rows (every index event), {stats.positives} positive "
        f"({_share(stats.positives, stats.rows)}); dropped 0",
        f"scored by the service: {scorable} rows, "
        f"{stats.positives - stats.unscorable_positives} positive",
        f"lacking a required input: {stats.unscorable} rows, {stats.unscorable_positives} positive "
        f"({_share(stats.unscorable_positives, stats.positives)} of all positives); kept for "
        "training with the input missing, left out of calibration and evaluation, shown no risk "
        "by the service",
    ]
    if stats.unscorable_for:
        lacked = ", ".join(f"{name} {n}" for name, n in stats.unscorable_for.most_common())
        lines.append(f"missing among them: {lacked}")
    return lines


def check_population(stats: TableStats, max_unscorable_positive_share: float) -> None:
    """Refuse when the rows the service cannot score hold too many of the positives."""
    if not stats.positives:
        return
    if stats.unscorable_positives / stats.positives <= max_unscorable_positive_share:
        return
    lacked = ", ".join(name for name, _ in stats.unscorable_for.most_common())
    raise PopulationError(
        f"{stats.unscorable_positives} of {stats.positives} positive rows "
        f"({_share(stats.unscorable_positives, stats.positives)}) lack a required input "
        f"({lacked}): the service would show them no risk, and the evaluation would describe "
        f"the rest only; more than the allowed {100 * max_unscorable_positive_share:.0f}% "
        "([table] max_unscorable_positive_share in training.toml). Map the inputs "
        "(docs/feature-spec.md), review which features are required, or train a model for the "
        "moment those inputs exist (docs/encounter-anchoring.md)."
    )

"""Bins: decile bins of a distribution (the drift reference) and equal-width risk bins (the
calibration figures). Training writes the manifest's reference with ``decile_bins`` and monitoring
rebuilds a baseline with it, so both cut values the same way.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from cds_service.stats.arrays import FloatArray, IntArray

__all__ = [
    "CALIBRATION_BINS",
    "ReferenceBins",
    "calibration_bin_index",
    "decile_bins",
    "reference_bins",
]


CALIBRATION_BINS = 10


@dataclass(frozen=True, slots=True)
class ReferenceBins:
    """Bins ``np.searchsorted(edges, x, side="right")`` with their reference shares."""

    edges: FloatArray
    fractions: FloatArray

    @property
    def bins(self) -> int:
        return len(self.fractions)

    def counts(self, values: FloatArray) -> IntArray:
        idx = np.searchsorted(self.edges, values, side="right")
        return np.bincount(idx, minlength=self.bins).astype(np.int64)


def decile_bins(values: FloatArray) -> ReferenceBins:
    """Bins between the distinct deciles of ``values`` (rounded to 6 places), with their shares.

    Ties merge deciles, so a feature with few distinct values gets fewer bins (a 0/1 flag gets
    one: see ``reference_bins``).
    """
    edges = sorted({round(float(v), 6) for v in np.quantile(values, np.linspace(0, 1, 11))})
    inner = np.asarray(edges[1:-1], dtype=np.float64)
    counts = np.bincount(np.searchsorted(inner, values, side="right"), minlength=len(inner) + 1)
    return ReferenceBins(inner, counts / len(values))


def reference_bins(entry: Mapping[str, Any]) -> tuple[ReferenceBins | None, str]:
    """The manifest's decile bins for one feature, or None with the reason.

    Training keeps only the inner decile edges, so a two-valued feature (sex_male, a 0/1 flag)
    arrives with no edges and one bin; its two bins are rebuilt from the reference sample's two
    values and the reference mean (share of the upper value = (mean - low) / (high - low)).
    """
    edges = entry.get("edges")
    fractions = entry.get("fractions")
    if edges is None or fractions is None or len(fractions) != len(edges) + 1:
        return None, "the manifest has no reference bins for this feature"
    if len(edges) == 0:
        values = sorted({float(v) for v in entry.get("sample") or []})
        mean = entry.get("mean")
        if len(values) == 2 and mean is not None:
            low, high = values
            upper = min(max((float(mean) - low) / (high - low), 0.0), 1.0)
            return (
                ReferenceBins(np.array([high]), np.array([1.0 - upper, upper])),
                "",
            )
        return None, "the reference has a single bin (constant feature in training)"
    return ReferenceBins(np.asarray(edges, dtype=np.float64), np.asarray(fractions, float)), ""


def calibration_bin_index(
    p: FloatArray, bins: int = CALIBRATION_BINS
) -> tuple[FloatArray, NDArray[np.intp]]:
    """Edges of ``bins`` equal-width risk bins and each risk's bin: bin k holds [k/bins,
    (k+1)/bins), the last bin includes 1.0."""
    edges = np.linspace(0, 1, bins + 1)
    return edges, np.clip(np.digitize(p, edges[1:-1]), 0, bins - 1)

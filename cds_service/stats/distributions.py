"""Pure statistics for monitoring: reference bins and PSI, order-free bounded samples for the
two-sample KS test, calibration bins and subgroup masks. No SQL, no clock.

PSI (population stability index) over the reference bins of the training split::

    psi = sum_i (a_i - e_i) * ln(a_i / e_i)

with ``a_i`` the window's share of values in bin ``i`` and ``e_i`` the reference share. A share
below ``PSI_EPSILON`` (an empty bin) counts as ``PSI_EPSILON`` so that the logarithm stays finite;
a bin that is empty in one distribution and not in the other then adds about
``share * ln(share / 1e-4)``.
"""

from __future__ import annotations

import itertools
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

FloatArray = NDArray[np.float64]
IntArray = NDArray[np.int64]
BoolArray = NDArray[np.bool_]

PSI_EPSILON = 1e-4
# Start value of the CRC32 that turns a card_uuid into its sampling key (see BottomKSample).
SAMPLE_SEED = 20260314
DEFAULT_AGE_BANDS: tuple[float, ...] = (0.0, 50.0, 70.0, 200.0)
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


def decile_bins(values: FloatArray) -> ReferenceBins:
    """Decile bins of ``values``, built exactly as training builds the manifest reference."""
    edges = sorted({round(float(v), 6) for v in np.quantile(values, np.linspace(0, 1, 11))})
    inner = np.asarray(edges[1:-1], dtype=np.float64)
    counts = np.bincount(np.searchsorted(inner, values, side="right"), minlength=len(inner) + 1)
    return ReferenceBins(inner, counts / len(values))


def psi(counts: IntArray, reference: FloatArray, epsilon: float = PSI_EPSILON) -> float:
    """Population stability index of observed bin counts against reference bin shares."""
    total = int(counts.sum())
    if total == 0:
        raise ValueError("PSI needs at least one value")
    actual = np.maximum(counts / total, epsilon)
    expected = np.maximum(np.asarray(reference, dtype=np.float64), epsilon)
    return float(np.sum((actual - expected) * np.log(actual / expected)))


def sample_keys(card_uuids: Sequence[str]) -> IntArray:
    """Sampling key per row: CRC32 of the card_uuid, started at SAMPLE_SEED."""
    return np.fromiter(
        (zlib.crc32(u.encode(), SAMPLE_SEED) for u in card_uuids),
        dtype=np.int64,
        count=len(card_uuids),
    )


class BottomKSample:
    """At most ``k`` values: those whose rows have the smallest (key, value).

    A uniform sample without replacement (the keys are hashes of random card ids), with bounded
    memory, that does not depend on the order in which rows arrive: SQLite and PostgreSQL return
    rows in different orders and must still give the same KS test.
    """

    def __init__(self, k: int) -> None:
        self.k = k
        self.keys: IntArray = np.empty(0, dtype=np.int64)
        self.values: FloatArray = np.empty(0, dtype=np.float64)
        self.seen = 0

    def add(self, keys: IntArray, values: FloatArray) -> None:
        self.seen += len(values)
        if len(self.keys) >= self.k:
            keep = keys <= self.keys[-1]  # the current k-th smallest key (arrays kept sorted)
            keys, values = keys[keep], values[keep]
        if not len(keys):
            return
        all_keys = np.concatenate([self.keys, keys])
        all_values = np.concatenate([self.values, values])
        if len(all_keys) > self.k:  # sort only the candidates up to the k-th smallest key
            near = all_keys <= np.partition(all_keys, self.k - 1)[self.k - 1]
            all_keys, all_values = all_keys[near], all_values[near]
        order = np.lexsort((all_values, all_keys))[: self.k]
        self.keys, self.values = all_keys[order], all_values[order]


def calibration_bins(
    y: FloatArray, p: FloatArray, bins: int = CALIBRATION_BINS
) -> list[dict[str, float]]:
    """Observed vs predicted in equal-width risk bins: the bins of the ECE in stats.metrics.

    Bin ``k`` holds risks in [k/bins, (k+1)/bins) (the last bin includes 1.0); empty bins are left
    out.
    """
    edges = np.linspace(0, 1, bins + 1)
    which = np.clip(np.digitize(p, edges[1:-1]), 0, bins - 1)
    out = []
    for b in range(bins):
        mask = which == b
        if mask.any():
            out.append(
                {
                    "bin": b,
                    "lo": round(float(edges[b]), 6),
                    "hi": round(float(edges[b + 1]), 6),
                    "n": int(mask.sum()),
                    "predicted": float(p[mask].mean()),
                    "observed": float(y[mask].mean()),
                }
            )
    return out


def subgroup_masks(
    sex_male: FloatArray | None, age: FloatArray | None, age_bands: Sequence[float]
) -> dict[str, BoolArray]:
    """'sex=female' / 'sex=male' from the 0/1 feature sex_male, and 'age=<lo>-<hi>' for each
    [lo, hi) band: the subgroup names training uses in the manifest. Missing values belong to no
    subgroup."""
    out: dict[str, BoolArray] = {}
    if sex_male is not None:
        out["sex=female"] = sex_male == 0
        out["sex=male"] = sex_male == 1
    if age is not None:
        for lo, hi in itertools.pairwise(age_bands):
            out[f"age={lo:g}-{hi:g}"] = (age >= lo) & (age < hi)
    return out

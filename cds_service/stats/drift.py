"""Drift statistics: PSI against reference bins, and an order-free bounded sample for the
two-sample KS test. No SQL, no clock.

PSI (population stability index) over the reference bins of the training split::

    psi = sum_i (a_i - e_i) * ln(a_i / e_i)

with ``a_i`` the window's share of values in bin ``i`` and ``e_i`` the reference share. A share
below ``PSI_EPSILON`` (an empty bin) counts as ``PSI_EPSILON`` so that the logarithm stays finite;
a bin that is empty in one distribution and not in the other then adds about
``share * ln(share / 1e-4)``.
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence

import numpy as np

from cds_service.stats.arrays import FloatArray, IntArray

__all__ = ["PSI_EPSILON", "SAMPLE_SEED", "BottomKSample", "psi", "sample_keys"]


PSI_EPSILON = 1e-4
# Start value of the CRC32 that turns a card_uuid into its sampling key (see BottomKSample).
SAMPLE_SEED = 20260314


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

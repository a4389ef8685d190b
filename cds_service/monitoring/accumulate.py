"""Per (group, window) accumulators fed by the streamed audit rows.

Memory per accumulator is bounded by the model's features: missing counts, reference-bin counts
and a BottomKSample of at most ``k`` values per feature; plus, per card with a risk, its risk (8
bytes), and per card with an outcome, risk, label, sex and age (the inputs of the performance
figures).
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from operator import itemgetter
from typing import Any

import numpy as np
import orjson

from cds_service.monitoring.context import ModelContext
from cds_service.stats import (
    BoolArray,
    BottomKSample,
    FloatArray,
    IntArray,
    sample_keys,
    subgroup_masks,
)


def _number(value: Any) -> float | None:
    if isinstance(value, int | float) and math.isfinite(value):
        return float(value)
    return None


def _parse(text: Any) -> dict[str, Any] | None:
    try:
        doc = orjson.loads(text)
    except (orjson.JSONDecodeError, TypeError):
        return None
    return doc if isinstance(doc, dict) else None


def feature_matrix(texts: Sequence[Any], names: Sequence[str]) -> tuple[FloatArray, int]:
    """Rows x features (NaN = missing: null, absent or not a number) from the features JSON
    texts, and how many texts were not a JSON object (all their features count as missing)."""
    try:
        docs: list[dict[str, Any] | None] = list(map(orjson.loads, texts))
    except (orjson.JSONDecodeError, TypeError):
        docs = [_parse(t) for t in texts]
    good = [d for d in docs if isinstance(d, dict)]
    bad = len(docs) - len(good)
    if bad == 0:
        getter = itemgetter(*names)
        try:
            matrix = np.array(list(map(getter, good)), dtype=np.float64)
            return matrix.reshape(len(docs), len(names)), 0
        except (KeyError, TypeError, ValueError):
            pass  # a feature absent or not numeric somewhere in the chunk: the tolerant path
    rows = [[_number(d.get(n)) if isinstance(d, dict) else None for n in names] for d in docs]
    return np.array(rows, dtype=np.float64).reshape(len(docs), len(names)), bad


@dataclass(frozen=True, slots=True)
class Batch:
    """Streamed cards of one group, column by column (see monitoring_queries.card_rows)."""

    uuids: Sequence[str]
    is_risk: BoolArray
    alerting: BoolArray
    risk: FloatArray
    label: FloatArray
    features: Sequence[Any]

    def take(self, idx: IntArray) -> Batch:
        pick = idx.tolist()
        return Batch(
            [self.uuids[i] for i in pick],
            self.is_risk[idx],
            self.alerting[idx],
            self.risk[idx],
            self.label[idx],
            [self.features[i] for i in pick],
        )


def split_by_group(rows: Sequence[Any]) -> Iterator[tuple[int, Batch]]:
    """(group index, batch) for each group present in a chunk of card_rows rows."""
    if not rows:
        return
    gid, uuids, is_risk, alerting, risk, label, features = zip(*rows, strict=True)
    groups = np.array(gid, dtype=np.int64)
    batch = Batch(
        uuids,
        np.array(is_risk, dtype=np.int8) == 1,
        np.array(alerting, dtype=np.int8) == 1,
        np.array(risk, dtype=np.float64),
        np.array(label, dtype=np.float64),
        features,
    )
    present = np.unique(groups)
    if len(present) == 1:
        yield int(present[0]), batch
        return
    for g in present:
        yield int(g), batch.take(np.flatnonzero(groups == g))


class WindowAccumulator:
    """Everything the stream contributes to one group's figures in one window."""

    def __init__(self, ctx: ModelContext, sample_size: int) -> None:
        self.ctx = ctx
        n_features = len(ctx.features)
        self.rows = 0
        self.unparsable = 0
        self.missing: IntArray = np.zeros(n_features, dtype=np.int64)
        self.bin_counts: list[IntArray | None] = []
        for f in ctx.features:
            bins = ctx.bins.get(f)
            self.bin_counts.append(None if bins is None else np.zeros(bins.bins, dtype=np.int64))
        self.samples = [BottomKSample(sample_size) for _ in ctx.features]
        self._risks: list[FloatArray] = []
        self._risk_alerting: list[BoolArray] = []
        self._labelled_alerting: list[tuple[FloatArray, FloatArray]] = []
        self._perf: list[tuple[FloatArray, FloatArray, FloatArray, FloatArray]] = []
        # subgroup -> [cards, risk cards, risk cards with an alerting indicator]
        self.subgroup_counts: dict[str, list[int]] = {}

    def add(self, batch: Batch) -> None:
        n = len(batch.uuids)
        if n == 0:
            return
        self.rows += n
        risk, label = batch.risk, batch.label
        has_risk = ~np.isnan(risk)
        self._risks.append(risk[has_risk])
        self._risk_alerting.append(batch.alerting[has_risk])

        names = self.ctx.features
        nan = np.full(n, np.nan)
        sex, age = nan, nan
        if names:
            matrix, bad = feature_matrix(batch.features, names)
            self.unparsable += bad
            present = ~np.isnan(matrix)
            self.missing += n - present.sum(axis=0)
            keys = sample_keys(batch.uuids)
            for j in range(len(names)):
                values = matrix[present[:, j], j]
                counts = self.bin_counts[j]
                bins = self.ctx.bins.get(names[j])
                if counts is not None and bins is not None:
                    counts += bins.counts(values)
                self.samples[j].add(keys[present[:, j]], values)
            if self.ctx.sex_index is not None:
                sex = matrix[:, self.ctx.sex_index]
            if self.ctx.age_index is not None:
                age = matrix[:, self.ctx.age_index]
            masks = subgroup_masks(
                sex if self.ctx.sex_index is not None else None,
                age if self.ctx.age_index is not None else None,
                self.ctx.age_bands,
            )
            for name, mask in masks.items():
                c = self.subgroup_counts.setdefault(name, [0, 0, 0])
                c[0] += int(mask.sum())
                c[1] += int((mask & batch.is_risk).sum())
                c[2] += int((mask & batch.alerting).sum())

        with_outcome = has_risk & ~np.isnan(label)
        if with_outcome.any():
            self._perf.append(
                (risk[with_outcome], label[with_outcome], sex[with_outcome], age[with_outcome])
            )
            alerted = with_outcome & batch.alerting
            self._labelled_alerting.append((risk[alerted], label[alerted]))

    def risks(self) -> FloatArray:
        return np.concatenate(self._risks) if self._risks else np.empty(0)

    def risks_and_alerting(self) -> tuple[FloatArray, BoolArray]:
        """Every risk of the window (outcome known or not) and whether its card alerted: the
        inputs of the estimated performance."""
        if not self._risks:
            return np.empty(0), np.empty(0, dtype=bool)
        return np.concatenate(self._risks), np.concatenate(self._risk_alerting)

    def alerting_outcomes(self) -> tuple[FloatArray, FloatArray]:
        """(risk, label) of the alerting cards with an outcome: the realized alert PPV."""
        if not self._labelled_alerting:
            return np.empty(0), np.empty(0)
        p, y = (np.concatenate(parts) for parts in zip(*self._labelled_alerting, strict=True))
        return p, y

    def performance_inputs(self) -> tuple[FloatArray, FloatArray, FloatArray, FloatArray]:
        """(risk, label, sex_male, age) of the cards with an outcome, in a fixed order (by risk,
        then label, sex, age) so that the figures do not depend on the database's row order."""
        if not self._perf:
            empty = np.empty(0)
            return empty, empty, empty, empty
        p, y, sex, age = (np.concatenate(parts) for parts in zip(*self._perf, strict=True))
        order = np.lexsort((age, sex, y, p))
        return p[order], y[order], sex[order], age[order]

"""Fairness ratios: per subgroup (sex, age band: the subgroups of training, the gate and
monitoring), the flag rate, sensitivity and PPV divided by those of a reference group, with a
four-fifths style rule: a ratio outside [min_ratio, 1 / min_ratio] is a finding.

A card is flagged when its indicator was warning or critical (what the clinician saw), or, for a
candidate threshold, when its risk is at or above it. The sex and age of a card are its own
feature values (``sex_male``, ``age``) as logged, so the groups are those the model scored. The
rows stream in batches (the features are JSON text, read the same way on both databases); only
per-subgroup counts are kept.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import numpy as np
import orjson
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from cds_service.db.tables import Outcome
from cds_service.db.views import V_CARDS, risk_cards_between
from cds_service.monitoring.site_subgroups import SiteSubgroup, site_masks
from cds_service.stats import DEFAULT_AGE_BANDS, subgroup_masks

__all__ = ["FOUR_FIFTHS", "GroupCounts", "fairness_counts", "ratio"]

OUTCOMES: sa.Table = Outcome.__table__  # type: ignore[attr-defined]
FOUR_FIFTHS = 0.8
ALERTING = ("warning", "critical")
BATCH = 5000


@dataclass(slots=True)
class GroupCounts:
    """Risk cards of one subgroup: flagged, with an outcome, positive, and the cross counts."""

    cards: int = 0
    flagged: int = 0
    labelled: int = 0
    positives: int = 0
    flagged_labelled: int = 0
    true_flags: int = 0

    def add(self, flagged: np.ndarray, label: np.ndarray) -> None:
        labelled = ~np.isnan(label)
        positive = labelled & (label == 1)
        self.cards += int(flagged.size)
        self.flagged += int(flagged.sum())
        self.labelled += int(labelled.sum())
        self.positives += int(positive.sum())
        self.flagged_labelled += int((flagged & labelled).sum())
        self.true_flags += int((flagged & positive).sum())

    def rates(self) -> dict[str, tuple[int, int]]:
        """Rate name -> (numerator, denominator)."""
        return {
            "flag_rate": (self.flagged, self.cards),
            "sensitivity": (self.true_flags, self.positives),
            "ppv": (self.true_flags, self.flagged_labelled),
        }


@dataclass(slots=True)
class FairnessCounts:
    model: str
    start: datetime
    end: datetime
    threshold: float | None
    groups: dict[str, GroupCounts] = field(default_factory=dict)


def _rows(engine: Engine, where: list[Any], label: sa.ColumnElement[Any]) -> Iterator[list[Any]]:
    c, o = V_CARDS, OUTCOMES
    query = (
        sa.select(c.c.risk, c.c.indicator, c.c.features, o.c.label)
        .select_from(
            c.outerjoin(o, sa.and_(o.c.card_uuid == c.c.card_uuid, o.c.label_name == label))
        )
        .where(*where)
    )
    with engine.connect() as conn:
        result = conn.execute(query, execution_options={"yield_per": BATCH})
        for batch in result.partitions():
            yield list(batch)


def _value(features: Mapping[str, Any], name: str) -> float:
    v = features.get(name)
    return float(v) if isinstance(v, int | float) and not isinstance(v, bool) else np.nan


def fairness_counts(
    engine: Engine,
    model: str,
    start: datetime,
    end: datetime,
    *,
    labels: Mapping[str, str],
    threshold: float | None = None,
    role: str = "live",
    environment: str | None = None,
    age_bands: tuple[float, ...] = DEFAULT_AGE_BANDS,
    site_subgroups: Sequence[SiteSubgroup] = (),
) -> FairnessCounts:
    """Counts per subgroup of ``model``'s risk cards requested in [start, end), the site's
    configured subgroups (site_subgroups.py) beside sex and age band."""
    c = V_CARDS
    where = risk_cards_between(model, start, end, role=role, environment=environment)
    label = sa.case(dict(labels), value=c.c.model_version, else_=sa.null()) if labels else sa.null()
    out = FairnessCounts(model, start, end, threshold)
    for batch in _rows(engine, where, label):
        risk = np.array([r[0] for r in batch], dtype=np.float64)
        if threshold is None:
            flagged = np.array([r[1] in ALERTING for r in batch], dtype=bool)
        else:
            flagged = risk >= threshold
        y = np.array([np.nan if r[3] is None else float(r[3]) for r in batch], dtype=np.float64)
        feats = [orjson.loads(r[2] or "{}") for r in batch]
        sex = np.array([_value(f, "sex_male") for f in feats], dtype=np.float64)
        age = np.array([_value(f, "age") for f in feats], dtype=np.float64)
        values = {
            name: np.array([_value(f, name) for f in feats], dtype=np.float64)
            for name in {s.feature for s in site_subgroups}
        }
        masks = {**subgroup_masks(sex, age, age_bands), **site_masks(site_subgroups, values)}
        for name, mask in masks.items():
            out.groups.setdefault(name, GroupCounts()).add(flagged[mask], y[mask])
    return out


def ratio(group: tuple[int, int], reference: tuple[int, int], minimum: int) -> float | None:
    """group rate / reference rate; None when either rate rests on a small cell or is 0/0."""
    from cds_service.monitoring.suppression import is_small

    for num, den in (group, reference):
        if den == 0 or any(is_small(n, minimum) for n in (num, den, den - num)):
            return None
    ref = reference[0] / reference[1]
    return None if ref == 0 else (group[0] / group[1]) / ref

"""Subgroups a site adds to the fairness ratios, as data (a TOML file), not code: each is a name
and a rule over one of the card's recorded feature values (``features`` in v_cards), either a
value (``equals``) or a range (``min`` inclusive, ``below`` exclusive). A card whose value is
missing is in neither side; the others split into ``<name>=yes`` and ``<name>=no``, compared
with the same ratios, rule and small-cell suppression as sex and age band::

    [[subgroup]]
    name = "ambulance"
    feature = "arrival_ambulance"
    equals = 1

    [[subgroup]]
    name = "age-80-plus"
    feature = "age"
    min = 80
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

__all__ = ["SiteSubgroup", "load_site_subgroups", "site_masks"]

NAME = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,39}$")
RESERVED = ("sex", "age")


class SiteSubgroup(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(pattern=NAME.pattern)
    feature: str = Field(min_length=1, max_length=64)
    equals: float | None = None
    min: float | None = None
    below: float | None = None

    @model_validator(mode="after")
    def _one_rule(self) -> SiteSubgroup:
        ranged = self.min is not None or self.below is not None
        if (self.equals is None) == (not ranged):
            raise ValueError("give either equals, or a range (min and/or below), not both")
        if self.min is not None and self.below is not None and self.min >= self.below:
            raise ValueError(f"min {self.min} is not below {self.below}")
        if self.name in RESERVED:
            raise ValueError(f"{self.name!r} is a built-in subgroup kind")
        return self

    def member(self, values: np.ndarray) -> np.ndarray:
        """True where the value satisfies the rule (NaN: never)."""
        if self.equals is not None:
            return np.asarray(values == self.equals, dtype=bool)
        inside = ~np.isnan(values)
        if self.min is not None:
            inside &= values >= self.min
        if self.below is not None:
            inside &= values < self.below
        return np.asarray(inside, dtype=bool)


def load_site_subgroups(path: Path) -> list[SiteSubgroup]:
    """The file's subgroups; ValueError naming the file, entry and problem when it is wrong."""
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ValueError(f"subgroups file {path}: cannot read ({type(exc).__name__})") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ValueError(f"subgroups file {path}: not TOML ({exc})") from exc
    unknown = set(data) - {"subgroup"}
    entries = data.get("subgroup")
    if unknown or not isinstance(entries, list) or not entries:
        raise ValueError(f"subgroups file {path}: expected one or more [[subgroup]] tables")
    out: list[SiteSubgroup] = []
    for i, entry in enumerate(entries, 1):
        try:
            out.append(SiteSubgroup.model_validate(entry))
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in e['loc']) or 'rule'}: {e['msg']}" for e in exc.errors()
            )
            raise ValueError(f"subgroups file {path}, subgroup {i}: {problems}") from None
    names = [s.name for s in out]
    if len(set(names)) != len(names):
        raise ValueError(f"subgroups file {path}: a subgroup name appears twice")
    return out


def site_masks(
    subgroups: Sequence[SiteSubgroup], values: dict[str, np.ndarray]
) -> dict[str, np.ndarray]:
    """Subgroup name -> mask, for ``<name>=yes`` and ``<name>=no`` (cards with the value)."""
    out: dict[str, np.ndarray] = {}
    for s in subgroups:
        v = values[s.feature]
        known = ~np.isnan(v)
        member = s.member(v)
        out[f"{s.name}=yes"] = known & member
        out[f"{s.name}=no"] = known & ~member
    return out

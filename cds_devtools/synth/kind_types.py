"""What a measured concept is, for the generator: its units, codings and local codes (the data
itself is in kinds.py)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from cds_devtools.synth.codes import Json
from cds_devtools.synth.draws import cumulative


@dataclass(frozen=True, slots=True)
class Unit:
    """One way a hospital or device reports a quantity: UCUM code, label, codings, conversion."""

    code: str
    display: str
    codings: tuple[tuple[float, tuple[Json, ...]], ...]
    scale: float = 1.0
    shift: float = 0.0
    decimals: int = 0


@dataclass(frozen=True, slots=True)
class Kind:
    """A measured concept; values are passed in the canonical unit of the feature spec."""

    text: str
    category: list[Json] | None
    units: tuple[tuple[float, Unit], ...]
    absurd: float
    local: Json | None = None
    p_local: float = 0.0
    p_local_only: float = 0.0
    censor_below: float = 0.0
    dimensionless: bool = False


def unit(
    code: str,
    display: str,
    codings: Sequence[tuple[float, tuple[Json, ...]]],
    scale: float = 1.0,
    shift: float = 0.0,
    decimals: int = 0,
) -> Unit:
    return Unit(code, display, cumulative(codings), scale, shift, decimals)

"""UCUM unit conversion to each feature's canonical unit.

Conversions are computed once per (unit, canonical unit, molar mass) with ucumvert (a UCUM grammar
on top of pint) and cached as an affine map, so the per-value cost on the serving path is one dict
lookup and a multiply-add. A unit that cannot be converted raises :class:`UnitError`; callers turn
that into a missing value with a warning, never into a wrong number.
"""

from __future__ import annotations

import contextlib
import re
import threading
from dataclasses import dataclass
from typing import Any

UCUM_SYSTEM = "http://unitsofmeasure.org"

# Display strings EHRs put in Quantity.unit (or in a non-UCUM code) that have one unambiguous UCUM
# meaning. Anything not listed here is not guessed at.
UNIT_ALIASES: dict[str, str] = {
    "mmHg": "mm[Hg]",
    "mm Hg": "mm[Hg]",
    "bpm": "/min",
    "beats/min": "/min",
    "beats/minute": "/min",
    "breaths/min": "/min",
    "breaths/minute": "/min",
    "/min": "/min",
    "°C": "Cel",
    "degC": "Cel",
    "°F": "[degF]",
    "degF": "[degF]",
    "lb": "[lb_av]",
    "lbs": "[lb_av]",
    "kg": "kg",
    "g": "g",
    "%": "%",
    "x10^9/L": "10*9/L",
    "10^9/L": "10*9/L",
    "x10E9/L": "10*9/L",
    "10^3/uL": "10*3/uL",
    "x10^3/uL": "10*3/uL",
    "K/uL": "10*3/uL",
    "mg/dl": "mg/dL",
    "mg/dL": "mg/dL",
    "mg/l": "mg/L",
    "mg/L": "mg/L",
    "mmol/l": "mmol/L",
    "mmol/L": "mmol/L",
    "umol/l": "umol/L",
    "umol/L": "umol/L",
    "µmol/L": "umol/L",
    "µmol/l": "umol/L",
}

_ANNOTATION_ONLY = re.compile(r"^\{[^{}]*\}$")
# Real UCUM codes are short (`mL/min/{1.73_m2}` is 16); a 4000-character one takes seconds to parse.
MAX_UNIT_LENGTH = 64


class UnitError(ValueError):
    """The value's unit cannot be brought to the canonical unit."""


@dataclass(frozen=True, slots=True)
class Affine:
    scale: float
    offset: float

    def __call__(self, value: float) -> float:
        return value * self.scale + self.offset


IDENTITY = Affine(1.0, 0.0)


def quantity_unit(quantity: dict[str, Any]) -> str | None:
    """The UCUM expression a FHIR Quantity is in, or None when it cannot be known.

    A UCUM ``code`` wins; a code from another system is only used through the alias table, and so
    is the human-readable ``unit``.
    """
    code = quantity.get("code")
    system = quantity.get("system")
    if isinstance(code, str) and code and (system == UCUM_SYSTEM or system is None):
        # "mmHg" under the UCUM system is a common EHR mistake with one meaning: mm[Hg].
        return UNIT_ALIASES.get(code, code)
    for candidate in (code, quantity.get("unit")):
        if isinstance(candidate, str) and candidate in UNIT_ALIASES:
            return UNIT_ALIASES[candidate]
    return None


class UnitConverter:
    """Thread-safe cache of conversions; the UCUM registry loads lazily (about a second)."""

    def __init__(self) -> None:
        self._registry: Any = None
        self._cache: dict[tuple[str, str, float | None], Affine | str] = {}
        self._lock = threading.Lock()

    def _ureg(self) -> Any:
        if self._registry is None:
            from ucumvert import PintUcumRegistry

            self._registry = PintUcumRegistry()
        return self._registry

    def load(self) -> None:
        """Build the registry now: a forkserver does, once, before it forks the workers."""
        self._ureg()

    def converter(self, unit: str, canonical: str, molar_mass: float | None = None) -> Affine:
        if unit == canonical:
            return IDENTITY
        key = (unit, canonical, molar_mass)
        cached = self._cache.get(key)
        if cached is None:
            with self._lock:
                cached = self._cache.get(key)
                if cached is None:
                    cached = self._compute(unit, canonical, molar_mass)
                    if len(self._cache) >= 10_000:  # arbitrary unit strings must not grow it
                        self._cache.clear()
                    self._cache[key] = cached
        if isinstance(cached, str):
            raise UnitError(cached)
        return cached

    def convert(
        self, value: float, unit: str, canonical: str, molar_mass: float | None = None
    ) -> float:
        return self.converter(unit, canonical, molar_mass)(value)

    def _parse(self, expression: str) -> Any:
        if len(expression) > MAX_UNIT_LENGTH:  # parsing cost grows faster than the length
            raise UnitError(f"unit longer than {MAX_UNIT_LENGTH} characters")
        if _ANNOTATION_ONLY.match(expression):
            raise UnitError(f"unit {expression!r} is only an annotation")
        try:
            parsed = self._ureg().from_ucum(expression)
        except Exception as exc:  # ucumvert raises several parser error types
            raise UnitError(f"unit {expression!r} is not valid UCUM") from exc
        if not hasattr(parsed, "units"):
            raise UnitError(f"unit {expression!r} is not a quantity")
        return parsed

    def _compute(self, unit: str, canonical: str, molar_mass: float | None) -> Affine | str:
        try:
            source, target = self._parse(unit), self._parse(canonical)
        except UnitError as exc:
            return str(exc)
        # ucumvert builds its quantities in its own pint registry; arithmetic must stay in it.
        ureg = source._REGISTRY
        try:
            if source.dimensionality == target.dimensionality:
                zero = ureg.Quantity(0.0, source.units).to(target.units).magnitude
                one = ureg.Quantity(1.0, source.units).to(target.units).magnitude
                scale = float(one - zero) * float(source.magnitude) / float(target.magnitude)
                return Affine(scale, float(zero) / float(target.magnitude))
            if molar_mass is None:
                return f"cannot convert {unit!r} to {canonical!r} without a molar mass"
            per_mole = ureg.Quantity(molar_mass, "g") / ureg.Quantity(1.0, "mol")
            for bridged in (source / per_mole, source * per_mole):
                if bridged.dimensionality == target.dimensionality:
                    scale = bridged.to(target.units).magnitude / target.magnitude
                    return Affine(float(scale), 0.0)
        except Exception as exc:  # pint raises on offset-unit arithmetic and the like
            return f"cannot convert {unit!r} to {canonical!r}: {type(exc).__name__}"
        return f"cannot convert {unit!r} to {canonical!r}"

    def warm_up(self, pairs: list[tuple[str, str, float | None]]) -> None:
        """Load the UCUM registry and precompute conversions before the first request."""
        self._ureg()
        for unit, canonical, molar_mass in pairs:
            with contextlib.suppress(UnitError):
                self.converter(unit, canonical, molar_mass)


DEFAULT_CONVERTER = UnitConverter()

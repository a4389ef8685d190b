"""Random draws that are cheap and reproducible (a generator seeded per patient)."""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from typing import TypeVar

_T = TypeVar("_T")


def cumulative(items: Sequence[tuple[float, _T]]) -> tuple[tuple[float, _T], ...]:
    """Cumulative-threshold table so a weighted choice costs one ``random()`` call."""
    total = sum(w for w, _ in items)
    acc = 0.0
    out: list[tuple[float, _T]] = []
    for weight, item in items:
        acc += weight / total
        out.append((acc, item))
    return tuple(out)


def pick(rng: random.Random, table: Sequence[tuple[float, _T]]) -> _T:
    r = rng.random()
    for threshold, item in table:
        if r < threshold:
            return item
    return table[-1][1]


def patient_stream(seed: int, cohort: str, index: int) -> random.Random:
    """A per-patient stream: a patient's data do not depend on how many others are generated.

    String seeds are hashed with SHA-512 by ``random``, stable across runs and platforms (unlike
    ``hash()``). Simulation, not secrecy, hence the non-cryptographic generator.
    """
    return random.Random(f"{seed}:{cohort}:{index}")  # noqa: S311


def randint(rng: random.Random, low: int, high: int) -> int:
    """Uniform integer in [low, high]; ``Random.randint`` is several times slower."""
    return low + int(rng.random() * (high - low + 1))


def clamp(value: float, low: float, high: float) -> float:
    return low if value < low else high if value > high else value


def logistic(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x))


def poisson(rng: random.Random, lam: float) -> int:
    limit, k, p = math.exp(-lam), 0, rng.random()
    while p > limit:
        k += 1
        p *= rng.random()
    return k


def rounded(value: float, decimals: int) -> float | int:
    return round(value) if decimals == 0 else round(value, decimals)

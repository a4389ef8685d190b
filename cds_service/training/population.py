"""Who is in the training table, and who was left out because a required input was missing.

A feature marked ``required`` is a serving-time safety rule: the service shows no risk without
it, so the model is trained on the rows it will score. That rule must never decide the training
population unseen: the rows it drops are reported with their label balance and the inputs they
lacked, and training refuses when they take more than a set share of the positives (a real export
where, say, triage vitals are coded differently would otherwise train on a biased remainder).
"""

from __future__ import annotations

from fhir_mappers.bulk import TableStats

DEFAULT_MAX_DROPPED_POSITIVE_SHARE = 0.2


class PopulationError(ValueError):
    """The required inputs removed too many positives for the table to stand for the population."""


def _share(part: int, whole: int) -> str:
    return f"{100 * part / whole:.1f}%" if whole else "n/a"


def population_summary(stats: TableStats) -> list[str]:
    """Kept and dropped rows with their label balance, and the inputs the dropped rows lacked."""
    lines = [
        f"kept {stats.rows} rows, {stats.positives} positive "
        f"({_share(stats.positives, stats.rows)})",
        f"dropped {stats.dropped_missing_required} rows for a missing required input, "
        f"{stats.dropped_positives} positive "
        f"({_share(stats.dropped_positives, stats.dropped_missing_required)})",
    ]
    if stats.dropped_for:
        lacked = ", ".join(f"{name} {n}" for name, n in stats.dropped_for.most_common())
        lines.append(f"missing among the dropped rows: {lacked}")
    return lines


def check_population(stats: TableStats, max_dropped_positive_share: float) -> None:
    """Refuse when the dropped rows hold more than the allowed share of all positives."""
    all_positives = stats.positives + stats.dropped_positives
    if not all_positives or stats.dropped_positives / all_positives <= max_dropped_positive_share:
        return
    lacked = ", ".join(name for name, _ in stats.dropped_for.most_common())
    raise PopulationError(
        f"{stats.dropped_positives} of {all_positives} positive rows "
        f"({_share(stats.dropped_positives, all_positives)}) were dropped for missing required "
        f"inputs ({lacked}); more than the allowed "
        f"{100 * max_dropped_positive_share:.0f}% ([table] max_dropped_positive_share in "
        "training.toml). Map the inputs (docs/feature-spec.md) or review which features are "
        "required before training on this export."
    )

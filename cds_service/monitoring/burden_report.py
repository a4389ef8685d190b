"""The alert-burden grid as printed: one line per threshold, every figure through the
small-cell rule (monitoring/suppression.py), so no count or ratio from fewer than the setting's
minimum leaves the database."""

from __future__ import annotations

from collections.abc import Sequence

from cds_service.monitoring.alert_burden import AlertBurden, ThresholdFigures
from cds_service.monitoring.suppression import SUPPRESSED, is_small, suppressed, suppressed_ratio

__all__ = ["render_burden"]

WARD_NOTE = (
    "ward: not recorded in the audit rows (the CDS Hooks context carries none); "
    "the burden is split by clinician shift (local hour of the card)"
)


def _per_day(count: int, days: int, minimum: int) -> str:
    return SUPPRESSED if is_small(count, minimum) else f"{count / days:.1f}"


def _nna(f: ThresholdFigures, minimum: int) -> str:
    ppv = suppressed_ratio(f.true_alerts, f.labelled_alerts, minimum)
    if ppv == SUPPRESSED:
        return SUPPRESSED
    return "-" if f.true_alerts == 0 else f"{f.labelled_alerts / f.true_alerts:.1f}"


def _shift_hours(b: AlertBurden) -> str:
    ordered = sorted(b.shifts.items(), key=lambda kv: kv[1])
    spans = [
        f"{name} {start:02d}-{ordered[(i + 1) % len(ordered)][1]:02d}"
        for i, (name, start) in enumerate(ordered)
    ]
    return ", ".join(spans)


def render_burden(b: AlertBurden, minimum: int, current: Sequence[float] = ()) -> str:
    """The grid; thresholds in ``current`` (the hook definitions' band limits) get a ``*``."""
    versions = ", ".join(b.versions) or "none"
    head = [
        f"alert burden of {b.model} ({b.role}, version(s) {versions}, "
        f"{b.environment or 'all environments'}), "
        f"{b.start.isoformat()} to {b.end.isoformat()}: {b.days} day(s)",
        f"risk cards {suppressed(b.risk_cards, minimum)}, with an outcome "
        f"{suppressed(b.labelled, minimum)}, positive {suppressed(b.positives, minimum)}",
        WARD_NOTE,
        f"shifts ({b.timezone}): {_shift_hours(b)}",
        f"figures from fewer than {minimum} cards show as <{minimum} or {SUPPRESSED}",
    ]
    if current:
        head.append("* a band limit of the model's hook definition(s) today")
    shift_names = list(b.shifts)
    columns = ["threshold", "alerts", "per day", "peak day"]
    columns += [f"{s}/day" for s in shift_names]
    columns += ["sensitivity", "PPV", "NNA"]
    table = [columns]
    for f in b.rows:
        alerts = suppressed(f.alerts, minimum)
        mark = "*" if any(abs(f.threshold - c) < 1e-9 for c in current) else ""
        line = [f"{f.threshold:.2f}{mark}", alerts, _per_day(f.alerts, b.days, minimum)]
        line.append(suppressed(f.peak_day, minimum))
        line += [_per_day(f.by_shift.get(s, 0), b.days, minimum) for s in shift_names]
        line += [
            suppressed_ratio(f.true_alerts, b.positives, minimum),
            suppressed_ratio(f.true_alerts, f.labelled_alerts, minimum),
            _nna(f, minimum),
        ]
        table.append(line)
    widths = [max(len(row[i]) for row in table) for i in range(len(columns))]
    lines = ["  ".join(cell.rjust(w) for cell, w in zip(row, widths, strict=True)) for row in table]
    return "\n".join([*head, *lines])

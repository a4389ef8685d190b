"""The fairness table as printed: per subgroup the flag rate, sensitivity and PPV, each with its
ratio to the reference group of the same kind (sex, age), and the findings of the four-fifths
style rule. Every figure passes the small-cell rule (monitoring/suppression.py)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from cds_service.monitoring.fairness import FairnessCounts, GroupCounts, ratio
from cds_service.monitoring.suppression import SUPPRESSED, suppressed, suppressed_ratio

__all__ = ["Finding", "findings", "references", "render_fairness"]

RATES = (("flag_rate", "flag rate"), ("sensitivity", "sensitivity"), ("ppv", "PPV"))


@dataclass(frozen=True, slots=True)
class Finding:
    subgroup: str
    reference: str
    rate: str
    ratio: float


def _kind(subgroup: str) -> str:
    return subgroup.partition("=")[0]


def references(counts: FairnessCounts, chosen: Mapping[str, str] | None = None) -> dict[str, str]:
    """Kind (sex, age) -> reference subgroup: the one chosen, else the kind's largest group."""
    out: dict[str, str] = {}
    for name, _group in sorted(counts.groups.items(), key=lambda kv: -kv[1].cards):
        out.setdefault(_kind(name), name)
    for kind, name in (chosen or {}).items():
        if name not in counts.groups:
            known = ", ".join(sorted(n for n in counts.groups if _kind(n) == kind)) or "none"
            raise ValueError(f"reference {name!r} has no cards; {kind} groups: {known}")
        out[kind] = name
    return out


def findings(
    counts: FairnessCounts, refs: Mapping[str, str], min_ratio: float, minimum: int
) -> list[Finding]:
    out = []
    for name, group in sorted(counts.groups.items()):
        ref_name = refs.get(_kind(name))
        if ref_name is None or ref_name == name:
            continue
        ref = counts.groups[ref_name].rates()
        for key, label in RATES:
            r = ratio(group.rates()[key], ref[key], minimum)
            if r is not None and not min_ratio <= r <= 1 / min_ratio:
                out.append(Finding(name, ref_name, label, r))
    return out


def _row(name: str, group: GroupCounts, ref: GroupCounts | None, minimum: int) -> list[str]:
    cells = [name, suppressed(group.cards, minimum)]
    for key, _label in RATES:
        num, den = group.rates()[key]
        rate = suppressed_ratio(num, den, minimum)
        cells.append(rate)
        if ref is None:
            cells.append("ref")
            continue
        r = ratio((num, den), ref.rates()[key], minimum)
        cells.append(f"{r:.2f}" if r is not None else SUPPRESSED if rate == SUPPRESSED else "-")
    return cells


def render_fairness(
    counts: FairnessCounts, refs: Mapping[str, str], min_ratio: float, minimum: int
) -> str:
    flag = (
        "indicator warning or critical"
        if counts.threshold is None
        else f"risk >= {counts.threshold:g}"
    )
    head = [
        f"fairness of {counts.model}, {counts.start.isoformat()} to {counts.end.isoformat()}; "
        f"flagged: {flag}",
        f"rule: each ratio to the reference group within {min_ratio:g} to {1 / min_ratio:.3g}; "
        f"references: {', '.join(f'{k} {v}' for k, v in sorted(refs.items()))}",
        f"figures from fewer than {minimum} cards show as <{minimum} or {SUPPRESSED}",
    ]
    table = [["subgroup", "cards", "flag_rate", "ratio", "sensitivity", "ratio", "PPV", "ratio"]]
    for name, group in sorted(counts.groups.items()):
        ref_name = refs.get(_kind(name))
        ref = None if ref_name == name or ref_name is None else counts.groups[ref_name]
        table.append(_row(name, group, ref, minimum))
    widths = [max(len(r[i]) for r in table) for i in range(len(table[0]))]
    lines = ["  ".join(c.rjust(w) for c, w in zip(r, widths, strict=True)) for r in table]
    found = findings(counts, refs, min_ratio, minimum)
    tail = [
        f"FINDING {f.subgroup}: {f.rate} {f.ratio:.2f} x that of {f.reference}" for f in found
    ] or ["no ratio outside the rule"]
    return "\n".join([*head, *lines, *tail])

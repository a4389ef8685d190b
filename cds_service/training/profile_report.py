"""The coverage profile as text (for the terminal) and as one self-contained HTML page."""

from __future__ import annotations

from html import escape

from cds_service.training.profile import Profile, candidates, unit_report
from fhir_mappers.spec import ModelSpec

LOW_COVERAGE = 0.9  # below this share of index events, list look-alike codes


def _pct(part: int, whole: int) -> str:
    return f"{100 * part / whole:.1f}%" if whole else "n/a"


def summary_lines(profile: Profile) -> list[str]:
    s = profile.stats
    return [
        f"{profile.model}: {s.resources} resources of {s.patients} patients; "
        f"{s.without_patient} resources attributed to no patient, "
        f"{s.unparseable_lines} unparseable lines",
        f"index events: {profile.events}, positive {profile.positives} "
        f"({_pct(profile.positives, profile.events)})",
        f"missing a required input: {profile.missing_required_rows} events, "
        f"{profile.missing_required_positives} positive "
        f"({_pct(profile.missing_required_positives, profile.positives)} of all positives)",
    ]


def text_report(profile: Profile, spec: ModelSpec) -> list[str]:
    lines = summary_lines(profile)
    lines.append("")
    lines.append("feature coverage (share of index events with a value):")
    for feat in spec.features:
        share = profile.coverage(feat.name)
        flag = " (required)" if feat.required else ""
        lines.append(f"  {feat.name:<28} {100 * share:5.1f}%{flag}")
        for unit, count, ok in unit_report(profile, feat):
            if not ok:
                lines.append(f"      unit {unit} x{count} does not convert to {feat.unit}")
        if share < LOW_COVERAGE:
            for key, seen in candidates(profile, feat, spec):
                lines.append(f"      not mapped: {key} x{seen.count} ({seen.display})")
    return lines


def html_report(profile: Profile, spec: ModelSpec) -> str:
    rows = []
    for feat in spec.features:
        share = profile.coverage(feat.name)
        units = "<br>".join(
            f"{escape(u)} &times;{n}"
            + ("" if ok else f" <b>does not convert to {escape(str(feat.unit))}</b>")
            for u, n, ok in unit_report(profile, feat)
        )
        looks = "<br>".join(
            f"<code>{escape(key)}</code> &times;{seen.count} {escape(seen.display)}"
            for key, seen in (candidates(profile, feat, spec) if share < LOW_COVERAGE else [])
        )
        rows.append(
            f"<tr><td>{escape(feat.name)}{' (required)' if feat.required else ''}</td>"
            f"<td class=n>{100 * share:.1f}%</td><td>{units}</td><td>{looks}</td></tr>"
        )
    summary = "".join(f"<li>{escape(line)}</li>" for line in summary_lines(profile))
    return (
        "<!doctype html><html lang=en><head><meta charset=utf-8>"
        f"<title>Data coverage: {escape(profile.model)}</title><style>"
        "body{font-family:system-ui,sans-serif;margin:2rem;max-width:80rem}"
        "table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:.3rem .5rem;"
        "vertical-align:top;text-align:left}td.n{text-align:right}</style></head><body>"
        f"<h1>Data coverage: {escape(profile.model)}</h1><ul>{summary}</ul>"
        "<table><thead><tr><th>feature</th><th>with a value</th><th>units seen</th>"
        "<th>codes not mapped that look alike</th></tr></thead><tbody>"
        + "".join(rows)
        + "</tbody></table></body></html>\n"
    )

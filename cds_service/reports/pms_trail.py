"""The PMS report's human side: alerts and what was done about them, clinicians' feedback with
override reasons, and the deployment trail (who, when, why, with the validation evidence)."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from cds_service.monitoring.suppression import suppressed, suppressed_ratio
from cds_service.reports.pms_types import Section, Table, figure

__all__ = ["alerts_section", "deployments_section", "feedback_section"]

Row = dict[str, Any]


def _when(moment: datetime) -> str:
    return f"{moment:%Y-%m-%d %H:%M}"


def _aware(moment: datetime) -> datetime:
    from fhir_mappers.timeutil import as_utc

    return as_utc(moment)


def _handled(alert: Row, trail: list[Row]) -> str:
    """The first change to the model in the alert's environment after the alert, if any."""
    for d in trail:
        same_env = d["environment"] == alert["environment"]
        if same_env and _aware(d["created_at"]) >= _aware(alert["created_at"]):
            when = _when(d["created_at"])
            return f"{d['action']} {d['model_version']} by {d['decided_by']} on {when}"
    return "no deployment change recorded since"


def alerts_section(rows: list[Row], trail: list[Row]) -> Section:
    head = [
        "raised",
        "version env",
        "window",
        "severity",
        "metric",
        "value",
        "threshold",
        "handled",
    ]
    body = []
    for a in rows:
        what = a["metric"] + (f" ({a['feature']})" if a["feature"] else "")
        what += f" [{a['subgroup']}]" if a["subgroup"] else ""
        value = "-" if a["value"] is None else f"{a['value']:.3g}"
        limit = "-" if a["threshold"] is None else f"{a['threshold']:.3g}"
        body.append(
            [
                _when(a["created_at"]),
                f"{a['model_version']} {a['environment']}",
                f"{a['window_start']:%Y-%m-%d} to {a['window_end']:%Y-%m-%d}",
                a["severity"],
                what,
                value,
                limit,
                _handled(a, trail),
            ]
        )
    notes = [
        "Alerts are raised by monitoring only on figures from at least the minimum counts of "
        "docs/monitoring.md (50 outcomes or values or more), above the small-cell threshold.",
        "Handled: the first deployment change of the model in that environment after the alert.",
    ]
    if not body:
        notes.insert(0, "No alert was raised in the period.")
    return Section("alerts", "Alerts and how they were handled", notes, [Table(head, body)])


def feedback_section(outcomes: list[Row], reasons: list[Row], minimum: int) -> Section:
    total = sum(int(r["n"]) for r in outcomes)
    by = {r["outcome"]: int(r["n"]) for r in outcomes}
    head = ["feedback", "cards", "share"]
    body = [[o, suppressed(n, minimum), suppressed_ratio(n, total, minimum)] for o, n in by.items()]
    body.append(["all", suppressed(total, minimum), ""])
    overridden = by.get("overridden", 0)
    reason_body = [
        [
            r["override_reason_code"] or "(no code)",
            r["override_reason_display"] or "(none given)",
            suppressed(int(r["n"]), minimum),
            suppressed_ratio(int(r["n"]), overridden, minimum),
        ]
        for r in reasons
    ]
    notes = [] if total else ["No feedback on the period's cards."]
    return Section(
        "feedback",
        "Feedback and override reasons",
        notes,
        [Table(head, body), Table(["reason code", "reason", "overrides", "share"], reason_body)],
    )


def _evidence(record: Row, minimum: int) -> str:
    try:
        ev = json.loads(record["evidence"] or "{}")
    except ValueError:
        return "(evidence not readable)"
    if not isinstance(ev, dict):
        return "-"
    if "metrics" in ev and isinstance(ev["metrics"], dict):
        m = ev["metrics"]
        rows = int(ev.get("scored_rows") or m.get("n") or 0)
        auroc = figure("auroc", m.get("auroc"), rows, minimum)
        cal = figure("calibration_slope", m.get("calibration_slope"), rows, minimum)
        failures = ev.get("failures") or []
        verdict = "gate passed" if not failures else f"gate failed: {'; '.join(failures)}"
        export = str(ev.get("held_out_export_sha256"))[:12]
        return (
            f"{verdict}; held-out AUROC {auroc}, calibration slope {cal}, "
            f"{suppressed(rows, minimum)} rows (export {export})"
        )
    if "previous_live" in ev:
        return f"previous live: {ev['previous_live'] or '-'}"
    keys = ", ".join(sorted(ev)) or "-"
    return f"recorded: {keys}"


def deployments_section(trail: list[Row], start: datetime, minimum: int) -> Section:
    head = ["#", "when", "action", "model version", "env/role", "who", "why", "validation evidence"]
    body = []
    for d in trail:
        why = d["reason"] or ""
        if d["override"]:
            why += f" (gate overridden: {d['override_reason']})"
        mark = "" if _aware(d["created_at"]) < _aware(start) else " *"
        body.append(
            [
                f"{d['seq']}{mark}",
                _when(d["created_at"]),
                d["action"],
                f"{d['model_name']} {d['model_version']}",
                f"{d['environment']}/{d['role']}",
                d["decided_by"],
                why,
                _evidence(d, minimum),
            ]
        )
    notes = [
        "The hash-chained trail (v_deployments) up to the end of the period; * marks a change "
        "inside the period. Site terminology and audit-retention (purge) records are included.",
    ]
    return Section("deployments", "Deployments and changes", notes, [Table(head, body)])

"""Simulation: synthetic ED visits replayed as real, signed CDS Hooks calls against a running
service over N simulated days, with an optional shift injected after day K; then feedback,
outcomes and the monitor. It is the demo of the whole loop and the test that monitoring sees a
shift (and stays quiet without one).

Simulated time reaches the service through the request extension
``org.cds-risk.simulated-time``, honoured only with ``CDS_ALLOW_SIMULATED_TIME=true`` in
development.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy.engine import Engine

from cds_devtools.prefetch import prefetch_bundles
from cds_devtools.synth import BASE_TIME, generate_cohort
from cds_service.audit.writer import AuditWriter
from cds_service.cds_hooks.extensions import SIMULATED_TIME_EXTENSION
from cds_service.lifecycle.outcomes import OutcomeStats, derive_outcomes
from fhir_mappers.bulk import TableStats, partition_export
from fhir_mappers.timeutil import parse_fhir_datetime

EMER = "http://terminology.hl7.org/CodeSystem/v3-ActCode|EMER"
LACTATE_MMOL = {"2524-7", "32693-4", "2518-9"}
OVERRIDE_REASONS = (
    ("already-known", "Risk already known and acted on"),
    ("disagree", "Clinical judgement differs from the model"),
)
SHIFTS = ("none", "lactate-unit", "population")


@dataclass(slots=True)
class SimulationReport:
    calls: int = 0
    cards: int = 0
    status_counts: dict[int, int] = field(default_factory=dict)
    feedback: int = 0
    outcomes: OutcomeStats | None = None
    window_start: datetime | None = None
    window_end: datetime | None = None
    monitor_summary: str = ""
    drift_alerts: list[str] = field(default_factory=list)


def _is_emer(res: dict[str, Any]) -> bool:
    klass = res.get("class")
    return isinstance(klass, dict) and f"{klass.get('system')}|{klass.get('code')}" == EMER


def _visits(
    export: Path, start: datetime, end: datetime
) -> Iterator[tuple[datetime, str, list[dict[str, Any]]]]:
    """(arrival, encounter id, the patient's resources) for ED visits starting in [start, end)."""
    for _pid, resources in partition_export(export, TableStats()):
        for res in resources:
            if res.get("resourceType") != "Encounter" or not _is_emer(res):
                continue
            period = res.get("period") or {}
            parsed = parse_fhir_datetime(period.get("start"))
            if parsed is not None and start <= parsed.value < end:
                yield parsed.value, str(res["id"]), resources


def _apply_shift(resources: list[dict[str, Any]], shift: str) -> list[dict[str, Any]]:
    """A lab that starts sending mg/dL numbers labelled mmol/L; or an older, sicker population."""
    out = []
    for res in resources:
        if shift == "lactate-unit" and res.get("resourceType") == "Observation":
            codes = {c.get("code") for c in (res.get("code") or {}).get("coding", [])}
            quantity = res.get("valueQuantity")
            if (
                codes & LACTATE_MMOL
                and isinstance(quantity, dict)
                and isinstance(quantity.get("value"), int | float)
            ):
                res = {
                    **res,
                    "valueQuantity": {**quantity, "value": round(quantity["value"] * 9.008, 1)},
                }
        if shift == "population" and res.get("resourceType") == "Patient":
            born = res.get("birthDate")
            if isinstance(born, str) and len(born) >= 4 and born[:4].isdigit():
                res = {**res, "birthDate": f"{int(born[:4]) - 15:04d}{born[4:]}"}
        out.append(res)
    return out


def _prefetch(resources: list[dict[str, Any]]) -> dict[str, Any]:
    return prefetch_bundles(resources, {"observations": "Observation", "encounters": "Encounter"})


def run_simulation(
    *,
    base_url: str,
    public_base_url: str,
    engine: Engine,
    writer: AuditWriter,
    models_dir: Path,
    pseudonym_key: bytes,
    workdir: Path,
    sign: Callable[[str], str] | None,
    days: int = 28,
    shift: str = "none",
    shift_day: int = 14,
    cohort_patients: int = 20000,
    feedback_rate: float = 0.3,
    seed: int = 20261123,
    monitor_window_days: int = 14,
    service_id: str = "ed-admission-risk",
    client: httpx.Client | None = None,
) -> SimulationReport:
    if shift not in SHIFTS:
        raise ValueError(f"shift must be one of {SHIFTS}")
    export = workdir / f"sim-export-{seed}-{cohort_patients}"
    if not (export / "manifest.json").is_file():
        generate_cohort(export, ed_patients=cohort_patients, post_mi_patients=0, seed=seed)
    end = (BASE_TIME - timedelta(days=2)).astimezone(UTC).replace(hour=0, minute=0, second=0)
    start = end - timedelta(days=days)
    shift_at = start + timedelta(days=shift_day)
    rng = random.Random(seed)  # noqa: S311 (simulation, not security)
    report = SimulationReport(window_start=start, window_end=end)
    http = client or httpx.Client(timeout=30)
    service_url = f"{base_url.rstrip('/')}/cds-services/{service_id}"
    audience = f"{public_base_url.rstrip('/')}/cds-services/{service_id}"

    def headers(aud: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {sign(aud)}"} if sign else {}

    try:
        visits = sorted(_visits(export, start, end), key=lambda v: (v[0], v[1]))
        for arrival, encounter_id, resources in visits:
            if shift != "none" and arrival >= shift_at:
                resources = _apply_shift(resources, shift)
            patient_id = next(str(r["id"]) for r in resources if r["resourceType"] == "Patient")
            body = {
                "hook": "encounter-start",
                "hookInstance": f"sim-{seed}-{encounter_id}",
                "context": {
                    "userId": "Practitioner/sim-doc",
                    "patientId": patient_id,
                    "encounterId": encounter_id,
                },
                "prefetch": _prefetch(resources),
                "extension": {SIMULATED_TIME_EXTENSION: (arrival + timedelta(hours=1)).isoformat()},
            }
            r = http.post(service_url, json=body, headers=headers(audience))
            report.calls += 1
            report.status_counts[r.status_code] = report.status_counts.get(r.status_code, 0) + 1
            if r.status_code != 200:
                continue
            for card in r.json()["cards"]:
                report.cards += 1
                if rng.random() >= feedback_rate:
                    continue
                item: dict[str, Any] = {
                    "card": card["uuid"],
                    "outcomeTimestamp": (arrival + timedelta(hours=1, minutes=5)).isoformat(),
                }
                if rng.random() < 0.7:
                    # Half the accepting clinicians (by the card's random uuid, so the draws of
                    # rng stay as they were) also take the card's first suggestion.
                    offered = card.get("suggestions", [])
                    taken = (
                        [{"id": offered[0]["uuid"]}]
                        if offered and int(card["uuid"][-1], 16) % 2
                        else []
                    )
                    item.update(outcome="accepted", acceptedSuggestions=taken)
                else:
                    code, display = rng.choice(OVERRIDE_REASONS)
                    item.update(
                        outcome="overridden",
                        overrideReason={
                            "reason": {
                                "system": "https://fhir.cds-risk.example/CodeSystem/override-reason",
                                "code": code,
                                "display": display,
                            }
                        },
                    )
                fb = http.post(
                    f"{service_url}/feedback",
                    json={"feedback": [item]},
                    headers=headers(f"{audience}/feedback"),
                )
                report.feedback += int(fb.status_code == 200)
    finally:
        if client is None:
            http.close()
    report.outcomes = derive_outcomes(engine, writer, models_dir, export, pseudonym_key)
    from cds_service.monitoring import Thresholds, run_monitoring

    monitor = run_monitoring(
        engine,
        models_dir,
        window_start=start,
        window_end=end,
        window=timedelta(days=monitor_window_days),
        thresholds=Thresholds(),
    )
    report.monitor_summary = monitor.summary()
    report.drift_alerts = [
        f"{a.window_start:%Y-%m-%d} {a.metric} {a.feature}".strip()
        for a in monitor.alerts
        if a.metric in ("psi", "ks_pvalue", "prediction_psi", "missing_rate")
    ]
    return report

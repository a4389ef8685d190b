"""End-to-end: the real service's FHIR fallback against a real FHIR server on loopback that
stalls for 20 s. The call ends within the hook's budget plus slack (before: ~9 s), with 412 or,
where the hook definition says ``on_fhir_timeout = "card"``, the card without what did not
arrive, each input named missing "FHIR server did not answer in time" and the audit row saying
so."""

from __future__ import annotations

import json
import logging
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from cds_service.cds_hooks.examples import ed_case, ed_prefetch, hook_body
from cds_service.main import create_app
from cds_service.paths import hooks_dir
from tests.cds_hooks.slow_fhir import SlowFhir, slow_fhir_server
from tests.utils.server import ServerThread
from tests.utils.service import NOW, Service, make_settings, new_database

ED = "ed-admission-risk"  # on_fhir_timeout = "card", fhir_budget_seconds = 1.0 (below)
ED_PV = "ed-admission-risk-patient-view"  # defaults: 412, CDS_FHIR_BUDGET_SECONDS
BUDGET = 1.0
SLACK = 3.0  # generous for a loaded CI machine; the stall is 20 s, the old fallback ~9 s
REASON = "FHIR server did not answer in time"


def _hooks(tmp: Path) -> Path:
    out = tmp / "hooks"
    shutil.copytree(hooks_dir(), out)
    path = out / f"{ED}.toml"
    text = path.read_text(encoding="utf-8")
    # The budget keys belong to [service]: before its first sub-table ([service.nl]).
    text = text.replace(
        "[service.nl]", 'fhir_budget_seconds = 1.0\non_fhir_timeout = "card"\n\n[service.nl]', 1
    )
    # The encounter in context anchors the moment (a 412 without it, whatever on_fhir_timeout
    # says): this EHR prefetches it on its own key, so only the encounter search is late.
    visit = 'visit = "Encounter/{{context.encounterId}}"\n'
    text = text.replace("[prefetch]\n", "[prefetch]\n" + visit, 1)
    path.write_text(text, encoding="utf-8")
    return out


@pytest.fixture(scope="module")
def stalled(
    backend: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Service, str, SlowFhir]]:
    tmp = tmp_path_factory.mktemp(f"budget-{backend}")
    db = new_database(backend, tmp)
    settings = make_settings(db.url, tmp, hooks_dir=_hooks(tmp), fhir_budget_seconds=BUDGET)
    app = create_app(settings, clock=lambda: NOW)  # the real network: loopback only
    try:
        with slow_fhir_server() as (fhir, base), ServerThread(app) as server:
            svc = Service(server, db, None, settings)  # type: ignore[arg-type]
            yield svc, base, fhir
            svc.client.close()
    finally:
        db.close()


def _call(svc: Service, service_id: str, base: str, missing: str) -> tuple[httpx.Response, float]:
    case = ed_case(NOW, sick=True)
    prefetch = ed_prefetch(case)
    del prefetch[missing]
    if service_id == ED:
        prefetch["visit"] = case["encounters"][0]
    hook = "encounter-start" if service_id == ED else "patient-view"
    encounter = case["encounter_id"] if service_id == ED else None
    body = hook_body(
        hook, case["patient"]["id"], prefetch, encounter_id=encounter, fhir_server=base
    )
    started = time.monotonic()
    r = svc.call(service_id, body)
    return r, time.monotonic() - started


def test_past_the_budget_a_required_key_is_412_by_default(
    stalled: tuple[Service, str, SlowFhir], caplog: pytest.LogCaptureFixture
) -> None:
    svc, base, _ = stalled
    with caplog.at_level(logging.WARNING, logger="cds_service"):
        r, elapsed = _call(svc, ED_PV, base, "observations")
    assert r.status_code == 412, r.text
    assert REASON in r.text
    assert elapsed < BUDGET + SLACK  # not 3 tries x 3 s
    logged = [rec.getMessage() for rec in caplog.records if REASON in rec.getMessage()]
    assert logged and "observations" in logged[0] and "412" in logged[0]
    assert "syn-ed-1" not in " ".join(logged)


def test_on_fhir_timeout_card_returns_the_card_without_the_late_inputs(
    stalled: tuple[Service, str, SlowFhir],
) -> None:
    svc, base, _ = stalled
    r, elapsed = _call(svc, ED, base, "encounters")
    assert r.status_code == 200, r.text
    assert elapsed < BUDGET + SLACK
    card: dict[str, Any] = r.json()["cards"][0]
    assert "(high)" in card["summary"]  # the risk is computed from what did arrive
    assert f"- Admissions in the past year: the {REASON}" in card["detail"]
    assert f"- ED visits in the past year: the {REASON}" in card["detail"]
    row = svc.db.rows(
        "SELECT inputs, mapper_warnings FROM card_audit WHERE card_uuid = :u", u=card["uuid"]
    )[0]
    assert json.loads(row["mapper_warnings"])["fhir_timeout"] == 1
    inputs = json.loads(row["inputs"])
    assert inputs["prior_admissions_365d"]["missing_reason"] == REASON
    assert inputs["prior_admissions_365d"]["value"] is None
    assert inputs["heart_rate"]["value"] == 128

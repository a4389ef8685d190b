"""End-to-end: references the way FHIR writes them fill the card; what the service cannot use
is counted in the audit row and listed on the card, never dropped silently."""

from __future__ import annotations

import json
from typing import Any

from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from cds_service.cds_hooks.examples import ed_case, ed_prefetch, hook_body, searchset
from tests.utils.service import NOW, Service

ED = "ed-admission-risk"
UUID = "urn:uuid:7d1b0c4e-2f57-4a8e-9f0e-3c2b1a000001"
EXT = [{"url": "https://hospital.example/fhir/StructureDefinition/x", "valueBoolean": True}]


def _warnings(svc: Service, card_uuid: str) -> dict[str, int]:
    rows = svc.db.rows("SELECT mapper_warnings FROM card_audit WHERE card_uuid = :u", u=card_uuid)
    return dict(json.loads(rows[0]["mapper_warnings"]))


def _call(svc: Service, case: dict[str, Any], prefetch: dict[str, Any]) -> dict[str, Any]:
    body = hook_body(
        "encounter-start", case["patient"]["id"], prefetch, encounter_id=case["encounter_id"]
    )
    r = svc.call(ED, body)
    assert r.status_code == 200, r.text
    return dict(r.json()["cards"][0])


def test_urn_uuid_bundle_fills_the_same_card_as_plain_references(svc: Service) -> None:
    """A transaction-style Bundle: every reference is the Patient entry's urn:uuid fullUrl."""
    case = ed_case(NOW, sick=True)
    plain = _call(svc, case, ed_prefetch(case))
    entries = [{"fullUrl": UUID, "resource": case["patient"]}] + [
        {"fullUrl": f"urn:uuid:{i:08d}-0000-4000-8000-000000000000", "resource": r}
        for i, r in enumerate(
            dict(r, subject={"reference": UUID}) for r in case["observations"] + case["encounters"]
        )
    ]
    bundle = {"resourceType": "Bundle", "type": "collection", "entry": entries}
    card = _call(svc, case, {"patient": bundle, "observations": bundle, "encounters": bundle})
    assert card["summary"] == plain["summary"]
    row = svc.card_row(card["uuid"])
    assert json.loads(row["features"]) == json.loads(svc.card_row(plain["uuid"])["features"])
    assert "unattributed_resources" not in _warnings(svc, card["uuid"])


def _span_recorder() -> InMemorySpanExporter:
    """Record the service's spans in memory: on the session's SDK provider if one is set (the
    PHI sweep sets one), else on a new one (the service's tracer is a proxy to the global)."""
    provider = trace.get_tracer_provider()
    if not isinstance(provider, TracerProvider):
        provider = TracerProvider()
        trace.set_tracer_provider(provider)
    exporter = InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return exporter


def test_unattributable_resources_reach_the_audit_row_the_span_and_the_card(
    svc: Service,
) -> None:
    spans = _span_recorder()
    case = ed_case(NOW, sick=True)
    prefetch = ed_prefetch(case)
    obs = case["observations"]
    unknown = [dict(o, subject={"reference": "urn:uuid:nowhere"}) for o in obs[:2]]
    flagged = dict(obs[2], modifierExtension=EXT)
    prefetch["observations"] = searchset([*unknown, flagged, *obs[3:]])
    card = _call(svc, case, prefetch)
    assert "2 resource(s) could not be attributed to this patient" in card["detail"]
    assert "1 resource(s) carry a modifier extension" in card["detail"]
    warnings = _warnings(svc, card["uuid"])
    assert warnings["unattributed_resources"] == 2
    assert warnings["modifier_extension_skipped"] == 1
    calls = [x for x in spans.get_finished_spans() if x.name == "cds.service_call"]
    spans.shutdown()
    attributes = calls[-1].attributes or {}
    assert attributes["cds.unattributed_resources"] == 2
    assert attributes["cds.modifier_extension_skipped"] == 1

"""The SMART app's parts without a server: launch checks, token sealing, FHIR queries, charts, and
the page's content security policy."""

from __future__ import annotations

import base64
import hashlib
import re
from datetime import timedelta
from pathlib import Path

import pytest

from cds_service.cds_hooks.examples import ed_case, post_mi_case
from cds_service.config import Settings
from cds_service.web.errors import SignInError
from cds_service.web.smart import flow
from cds_service.web.smart.charts import Chart, Series, render_svg, trend_charts
from cds_service.web.smart.page import CONTENT_SECURITY_POLICY, document, error_page
from cds_service.web.smart.view import patient_queries
from cds_service.web.smart.words import Words
from fhir_mappers.facts import normalize
from fhir_mappers.spec import ModelSpec, load_spec
from tests.utils.service import NOW

MODELS = Path(__file__).resolve().parents[2] / "models"


@pytest.fixture(scope="module")
def mi() -> ModelSpec:
    return load_spec(MODELS / "post-mi-unplanned-visit" / "features.toml")


@pytest.fixture(scope="module")
def ed() -> ModelSpec:
    return load_spec(MODELS / "ed-admission" / "features.toml")


def test_iss_checks() -> None:
    fhir = "https://ehr.example.org/fhir"
    assert flow.check_iss(fhir + "/", "l1", {fhir}, dev=False) == fhir + "/"  # aud = iss, as sent
    assert flow.check_iss("http://127.0.0.1:9/fhir", "l1", None, dev=True)
    for iss, launch, allowed, dev, status in (
        (None, "l1", None, True, 400),
        (fhir, None, None, True, 400),
        (fhir, "", None, True, 400),
        ("http://ehr.example.org/fhir", "l1", {fhir}, False, 400),  # https outside development
        ("https://user:pw@ehr.example.org/fhir", "l1", None, True, 400),
        ("https://ehr.example.org/fhir#x", "l1", None, True, 400),
        ("javascript:alert(1)", "l1", None, True, 400),
        ("https://other.example.org/fhir", "l1", {fhir}, False, 403),
        (fhir, "x" * 3000, None, True, 400),
    ):
        with pytest.raises(SignInError) as caught:
            flow.check_iss(iss, launch, allowed, dev)
        assert caught.value.status == status, iss


def test_allowed_servers_come_from_the_trusted_callers_file(tmp_path: Path) -> None:
    trusted = tmp_path / "trusted.json"
    trusted.write_text(
        '[{"iss": "a", "jwks": {"keys": []}, "fhir_servers": ["https://EHR.example.org/fhir/"]}]'
    )
    dev = Settings(trusted_issuers=trusted)
    assert flow.allowed_fhir_servers(dev, None) is None
    acc = Settings(environment="acceptance", pseudonym_key="k" * 20, trusted_issuers=trusted)
    assert flow.allowed_fhir_servers(acc, None) == {"https://ehr.example.org/fhir"}


def test_scope_always_asks_for_launch_context() -> None:
    assert flow.requested_scope(Settings(smart_scopes="patient/*.rs")) == "launch patient/*.rs"
    assert flow.requested_scope(Settings(smart_scopes="launch a launch b")) == "launch a b"


def test_access_token_is_sealed_to_the_cookie() -> None:
    sealed = flow.seal_token("session-id", "handle", "the-access-token")
    assert "the-access-token" not in sealed
    assert flow.open_token("session-id", "handle", sealed) == "the-access-token"
    assert flow.open_token("other-session", "handle", sealed) is None
    assert flow.open_token("session-id", "other-handle", sealed) is None
    assert flow.open_token("session-id", "handle", sealed[:-4] + "AAAA") is None
    assert flow.open_token("session-id", "handle", "not base64 !") is None


def test_launch_context_is_sealed_to_the_cookie_apart_from_the_token() -> None:
    sealed = flow.seal_context("session-id", "handle", "syn-pat-1", "syn-enc-1")
    raw = base64.urlsafe_b64decode(sealed)
    assert b"syn-pat-1" not in raw and b"syn-enc-1" not in raw
    assert flow.open_context("session-id", "handle", sealed) == ("syn-pat-1", "syn-enc-1")
    assert flow.open_context("other-session", "handle", sealed) is None
    assert flow.open_context("session-id", "other-handle", sealed) is None
    assert flow.open_token("session-id", "handle", sealed) is None  # not usable as a token
    token = flow.seal_token("session-id", "handle", '{"patient": "syn-pat-2"}')
    assert flow.open_context("session-id", "handle", token) is None  # nor a token as context
    no_encounter = flow.seal_context("session-id", "handle", "syn-pat-1", None)
    assert flow.open_context("session-id", "handle", no_encounter) == ("syn-pat-1", None)


def test_app_context_from_the_token_response() -> None:
    assert flow._app_context('{"card":"c","service":"s"}') == {"card": "c", "service": "s"}
    assert flow._app_context({"card": "c"}) == {"card": "c"}
    assert flow._app_context("not json") is None
    assert flow._app_context("[1]") is None
    assert flow._app_context(None) is None


def test_patient_queries_follow_the_feature_spec(mi: ModelSpec, ed: ModelSpec) -> None:
    queries = patient_queries(mi, "p/1 x", NOW)
    assert queries[0] == "Patient/p%2F1%20x"
    assert any(q.startswith("Observation?patient=p%2F1+x&date=ge2026-02-11") for q in queries)
    assert any(q.startswith("Condition?patient=") for q in queries)
    assert not any(q.startswith("Encounter") for q in queries)
    ed_queries = patient_queries(ed, "p1", NOW)
    assert any(q.startswith("Encounter?patient=p1&date=ge2025-03-13") for q in ed_queries)


def _mi_charts(mi: ModelSpec) -> list[Chart]:
    case = post_mi_case(NOW, "p1")
    facts = normalize([case["patient"], *case["observations"], *case["conditions"]], mi)
    return trend_charts(mi, facts, NOW)


def test_trend_charts_group_inputs_and_mark_the_model_window(mi: ModelSpec) -> None:
    charts = {c.title: c for c in _mi_charts(mi)}
    assert {"Body weight", "Heart rate", "Blood pressure", "Oxygen saturation (SpO2)"} <= set(
        charts
    )
    bp = charts["Blood pressure"]
    assert [s.name for s in bp.series] == ["systolic", "diastolic"]
    assert all(len(s.points) == 7 for s in bp.series)  # daily, over the 7-day look-back
    assert bp.unit == "mmHg" and bp.start == NOW - timedelta(days=7)
    spo2 = charts["Oxygen saturation (SpO2)"]
    assert spo2.used_from == NOW - timedelta(days=3)
    assert charts["Heart rate"].used_from == NOW - timedelta(days=7)
    svg = render_svg(spo2)
    assert svg.count('<circle class="point"') == 7
    assert svg.count('fill="#9aa3ad"') == 4  # older than the model's 3-day window: grey
    assert "used by the model" in svg and 'data-points="7"' in svg


def test_ed_charts_use_an_hourly_axis(ed: ModelSpec) -> None:
    case = ed_case(NOW, "p1")
    facts = normalize([case["patient"], *case["observations"], *case["encounters"]], ed)
    charts = trend_charts(ed, facts, NOW)
    lactate = next(c for c in charts if c.title == "Lactate")
    assert lactate.start == NOW - timedelta(hours=12)
    svg = render_svg(lactate)
    assert re.search(r">\d\d:00</text>", svg)


def test_chart_text_is_escaped_and_empty_charts_say_so() -> None:
    chart = Chart(
        key="k",
        title="<script>x</script>",
        unit="<b>",
        start=NOW - timedelta(days=3),
        end=NOW,
        used_from=NOW - timedelta(days=1),
        series=[Series("", [])],
    )
    svg = render_svg(chart)
    assert "<script>" not in svg and "<b>" not in svg
    assert "no values in this period" in svg


def test_error_page_escapes_and_csp_allows_exactly_the_inline_style() -> None:
    page = error_page("<img src=x>", "bad & <b>worse</b>", Words())
    assert "<img src=x>" not in page and "&lt;b&gt;worse" in page
    style = re.search(r"<style>(.*?)</style>", document("t", "", Words()), re.S)
    assert style is not None
    digest = base64.b64encode(hashlib.sha256(style.group(1).encode()).digest()).decode()
    assert f"'sha256-{digest}'" in CONTENT_SECURITY_POLICY
    assert "default-src 'none'" in CONTENT_SECURITY_POLICY
    assert "form-action 'self'" in CONTENT_SECURITY_POLICY


def test_the_user_is_read_from_an_id_token_for_this_app_only() -> None:
    from joserfc import jwt
    from joserfc.jwk import RSAKey

    from cds_service.web.smart.identity import launch_user, user_pseudonym

    key = RSAKey.generate_key(2048)

    def signed(**claims: object) -> str:
        return jwt.encode({"alg": "RS256"}, claims, key)

    fhir_user = "https://ehr.example.org/fhir/Practitioner/dr-x"
    assert launch_user(signed(aud="app", fhirUser=fhir_user, sub="x"), "app") == fhir_user
    assert launch_user(signed(aud=["other", "app"], sub="x"), "app") == "x"
    assert launch_user(signed(aud="other", fhirUser=fhir_user), "app") is None
    assert launch_user(signed(aud="app"), "app") is None
    for broken in (None, 42, "", "a.b", "a.!!!.c", "a." + "x" * 20000 + ".c"):
        assert launch_user(broken, "app") is None
    assert user_pseudonym(b"k", None) is None
    pseudo = user_pseudonym(b"k", fhir_user)
    assert pseudo is not None and "dr-x" not in pseudo and pseudo == user_pseudonym(b"k", fhir_user)

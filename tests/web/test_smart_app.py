"""SMART app (EHR launch) end to end: the real service on loopback, a real SMART authorization
server and FHIR server on loopback (``tests/web/smart_servers.py``), real SQLite/PostgreSQL, and a
real headless Chromium driven by Playwright for the clinician's path."""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import anyio
import httpx
import pytest

from cds_service.cds_hooks.examples import (
    ed_case,
    ed_prefetch,
    hook_body,
    mi_prefetch,
    post_mi_case,
)
from cds_service.config import Settings
from cds_service.main import create_app
from cds_service.web.sessions import SessionStore
from cds_service.web.smart import flow
from tests.utils.browser import CHROMIUM, CHROMIUM_ARGS
from tests.utils.screenshots import screenshot_dir
from tests.utils.server import ServerThread, free_port
from tests.utils.service import BACKENDS, NOW, Database, make_settings, new_database
from tests.web.smart_servers import SmartEhr

MI = "post-mi-unplanned-visit-risk"
ED = "ed-admission-risk-patient-view"
CLIENT_ID = "cds-risk-smart-app"


class MovableClock:
    """The service's clock: fixed at NOW, moved forward by tests of expiry."""

    def __init__(self) -> None:
        self.now = NOW

    def __call__(self) -> datetime:
        return self.now


@dataclass
class Smart:
    url: str
    db: Database
    ehr: SmartEhr
    clock: MovableClock
    settings: Settings
    clients: list[httpx.Client]

    def browser(self) -> httpx.Client:
        """A cookie jar playing one browser (closed after the test)."""
        client = httpx.Client(timeout=15)
        self.clients.append(client)
        return client

    def card(self, pid: str, service: str = MI) -> tuple[str, str]:
        """A real risk card from a CDS Hooks call; the patient's data goes into the EHR.
        Returns (card uuid, the smart link's appContext)."""
        if service == MI:
            case = post_mi_case(NOW, pid)
            prefetch = mi_prefetch(case)
            self.ehr.load(case["patient"], *case["observations"], *case["conditions"])
        else:
            case = ed_case(NOW, pid)
            prefetch = ed_prefetch(case)
            self.ehr.load(case["patient"], *case["observations"], *case["encounters"])
        body = hook_body("patient-view", pid, prefetch)
        response = httpx.post(f"{self.url}/cds-services/{service}", json=body, timeout=10)
        assert response.status_code == 200, response.text
        card = response.json()["cards"][0]
        link = next(li for li in card["links"] if li["type"] == "smart")
        assert link["url"] == f"{self.url}/smart/launch"
        return card["uuid"], link["appContext"]

    def launch(self, pid: str, app_context: str | None, **extra: Any) -> str:
        launch = self.ehr.add_launch(pid, app_context=app_context, **extra)
        return f"{self.url}/smart/launch?iss={self.ehr.fhir_base}&launch={launch}"


@pytest.fixture(scope="module", params=BACKENDS)
def smart(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Smart]:
    tmp = tmp_path_factory.mktemp(f"smart-{request.param}")
    db = new_database(str(request.param), tmp)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    settings = make_settings(db.url, tmp, public_base_url=url, smart_client_id=CLIENT_ID)
    clock = MovableClock()
    try:
        with SmartEhr() as ehr, ServerThread(create_app(settings, clock=clock), port=port):
            ehr.register(CLIENT_ID, f"{url}/smart/callback")
            yield Smart(url, db, ehr, clock, settings, [])
    finally:
        db.close()


@pytest.fixture()
def s(smart: Smart) -> Iterator[Smart]:
    smart.clock.now = NOW
    smart.ehr.expires_in = 3600
    smart.ehr.smart_configuration_extra = {}
    yield smart
    smart.clock.now = NOW
    for client in smart.clients:
        client.close()
    smart.clients.clear()


@dataclass
class Flow:
    client: httpx.Client
    locations: list[str]
    responses: list[httpx.Response]

    @property
    def final(self) -> httpx.Response:
        return self.responses[-1]


def run_launch(client: httpx.Client, launch_url: str, steps: int = 4) -> Flow:
    """Play the browser without following redirects: launch -> authorize -> callback -> app."""
    result = Flow(client, [], [])
    url = launch_url
    for _ in range(steps):
        response = client.get(url)
        result.responses.append(response)
        if response.status_code not in (302, 303):
            break
        url = response.headers["location"]
        result.locations.append(url)
    return result


def csrf_of(html: str) -> str:
    marker = "name='csrf' value='"
    start = html.index(marker) + len(marker)
    return html[start : html.index("'", start)]


def handle_of(url: str) -> str:
    return parse_qs(urlsplit(url).query)["s"][0]


# --- the clinician's path in a real browser ---------------------------------------------------


def test_ehr_launch_in_browser_renders_and_stores_dismissal(s: Smart, tmp_path: Path) -> None:
    if not Path(CHROMIUM).exists():
        pytest.skip("Debian's chromium is not installed")
    from playwright.sync_api import sync_playwright

    card_uuid, app_context = s.card("syn-mi-browser")
    launch_url = s.launch("syn-mi-browser", app_context)
    seen_urls: list[str] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.on("request", lambda r: seen_urls.append(r.url))
            page.goto(launch_url)
            page.wait_for_url(re.compile(re.escape(f"{s.url}/smart/app?s=") + r"[\w-]{16}$"))
            risk_text = page.locator("#risk-now .big").inner_text()
            assert risk_text.strip().endswith(("low", "moderate", "high"))
            assert "%" in risk_text
            assert "On the card you opened this from" in page.locator("#card-risk").inner_text()
            charts = page.locator("svg.trend")
            assert charts.count() >= 4
            for expected in ("Blood pressure", "Heart rate", "Body weight", "SpO2"):
                figure = page.locator("#trends figure").filter(has_text=expected)
                assert figure.count() == 1, expected
                assert figure.locator("svg.trend circle.point").count() >= 3, expected
            assert page.locator("svg.trend polyline").count() >= 4
            factor_rows = page.locator("#factors table tbody tr")
            assert factor_rows.count() >= 3
            # measured times in the cards' one time format (display zone Europe/Amsterdam)
            assert re.search(
                r"\d{4}-\d\d-\d\d \d\d:\d\d CES?T", page.locator("#factors table").inner_text()
            )
            link = page.locator("#model a")
            assert link.get_attribute("href") == f"{s.url}/models/post-mi-unplanned-visit/1.0.0"
            page.screenshot(path=str(screenshot_dir(tmp_path) / "smart-app.png"), full_page=True)
            html = page.content()

            page.check("input[name=reason][value=disagree]")
            page.fill("#c-dismiss", "Seen in clinic yesterday, stable.")
            page.click("button.dismiss")
            page.wait_for_selector("#feedback-done")
            assert "Dismissed" in page.locator("#feedback-done").inner_text()
        finally:
            browser.close()
    tokens = list(s.ehr.tokens_issued)
    assert tokens
    for token in tokens:
        assert token not in html
        assert not any(token in u for u in seen_urls)
    assert "syn-mi-browser" not in html  # the FHIR patient id is never shown
    rows = s.db.rows(
        "SELECT * FROM v_feedback WHERE card_uuid = :u AND channel = 'smart'", u=card_uuid
    )
    assert len(rows) == 1
    row = rows[0]
    assert row["outcome"] == "overridden"
    assert row["override_reason_code"] == "disagree"
    assert row["override_reason_display"] == "Clinical judgement differs from the model"
    assert row["user_comment"] == "Seen in clinic yesterday, stable."
    assert row["model_version"] == "1.0.0" and row["risk"] is not None
    assert row["service_id"] == MI


# --- the protocol, checked against the SMART App Launch 2.x rules ------------------------------


def test_authorization_and_token_requests_follow_smart_app_launch(s: Smart) -> None:
    _, app_context = s.card("syn-mi-proto")
    before = len(s.ehr.recorded.authorize)
    done = run_launch(s.browser(), s.launch("syn-mi-proto", app_context))
    assert [r.status_code for r in done.responses] == [302, 302, 303, 200]
    auth = s.ehr.recorded.authorize[before]
    assert auth["response_type"] == "code"
    assert auth["client_id"] == CLIENT_ID
    assert auth["redirect_uri"] == f"{s.url}/smart/callback"
    assert "launch" in auth["scope"].split()
    assert auth["launch"] in s.ehr.launches
    assert auth["aud"] == s.ehr.fhir_base
    assert auth["code_challenge_method"] == "S256"
    assert len(auth["state"].split(".", 1)[1]) >= 32  # > 122 bits of entropy
    token_request = s.ehr.recorded.token[-1]
    form = token_request["form"]
    assert form["grant_type"] == "authorization_code"
    assert form["redirect_uri"] == f"{s.url}/smart/callback"
    assert form["client_id"] == CLIENT_ID and not token_request["basic"]  # public client
    digest = hashlib.sha256(form["code_verifier"].encode()).digest()
    assert base64.urlsafe_b64encode(digest).rstrip(b"=").decode() == auth["code_challenge"]
    # FHIR reads carry the token as a bearer header and stay with the launch's patient
    reads = s.ehr.recorded.fhir[-4:]
    assert {r["path"] for r in reads} == {
        "/fhir/Patient/syn-mi-proto",
        "/fhir/Observation",
        "/fhir/Condition",
    }
    assert all(r["authorization"].startswith("Bearer ") for r in reads)
    page = done.final.text
    assert "On the card you opened this from" in page
    assert done.final.headers["cache-control"] == "no-store"
    assert "script-src" not in done.final.headers["content-security-policy"]


def test_confidential_client_authenticates_with_basic(s: Smart) -> None:
    settings = s.settings.model_copy(
        update={"smart_client_id": "cds-confidential", "smart_client_secret": "s3cret:&/x"}
    )
    s.ehr.register("cds-confidential", f"{s.url}/smart/callback", secret="s3cret:&/x")
    launch = s.ehr.add_launch("syn-mi-proto")
    config = flow.SmartConfiguration(f"{s.ehr.base}/auth/authorize", f"{s.ehr.base}/auth/token")
    url = flow.authorization_url(
        settings,
        config,
        iss=s.ehr.fhir_base,
        launch=launch,
        state="h.state-value",
        code_verifier="v" * 64,
    )
    back = httpx.get(url)
    assert back.status_code == 302
    code = parse_qs(urlsplit(back.headers["location"]).query)["code"][0]

    async def exchange() -> flow.GrantedLaunch:
        return await flow.exchange_code(settings, config.token_endpoint, code, "v" * 64)

    granted = anyio.run(exchange)
    assert granted.patient == "syn-mi-proto"
    recorded = s.ehr.recorded.token[-1]
    assert recorded["basic"] and "client_id" not in recorded["form"]


def test_token_never_in_url_page_cookie_or_session_table(s: Smart) -> None:
    _, app_context = s.card("syn-mi-secret")
    done = run_launch(s.browser(), s.launch("syn-mi-secret", app_context))
    assert done.final.status_code == 200
    token = next(iter(t for t, v in s.ehr.tokens.items() if v.patient == "syn-mi-secret"))
    assert token not in done.final.text
    assert not any(token in loc for loc in done.locations)
    assert not any(token in value for value in done.client.cookies.values())
    stored = s.db.rows("SELECT data FROM web_sessions")
    assert stored and not any(token in r["data"] for r in stored)
    assert "syn-mi-secret" not in done.final.text
    assert "Zzyzxsynthetic" not in done.final.text and "SYN-MRN" not in done.final.text


def test_patient_banner_request_gets_a_check_notice_not_an_identifier(s: Smart) -> None:
    _, app_context = s.card("syn-mi-banner")
    done = run_launch(s.browser(), s.launch("syn-mi-banner", app_context, need_patient_banner=True))
    assert done.final.status_code == 200
    assert "id='no-banner'" in done.final.text
    assert "syn-mi-banner" not in done.final.text and "Zzyzxsynthetic" not in done.final.text


def test_session_expires_with_the_token(s: Smart) -> None:
    s.ehr.expires_in = 120
    _, app_context = s.card("syn-mi-expiry")
    done = run_launch(s.browser(), s.launch("syn-mi-expiry", app_context))
    callback = done.responses[2]
    assert callback.status_code == 303
    assert "Max-Age=120" in callback.headers["set-cookie"]
    assert "HttpOnly" in callback.headers["set-cookie"]
    session_id = done.client.cookies[flow.cookie_name(handle_of(done.locations[-1]))]
    rows = s.db.rows(
        "SELECT created_at, expires_at FROM web_sessions WHERE session_hash = :h",
        h=hashlib.sha256(session_id.encode()).hexdigest(),
    )
    assert len(rows) == 1

    def aware(v: Any) -> datetime:
        moment = datetime.fromisoformat(v) if isinstance(v, str) else v
        return moment if moment.tzinfo else moment.replace(tzinfo=UTC)

    assert aware(rows[0]["expires_at"]) - aware(rows[0]["created_at"]) == timedelta(seconds=120)
    app_url = done.locations[-1]
    s.clock.now = NOW + timedelta(seconds=119)
    assert done.client.get(app_url).status_code == 200
    s.clock.now = NOW + timedelta(seconds=121)
    expired = done.client.get(app_url)
    assert expired.status_code == 401
    assert "Session expired" in expired.text and "Open the app again" in expired.text


def test_revoked_token_ends_the_session(s: Smart) -> None:
    _, app_context = s.card("syn-mi-revoke")
    done = run_launch(s.browser(), s.launch("syn-mi-revoke", app_context))
    assert done.final.status_code == 200
    s.ehr.revoke_all()
    again = done.client.get(done.locations[-1])
    assert again.status_code == 401 and "Access has ended" in again.text


# --- state, PKCE and session errors are clear and refuse ---------------------------------------


def test_bad_state_is_400_and_the_real_callback_still_works(s: Smart) -> None:
    _, app_context = s.card("syn-mi-state")
    partial = run_launch(s.browser(), s.launch("syn-mi-state", app_context), steps=2)
    callback = partial.locations[-1]
    query = parse_qs(urlsplit(callback).query)
    handle, _ = query["state"][0].split(".", 1)
    base = f"{s.url}/smart/callback"
    for params in (
        {"code": query["code"][0]},  # no state
        {"code": query["code"][0], "state": "garbage"},
        {"code": query["code"][0], "state": f"{handle}.forged-value"},
    ):
        bad = partial.client.get(base, params=params)
        assert bad.status_code == 400, params
        assert "state" in bad.text.lower()
    good = partial.client.get(callback)
    assert good.status_code == 303
    replay = partial.client.get(callback)
    assert replay.status_code == 400  # the launch is single use


def test_expired_launch_session_is_a_clear_error(s: Smart) -> None:
    partial = run_launch(s.browser(), s.launch("syn-mi-state", None), steps=2)
    s.clock.now = NOW + timedelta(seconds=flow.LAUNCH_SECONDS + 1)
    late = partial.client.get(partial.locations[-1])
    assert late.status_code == 400
    assert "Launch expired" in late.text and "cookies" in late.text
    fresh = httpx.get(partial.locations[-1])  # another browser: no cookie at all
    assert fresh.status_code == 400 and "Launch expired" in fresh.text


def test_missing_pkce_verifier_is_refused(s: Smart) -> None:
    partial = run_launch(s.browser(), s.launch("syn-mi-state", None), steps=2)
    state = parse_qs(urlsplit(partial.locations[-1]).query)["state"][0]
    session_id = partial.client.cookies[flow.cookie_name(state.split(".")[0])]
    store = SessionStore(s.db.engine)
    data = store.get(session_id, flow.SESSION_KIND, now=NOW)
    assert data is not None and data["code_verifier"]
    del data["code_verifier"]
    store.update(session_id, data)
    before = len(s.ehr.recorded.token)
    refused = partial.client.get(partial.locations[-1])
    assert refused.status_code == 400 and "PKCE code verifier" in refused.text
    assert len(s.ehr.recorded.token) == before  # the code was never sent without a verifier


def test_launch_without_a_card_says_so(s: Smart) -> None:
    s.card("syn-mi-nocard")
    done = run_launch(s.browser(), s.launch("syn-mi-nocard", None))
    assert done.final.status_code == 400
    assert "No risk card in context" in done.final.text


def test_a_launch_purges_ended_smart_sessions_only(s: Smart) -> None:
    store = SessionStore(s.db.engine)
    old = NOW - timedelta(hours=2)
    smart_id = store.create(flow.SESSION_KIND, {"stage": "authorizing"}, timedelta(minutes=1), old)
    other_id = store.create("other-kind", {}, timedelta(minutes=1), old)
    run_launch(s.browser(), s.launch("syn-mi-purge", None), steps=1)

    def stored(session_id: str) -> int:
        digest = hashlib.sha256(session_id.encode()).hexdigest()
        return len(s.db.rows("SELECT 1 FROM web_sessions WHERE session_hash = :h", h=digest))

    assert stored(smart_id) == 0 and stored(other_id) == 1


def test_authorization_server_refusal_is_shown(s: Smart) -> None:
    launch_url = f"{s.url}/smart/launch?iss={s.ehr.fhir_base}&launch=not-a-known-launch"
    done = run_launch(s.browser(), launch_url)
    assert done.final.status_code == 403
    assert "invalid_request" in done.final.text


def test_launch_parameters_and_discovery_are_checked(s: Smart) -> None:
    missing = httpx.get(f"{s.url}/smart/launch", params={"iss": s.ehr.fhir_base})
    assert missing.status_code == 400 and "launch" in missing.text
    not_url = httpx.get(f"{s.url}/smart/launch", params={"iss": "ftp://x", "launch": "a"})
    assert not_url.status_code == 400
    s.ehr.smart_configuration_extra = {"code_challenge_methods_supported": ["plain"]}
    no_s256 = httpx.get(f"{s.url}/smart/launch", params={"iss": s.ehr.fhir_base, "launch": "a"})
    assert no_s256.status_code == 502 and "S256" in no_s256.text
    nowhere = httpx.get(
        f"{s.url}/smart/launch",
        params={"iss": f"http://127.0.0.1:{free_port()}/fhir", "launch": "a"},
    )
    assert nowhere.status_code == 502


# --- feedback -----------------------------------------------------------------------------------


def test_accept_is_stored_and_csrf_is_required(s: Smart) -> None:
    card_uuid, app_context = s.card("syn-mi-accept")
    done = run_launch(s.browser(), s.launch("syn-mi-accept", app_context))
    handle = handle_of(done.locations[-1])
    csrf = csrf_of(done.final.text)
    url = f"{s.url}/smart/feedback"
    forged = done.client.post(url, data={"s": handle, "csrf": "x" * 43, "outcome": "accepted"})
    assert forged.status_code == 403
    foreign = done.client.post(
        url,
        data={"s": handle, "csrf": csrf, "outcome": "accepted"},
        headers={"Origin": "https://evil.example"},
    )
    assert foreign.status_code == 403
    no_reason = done.client.post(url, data={"s": handle, "csrf": csrf, "outcome": "overridden"})
    assert no_reason.status_code == 400 and "reason" in no_reason.text
    other_browser = httpx.post(url, data={"s": handle, "csrf": csrf, "outcome": "accepted"})
    assert other_browser.status_code == 401
    assert s.db.rows("SELECT * FROM card_feedback WHERE card_uuid = :u", u=card_uuid) == []
    ok = done.client.post(
        url,
        data={"s": handle, "csrf": csrf, "outcome": "accepted", "comment": "agree"},
        headers={"Origin": s.url},
    )
    assert ok.status_code == 303 and ok.headers["location"] == done.locations[-1]
    rows = s.db.rows("SELECT * FROM v_feedback WHERE card_uuid = :u", u=card_uuid)
    assert len(rows) == 1
    assert rows[0]["channel"] == "smart" and rows[0]["outcome"] == "accepted"
    assert rows[0]["user_comment"] == "agree" and rows[0]["override_reason_code"] is None
    page = done.client.get(done.locations[-1])
    assert "feedback-done" in page.text and "Accepted" in page.text


def test_card_of_another_patient_is_not_shown_and_takes_no_feedback(s: Smart) -> None:
    card_uuid, app_context = s.card("syn-mi-owner")
    s.card("syn-mi-intruder")
    done = run_launch(s.browser(), s.launch("syn-mi-intruder", app_context))
    assert done.final.status_code == 200
    assert "belongs to another patient" in done.final.text
    assert "name='csrf'" not in done.final.text
    session_id = done.client.cookies[flow.cookie_name(handle_of(done.locations[-1]))]
    data = SessionStore(s.db.engine).get(session_id, flow.SESSION_KIND, now=NOW)
    assert data is not None
    refused = done.client.post(
        f"{s.url}/smart/feedback",
        data={"s": handle_of(done.locations[-1]), "csrf": data["csrf"], "outcome": "accepted"},
    )
    assert refused.status_code == 409
    assert s.db.rows("SELECT * FROM card_feedback WHERE card_uuid = :u", u=card_uuid) == []


def test_two_launches_in_one_browser_do_not_mix(s: Smart) -> None:
    client = s.browser()
    card_mi, ctx_mi = s.card("syn-mi-tab1")
    card_ed, ctx_ed = s.card("syn-ed-tab2", ED)
    first = run_launch(client, s.launch("syn-mi-tab1", ctx_mi))
    second = run_launch(client, s.launch("syn-ed-tab2", ctx_ed))
    assert first.locations[-1] != second.locations[-1]
    page_mi = client.get(first.locations[-1]).text
    page_ed = client.get(second.locations[-1]).text
    assert "Post-MI unplanned visit risk" in page_mi and "Blood pressure" in page_mi
    assert "ED admission risk" in page_ed and "Lactate" in page_ed
    ok = client.post(
        f"{s.url}/smart/feedback",
        data={"s": handle_of(first.locations[-1]), "csrf": csrf_of(page_mi), "outcome": "accepted"},
    )
    assert ok.status_code == 303
    assert len(s.db.rows("SELECT * FROM card_feedback WHERE card_uuid = :u", u=card_mi)) == 1
    assert s.db.rows("SELECT * FROM card_feedback WHERE card_uuid = :u", u=card_ed) == []


# --- which FHIR servers may launch the app ------------------------------------------------------


def test_outside_development_only_listed_https_fhir_servers_may_launch(
    tmp_path: Path, s: Smart
) -> None:
    trusted = tmp_path / "trusted.json"
    trusted.write_text(
        json.dumps(
            [
                {
                    "iss": "https://ehr.example.org",
                    "jwks": {"keys": []},
                    "fhir_servers": ["https://ehr.example.org/fhir", s.ehr.fhir_base],
                }
            ]
        )
    )
    settings = make_settings(
        f"sqlite:///{tmp_path / 'acc.sqlite3'}",
        tmp_path,
        environment="acceptance",
        auth_disabled=False,
        pseudonym_key="acceptance-pseudonym-key-0123456789",
        trusted_issuers=trusted,
    )
    with ServerThread(create_app(settings)) as server:
        unlisted = httpx.get(
            f"{server.url}/smart/launch",
            params={"iss": "https://other.example.org/fhir", "launch": "x"},
        )
        assert unlisted.status_code == 403 and "not registered" in unlisted.text
        plain_http = httpx.get(
            f"{server.url}/smart/launch", params={"iss": s.ehr.fhir_base, "launch": "x"}
        )
        assert plain_http.status_code == 400 and "https" in plain_http.text


# --- nothing identifying in the service's own log records --------------------------------------


class _Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


def test_smart_logs_hold_no_patient_id_or_token(s: Smart) -> None:
    """Raw records (before the production scrubber) of the whole flow, errors included."""
    handler = _Records()
    logger = logging.getLogger("cds_service")
    level = logger.level
    logger.setLevel(logging.DEBUG)
    logger.addHandler(handler)
    try:
        card_uuid, app_context = s.card("syn-mi-logcheck")
        done = run_launch(s.browser(), s.launch("syn-mi-logcheck", app_context))
        handle = handle_of(done.locations[-1])
        done.client.post(
            f"{s.url}/smart/feedback",
            data={"s": handle, "csrf": "wrong", "outcome": "accepted"},
        )
        done.client.post(
            f"{s.url}/smart/feedback",
            data={"s": handle, "csrf": csrf_of(done.final.text), "outcome": "accepted"},
        )
        done.client.get(f"{s.url}/smart/callback", params={"state": "x.y", "code": "z"})
        s.ehr.revoke_all()
        done.client.get(done.locations[-1])
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)
    smart_records = [r for r in handler.records if r.name.startswith("cds_service.web.smart")]
    assert smart_records, "the flow logged nothing"
    text = "\n".join(f"{r.getMessage()} {r.__dict__}" for r in handler.records)
    assert "syn-mi-logcheck" not in text and "Zzyzxsynthetic" not in text
    assert card_uuid not in "\n".join(r.getMessage() for r in smart_records)
    for token in s.ehr.tokens_issued:
        assert token not in text

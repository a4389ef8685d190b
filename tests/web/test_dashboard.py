"""The quality team's dashboard end to end: a real OpenID Connect provider on loopback
(oidc-provider-mock), the real service (uvicorn on loopback) filled with a simulated month of
signed CDS Hooks calls (a population shift after day 14, a shadow model, feedback, outcomes and
monitoring), real SQLite/PostgreSQL, and a real headless Chromium driven by Playwright.
Also the query layer on both databases, and the sign-in rules without a browser."""

from __future__ import annotations

import json
import re
import shutil
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
import respx

from cds_devtools.simulate import SimulationReport, run_simulation
from cds_devtools.synth import BASE_TIME
from cds_service.audit.spool import Spool
from cds_service.audit.writer import AuditWriter
from cds_service.cds_hooks.suggestions import suggestion_uuid
from cds_service.config import Settings
from cds_service.db.deployments import append_record
from cds_service.db.engine import upgrade
from cds_service.main import create_app
from cds_service.monitoring import run_monitoring
from cds_service.security.local_issuer import generate_key, public_jwks, sign
from cds_service.serving.registry import load_registry
from cds_service.web.dashboard import queries
from tests.utils.browser import CHROMIUM, CHROMIUM_ARGS
from tests.utils.screenshots import screenshot_dir
from tests.utils.server import ServerThread, free_port
from tests.utils.service import BACKENDS, Database, make_settings, new_database

REPO = Path(__file__).resolve().parents[2]
SERVICE = "ed-admission-risk"
# The service answers with the one-hour model, and with the arrival model while triage vitals
# are not recorded yet: the dashboard shows one model at a time, the primary one by default.
MODEL, ARRIVAL_MODEL = "ed-admission", "ed-admission-arrival"
MODEL = "ed-admission"
SHADOW = "1.1.0"
ISS = "urn:cds-risk:simulator"
CLIENT_ID = "cds-risk-dashboard"
CLIENT_SECRET = "dashboard-test-secret"
QUALITY_USER = "q.lead@hospital.example"
OTHER_USER = "a.clinician@hospital.example"
# Small enough to keep the test quick, large enough (about 300 ED visits in 28 days) for the
# monitor's KS test to flag the older population in the second fortnight.
COHORT = 6000


# --- the loopback OpenID Connect provider -----------------------------------------------------


class OidcProvider:
    """oidc-provider-mock served by werkzeug on 127.0.0.1 (its helper binds 'localhost'), with
    two predefined users: one in the quality-team group, one not."""

    def __init__(self) -> None:
        import werkzeug.serving
        from oidc_provider_mock import User, app

        users = [
            User(
                sub=QUALITY_USER,
                claims={"name": "Quality Lead", "groups": ["staff", "quality-team"]},
            ),
            User(sub=OTHER_USER, claims={"name": "A. Clinician", "groups": ["staff"]}),
        ]
        flask_app = app(require_nonce=True, user_claims=users)
        self.server = werkzeug.serving.make_server("127.0.0.1", 0, flask_app, threaded=True)
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True)

    def __enter__(self) -> OidcProvider:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)


# --- a simulated month ------------------------------------------------------------------------


def models_with_shadow(tmp: Path) -> Path:
    """The bundled models plus a 'recalibrated' ed-admission 1.1.0 (same booster, steeper
    calibration) to run in shadow: it disagrees with 1.0.0 on some risk bands."""
    models = tmp / "models"
    shutil.copytree(REPO / "models", models)
    source, target = models / MODEL / "1.0.0", models / MODEL / SHADOW
    shutil.copytree(source, target)
    manifest = json.loads((target / "manifest.json").read_text())
    manifest["version"] = SHADOW
    manifest["calibration"] = {
        **manifest["calibration"],
        "a": manifest["calibration"]["a"] * 1.25,
        "b": manifest["calibration"]["b"] + 0.35,
    }
    (target / "manifest.json").write_text(json.dumps(manifest, indent=2))
    card = (target / "model_card.md").read_text().replace("1.0.0", SHADOW)
    (target / "model_card.md").write_text(card)
    return models


def record_deployments(db: Database, start: datetime, models: Path) -> None:
    def artifact(version: str) -> str:
        manifest = json.loads((models / MODEL / version / "manifest.json").read_text())
        return str(manifest["artifact"]["sha256"])

    evidence = {"failures": [], "metrics": {"auroc": 0.842}, "rows": 2400}
    append_record(
        db.engine,
        {
            "model_name": MODEL,
            "model_version": "1.0.0",
            "artifact_sha256": artifact("1.0.0"),
            "environment": "development",
            "role": "live",
            "action": "promote",
            "decided_by": "j.devries (data science)",
            "reason": "First deployment after validation on the 2025 hold-out export",
            "evidence": json.dumps(evidence),
            "created_at": start - timedelta(days=20),
        },
    )
    failed = {"failures": ["calibration slope 1.31 outside [0.8, 1.2]"], "metrics": {"auroc": 0.84}}
    append_record(
        db.engine,
        {
            "model_name": MODEL,
            "model_version": SHADOW,
            "artifact_sha256": artifact(SHADOW),
            "environment": "development",
            "role": "shadow",
            "action": "promote",
            "decided_by": "m.jansen (quality)",
            "reason": "Recalibrated candidate: watch it in shadow before a decision",
            "override": True,
            "override_reason": "Shadow only (no card is shown); the gate is judged again later",
            "evidence": json.dumps(failed),
            "created_at": start - timedelta(days=1),
        },
    )


@dataclass
class World:
    backend: str
    url: str
    db: Database
    settings: Settings
    report: SimulationReport
    provider: OidcProvider

    @property
    def primary_cards(self) -> int:
        """Live cards of the service's primary model (the rest came from the arrival model)."""
        sql = "SELECT count(*) AS n FROM v_cards WHERE service_id = :s AND model_name = :m"
        return int(self.db.rows(sql + " AND role = 'live'", s=SERVICE, m=MODEL)[0]["n"])

    @property
    def start(self) -> datetime:
        assert self.report.window_start is not None
        return self.report.window_start

    @property
    def end(self) -> datetime:
        assert self.report.window_end is not None
        return self.report.window_end


def simulate_month(
    backend: str, tmp: Path, cohort: Path, provider: OidcProvider, port: int | None = None
) -> Iterator[World]:
    """A running service with a simulated month in its database (yields once)."""
    db = new_database(backend, tmp)
    key = generate_key("ES384")
    callers = tmp / "callers.json"
    callers.write_text(json.dumps([{"iss": ISS, "jwks": public_jwks(key), "fhir_servers": []}]))
    port = port or free_port()
    url = f"http://127.0.0.1:{port}"
    models = models_with_shadow(tmp)
    settings = make_settings(
        db.url,
        tmp,
        auth_disabled=False,
        trusted_issuers=callers,
        allow_simulated_time=True,
        public_base_url=url,
        models_dir=models,
        oidc_issuer=provider.url,
        oidc_client_id=CLIENT_ID,
        oidc_client_secret=CLIENT_SECRET,
    )
    # The simulation's last day (run_simulation computes the same): deployments before it.
    end = (BASE_TIME - timedelta(days=2)).astimezone(UTC).replace(hour=0, minute=0, second=0)
    try:
        upgrade(db.engine)
        record_deployments(db, end - timedelta(days=28), models)
        app = create_app(settings, transport=httpx.MockTransport(respx.MockRouter().async_handler))
        with ServerThread(app, port=port) as server:
            report = run_simulation(
                base_url=server.url,
                public_base_url=url,
                engine=db.engine,
                writer=AuditWriter(db.engine, Spool(tmp / "spool-sim")),
                models_dir=models,
                pseudonym_key=settings.effective_pseudonym_key,
                workdir=cohort,
                sign=lambda aud: sign(key, iss=ISS, aud=aud),
                days=28,
                shift="population",
                shift_day=14,
                cohort_patients=COHORT,
                monitor_window_days=14,
            )
            assert report.window_start is not None and report.window_end is not None
            # The scheduled weekly run as well: the dashboard charts weeks over time.
            run_monitoring(
                db.engine,
                models,
                window_start=report.window_start,
                window_end=report.window_end,
                window=timedelta(days=7),
            )
            yield World(backend, url, db, settings, report, provider)
    finally:
        db.close()


# --- fixtures ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def provider() -> Iterator[OidcProvider]:
    with OidcProvider() as p:
        yield p


@pytest.fixture(scope="module")
def cohort_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("dashboard-cohort")


@pytest.fixture(scope="module", params=BACKENDS)
def world(
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
    cohort_dir: Path,
    provider: OidcProvider,
) -> Iterator[World]:
    tmp = tmp_path_factory.mktemp(f"dashboard-{request.param}")
    yield from simulate_month(str(request.param), tmp, cohort_dir, provider)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if not Path(CHROMIUM).exists():
        pytest.skip("Debian's chromium is not installed (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        launched = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield launched
        launched.close()


def filters(world: World, **changes: Any) -> queries.Filters:
    values: dict[str, Any] = {
        "service_id": SERVICE,
        "environment": "development",
        "start": world.start.date(),
        "end": (world.end - timedelta(days=1)).date(),
    }
    values.update(changes)
    return queries.Filters(**values)


def registry_of(world: World) -> Any:
    registry = load_registry(world.settings.hooks_dir, world.settings.models_dir)
    registry.refresh_deployments(world.db.engine, "development")
    return registry


def sign_in(world: World, user: str) -> tuple[httpx.Client, httpx.Response]:
    """The browser's sign-in path with plain HTTP: login -> provider form -> callback."""
    client = httpx.Client(timeout=15)
    to_provider = client.get(f"{world.url}/dashboard/login")
    assert to_provider.status_code == 303, to_provider.text
    to_callback = client.post(to_provider.headers["location"], data={"sub": user})
    assert to_callback.status_code == 302, to_callback.text
    return client, client.get(to_callback.headers["location"])


def pseudonyms(world: World) -> list[str]:
    rows = world.db.rows("SELECT patient_pseudonym, encounter_pseudonym FROM v_cards LIMIT 50")
    return [v for r in rows for v in r.values() if v]


# --- in a real browser ------------------------------------------------------------------------


def test_quality_team_signs_in_and_sees_a_simulated_month(
    world: World, browser: Any, tmp_path: Path
) -> None:
    context = browser.new_context(viewport={"width": 1360, "height": 900})
    page = context.new_page()
    try:
        page.goto(f"{world.url}/dashboard")
        # Not signed in: sent through /dashboard/login to the provider's authorization page.
        assert page.url.startswith(f"{world.provider.url}/oauth2/authorize?")
        query = parse_qs(urlsplit(page.url).query)
        assert query["code_challenge_method"] == ["S256"] and query["nonce"] and query["state"]
        page.get_by_role("button", name=QUALITY_USER).click()
        page.wait_for_url(f"{world.url}/dashboard")
        assert page.get_by_text("Quality Lead").is_visible()

        def marks(chart: str) -> int:
            return int(page.locator(f"svg[data-chart='{chart}'] .mark").count())

        # Charts drawn from the month: 28 days of volume, a risk histogram, the drift heat map
        # (17 inputs + predicted risk x 4 weekly windows), calibration bins, AUROC per week,
        # feedback per day, the shadow scatter.
        assert marks("volume") >= 28 * 2
        assert marks("risk") >= 15
        assert marks("missing") == 17
        assert marks("drift") >= 40
        assert marks("calibration") >= 5
        assert marks("auroc") == 4
        assert marks("feedback") >= 10
        assert marks("shadow") >= 100
        assert re.search(
            r"[1-9]\d* accepted with a suggestion", page.locator("#feedback").inner_text()
        )
        # The population shift: age is critical (PSI > 0.25) in the two weeks after day 14.
        critical = page.locator("svg[data-chart='drift'] rect.heat-3")
        titles = [critical.nth(i).text_content() or "" for i in range(critical.count())]
        assert sum(t.startswith("Age, 15 Dec") or t.startswith("Age, 22 Dec") for t in titles) == 2
        # The alert raised for it, and the deployment history (who, when, why, override).
        alerts = page.locator("table[data-table='alerts']").inner_text()
        assert "ks_pvalue · age" in alerts
        history = page.locator("table[data-table='deployments']").inner_text()
        assert "j.devries (data science)" in history and "m.jansen (quality)" in history
        assert "Recalibrated candidate" in history and "OVERRIDE" in history.upper()
        assert "1.1.0" in page.locator("table[data-table='shadow']").inner_text()
        html = page.content()
        assert not [p for p in pseudonyms(world) if p in html]
        assert "sim-20261123" not in html  # hook instances carry encounter ids
        cookie = next(c for c in context.cookies() if c["name"] == "cds_dashboard")
        assert cookie["httpOnly"] and cookie["sameSite"] == "Lax"
        assert cookie["path"] == "/dashboard" and not cookie["secure"]
        if world.backend == "sqlite":
            images = screenshot_dir(tmp_path)
            page.screenshot(path=str(images / "dashboard.png"), full_page=True)
            page.locator("#drift").screenshot(path=str(images / "dashboard-drift.png"))
            page.locator("#shadow").screenshot(path=str(images / "dashboard-shadow.png"))
        # Sign out: the next visit goes to the provider again.
        page.get_by_role("button", name="Sign out").click()
        assert page.get_by_text("You are signed out").is_visible()
        page.goto(f"{world.url}/dashboard")
        assert page.url.startswith(f"{world.provider.url}/oauth2/authorize?")
    finally:
        context.close()


def test_user_without_the_quality_team_role_gets_403(world: World, browser: Any) -> None:
    context = browser.new_context()
    page = context.new_page()
    try:
        page.goto(f"{world.url}/dashboard?role=live")
        with page.expect_response(lambda r: "/dashboard/callback" in r.url) as answer:
            page.get_by_role("button", name=OTHER_USER).click()
        assert answer.value.status == 403
        text = page.inner_text("body")
        assert "only for the quality team" in text and "A. Clinician" in text
        assert not [c for c in context.cookies() if c["name"] == "cds_dashboard"]
        page.goto(f"{world.url}/dashboard")
        assert page.url.startswith(f"{world.provider.url}/oauth2/authorize?")
    finally:
        context.close()


# --- sign-in rules over plain HTTP ------------------------------------------------------------


def test_unauthenticated_html_and_api_are_refused(world: World) -> None:
    with httpx.Client(base_url=world.url, timeout=10) as client:
        page = client.get("/dashboard?service=ed-admission-risk")
        assert page.status_code == 303
        assert page.headers["location"] == (
            "/dashboard/login?next=%2Fdashboard%3Fservice%3Ded-admission-risk"
        )
        api = client.get("/dashboard/api/data")
        assert api.status_code == 401 and "sign in" in api.json()["error"]
        forged = client.get("/dashboard/api/data", cookies={"cds_dashboard": "x" * 43})
        assert forged.status_code == 401
        assert client.get("/dashboard/static/dashboard.css").status_code == 200
        assert client.get("/dashboard/static/..%2Fauth.py").status_code == 404
        # An answer to the callback that this service did not start.
        stray = client.get("/dashboard/callback", params={"code": "c", "state": "s"})
        assert stray.status_code == 400 and "Sign-in expired" in stray.text


def test_login_uses_pkce_s256_state_and_nonce_kept_server_side(world: World) -> None:
    import base64
    import hashlib

    with httpx.Client(timeout=10) as client:
        r = client.get(f"{world.url}/dashboard/login", params={"next": "https://evil.example/"})
        assert r.status_code == 303
        target = urlsplit(r.headers["location"])
        assert f"{target.scheme}://{target.netloc}" == world.provider.url
        q = {k: v[0] for k, v in parse_qs(target.query).items()}
        assert q["response_type"] == "code" and q["client_id"] == CLIENT_ID
        assert q["redirect_uri"] == f"{world.url}/dashboard/callback"
        assert q["scope"].split()[0] == "openid" and q["code_challenge_method"] == "S256"
        assert len(q["state"]) >= 40 and len(q["nonce"]) >= 40
        cookie = r.headers["set-cookie"].lower()
        assert "cds_dashboard_login=" in cookie and "httponly" in cookie
        assert "samesite=lax" in cookie and "path=/dashboard" in cookie
        rows = world.db.rows("SELECT data FROM web_sessions WHERE kind = 'dashboard-login'")
        stored = [json.loads(row["data"]) for row in rows]
        mine = next(s for s in stored if s["state"] == q["state"])
        digest = hashlib.sha256(mine["code_verifier"].encode()).digest()
        assert base64.urlsafe_b64encode(digest).rstrip(b"=").decode() == q["code_challenge"]
        assert mine["nonce"] == q["nonce"] and mine["next"] == "/dashboard"  # no open redirect
        assert mine["code_verifier"] not in r.headers["location"]


def test_state_must_match_and_is_single_use_then_sign_in_and_out(world: World) -> None:
    client = httpx.Client(timeout=15)
    to_provider = client.get(f"{world.url}/dashboard/login")
    to_callback = client.post(to_provider.headers["location"], data={"sub": QUALITY_USER})
    callback = to_callback.headers["location"]
    tampered = re.sub(r"state=[^&]+", "state=forged", callback)
    assert client.get(tampered).status_code == 400
    replay = client.get(callback)  # the login state was used up by the refused attempt
    assert replay.status_code == 400 and "Sign-in expired" in replay.text
    client.close()

    client, landed = sign_in(world, QUALITY_USER)
    try:
        assert landed.status_code == 303 and landed.headers["location"] == "/dashboard"
        cookie = landed.headers["set-cookie"].lower()
        assert "cds_dashboard=" in cookie and "httponly" in cookie and "samesite=lax" in cookie
        page = client.get(f"{world.url}/dashboard")
        assert page.status_code == 200
        csp = page.headers["content-security-policy"]
        assert "script-src" not in csp and "default-src 'none'" in csp
        assert page.headers["cache-control"] == "no-store"
        data = client.get(f"{world.url}/dashboard/api/data").json()
        assert sum(d["cards"] for d in data["volume"]) == world.primary_cards
        assert "<select name='model'>" in page.text  # the service answers with two models
        other = client.get(f"{world.url}/dashboard/api/data?model={ARRIVAL_MODEL}").json()
        arrival_cards = sum(d["cards"] for d in other["volume"])
        assert arrival_cards == world.report.calls - world.primary_cards > 0
        assert data["filters"]["service_id"] == SERVICE
        session_rows = world.db.rows("SELECT data FROM web_sessions WHERE kind = 'dashboard'")
        assert session_rows and all("token" not in r["data"] for r in session_rows)
        assert client.post(f"{world.url}/dashboard/logout").status_code == 200
        assert client.get(f"{world.url}/dashboard").status_code == 303
        assert client.get(f"{world.url}/dashboard/api/data").status_code == 401
    finally:
        client.close()


# --- the query layer, on SQLite and PostgreSQL ------------------------------------------------


def test_query_layer_agrees_with_the_audit_rows(world: World) -> None:
    f = filters(world)
    data = queries.collect(world.db.engine, registry_of(world), f)
    live = world.db.rows(
        "SELECT card_kind, risk, indicator, missing_features FROM v_cards "
        "WHERE service_id = :s AND role = 'live' AND model_name = :m",
        s=SERVICE,
        m=MODEL,
    )
    assert data.model_name == MODEL
    assert data.total_cards == len(live) == world.primary_cards
    arrival = queries.collect(
        world.db.engine, registry_of(world), filters(world, model_name=ARRIVAL_MODEL)
    )
    assert arrival.model_name == ARRIVAL_MODEL and arrival.total_cards > 0
    assert data.total_cards + arrival.total_cards == world.report.calls
    assert sum(d.alerting_cards for d in data.volume) == sum(
        r["indicator"] in ("warning", "critical") for r in live if r["card_kind"] == "risk"
    )
    risks = [r["risk"] for r in live if r["card_kind"] == "risk"]
    expected = [0] * queries.HISTOGRAM_BINS
    for risk in risks:
        expected[min(int(risk * queries.HISTOGRAM_BINS), queries.HISTOGRAM_BINS - 1)] += 1
    assert data.histogram.counts == expected
    for m in data.missing:
        assert m.missing == sum(m.feature in json.loads(r["missing_features"]) for r in live)
    feedback = world.db.rows(
        "SELECT outcome, card_uuid, accepted_suggestions FROM v_feedback"
        " WHERE service_id = :s AND role = 'live'"
        " AND model_name = :m",
        s=SERVICE,
        m=MODEL,
    )
    assert data.feedback.total == len(feedback)
    assert data.feedback.total + arrival.feedback.total == world.report.feedback
    assert data.feedback.accepted == sum(r["outcome"] == "accepted" for r in feedback)
    # Accepting the card's suggestion (record the risk in the EHR) is stored with its uuid.
    taken = [json.loads(r["accepted_suggestions"] or "[]") for r in feedback]
    assert 0 < data.feedback.with_suggestion == sum(bool(t) for t in taken)
    assert all(
        [s["id"] for s in t] == [suggestion_uuid(r["card_uuid"], "risk-assessment")]
        for r, t in zip(feedback, taken, strict=True)
        if t
    )
    assert sum(n for _r, n in data.feedback.reasons) == data.feedback.overridden
    assert [v.version for v in data.shadow.versions] == [SHADOW]
    assert data.shadow.versions[0].pairs == world.primary_cards
    assert 0.5 < (data.shadow.versions[0].agreement or 0) < 1.0
    assert data.outcomes[0] > 0
    # Monitoring: both window lengths exist, weekly windows chosen for a time series.
    week, fortnight = 7 * 86400, 14 * 86400
    assert data.windows.lengths == [week, fortnight] and data.windows.length == week
    assert len(data.windows.keys) == 4 and data.windows.version == "1.0.0"
    age = {
        x.window.start.day: x.value for x in data.drift if (x.metric, x.feature) == ("psi", "age")
    }
    assert len(age) == 4
    before, after = [age[d] for d in sorted(age)[:2]], [age[d] for d in sorted(age)[2:]]
    assert max(v or 0 for v in before) < 0.25 < min(v or 0 for v in after)
    assert len(data.calibration) >= 5 and sum(b.n for b in data.calibration) == data.outcomes[0]
    assert {row.subgroup for row in data.subgroups} >= {"sex=female", "sex=male"}
    assert any(a.metric == "ks_pvalue" and a.feature == "age" for a in data.alerts)
    assert [d.decided_by for d in data.deployments] == [
        "m.jansen (quality)",
        "j.devries (data science)",
    ]
    # The fortnightly windows on request; the shadow role on request.
    two = queries.collect(
        world.db.engine, registry_of(world), filters(world, window_seconds=fortnight)
    )
    assert len(two.windows.keys) == 2
    shadow = queries.collect(world.db.engine, registry_of(world), filters(world, role="shadow"))
    assert shadow.total_cards == world.primary_cards and shadow.windows.version == SHADOW


def test_a_later_monitoring_run_replaces_the_figures_of_the_same_windows(world: World) -> None:
    registry = registry_of(world)
    before = queries.collect(world.db.engine, registry, filters(world))
    report = run_monitoring(
        world.db.engine,
        world.settings.models_dir,
        window_start=world.start,
        window_end=world.end,
        window=timedelta(days=7),
    )
    after = queries.collect(world.db.engine, registry, filters(world))
    assert set(after.windows.runs.values()) == {report.run_id}
    assert len(after.drift) == len(before.drift) and len(after.performance) == len(
        before.performance
    )
    assert sorted((x.window.start, x.metric, x.feature, x.value) for x in after.drift) == sorted(
        (x.window.start, x.metric, x.feature, x.value) for x in before.drift
    )


def test_an_empty_or_unknown_selection_gives_empty_figures(world: World) -> None:
    registry = registry_of(world)
    empty = queries.collect(
        world.db.engine,
        registry,
        filters(world, start=date(2020, 1, 1), end=date(2020, 1, 31)),
    )
    assert empty.total_cards == 0 and not empty.drift and not empty.alerts
    assert empty.histogram.total == 0 and empty.feedback.total == 0
    assert len(empty.deployments) == 2  # the history does not depend on the date range
    unknown = queries.collect(world.db.engine, registry, filters(world, service_id="nope"))
    assert unknown.total_cards == 0 and unknown.deployments == []


# --- ID token, role claim, redirects: units ---------------------------------------------------

ISSUER = "https://login.hospital.example/realms/staff"


def run_async(fn: Any, *args: Any) -> Any:
    """anyio.run in a thread of its own: Playwright's sync API keeps an event loop running in
    this one while the module's browser is open."""
    from concurrent.futures import ThreadPoolExecutor

    import anyio

    with ThreadPoolExecutor(1) as pool:
        return pool.submit(anyio.run, fn, *args).result()


def _provider_client(key: Any) -> tuple[Any, httpx.AsyncClient]:
    from cds_service.web.dashboard.auth import OidcClient

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/.well-known/openid-configuration"):
            return httpx.Response(
                200,
                json={
                    "issuer": ISSUER,
                    "authorization_endpoint": f"{ISSUER}/auth",
                    "token_endpoint": f"{ISSUER}/token",
                    "jwks_uri": f"{ISSUER}/certs",
                },
            )
        if request.url.path.endswith("/certs"):
            return httpx.Response(200, json=public_jwks(key))
        return httpx.Response(404)

    http = httpx.AsyncClient(transport=httpx.MockTransport(handler))
    settings = Settings(
        oidc_issuer=ISSUER, oidc_client_id=CLIENT_ID, public_base_url="https://cds.example.org"
    )
    return OidcClient(settings, http), http


def _id_token(key: Any, **changes: Any) -> str:
    import time

    from joserfc import jwt

    now = int(time.time())
    claims: dict[str, Any] = {
        "iss": ISSUER,
        "sub": "user-1",
        "aud": CLIENT_ID,
        "iat": now,
        "exp": now + 300,
        "nonce": "the-nonce",
        "groups": ["quality-team"],
    }
    claims.update(changes)
    claims = {k: v for k, v in claims.items() if v is not None}
    return jwt.encode({"alg": "RS256", "kid": key.kid}, claims, key)


@pytest.mark.parametrize(
    ("changes", "refused"),
    [
        ({}, None),
        ({"nonce": "another"}, "nonce"),
        ({"nonce": None}, "nonce"),
        ({"aud": "another-client"}, "another client"),
        ({"aud": [CLIENT_ID, "other"]}, "azp"),
        ({"aud": [CLIENT_ID, "other"], "azp": CLIENT_ID}, None),
        ({"iss": "https://evil.example"}, "iss"),
        ({"exp": 1_000_000_000}, "expired"),
    ],
)
def test_id_token_checks(changes: dict[str, Any], refused: str | None) -> None:
    from cds_service.web.dashboard.auth import SignInError

    key = generate_key("RS256")
    client, http = _provider_client(key)

    async def verify() -> dict[str, Any]:
        try:
            claims: dict[str, Any] = await client.verify_id_token(
                _id_token(key, **changes), "the-nonce"
            )
            return claims
        finally:
            await http.aclose()

    if refused is None:
        assert run_async(verify)["sub"] == "user-1"
    else:
        with pytest.raises(SignInError) as caught:
            run_async(verify)
        assert caught.value.status == 401 and refused in caught.value.message.lower()


def test_id_token_signed_by_another_key_or_with_hmac_is_refused() -> None:
    from joserfc import jwt
    from joserfc.jwk import OctKey

    from cds_service.web.dashboard.auth import SignInError

    key, stranger = generate_key("RS256"), generate_key("RS256", kid="x")
    client, http = _provider_client(key)
    forged = _id_token(stranger)
    secret = OctKey.import_key(CLIENT_SECRET.encode() * 2)
    hmac_token = jwt.encode({"alg": "HS256"}, {"iss": ISSUER, "sub": "u"}, secret)

    async def verify(token: str) -> None:
        await client.verify_id_token(token, "the-nonce")

    for token in (forged, hmac_token, "not.a.token"):
        with pytest.raises(SignInError):
            run_async(verify, token)
    run_async(http.aclose)


def test_role_claim_and_return_paths() -> None:
    from cds_service.web.dashboard.auth import has_role, safe_next

    assert has_role({"groups": ["staff", "quality-team"]}, "groups", "quality-team")
    assert not has_role({"groups": ["staff"]}, "groups", "quality-team")
    assert has_role({"role": "quality-team"}, "role", "quality-team")
    assert has_role({"roles": "staff quality-team"}, "roles", "quality-team")
    assert not has_role({"roles": "quality-team-lead"}, "roles", "quality-team")
    assert has_role(
        {"realm_access": {"roles": ["quality-team"]}}, "realm_access.roles", "quality-team"
    )
    assert not has_role({}, "groups", "quality-team")
    assert not has_role({"groups": {"quality-team": True}}, "groups", "quality-team")
    assert safe_next("/dashboard?service=x") == "/dashboard?service=x"
    for hostile in ("https://evil.example/", "//evil.example", "/dashboard\\x", "/dashboardx", ""):
        assert safe_next(hostile) == "/dashboard"
    assert safe_next("/dashboard/login?next=/dashboard") == "/dashboard"


@contextmanager
def _app_client(tmp: Path, **settings: Any) -> Iterator[httpx.Client]:
    """A real service on loopback over an empty SQLite database, with these settings."""
    db_url = f"sqlite:///{tmp / 'audit.sqlite3'}"
    with (
        ServerThread(create_app(make_settings(db_url, tmp, **settings))) as server,
        httpx.Client(base_url=server.url, timeout=10) as client,
    ):
        yield client


def test_without_sign_in_configured_the_dashboard_answers_503(tmp_path: Path) -> None:
    with _app_client(tmp_path) as client:
        page = client.get("/dashboard")
        assert page.status_code == 503 and "CDS_OIDC_ISSUER" in page.text
        assert "CDS_DASHBOARD_DEV_USER" in page.text
        assert client.get("/dashboard/api/data").status_code == 503
        assert client.get("/dashboard/login").status_code == 503
    with _app_client(tmp_path, oidc_issuer="https://idp.example") as client:
        half = client.get("/dashboard")
        assert half.status_code == 503 and "CDS_OIDC_CLIENT_ID" in half.text
    with _app_client(tmp_path, oidc_issuer="http://idp.example", oidc_client_id="c") as client:
        plain = client.get("/dashboard")
        assert plain.status_code == 503 and "https://" in plain.text


def test_development_user_needs_no_sign_in_and_empty_panels_say_so(tmp_path: Path) -> None:
    with _app_client(tmp_path, dashboard_dev_user="Dev Tester") as client:
        page = client.get("/dashboard")
        assert page.status_code == 200
        assert "Dev Tester" in page.text and "no sign-in" in page.text
        assert "No cards in this selection" in page.text
        assert "No monitoring alert" in page.text and "Sign out" not in page.text
        assert client.get("/dashboard/api/data").json()["volume"][0]["cards"] == 0
        assert client.get("/dashboard/login").headers["location"] == "/dashboard"
    with pytest.raises(ValueError, match="only allowed in development"):
        Settings(environment="production", dashboard_dev_user="x", pseudonym_key="k" * 20)


@pytest.mark.parametrize("userinfo_sub", ["user-1", "someone-else"])
def test_role_claim_missing_from_the_id_token_is_read_from_userinfo(userinfo_sub: str) -> None:
    import base64

    from cds_service.web.dashboard.auth import OidcClient

    key = generate_key("RS256")
    id_token = _id_token(key, groups=None)
    discovery = {
        "issuer": ISSUER,
        "authorization_endpoint": f"{ISSUER}/auth",
        "token_endpoint": f"{ISSUER}/token",
        "jwks_uri": f"{ISSUER}/certs",
        "userinfo_endpoint": f"{ISSUER}/userinfo",
    }
    settings = Settings(
        oidc_issuer=ISSUER,
        oidc_client_id=CLIENT_ID,
        oidc_client_secret=CLIENT_SECRET,
        public_base_url="https://cds.example.org",
    )
    login = {"state": "s", "nonce": "the-nonce", "code_verifier": "v" * 64, "next": "/dashboard"}

    async def flow() -> dict[str, Any]:
        async with httpx.AsyncClient() as http:
            claims: dict[str, Any] = await OidcClient(settings, http).sign_in(
                "the-code", login, "groups"
            )
            return claims

    with respx.mock(assert_all_called=True) as mock:
        mock.get(f"{ISSUER}/.well-known/openid-configuration").respond(json=discovery)
        mock.get(f"{ISSUER}/certs").respond(json=public_jwks(key))
        token = mock.post(f"{ISSUER}/token").respond(
            json={"access_token": "at", "token_type": "Bearer", "id_token": id_token}
        )
        userinfo = mock.get(f"{ISSUER}/userinfo").respond(
            json={"sub": userinfo_sub, "groups": ["quality-team"]}
        )
        claims = run_async(flow)
    sent = token.calls.last.request
    form = parse_qs(sent.content.decode())
    assert form["code"] == ["the-code"] and form["code_verifier"] == ["v" * 64]
    assert form["redirect_uri"] == ["https://cds.example.org/dashboard/callback"]
    basic = base64.b64encode(f"{CLIENT_ID}:{CLIENT_SECRET}".encode()).decode()
    assert sent.headers["authorization"] == f"Basic {basic}"
    assert userinfo.calls.last.request.headers["authorization"] == "Bearer at"
    assert claims["sub"] == "user-1"
    assert ("groups" in claims) == (userinfo_sub == "user-1")

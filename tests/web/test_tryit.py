"""The try-it page in a real Chromium against a real server with JWT verification on: for every
bundled service the browser sends the signed call itself and draws the card (summary, indicator,
detail, links, override reasons) beside the raw request and response; a dismissal with a reason
reaches the feedback table; the card's SMART link opens the SMART app through the local EHR.
Nothing leaves 127.0.0.1. Screenshots: docs/images/tryit-*.png (CDS_SCREENSHOT_DIR=docs/images).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from cds_service.main import create_app
from cds_service.security.local_issuer import (
    LOCAL_ISSUER,
    generate_key,
    local_key_path,
    public_jwks,
    save_private_key,
)
from cds_service.serving.registry import load_registry
from cds_service.web.tryit.patients import patients_for
from tests.utils.browser import CHROMIUM, CHROMIUM_ARGS, require_chromium
from tests.utils.screenshots import screenshot_dir
from tests.utils.server import ServerThread, free_port
from tests.utils.service import BACKENDS, Database, make_settings, new_database

REPO = Path(__file__).resolve().parents[2]
SERVICES = sorted(load_registry(REPO / "hooks", REPO / "models").services.values(), key=str)


@dataclass
class Running:
    url: str
    db: Database


@pytest.fixture(scope="module", params=BACKENDS)
def service(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Running]:
    """Launches, codes and tokens of the local EHR and the feedback live in the database."""
    tmp = tmp_path_factory.mktemp(f"tryit-{request.param}")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("CDS_DATA_DIR", str(tmp / "data"))
        key = generate_key("ES384")
        save_private_key(key, local_key_path())
        callers = [{"iss": LOCAL_ISSUER, "jwks": public_jwks(key), "fhir_servers": []}]
        (tmp / "callers.json").write_text(json.dumps(callers))
        db = new_database(request.param, tmp)
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        settings = make_settings(
            db.url,
            tmp,
            public_base_url=url,
            auth_disabled=False,
            trusted_issuers=tmp / "callers.json",
        )
        try:
            with ServerThread(create_app(settings), port):
                yield Running(url, db)
        finally:
            db.close()


def test_every_service_has_an_example_patient() -> None:
    assert SERVICES
    for hook_def in SERVICES:
        assert patients_for(hook_def.model), hook_def.id


def test_the_page_draws_the_card_of_every_service(service: Running, tmp_path: Path) -> None:
    require_chromium()
    from playwright.sync_api import sync_playwright

    shots = screenshot_dir(tmp_path)
    seen: list[str] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.on("request", lambda r: seen.append(r.url))
            page.goto(f"{service.url}/tryit")
            for hook_def in SERVICES:
                page.select_option("#service", hook_def.id)
                page.click("#send")
                page.wait_for_selector("#status:has-text('card(s)')")
                assert page.locator("#status").inner_text().startswith("HTTP 200"), hook_def.id
                card = page.locator(".cds-card").first
                assert re.search(
                    r"indicator-(info|warning|critical)", card.get_attribute("class") or ""
                )
                assert card.locator(".summary").inner_text().strip()
                assert card.locator(".detail table").count() >= 1  # the factors, as markdown
                assert card.locator(".links a, .links button").count() >= 1
                assert card.locator(".override-reason option").count() >= 2
                request = page.locator("#raw-request").inner_text()
                assert request.startswith(f"POST /cds-services/{hook_def.id}")
                assert f'"hook": "{hook_def.hook}"' in request
                assert page.locator("#raw-response").inner_text().startswith("HTTP 200")
                page.screenshot(path=str(shots / f"tryit-{hook_def.id}.png"), full_page=True)
                page.locator("#status").evaluate("e => e.textContent = ''")
        finally:
            browser.close()
    assert seen and all(u.startswith(service.url) for u in seen), seen


def test_dismissing_with_a_reason_sends_feedback(service: Running) -> None:
    require_chromium()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page()
            page.goto(f"{service.url}/tryit")
            page.select_option("#service", "post-mi-unplanned-visit-risk")
            page.click("#send")
            card = page.locator(".cds-card").first
            card.wait_for()
            uuid = card.get_attribute("data-card")
            card.locator(".override-reason").select_option(index=1)
            card.locator("button.dismiss").click()
            page.wait_for_selector(".feedback-result:has-text('Feedback sent.')")
        finally:
            browser.close()
    rows = service.db.rows("SELECT * FROM card_feedback WHERE card_uuid = :u", u=uuid)
    assert [r["outcome"] for r in rows] == ["overridden"]
    assert rows[0]["override_reason_code"]  # the reason picked from the card's overrideReasons


def test_the_smart_link_opens_the_app_through_the_local_ehr(
    service: Running, tmp_path: Path
) -> None:
    require_chromium()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            context = browser.new_context(viewport={"width": 1280, "height": 900})
            page = context.new_page()
            page.goto(f"{service.url}/tryit")
            page.select_option("#service", "post-mi-unplanned-visit-risk")
            page.click("#send")
            page.locator(".cds-card button.smart-link").first.wait_for()
            with context.expect_page() as opened:
                page.locator(".cds-card button.smart-link").first.click()
            app = opened.value
            app.wait_for_url(re.compile(re.escape(f"{service.url}/smart/app?s=")))
            assert "%" in app.locator("#risk-now .big").inner_text()
            assert "On the card you opened this from" in app.locator("#card-risk").inner_text()
            app.screenshot(
                path=str(screenshot_dir(tmp_path) / "tryit-smart-app.png"), full_page=True
            )
        finally:
            browser.close()

"""The SMART app in the deployment's language and display time zone (``CDS_LANGUAGE=nl``,
``CDS_DISPLAY_TIMEZONE``): every fixed text of the page from ``app_phrases.toml``, the service's
own texts from its ``[card.nl]``/``[service.nl]``, and every time in the cards' one format in the
configured zone (Asia/Tokyo here, so the Europe/Amsterdam default cannot pass for it).

Same stand-ins as ``test_smart_app.py``: the real service, a real SMART authorization server and
FHIR server on loopback, real SQLite/PostgreSQL, and headless Chromium for the screenshot.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from cds_service.main import create_app
from tests.utils.screenshots import screenshot_dir
from tests.utils.server import ServerThread, free_port
from tests.utils.service import BACKENDS, NOW, make_settings, new_database
from tests.web.smart_servers import SmartEhr
from tests.web.test_smart_app import (
    CHROMIUM,
    CHROMIUM_ARGS,
    CLIENT_ID,
    ED,
    MI,
    MovableClock,
    Smart,
    csrf_of,
    run_launch,
)
from tests.web.test_smart_menu_launch import load_mi, menu_launch

ZONE = "Asia/Tokyo"
TIME = re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d JST")
# English a Dutch page must not show (the page's own words; model names and codes stay as named)
ENGLISH = (
    "Accept",
    "Dismiss",
    "Change your response",
    "Missing or stale",
    "Contributing factors",
    "Your response",
    "computed now",
    "On the card",
    "Decision support only",
    "Blood pressure",
    "Heart rate",
    "used by the model",
    "no values",
    " UTC",
    " CET",
)


@pytest.fixture(scope="module", params=BACKENDS)
def dutch(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Smart]:
    tmp = tmp_path_factory.mktemp(f"smart-nl-{request.param}")
    db = new_database(str(request.param), tmp)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    settings = make_settings(
        db.url,
        tmp,
        public_base_url=url,
        smart_client_id=CLIENT_ID,
        language="nl",
        display_timezone=ZONE,
    )
    clock = MovableClock()
    try:
        with SmartEhr() as ehr, ServerThread(create_app(settings, clock=clock), port=port):
            ehr.register(CLIENT_ID, f"{url}/smart/callback")
            yield Smart(url, db, ehr, clock, settings, [])
    finally:
        db.close()


@pytest.fixture()
def nl(dutch: Smart) -> Iterator[Smart]:
    dutch.clock.now = NOW
    yield dutch
    for client in dutch.clients:
        client.close()
    dutch.clients.clear()


def _no_english(page: str) -> None:
    text = re.sub(r"<[^>]+>", " ", page)
    leaked = [w for w in ENGLISH if w in text]
    assert not leaked, leaked


def test_card_launch_page_is_dutch_with_times_in_the_display_zone(nl: Smart) -> None:
    card_uuid, app_context = nl.card("syn-mi-nl")
    done = run_launch(nl.browser(), nl.launch("syn-mi-nl", app_context))
    page = done.final.text
    assert done.final.status_code == 200, page
    assert "<html lang='nl'>" in page
    assert "<h1>Risico op ongepland ziekenhuisbezoek na myocardinfarct</h1>" in page
    for dutch in (
        "Kans op een ongepland ziekenhuisbezoek binnen 14 dagen",
        "Op de kaart waarvandaan u dit opende",
        "Bijdragende factoren",
        "Ontbrekende gegevens",
        "Bloeddruk",
        "Hartfrequentie",
        "Afwijzen met reden",
        "Klinisch oordeel wijkt af van het model",
        "Alleen beslisondersteuning",
    ):
        assert dutch in page, dutch
    assert re.search(r"<button class='accept' type='submit'>Akkoord</button>", page)
    card_time = re.search(r"getoond (\S+ \S+ \S+)\)", page)
    assert card_time is not None and TIME.fullmatch(card_time.group(1)), page
    assert re.search(rf"nu berekend \({TIME.pattern}\)", page)
    assert TIME.search(page.split("id='factors'")[1].split("</table>")[0])  # measured times
    _no_english(page)

    client = done.client
    form = {"s": done.locations[-1].rsplit("=", 1)[1], "csrf": csrf_of(page)}
    answer = client.post(
        f"{nl.url}/smart/feedback",
        data={**form, "outcome": "overridden", "reason": "disagree", "comment": ""},
    )
    assert answer.status_code == 303
    page = client.get(answer.headers["location"]).text
    done_text = re.search(r"id='feedback-done'>([^<]+)<", page)
    assert done_text is not None
    assert done_text.group(1).startswith("Afgewezen: Klinisch oordeel wijkt af van het model.")
    assert re.search(rf"Vastgelegd {TIME.pattern}, dank u\.", done_text.group(1))
    assert "<summary>Reactie wijzigen</summary>" in page
    _no_english(page)
    # the audit keeps the reason's code and its English display, whatever the page's language
    rows = nl.db.rows(
        "SELECT override_reason_code FROM v_feedback WHERE card_uuid = :u AND channel = 'smart'",
        u=card_uuid,
    )
    assert [r["override_reason_code"] for r in rows] == ["disagree"]


def test_menu_launch_page_is_dutch(nl: Smart) -> None:
    pid = "syn-mi-nl-menu"
    load_mi(nl, pid)
    page = run_launch(nl.browser(), menu_launch(nl, pid)).final.text
    assert "id='menu-launch'>Geopend vanuit het appmenu van het EPD" in page
    assert "<h2 id='h-feedback'>Uw reactie</h2>" in page
    assert re.search(rf"nu berekend \({TIME.pattern}\)", page)
    _no_english(page)


def test_error_page_is_dutch(nl: Smart) -> None:
    page = run_launch(nl.browser(), menu_launch(nl, "syn-nl-x", service="no-such")).final
    assert page.status_code == 400
    assert "<title>Risicodetails</title>" in page.text and "Er is niets opgeslagen" in page.text
    assert "<h2>Onbekende service</h2>" in page.text
    assert "De start-URL noemt een risicoservice die deze service niet aanbiedt" in page.text
    _no_english(page.text)


def test_discovery_is_dutch(nl: Smart) -> None:
    services = httpx.get(f"{nl.url}/cds-services", timeout=10).json()["services"]
    titles = {s["id"]: s["title"] for s in services}
    assert titles[MI] == "Risico op ongepland ziekenhuisbezoek na myocardinfarct"
    assert titles[ED] == "Risico op opname binnen 24 uur (SEH)"
    ed = next(s for s in services if s["id"] == ED)
    assert ed["description"].startswith("Schat de kans dat de patiënt binnen 24 uur")


def test_dutch_page_in_chromium(nl: Smart, tmp_path: Path) -> None:
    if not Path(CHROMIUM).exists():
        pytest.skip("Debian's chromium is not installed")
    from playwright.sync_api import sync_playwright

    _, app_context = nl.card("syn-mi-nl-browser")
    launch_url = nl.launch("syn-mi-nl-browser", app_context)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.goto(launch_url)
            page.wait_for_url(re.compile(re.escape(f"{nl.url}/smart/app?s=") + r"[\w-]{16}$"))
            risk_text = page.locator("#risk-now .big").inner_text()
            assert risk_text.strip().endswith(("laag", "matig", "hoog")), risk_text
            assert page.locator("#trends figure").filter(has_text="Bloeddruk").count() == 1
            tips = page.locator("#trends svg.trend circle.point title").all_text_contents()
            assert tips and all(TIME.search(t) for t in tips), tips[:3]
            page.screenshot(path=str(screenshot_dir(tmp_path) / "smart-app-nl.png"), full_page=True)
        finally:
            browser.close()

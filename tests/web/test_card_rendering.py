"""A card as the physician sees it in the EHR, in Dutch and in English, rendered in real Chromium
(the EHR stand-in is tests/utils/ehr_card.py). With ``CDS_SCREENSHOT_DIR=docs/images`` the
screenshots refresh the documentation's images (docs/images/card-*.png)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from cds_service.cds_hooks.examples import (
    ed_case,
    ed_prefetch,
    hook_body,
    mi_prefetch,
    post_mi_case,
)
from tests.utils.browser import CHROMIUM, CHROMIUM_ARGS, require_chromium
from tests.utils.ehr_card import card_page
from tests.utils.screenshots import screenshot_dir
from tests.utils.service import NOW, Service, running_service


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    require_chromium()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        launched = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield launched
        launched.close()


def _service(tmp: Path, language: str) -> Iterator[Service]:
    yield from running_service("sqlite", tmp, language=language)


@pytest.fixture(scope="module", params=["nl", "en"])
def svc(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Service]:
    yield from _service(tmp_path_factory.mktemp(f"cards-{request.param}"), request.param)


def _ed_card(svc: Service) -> dict[str, Any]:
    case = ed_case(NOW)
    body = hook_body(
        "encounter-start",
        case["patient"]["id"],
        ed_prefetch(case),
        encounter_id=case["encounter_id"],
    )
    (card,) = svc.call("ed-admission-risk", body).json()["cards"]
    return dict(card)


def _mi_card(svc: Service) -> dict[str, Any]:
    case = post_mi_case(NOW)
    body = hook_body("patient-view", case["patient"]["id"], mi_prefetch(case))
    (card,) = svc.call("post-mi-unplanned-visit-risk", body).json()["cards"]
    return dict(card)


WORDS = {
    "nl": (
        "Risico op opname",
        "Belangrijkste bijdragende factoren",
        "Leg dit risico vast in het dossier",
    ),
    "en": ("Admission risk", "Main contributing factors", "Record this risk in the patient record"),
}


@pytest.mark.parametrize("which", ["ed", "post-mi"])
def test_the_card_reads_as_the_ehr_shows_it(
    svc: Service, browser: Any, which: str, tmp_path: Path
) -> None:
    lang = svc.settings.language
    card = _ed_card(svc) if which == "ed" else _mi_card(svc)
    page = browser.new_page(viewport={"width": 900, "height": 700}, device_scale_factor=1)
    try:
        page.set_content(card_page(card, card["summary"], lang))
        assert page.inner_text(".summary") == card["summary"]
        detail = page.inner_text(".detail")
        heading = WORDS[lang][1]
        assert heading in detail
        rows = page.locator(".detail table tbody tr")
        assert rows.count() >= 3
        missing = page.locator(".detail ul li").all_inner_texts()
        factor_names = [rows.nth(i).locator("td").first.inner_text() for i in range(rows.count())]
        assert not {
            m.split(":")[0].replace(" (vereist)", "").replace(" (required)", "") for m in missing
        } & set(factor_names)
        button = page.locator("button")
        assert button.inner_text() == WORDS[lang][2]
        assert button.get_attribute("data-uuid") == card["suggestions"][0]["uuid"]
        if which == "ed":
            assert card["summary"].startswith(WORDS[lang][0])
        # the card fits the EHR's panel: no horizontal scrolling
        assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
        name = f"card-{which}-{lang}.png"
        page.locator("article.card").screenshot(path=str(screenshot_dir(tmp_path) / name))
    finally:
        page.close()

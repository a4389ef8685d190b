"""The try-it page draws any CDS Hooks 2.0 response from the wire format: every card attribute
the specification defines, escaped, without knowing which service sent it. And the page, its
signing and its local EHR exist only in development."""

from __future__ import annotations

import json
from pathlib import Path

import anyio
import httpx
from fastapi import FastAPI

from cds_service.config import Settings
from cds_service.main import create_app
from cds_service.web.tryit.render import cards_html

CARD = {
    "uuid": "c-1",
    "summary": "Summary <script>alert(1)</script>",
    "detail": "**bold** and <img src=x onerror=alert(1)>\n\n| a | b |\n|---|---|\n| 1 | 2 |",
    "indicator": "warning",
    "source": {"label": "Some service", "url": "https://example.org/src", "icon": "/i.png"},
    "suggestions": [
        {
            "label": "Order a lactate",
            "uuid": "s-1",
            "isRecommended": True,
            "actions": [{"type": "create", "description": "Add the order"}],
        },
        {"label": "Do nothing", "uuid": "s-2"},
    ],
    "selectionBehavior": "at-most-one",
    "overrideReasons": [{"code": "x", "system": "https://example.org/r", "display": "Not now"}],
    "links": [
        {"label": "Guideline", "url": "https://example.org/g", "type": "absolute"},
        {
            "label": "App",
            "url": "http://127.0.0.1/smart/launch",
            "type": "smart",
            "appContext": "{}",
        },
    ],
}


def test_every_card_attribute_is_drawn_and_escaped() -> None:
    html = cards_html(
        200, {"cards": [CARD], "systemActions": [{"type": "update", "description": "Flag"}]}
    )
    assert "indicator-warning" in html and ">Warning<" in html
    assert "&lt;script&gt;" in html and "<script>" not in html
    assert "<strong>bold</strong>" in html and "<img src=x" not in html
    assert "<table>" in html
    assert "Source: <a href='https://example.org/src'" in html and "src='/i.png'" in html
    assert "data-suggestion='s-1'" in html and "recommended" in html
    assert "<code>create</code> Add the order" in html
    assert "Select at-most-one." in html
    assert "href='https://example.org/g'" in html
    assert "class='smart-link' data-url='http://127.0.0.1/smart/launch'" in html
    assert ">Not now</option>" in html
    assert "System actions" in html and "Flag" in html


def test_a_card_with_only_the_required_attributes() -> None:
    html = cards_html(
        200, {"cards": [{"summary": "s", "indicator": "info", "source": {"label": "l"}}]}
    )
    assert "indicator-info" in html and "Source: l" in html
    assert "suggestions" not in html and "links" not in html


def test_no_cards_and_refusals_say_what_the_ehr_shows() -> None:
    assert "No cards" in cards_html(200, {"cards": []})
    outcome = {"resourceType": "OperationOutcome", "issue": [{"diagnostics": "token expired"}]}
    assert "HTTP 401: token expired" in cards_html(401, outcome)


def _asset_status(app: FastAPI) -> int:
    """GET the page's script with no start-up (routing only)."""

    async def get() -> int:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            return (await client.get("/tryit/static/tryit.js")).status_code

    return anyio.run(get)


def test_the_page_exists_only_in_development(tmp_path: Path) -> None:
    callers = tmp_path / "callers.json"
    callers.write_text(json.dumps([]))
    common = {"database_url": f"sqlite:///{tmp_path / 'a.sqlite3'}", "trusted_issuers": callers}
    assert _asset_status(create_app(Settings(**common))) == 200
    for env in ("acceptance", "production"):
        app = create_app(Settings(**common, environment=env, pseudonym_key="k" * 32))
        assert _asset_status(app) == 404, env

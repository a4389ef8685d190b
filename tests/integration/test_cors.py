"""CORS for browser-based CDS clients (the CDS Hooks sandbox), against a real server with JWT
verification on: preflights are answered on every CDS Hooks route without a token, allowed
origins are echoed, other origins get no allow-origin header."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from joserfc import jwk

from cds_service.cds_hooks.examples import ed_case, ed_prefetch, hook_body
from cds_service.main import create_app
from cds_service.security.local_issuer import generate_key, public_jwks, sign
from tests.utils.server import ServerThread
from tests.utils.service import NOW, PUBLIC_BASE, make_settings, new_database

SANDBOX = "https://sandbox.cds-hooks.org"
OTHER_ALLOWED = "https://ehr-app.hospital.example"
EVIL = "https://evil.example"
SERVICE = "ed-admission-risk"
ROUTES = {
    "/cds-services": "GET",
    f"/cds-services/{SERVICE}": "POST",
    f"/cds-services/{SERVICE}/feedback": "POST",
}


@dataclass
class Browserish:
    client: httpx.Client
    key: jwk.Key

    def token(self, path: str, **kw: Any) -> str:
        return sign(self.key, iss=SANDBOX, aud=PUBLIC_BASE + path, now=NOW.timestamp(), **kw)


@contextmanager
def _serve(tmp: Path, **overrides: object) -> Iterator[httpx.Client]:
    db = new_database("sqlite", tmp)
    app = create_app(make_settings(db.url, tmp, **overrides), clock=lambda: NOW)
    try:
        with ServerThread(app) as server, httpx.Client(base_url=server.url, timeout=10) as c:
            yield c
    finally:
        db.close()


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Browserish]:
    tmp = tmp_path_factory.mktemp("cors")
    key = generate_key("ES384")
    callers = [{"iss": SANDBOX, "jwks": public_jwks(key), "fhir_servers": []}]
    path = tmp / "trusted-callers.json"
    path.write_text(json.dumps(callers))
    with _serve(
        tmp,
        auth_disabled=False,
        trusted_issuers=path,
        cors_origins=f"{SANDBOX}, {OTHER_ALLOWED}/",  # a comma list; trailing slash tolerated
    ) as client:
        yield Browserish(client, key)


def preflight(
    client: httpx.Client, path: str, origin: str, method: str, headers: str
) -> httpx.Response:
    return client.options(
        path,
        headers={
            "Origin": origin,
            "Access-Control-Request-Method": method,
            "Access-Control-Request-Headers": headers,
        },
    )


def _listed(header: str) -> set[str]:
    return {h.strip().lower() for h in header.split(",")}


@pytest.mark.parametrize("path", list(ROUTES))
@pytest.mark.parametrize("origin", [SANDBOX, OTHER_ALLOWED])
def test_preflight_is_answered_without_a_token(browser: Browserish, path: str, origin: str) -> None:
    r = preflight(browser.client, path, origin, ROUTES[path], "authorization, content-type")
    assert r.status_code == 200, r.text
    assert r.headers["access-control-allow-origin"] == origin
    assert {"authorization", "content-type"} <= _listed(r.headers["access-control-allow-headers"])
    assert ROUTES[path].lower() in _listed(r.headers["access-control-allow-methods"])
    assert "origin" in _listed(r.headers.get("vary", ""))
    assert int(r.headers["access-control-max-age"]) > 0
    assert "access-control-allow-credentials" not in r.headers


@pytest.mark.parametrize("path", list(ROUTES))
def test_preflight_from_another_origin_gets_no_allow_origin(browser: Browserish, path: str) -> None:
    r = preflight(browser.client, path, EVIL, ROUTES[path], "authorization, content-type")
    assert "access-control-allow-origin" not in r.headers
    assert r.status_code >= 400


def test_preflight_for_an_unlisted_header_is_refused(browser: Browserish) -> None:
    r = preflight(browser.client, "/cds-services", SANDBOX, "GET", "authorization, x-debug")
    assert r.status_code >= 400


def test_simple_get_carries_the_allow_origin_header(browser: Browserish) -> None:
    token = browser.token("/cds-services")
    r = browser.client.get(
        "/cds-services", headers={"Origin": SANDBOX, "Authorization": f"Bearer {token}"}
    )
    assert r.status_code == 200, r.text
    assert r.headers["access-control-allow-origin"] == SANDBOX
    assert SERVICE in {s["id"] for s in r.json()["services"]}


def test_signed_service_call_from_the_browser_carries_the_header(browser: Browserish) -> None:
    case = ed_case(NOW)
    body = hook_body(
        "encounter-start", "syn-ed-1", ed_prefetch(case), encounter_id=case["encounter_id"]
    )
    token = browser.token(f"/cds-services/{SERVICE}")
    r = browser.client.post(
        f"/cds-services/{SERVICE}",
        json=body,
        headers={"Origin": SANDBOX, "Authorization": f"Bearer {token}"},
    )
    assert r.status_code == 200, r.text
    assert r.headers["access-control-allow-origin"] == SANDBOX


def test_sandbox_style_token_with_a_jku_header_and_inline_keys(browser: Browserish) -> None:
    jku = f"{SANDBOX}/.well-known/jwks.json"
    token = browser.token("/cds-services", header={"jku": jku})
    r = browser.client.get(
        "/cds-services", headers={"Origin": SANDBOX, "Authorization": f"Bearer {token}"}
    )
    assert r.status_code == 200, r.text


def test_refusals_carry_the_header_so_the_browser_can_show_why(browser: Browserish) -> None:
    r = browser.client.get("/cds-services", headers={"Origin": SANDBOX})
    assert r.status_code == 401
    assert r.headers["access-control-allow-origin"] == SANDBOX


def test_get_from_another_origin_gets_no_allow_origin(browser: Browserish) -> None:
    token = browser.token("/cds-services")
    r = browser.client.get(
        "/cds-services", headers={"Origin": EVIL, "Authorization": f"Bearer {token}"}
    )
    assert r.status_code == 200  # CORS is enforced by browsers; the JWT is what guards the API
    assert "access-control-allow-origin" not in r.headers


def test_without_configured_origins_there_are_no_cors_headers(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    with _serve(tmp_path_factory.mktemp("no-cors")) as client:
        r = preflight(client, "/cds-services", SANDBOX, "GET", "authorization")
        assert "access-control-allow-origin" not in r.headers
        r = client.get("/cds-services", headers={"Origin": SANDBOX})
        assert r.status_code == 200 and "access-control-allow-origin" not in r.headers


def test_a_refused_preflight_says_why_in_the_log(
    browser: Browserish, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level("INFO")
    r = preflight(browser.client, "/cds-services", EVIL, "GET", "authorization, x-debug")
    assert r.status_code == 400
    (line,) = [r.getMessage() for r in caplog.records if "CORS preflight refused" in r.getMessage()]
    assert f"origin {EVIL} is not in CDS_CORS_ORIGINS" in line
    assert SANDBOX in line  # the allowed origins, to compare with
    assert "header(s) x-debug not allowed" in line


def test_the_browser_may_read_why_a_call_was_refused(browser: Browserish) -> None:
    r = browser.client.get("/cds-services", headers={"Origin": SANDBOX})
    assert r.status_code == 401
    assert "www-authenticate" in _listed(r.headers["access-control-expose-headers"])


def test_without_configured_origins_a_preflight_is_refused_with_a_log_line(
    tmp_path_factory: pytest.TempPathFactory, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level("INFO")
    with _serve(tmp_path_factory.mktemp("no-cors-log")) as client:
        r = preflight(client, "/cds-services", SANDBOX, "GET", "authorization")
    assert r.status_code == 400
    assert any(
        f"origin {SANDBOX} is not in CDS_CORS_ORIGINS (allowed: none)" in r.getMessage()
        for r in caplog.records
    )
